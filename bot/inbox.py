"""The inbox: an update is ours only once it is stored, and done only once it is answered.

Polling confirms an offset to Telegram only after the updates before it are stored; webhook mode
stores each update before handling it. An update is handled with a few tries; one that keeps
failing is given up (one kind message, then acknowledged), so a poison update cannot loop. A row
left behind by a process that died is taken over by another (or by the same after its restart):
replayed if it was never handled, or, if its effect was committed but its reply lost, the person is
sent the question they are at.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from datetime import timedelta
from enum import Enum
from typing import Any

from telegram import Update
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import Application

from bot.handlers import SOMETHING_WENT_WRONG, Handlers
from bot.render import Message, Renderer
from bot.runtime import Services
from conversations.services.replies import address_of
from conversations.text import pick_language

log = logging.getLogger(__name__)

# Tries at one update, counted in the database (webhook redeliveries included).
MAX_ATTEMPTS = 3
REPLAY_BATCH = 100
# Given-up updates are remembered as long as Telegram may send them again.
FAILED_KEPT = timedelta(days=2)


class Outcome(Enum):
    DONE = "done"
    # Not finished: webhook mode answers 500 so that Telegram sends the update again.
    RETRY_LATER = "retry later"


class UpdateInbox:
    def __init__(
        self,
        services: Services,
        application: Application,  # type: ignore[type-arg]
        handlers: Handlers,
        renderer: Renderer,
        *,
        retry_pause: float = 0.5,
    ) -> None:
        self._services = services
        self._uow = services.unit_of_work
        self._bookkeeping = services.bookkeeping
        self._clock = services.clock
        self._application = application
        self._handlers = handlers
        self._renderer = renderer
        self._retry_pause = retry_pause
        # A row not finished for this long belongs to a process that died (or lost its answer).
        self.stale_after = timedelta(seconds=services.settings.inbox_takeover_seconds)
        self._done: set[int] = set()
        self._done_written = asyncio.Event()
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        # Updates this process replays as stale: a duplicate of one owes its person a reply.
        self.replaying: set[int] = set()
        # Rows this process holds (stored or taken over, not done): kept fresh so that no
        # other process takes them over while they wait in a busy chat's queue.
        self._held: set[int] = set()

    # --- receiving ------------------------------------------------------------------------------

    async def store(self, updates: list[Update]) -> list[Update]:
        """Keep the updates before Telegram is told they arrived; returns those to handle now
        (not the ones already given up)."""
        now = self._clock()
        taken_over = set()
        async with self._uow() as uow:
            # Handled and answered already: not stored again (its row would outlive any reply).
            known, answered = await uow.inbox.store(
                [(u.update_id, u.to_dict()) for u in updates], now
            )
            for held in known.values():
                # Sent again long after: whoever had it died. Claimed here, so that no other
                # process replays it too.
                if not held.failed and await uow.inbox.take_over(
                    held.update_id, now - self.stale_after, now
                ):
                    taken_over.add(held.update_id)
            await uow.commit()
        fresh = []
        for update in updates:
            entry = known.get(update.update_id)
            if update.update_id in answered:
                log.info("update %s was handled and answered before", update.update_id)
                continue
            if entry is not None and entry.failed:
                log.info("update %s was given up before: acknowledged", update.update_id)
                continue
            self._held.add(update.update_id)
            if update.update_id in taken_over:
                self.replaying.add(update.update_id)
            fresh.append(update)
        return fresh

    # --- handling -------------------------------------------------------------------------------

    async def run(self, update: Update, first: Awaitable[Any], webhook: bool = False) -> Outcome:
        """Handle one update (its first try is `first`), trying again while it fails. Whatever
        way it ends, this process stops keeping the row fresh, unless its delete is on its way:
        a row nobody finishes then goes stale and is taken over, never held forever."""
        try:
            return await self._tries(update, first, webhook)
        finally:
            self._release(update.update_id)

    def _release(self, update_id: int) -> None:
        if update_id not in self._done:
            self._held.discard(update_id)

    async def _tries(self, update: Update, first: Awaitable[Any], webhook: bool) -> Outcome:
        attempt: Awaitable[Any] = first
        while True:
            await attempt
            update_id = update.update_id
            if not self._handlers.take_failure(update_id):
                if self._handlers.take_owed(update_id):
                    # Handled, but its reply did not go: left to the recovery, once stale.
                    return Outcome.DONE
                if self._handlers.take_duplicate(update_id):
                    # Handled by another try, here or in another process (maybe dead since):
                    # only that one knows whether its reply went. The row stays: that one
                    # finishes it, or it goes stale and its person is sent their question again.
                    return Outcome.DONE
                self.replaying.discard(update_id)
                self.mark_done(update_id)
                return Outcome.DONE
            try:
                attempts = await self._count_failure(update_id)
            except Exception:
                log.warning("update %s: its failure could not be recorded", update_id)
                return Outcome.RETRY_LATER
            if attempts >= MAX_ATTEMPTS:
                await self._give_up(update)
                return Outcome.DONE
            if webhook:
                return Outcome.RETRY_LATER
            await asyncio.sleep(self._retry_pause * attempts)
            attempt = self._application.process_update(update)

    async def _count_failure(self, update_id: int) -> int:
        async with self._uow() as uow:
            attempts = await uow.inbox.attempt_failed(update_id, self._clock())
            await uow.commit()
        log.warning("update %s failed (try %s of %s)", update_id, attempts, MAX_ATTEMPTS)
        return attempts

    async def _give_up(self, update: Update) -> None:
        chat, user = update.effective_chat, update.effective_user
        async with self._uow() as uow:
            await uow.inbox.give_up(update.update_id, self._clock())
            person = await uow.people.by_telegram_id(user.id) if user is not None else None
            await uow.commit()
        log.error("update %s given up after %s tries", update.update_id, MAX_ATTEMPTS)
        if chat is None or user is None or chat.type != ChatType.PRIVATE:
            return
        language = pick_language(person.language if person else None, user.language_code)
        text = self._renderer.notice_text(language, SOMETHING_WENT_WRONG[address_of(person)])
        with contextlib.suppress(TelegramError):
            await self._handlers.send(self._application.bot, chat.id, Message(text))

    # --- done, in batches -------------------------------------------------------------------------

    def mark_done(self, update_id: int) -> None:
        """Handled and answered: the row goes, with others, in the next write. Held (kept fresh)
        until then, or a slow write would let it be taken over and its person asked again."""
        self._done.add(update_id)
        self._wake.set()

    def start(self) -> None:
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_forever(), name="inbox-done")

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        with contextlib.suppress(Exception):
            await self.flush()

    async def _flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            # One turn of the event loop: the replies that went out together are forgotten
            # together. Longer would leave rows a crash replays (their people asked again).
            await asyncio.sleep(0)
            self._wake.clear()
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("inbox: could not record handled updates")
                await asyncio.sleep(1)
                self._wake.set()

    async def flush(self) -> None:
        """Under load many updates finish together: one write forgets them all."""
        done, self._done = self._done, set()
        if not done:
            return
        try:
            async with self._bookkeeping() as uow:
                await uow.inbox.done(sorted(done))
                await uow.commit()
        except BaseException:
            # A cancellation too (a shutdown under load): the last flush in `stop` writes them.
            self._done |= done
            raise
        self._held -= done

    # --- what a dead process left -------------------------------------------------------------

    async def replay_stale(self, older_than: timedelta | None = None) -> int:
        """Take over the rows nobody finished: replay each through the application (in chat
        order); a duplicate among them gets its person's question back."""
        if older_than is None:
            older_than = self.stale_after
        now = self._clock()
        async with self._bookkeeping() as uow:
            await uow.inbox.touch(sorted(self._held), now)
            entries = await uow.inbox.claim_stale(now - older_than, now, REPLAY_BATCH)
            await uow.commit()
        replayed = 0
        for entry in entries:
            if entry.body is None:
                continue
            try:
                update = Update.de_json(entry.body, self._application.bot)
            except Exception:
                log.warning("inbox: update %s cannot be read back; dropped", entry.update_id)
                self.mark_done(entry.update_id)
                continue
            self.replaying.add(update.update_id)
            self._held.add(update.update_id)
            await self._application.update_queue.put(update)
            replayed += 1
        if replayed:
            log.info("inbox: %s unfinished updates taken over", replayed)
            log.debug("inbox: taken over %s", [entry.update_id for entry in entries])
        return replayed

    async def forget_given_up(self) -> int:
        async with self._bookkeeping() as uow:
            removed = await uow.inbox.forget_before(self._clock() - FAILED_KEPT)
            await uow.commit()
        return removed
