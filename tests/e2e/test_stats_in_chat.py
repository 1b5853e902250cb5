"""The staff's figures in Telegram: /stats for admins (text and funnel chart), the Monday digest."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest

from bot.app import TelegramBot, build_bot
from bot.sandbox.emulator import BotApiEmulator
from bot.sandbox.images import PNG_SIGNATURE
from bot.sandbox.models import ChatMessage, UploadedFile
from conversations.services import digest
from conversations.services.stats import PARIS
from tests.e2e.conftest import Chat, running, settings_for
from tests.e2e.test_handoff import Clock, complete_sign_up

ADMIN = 999


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def app(
    emulator: BotApiEmulator, sqlite_url: str, clock: Clock
) -> AsyncIterator[TelegramBot]:
    settings = settings_for(emulator, sqlite_url).model_copy(
        update={"admin_telegram_ids": (ADMIN,), "timer_seconds": 0.05}
    )
    async with running(build_bot(settings, clock=clock)) as running_bot:
        yield running_bot


async def a_few_sign_ups(person: Callable[..., Chat]) -> None:
    """Two young people start (one finishes and is handed off), one would-be mentor starts."""
    await complete_sign_up(person, 4242)
    karim = person(4243, "Karim")
    await karim.starts()
    await karim.taps("Je cherche un·e mentor·e", expect="Question 1 ·")
    await karim.says("Karim", expect="Question 2 ·")
    sam = person(4244, "Sam")
    await sam.starts()
    await sam.taps("Je veux devenir mentor·e", expect="Question 1 ·")


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG_SIGNATURE)
    assert data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


async def stats_of(chat: Chat) -> tuple[ChatMessage, ChatMessage]:
    chat.user.drain()
    chat.user.send_command("stats")
    text = await chat.reads(expect="Les chiffres de la semaine")
    photo = await chat.user.wait_for_message(lambda m: bool(m.photo))
    return text, photo


async def test_an_admin_s_stats_show_this_week_s_sign_ups_contacts_and_the_funnel_chart(
    app: TelegramBot, emulator: BotApiEmulator, person: Callable[..., Chat]
) -> None:
    admin = person(ADMIN, "Awa")
    # Opened before: the admins' alerts (an association without coordinators) reach them.
    await admin.starts()
    await a_few_sign_ups(person)

    text, photo = await stats_of(admin)

    body = text.text or ""
    assert "Jeunes : commencées 2 (0) · terminées 1 (0)" in body
    assert "Mentors : commencées 1 (0) · terminées 0 (0)" in body
    # Inès's contact waits for Proxité, which nobody has taken yet.
    assert "En ce moment : 1 en attente · 0 pris en charge" in body
    assert "Refusés : 0 (0) · réorientés : 0 (0)" in body
    assert "Délai médian de prise en charge : – (–)" in body
    assert "Messages non remis : 0" in body
    # The chart went up as a file, as Telegram expects a new picture.
    (call,) = emulator.calls("sendPhoto")
    assert isinstance(call.params["photo"], UploadedFile)
    assert photo.photo_file is not None
    assert png_size(photo.photo_file) == (960, 540)
    assert (photo.photo[-1]["width"], photo.photo[-1]["height"]) == (960, 540)
    assert "30 derniers jours" in (photo.caption or "")


async def test_an_english_speaking_admin_reads_the_figures_in_english(
    app: TelegramBot, person: Callable[..., Chat]
) -> None:
    admin = person(ADMIN, "Awa", language_code="en")
    admin.user.send_command("stats")

    text = await admin.reads(expect="This week's figures")
    photo = await admin.user.wait_for_message(lambda m: bool(m.photo))

    assert "Young people: started 0 (0) · finished 0 (0)" in (text.text or "")
    assert "last 30 days" in (photo.caption or "")


async def test_someone_who_is_not_an_admin_gets_no_figures(
    app: TelegramBot, emulator: BotApiEmulator, person: Callable[..., Chat]
) -> None:
    await complete_sign_up(person, 4242)
    stranger = person(5555, "Lou")
    await stranger.starts()
    stranger.user.drain()

    stranger.user.send_command("stats")

    answer = await stranger.reads()
    assert "réservés à l'équipe du Collectif" in (answer.text or "")
    assert "Inscriptions" not in (answer.text or "")
    # Nothing else follows: no chart, no figures.
    await asyncio.sleep(0.3)
    assert stranger.user.drain() == []
    assert emulator.calls("sendPhoto") == []


def next_monday(at: datetime, hour: int, minute: int) -> datetime:
    """The Monday after `at` (Paris), at that time, as an aware UTC time."""
    local = at.astimezone(PARIS)
    monday = local.date() + timedelta(days=7 - local.weekday())
    return datetime(monday.year, monday.month, monday.day, hour, minute, tzinfo=PARIS).astimezone(
        UTC
    )


async def test_the_admin_receives_last_week_s_figures_once_on_monday_morning(
    emulator: BotApiEmulator, sqlite_url: str, person: Callable[..., Chat], clock: Clock
) -> None:
    admin = person(ADMIN, "Awa")
    # The admin has written to the bot before (a bot cannot open a chat).
    admin.user.send_command("start")
    real = datetime.now(UTC)
    monday = next_monday(real, 8, 30)
    # The sign-up happens on the Sunday evening before; the bot's first tick sends that week's
    # digest (of the week before, empty), as a newly started bot catches up.
    clock.offset = (monday - timedelta(hours=11)) - real
    settings = settings_for(emulator, sqlite_url).model_copy(
        update={"admin_telegram_ids": (ADMIN,), "timer_seconds": 0.05}
    )
    async with running(build_bot(settings, clock=clock)) as app:
        caught_up = await admin.user.wait_for_message(
            lambda m: "semaine dernière" in (m.text or "")
        )
        assert "Jeunes : commencées 0 (0) · terminées 0 (0)" in (caught_up.text or "")
        await complete_sign_up(person, 4242)

        clock.offset = monday - real
        received = await admin.user.wait_for_message(lambda m: "semaine dernière" in (m.text or ""))
        # Another process (or a restart) runs the job too: the outbox key says it went already.
        again = digest.WeeklyDigest(app.services.unit_of_work, app.services.policy)
        assert await again(clock()) == 1
        await asyncio.sleep(0.5)

    assert "Jeunes : commencées 1 (0) · terminées 1 (0)" in (received.text or "")
    assert "En ce moment : 1 en attente · 0 pris en charge" in (received.text or "")
    digests = [m for m in admin.user.messages if "semaine dernière" in (m.text or "")]
    assert len(digests) == 2
