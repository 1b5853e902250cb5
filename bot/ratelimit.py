"""Telegram's flood limit, shared so that the person in front of the chat is served first.

Telegram lets a bot make about 30 requests a second; past that it answers 429 with a
`retry_after`. PTB's own AIORateLimiter serves requests in the order they come, so a burst of
background sends (a digest, cards re-routed by a timer, a relay catching up after an outage) can
put every waiting person's next question behind it. Here a request marked background (the outbox
relay's, with `rate_limit_args=BACKGROUND`) only takes a slot no reply is waiting for.

A 429 pauses every request for its `retry_after` (the limit is the bot's, not one chat's); a
reply is then tried again, a few times at most, and a background send gives the 429 back to the
relay, which schedules it again by its own clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

log = logging.getLogger(__name__)

# What the relay passes as `rate_limit_args`: nobody is waiting for it in front of a chat.
BACKGROUND: dict[str, Any] = {"background": True}

Callback = Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]]


class PriorityRateLimiter(BaseRateLimiter[dict[str, Any]]):
    """A token bucket of `max_rate` requests a second (bursts up to one second's worth), with
    two queues: replies, then background sends. `max_rate` 0: no limit, 429s still honoured."""

    def __init__(self, max_rate: float, max_retries: int = 3) -> None:
        self._rate = max_rate
        self._capacity = max(1.0, max_rate)
        self._tokens = self._capacity
        self._refilled = 0.0
        self._max_retries = max_retries
        self._paused_until = 0.0
        self._replies: deque[asyncio.Future[None]] = deque()
        self._background: deque[asyncio.Future[None]] = deque()
        self._dispatcher: asyncio.Task[None] | None = None

    async def initialize(self) -> None:
        self._refilled = asyncio.get_running_loop().time()

    async def shutdown(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
            self._dispatcher = None

    async def process_request(
        self,
        callback: Callback,
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: dict[str, Any] | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        background = bool(rate_limit_args and rate_limit_args.get("background"))
        for attempt in range(self._max_retries + 1):
            await self._slot(background)
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as error:
                if attempt == self._max_retries:
                    raise
                pause = error.retry_after
                seconds = pause if isinstance(pause, int | float) else pause.total_seconds()
                loop = asyncio.get_running_loop()
                self._paused_until = max(self._paused_until, loop.time() + seconds)
                log.warning(
                    "Telegram asked to wait %.1f s (%s): every request waits", seconds, endpoint
                )
                if background:
                    # The relay reschedules it after retry_after by its own clock, and frees
                    # its worker meanwhile.
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _slot(self, background: bool) -> None:
        loop = asyncio.get_running_loop()
        if not self._replies and not self._background and self._take(loop.time()):
            return
        waiter: asyncio.Future[None] = loop.create_future()
        (self._background if background else self._replies).append(waiter)
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = loop.create_task(self._dispatch())
        await waiter

    def _take(self, now: float) -> bool:
        """A slot now, if the bucket has one and Telegram did not ask to wait."""
        if now < self._paused_until:
            return False
        if self._rate <= 0:
            return True
        self._tokens = min(self._capacity, self._tokens + (now - self._refilled) * self._rate)
        self._refilled = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def _next_waiter(self) -> asyncio.Future[None] | None:
        for queue in (self._replies, self._background):
            while queue:
                waiter = queue.popleft()
                # A request given up meanwhile (its handler was cancelled) needs no slot.
                if not waiter.done():
                    return waiter
        return None

    async def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        while self._replies or self._background:
            now = loop.time()
            if not self._take(now):
                wait = max(self._paused_until - now, 0.0)
                if self._rate > 0:
                    wait = max(wait, (1 - self._tokens) / self._rate)
                await asyncio.sleep(wait)
                continue
            waiter = self._next_waiter()
            if waiter is None:
                # Every waiter was cancelled: the slot goes back.
                self._tokens = min(self._capacity, self._tokens + 1)
                return
            waiter.set_result(None)
