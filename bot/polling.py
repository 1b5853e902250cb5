"""Long polling that loses nothing: an offset is confirmed to Telegram only once the updates
before it are stored in the inbox (PTB's Updater confirms them on its next call, before they
are handled, so a crash in between would drop them)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import TYPE_CHECKING

from telegram import Bot
from telegram.error import Conflict, Forbidden, InvalidToken, NetworkError, RetryAfter, TimedOut
from telegram.ext import Application

from bot.inbox import UpdateInbox
from bot.runtime import settle_heap
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.app import TelegramBot

log = logging.getLogger(__name__)

# my_chat_member: Telegram says when a person blocks (or unblocks) the bot.
ALLOWED_UPDATES = ["message", "callback_query", "my_chat_member"]
# Seconds Telegram holds a getUpdates open when nothing comes.
LONG_POLL = 10
BACKOFF_CAP = 30.0


class InboxPoller:
    def __init__(
        self,
        application: Application,  # type: ignore[type-arg]
        inbox: UpdateInbox,
        *,
        long_poll: int = LONG_POLL,
    ) -> None:
        self._application = application
        self._bot: Bot = application.bot
        self._inbox = inbox
        self._long_poll = long_poll
        self._task: asyncio.Task[None] | None = None
        self.running = False

    async def start(self) -> None:
        """Replay what the inbox kept from before (it comes first, in order), then poll."""
        # Polling is one process per bot (Telegram answers 409 to a second): whatever the
        # inbox holds was left by this bot's previous run.
        await self._bot.delete_webhook(drop_pending_updates=False)
        await self._inbox.replay_stale(older_than=timedelta(0))
        self.running = True
        self._task = asyncio.create_task(self._poll(), name="inbox-poller")

    @property
    def alive(self) -> bool:
        """Started and still polling (it stops for good when Telegram refuses the token)."""
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        self.running = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _poll(self) -> None:
        offset: int | None = None
        failures = 0
        while True:
            try:
                updates = await self._bot.get_updates(
                    offset=offset,
                    timeout=self._long_poll,
                    # PTB adds the long poll's `timeout` to this: 10 s of grace past it.
                    read_timeout=10,
                    allowed_updates=ALLOWED_UPDATES,
                )
                if updates:
                    fresh = await self._inbox.store(list(updates))
                    # Only now may Telegram forget them: the next call confirms this offset.
                    offset = updates[-1].update_id + 1
                    for update in fresh:
                        await self._application.update_queue.put(update)
                failures = 0
            except asyncio.CancelledError:
                raise
            except (InvalidToken, Forbidden):
                log.error("Telegram refuses this bot's token: polling stops")
                return
            except RetryAfter as error:
                await asyncio.sleep(_seconds(error.retry_after))
            except (Conflict, TimedOut, NetworkError, OSError) as error:
                # 409: another poller or a webhook; 5xx or the network: try again, slower.
                failures += 1
                log.warning("getUpdates failed (%s), attempt %s", type(error).__name__, failures)
                await asyncio.sleep(min(BACKOFF_CAP, 0.5 * 2**failures))
            except Exception:
                # The database could not store them: not confirmed, Telegram keeps them.
                failures += 1
                log.exception("updates could not be stored; Telegram keeps them")
                await asyncio.sleep(min(BACKOFF_CAP, 0.5 * 2**failures))


def _seconds(value: object) -> float:
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)  # type: ignore[arg-type]


async def run_polling(
    settings: Settings,
    *,
    ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """The bot in polling mode until SIGINT/SIGTERM (or `stop`): what `mentorat-bot run` runs."""
    from bot.app import build_bot
    from bot.web import operations_server

    bot = build_bot(settings)
    from_command_line = stop is None
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    async with running(bot), operations_server(bot, settings):
        log.info("polling mode: @%s is ready", bot.application.bot.username)
        if from_command_line:
            settle_heap()
        if ready is not None:
            ready.set()
        await stop.wait()


@contextlib.asynccontextmanager
async def running(bot: TelegramBot) -> AsyncIterator[TelegramBot]:
    """The order of PTB's run_polling(), with the inbox's poller instead of PTB's Updater."""
    application = bot.application
    async with application:
        assert application.post_init is not None
        await application.post_init(application)
        await application.start()
        await bot.poller.start()
        try:
            yield bot
        finally:
            await bot.poller.stop()
            await application.stop()
            assert application.post_stop is not None
            await application.post_stop(application)
    assert application.post_shutdown is not None
    await application.post_shutdown(application)
