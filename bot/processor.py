"""Updates of one chat in order, different chats at the same time (python-telegram-bot #3509).

PTB's `concurrent_updates` alone would let two taps of one person race each other; a lock per chat
keeps their order. The chat lock is taken before a running slot, so a person who sends twenty
messages in a row occupies one slot, not twenty, and cannot starve the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from telegram import Update
from telegram.ext import BaseUpdateProcessor

if TYPE_CHECKING:
    from bot.inbox import Outcome, UpdateInbox

T = TypeVar("T")


def chat_key(update: object) -> int | None:
    if not isinstance(update, Update):
        return None
    if update.effective_chat is not None:
        return update.effective_chat.id
    if update.effective_user is not None:
        return update.effective_user.id
    return None


class PerChatUpdateProcessor(BaseUpdateProcessor):
    # PTB's own semaphore is taken before `do_process_update`; it only bounds waiting updates here.
    WAITING_MAX = 10_000

    def __init__(self, max_concurrent_updates: int) -> None:
        super().__init__(self.WAITING_MAX)
        self._running = asyncio.Semaphore(max_concurrent_updates)
        self._locks: dict[int, asyncio.Lock] = {}
        self._holders: dict[int, int] = {}
        # Set once the application is built: each update is run through the inbox.
        self.inbox: UpdateInbox | None = None

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Polling and replays: PTB hands over each update it takes from its queue."""
        inbox = self.inbox
        if inbox is None or not isinstance(update, Update):
            await self._in_order(update, lambda: coroutine)
            return
        await self._in_order(update, lambda: inbox.run(update, coroutine))

    async def process_webhook(self, update: Update, coroutine: Awaitable[Any]) -> Outcome:
        """A POSTed update, in its chat's order; says whether Telegram must send it again."""
        assert self.inbox is not None
        inbox = self.inbox
        return await self._in_order(update, lambda: inbox.run(update, coroutine, webhook=True))

    async def _in_order(self, update: object, run: Callable[[], Awaitable[T]]) -> T:
        key = chat_key(update)
        if key is None:
            async with self._running:
                return await run()
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._holders[key] = self._holders.get(key, 0) + 1
        try:
            async with lock, self._running:
                return await run()
        finally:
            self._holders[key] -= 1
            if self._holders[key] == 0:
                # Forget idle chats, or the dict would grow with every person ever seen.
                del self._holders[key]
                del self._locks[key]

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass
