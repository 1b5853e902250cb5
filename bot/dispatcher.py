"""The outbox dispatcher: delivers what others must receive, with retries, and never twice.

A message is claimed (leased) in one transaction, sent, then marked sent in another. Telegram's
`retry_after` is honoured, errors back off exponentially, a blocked recipient (403) stops at once,
and after `max_attempts` the message is dead-lettered and the admins are told.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm.exc import StaleDataError
from telegram import Bot, InlineKeyboardMarkup
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from bot.i18n import Translator
from conversations.text import _
from storage.outbox import DEAD, SENT
from storage.uow import UnitOfWork

log = logging.getLogger(__name__)

BACKOFF_CAP = timedelta(minutes=10)
# The Collectif's staff read French.
ADMIN_LANGUAGE = "fr"
DEAD_LETTER = _(
    "⚠️ Un message n'a pas pu être remis après plusieurs essais (n° %(id)s, %(kind)s) : %(reason)s"
)


@dataclass(frozen=True)
class Claimed:
    """What one delivery needs, copied out of the claiming transaction."""

    id: int
    dedup_key: str
    channel: str
    chat_id: int | None
    url: str | None
    payload: dict[str, Any]
    attempts: int


class Undeliverable(Exception):
    """A failure that no retry will fix (a refused request, a recipient who blocked the bot)."""


# A webhook sender (added by the handoff channel): raises Undeliverable or any error to retry.
WebhookSender = Callable[[str, dict[str, Any]], Awaitable[None]]
# Called in the transaction that marks a message sent (a handoff becomes "delivered").
OnSent = Callable[[UnitOfWork, dict[str, Any], datetime], Awaitable[None]]
# The silence timers, run every `timer_seconds` by the same loop.
Timers = Callable[[datetime], Awaitable[int]]


class Dispatcher:
    def __init__(
        self,
        unit_of_work: Callable[[], UnitOfWork],
        bot: Bot,
        clock: Callable[[], datetime],
        translator: Translator,
        *,
        admins: tuple[int, ...] = (),
        max_attempts: int = 8,
        lease: timedelta = timedelta(seconds=60),
        batch: int = 20,
        idle_seconds: float = 1.0,
        webhook_sender: WebhookSender | None = None,
        on_sent: OnSent | None = None,
        timers: Timers | None = None,
        timer_seconds: float = 60.0,
    ) -> None:
        self._uow = unit_of_work
        self._bot = bot
        self._translator = translator
        self._clock = clock
        self._admins = admins
        self._max_attempts = max_attempts
        self._lease = lease
        self._batch = batch
        self._idle = idle_seconds
        self._webhook_sender = webhook_sender
        self._on_sent = on_sent
        self._timers = timers
        self._timer_seconds = timer_seconds
        self._timers_due = 0.0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Something was enqueued: deliver now rather than at the next idle tick."""
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="outbox-dispatcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self._timers is not None and loop.time() >= self._timers_due:
                self._timers_due = loop.time() + self._timer_seconds
                try:
                    await self._timers(self._clock())
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("silence timers failed")
            try:
                delivered = await self.deliver_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox dispatcher pass failed")
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
            rows = await uow.outbox.claim_due(now, self._lease, self._batch)
            claimed = [
                Claimed(r.id, r.dedup_key, r.channel, r.chat_id, r.url, dict(r.payload), r.attempts)
                for r in rows
            ]
            await uow.commit()
        # Past the lease another process may take these rows: stop early rather than race it.
        deadline = now + self._lease * 0.8
        for position, message in enumerate(claimed):
            if self._clock() >= deadline:
                await self._release(claimed[position:])
                break
            await self._deliver(message)
        return len(claimed)

    async def _release(self, messages: list[Claimed]) -> None:
        async with self._uow() as uow:
            for message in messages:
                row = await uow.outbox.get(message.id)
                if row is not None:
                    row.claimed_until = None
            await uow.commit()

    async def _deliver(self, message: Claimed) -> None:
        try:
            sent_id = await self._send(message)
        except RetryAfter as error:
            wait = _seconds(error.retry_after)
            await self._retry(
                message, timedelta(seconds=wait), f"429 retry after {wait}s", count=False
            )
        except (Forbidden, BadRequest, Undeliverable) as error:
            await self._dead(message, f"{type(error).__name__}: {error}"[:200])
        except (TelegramError, OSError, TimeoutError) as error:
            backoff = min(timedelta(seconds=2 ** (message.attempts + 1)), BACKOFF_CAP)
            await self._retry(message, backoff, f"{type(error).__name__}"[:200])
        except Exception as error:
            log.exception("outbox message %s failed unexpectedly", message.id)
            backoff = min(timedelta(seconds=2 ** (message.attempts + 1)), BACKOFF_CAP)
            await self._retry(message, backoff, type(error).__name__)
        else:
            await self._sent(message, sent_id)

    async def _send(self, message: Claimed) -> int | None:
        payload = message.payload
        if message.channel == "webhook":
            if self._webhook_sender is None or message.url is None:
                raise Undeliverable("no webhook sender configured")
            await self._webhook_sender(message.url, {**payload, "delivery": message.dedup_key})
            return None
        assert message.chat_id is not None
        markup = payload.get("reply_markup")
        keyboard = InlineKeyboardMarkup.de_json(markup, self._bot) if markup else None
        if payload.get("method") == "edit":
            try:
                await self._bot.edit_message_text(
                    payload["text"],
                    chat_id=message.chat_id,
                    message_id=int(payload["message_id"]),
                    reply_markup=keyboard,
                    parse_mode=ParseMode.HTML,
                )
            except BadRequest as error:
                # Already as wanted (an earlier attempt went through): that is a success.
                if "not modified" not in error.message:
                    raise
            return int(payload["message_id"])
        sent = await self._bot.send_message(
            message.chat_id, payload["text"], reply_markup=keyboard, parse_mode=ParseMode.HTML
        )
        return sent.message_id

    async def _sent(self, message: Claimed, sent_id: int | None) -> None:
        erased_meanwhile = False
        async with self._uow() as uow:
            row = await uow.outbox.get(message.id)
            if row is None:
                return
            # Erased while it was on its way: it stays dead, but the message that went out must
            # now be scrubbed, which the on_sent hook does from the "erased_card" it gets.
            erased_meanwhile = row.status == DEAD and row.last_error == "erased"
            if not erased_meanwhile:
                row.status = SENT
            row.sent_at = self._clock()
            row.sent_message_id = sent_id
            row.claimed_until = None
            row.attempts = message.attempts + 1
            await uow.commit()
        log.info("outbox %s delivered (%s)", message.id, message.payload.get("kind"))
        payload = message.payload
        if erased_meanwhile:
            payload = {
                "kind": "erased_card",
                "handoff_id": payload.get("handoff_id"),
                "chat_id": message.chat_id,
                "message_id": sent_id,
            }
        if self._on_sent is not None:
            # Separate from marking it sent: a conflict here must never cause a second send.
            for _attempt in range(3):
                try:
                    async with self._uow() as uow:
                        await self._on_sent(uow, payload, self._clock())
                        await uow.commit()
                    break
                except StaleDataError:
                    continue

    async def _retry(
        self, message: Claimed, wait: timedelta, reason: str, count: bool = True
    ) -> None:
        attempts = message.attempts + 1
        if count and attempts >= self._max_attempts:
            await self._dead(message, reason)
            return
        async with self._uow() as uow:
            row = await uow.outbox.get(message.id)
            if row is None:
                return
            row.attempts = attempts
            row.next_attempt_at = self._clock() + wait
            row.claimed_until = None
            row.last_error = reason
            await uow.commit()
        log.warning("outbox %s will retry in %ss: %s", message.id, wait.total_seconds(), reason)

    async def _dead(self, message: Claimed, reason: str) -> None:
        now = self._clock()
        async with self._uow() as uow:
            row = await uow.outbox.get(message.id)
            if row is None:
                return
            row.status = DEAD
            row.attempts = message.attempts + 1
            row.claimed_until = None
            row.last_error = reason
            # An alert about a dead alert would loop: admins hear about other messages only.
            if message.payload.get("kind") != "admin_alert":
                for admin in self._admins:
                    await uow.outbox.enqueue(
                        f"dead:{message.id}:{admin}",
                        now,
                        chat_id=admin,
                        payload={
                            "kind": "admin_alert",
                            "text": self._translator.html(
                                ADMIN_LANGUAGE,
                                DEAD_LETTER.fmt(
                                    id=message.id,
                                    kind=str(message.payload.get("kind")),
                                    reason=reason,
                                ),
                            ),
                        },
                    )
            await uow.commit()
        log.error("outbox %s dead-lettered: %s", message.id, reason)


def _seconds(value: object) -> float:
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)  # type: ignore[arg-type]
