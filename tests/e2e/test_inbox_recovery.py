"""An update a live process cannot finish is never held forever: its row goes stale, is taken
over, and its person gets their reply (found by a review, kept as regressions)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from bot.app import TelegramBot, build_bot
from bot.polling import running
from bot.processor import PerChatUpdateProcessor
from bot.sandbox.emulator import BotApiEmulator
from conversations.services import updates
from storage.db import create_engine
from tests.e2e.conftest import settings_for

TAKEOVER = 1.5
WELCOME = "Qui êtes-vous"


def bot_with_short_takeover(emulator: BotApiEmulator, url: str) -> TelegramBot:
    settings = settings_for(emulator, url).model_copy(update={"inbox_takeover_seconds": TAKEOVER})
    return build_bot(settings)


async def inbox_emptied(url: str, patience: float = 5.0) -> list[int]:
    """The inbox's rows once it has emptied, or after `patience`: a row is deleted just after
    its reply is sent (the flush follows the send), so it can outlive the message by a moment."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    rows = await inbox_rows(url)
    while rows and loop.time() < deadline:
        await asyncio.sleep(0.1)
        rows = await inbox_rows(url)
    return rows


async def inbox_rows(url: str) -> list[int]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return list(
                (await connection.execute(sa.text("SELECT update_id FROM inbox"))).scalars()
            )
    finally:
        await engine.dispose()


async def test_a_failure_that_could_not_even_be_counted_is_taken_over_in_polling_mode(
    emulator: BotApiEmulator, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database blip fails the handling and then the count of its failure: nothing retries
    it at once, and the row must not stay fresh forever."""
    original = updates.handle
    blips = {"handle": 1}

    async def handle(*args: Any, **kwargs: Any) -> Any:
        if blips["handle"]:
            blips["handle"] -= 1
            raise RuntimeError("database blip")
        return await original(*args, **kwargs)

    monkeypatch.setattr(updates, "handle", handle)
    bot = bot_with_short_takeover(emulator, sqlite_url)
    count = bot.inbox._count_failure

    async def count_once_failing(update_id: int) -> int:
        monkeypatch.setattr(bot.inbox, "_count_failure", count)
        raise RuntimeError("database blip, still")

    monkeypatch.setattr(bot.inbox, "_count_failure", count_once_failing)
    user = emulator.user(4242, "Inès")
    async with running(bot):
        user.send_command("start")
        welcome = await user.wait_for_message(
            lambda m: WELCOME in (m.text or ""), timeout=TAKEOVER * 4 + 3
        )
        assert await inbox_emptied(sqlite_url) == []
    assert "Collectif Mentorat" in (welcome.text or "")


@contextlib.asynccontextmanager
async def serving(bot: TelegramBot) -> AsyncIterator[TelegramBot]:
    """The application as webhook mode runs it, without the HTTP server."""
    application = bot.application
    async with application:
        await application.post_init(application)  # type: ignore[misc]
        await application.start()
        try:
            yield bot
        finally:
            await application.stop()
            await application.post_stop(application)  # type: ignore[misc]
    await application.post_shutdown(application)  # type: ignore[misc]


async def test_a_reply_refused_then_a_redelivery_handled_elsewhere_still_reaches_the_person(
    emulator: BotApiEmulator, sqlite_url: str
) -> None:
    """Process A commits /start, its welcome is refused: A answers 500 and keeps nothing
    held. Telegram's retry lands on B, which finds it handled (200, no more retries). The row,
    no longer kept fresh by A, is taken over and the welcome sent."""
    a = bot_with_short_takeover(emulator, sqlite_url)
    b = bot_with_short_takeover(emulator, sqlite_url)
    user = emulator.user(4343, "Inès")
    async with serving(a), serving(b):
        user.send_command("start")
        update = (await a.application.bot.get_updates())[0]
        emulator.faults.add(method="sendMessage", status=400, description="Bad Request: refused")
        for process in (a, b):
            processor = process.application.update_processor
            assert isinstance(processor, PerChatUpdateProcessor)
            assert await process.inbox.store([update])
            await processor.process_webhook(update, process.application.process_update(update))
        welcome = await user.wait_for_message(
            lambda m: WELCOME in (m.text or ""), timeout=TAKEOVER * 4 + 3
        )
        assert await inbox_emptied(sqlite_url) == []
    assert [m.text for m in user.messages].count(welcome.text) == 1
