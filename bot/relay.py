"""The outbox relay: delivers what others must receive, with retries, and never twice.

A message is claimed (leased) in one transaction, rendered and sent, then marked sent in another.
Telegram's `retry_after` is honoured, errors back off exponentially, a blocked recipient (403)
stops at once, and after `max_attempts` the message is dead-lettered and the admins are told.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from telegram import Bot
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from bot.ratelimit import BACKGROUND
from bot.render import Renderer
from conversations.ports import (
    AssociationWebhook,
    Claimed,
    Conflict,
    ContactCard,
    UnitOfWorkFactory,
)
from conversations.services import alerts, handoffs
from conversations.services.policy import Policy

log = logging.getLogger(__name__)

BACKOFF_CAP = timedelta(minutes=10)
# Telegram may take its time to answer, and a message it delivered but answered too late would be
# sent again: wait well past PTB's 5 s before calling a send failed. What is left is documented in
# the README (a card can show twice only if Telegram delivered it and then answered 5xx, or no
# answer came within this time).
SEND_READ_TIMEOUT = 30.0


def send_budget(lease: timedelta) -> float:
    """How long one send may take. A send, and the write that marks it sent, must end inside the
    lease, or another relay, seeing the lease over, would send the same message again: a send
    starts only in the lease's first third, is cut after a third, and the last third is left for
    marking it sent."""
    return min(SEND_READ_TIMEOUT, lease.total_seconds() / 3)


class Undeliverable(Exception):
    """A failure that no retry will fix (a refused request, a recipient who blocked the bot)."""


# Posts an association's webhook: raises Undeliverable, or any other error to retry.
WebhookSender = Callable[[AssociationWebhook, str], Awaitable[None]]


class Relay:
    def __init__(
        self,
        unit_of_work: UnitOfWorkFactory,
        bot: Bot,
        renderer: Renderer,
        clock: Callable[[], datetime],
        policy: Policy,
        *,
        webhook_sender: WebhookSender | None = None,
        max_attempts: int = 8,
        lease: timedelta = timedelta(seconds=60),
        batch: int = 20,
        idle_seconds: float = 1.0,
    ) -> None:
        self._uow = unit_of_work
        self._clock = clock
        self._policy = policy
        self._bot = bot
        # Behind the replies to people in front of their chat (an ExtBot with a rate limiter,
        # as the application builds it; a bare Bot takes no such argument).
        self._limits: dict[str, Any] = (
            {"rate_limit_args": BACKGROUND} if getattr(bot, "rate_limiter", None) else {}
        )
        self._renderer = renderer
        self._webhook_sender = webhook_sender
        self._max_attempts = max_attempts
        self._lease = lease
        self._send_budget = send_budget(lease)
        self._batch = batch
        self._idle = idle_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def wake(self) -> None:
        """Something was enqueued: deliver now rather than at the next idle tick."""
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self, patience: float | None = None) -> None:
        """Finish the delivery under way, then stop. Not a bare cancel: on Python 3.11,
        `wait_for` can swallow a cancellation that comes as its wait ends (a wake-up at the same
        moment), and the loop would go on forever."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        # Long enough for the send under way and its marking: cut short, a message delivered
        # but not marked sent would go out again from another process.
        if patience is None:
            patience = self._send_budget + 5
        _done, late = await asyncio.wait({task}, timeout=patience)
        for pending in late:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pending

    async def _run(self) -> None:
        while not self._stopping:
            try:
                delivered = await self.deliver_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay pass failed")
                delivered = 0
            if delivered:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._idle)
            self._wake.clear()

    async def deliver_due(self) -> int:
        """One pass: claim what is due, try each; returns how many were handled."""
        now = self._clock()
        async with self._uow() as uow:
            claimed = await uow.outbox.claim_due(now, self._lease, self._batch)
            await uow.commit()
        # Past the lease another process may take these rows: what cannot be sent and marked
        # sent in time is given back at once rather than raced (see `send_budget`).
        deadline = now + timedelta(seconds=self._send_budget)
        for position, message in enumerate(claimed):
            if self._stopping or self._clock() >= deadline:
                async with self._uow() as uow:
                    await uow.outbox.release([m.id for m in claimed[position:]])
                    await uow.commit()
                break
            await self._deliver(message)
        return len(claimed)

    async def _deliver(self, claimed: Claimed) -> None:
        backoff = min(timedelta(seconds=2 ** (claimed.attempts + 1)), BACKOFF_CAP)
        try:
            async with asyncio.timeout(self._send_budget):
                sent_id = await self._send(claimed)
        except RetryAfter as error:
            wait = _seconds(error.retry_after)
            await self._retry(claimed, timedelta(seconds=wait), f"429 retry after {wait}s", False)
        except (Forbidden, BadRequest, Undeliverable) as error:
            await self._dead(claimed, f"{type(error).__name__}: {error}"[:200])
        except (TelegramError, OSError, TimeoutError) as error:
            await self._retry(claimed, backoff, type(error).__name__[:200])
        except Exception as error:
            log.exception("outbox message %s failed unexpectedly", claimed.id)
            await self._retry(claimed, backoff, type(error).__name__)
        else:
            await self._sent(claimed, sent_id)

    async def _send(self, claimed: Claimed) -> int | None:
        message = claimed.message
        if isinstance(message, AssociationWebhook):
            if self._webhook_sender is None:
                raise Undeliverable("no webhook sender configured")
            await self._webhook_sender(message, claimed.key)
            return None
        rendered = self._renderer.outbox(message)
        if isinstance(message, ContactCard) and message.message_id is not None:
            try:
                await self._bot.edit_message_text(
                    rendered.text,
                    chat_id=message.chat_id,
                    message_id=message.message_id,
                    reply_markup=rendered.markup,  # type: ignore[arg-type]
                    parse_mode=ParseMode.HTML,
                    read_timeout=self._send_budget,
                    **self._limits,
                )
            except BadRequest as error:
                # Already as wanted (an earlier attempt went through): that is a success.
                if "not modified" not in error.message:
                    raise
            return message.message_id
        sent = await self._bot.send_message(
            message.chat_id,
            rendered.text,
            reply_markup=rendered.markup,
            parse_mode=ParseMode.HTML,
            read_timeout=self._send_budget,
            **self._limits,
        )
        return sent.message_id

    async def _sent(self, claimed: Claimed, sent_id: int | None) -> None:
        now = self._clock()
        async with self._uow() as uow:
            erased = await uow.outbox.mark_sent(claimed.id, claimed.attempts + 1, sent_id, now)
            await uow.commit()
        log.info("outbox %s delivered (%s)", claimed.id, type(claimed.message).__name__)
        # Separate from marking it sent: a conflict here must never cause a second send.
        for _attempt in range(3):
            try:
                async with self._uow() as uow:
                    await handoffs.delivered(
                        uow, claimed.message, sent_id, erased, self._clock(), self._policy
                    )
                    await uow.commit()
                break
            except Conflict:
                continue

    async def _retry(
        self, claimed: Claimed, wait: timedelta, reason: str, count: bool = True
    ) -> None:
        attempts = claimed.attempts + 1
        if count and attempts >= self._max_attempts:
            await self._dead(claimed, reason)
            return
        async with self._uow() as uow:
            await uow.outbox.retry_later(claimed.id, attempts, self._clock() + wait, reason)
            await uow.commit()
        log.warning("outbox %s will retry in %ss: %s", claimed.id, wait.total_seconds(), reason)

    async def _dead(self, claimed: Claimed, reason: str) -> None:
        async with self._uow() as uow:
            await alerts.dead_lettered(uow, self._policy.admins, claimed, reason, self._clock())
            await uow.commit()
        log.error("outbox %s dead-lettered: %s", claimed.id, reason)


def _seconds(value: object) -> float:
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)  # type: ignore[arg-type]
