"""Reaching people end to end: a person who blocked the bot gets nothing more, and a person who
stopped mid-questionnaire gets one nudge whose button takes them back to their question."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest

from bot.app import TelegramBot, build_bot
from bot.sandbox.emulator import BotApiEmulator
from conversations.entities import Person
from tests.e2e.conftest import Chat, running, settings_for
from tests.e2e.test_handoff import (
    FIRST,
    Clock,
    card_of,
    complete_sign_up,
    handoffs_in_db,
    join,
    press,
    toast_on,
)
from tests.e2e.test_webhook import applications, post, take_update, webhook  # noqa: F401

DAY = timedelta(hours=24)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def app(
    emulator: BotApiEmulator, sqlite_url: str, clock: Clock
) -> AsyncIterator[TelegramBot]:
    async with running(build_bot(settings_for(emulator, sqlite_url), clock=clock)) as bot:
        yield bot


async def person_row(app: TelegramBot, telegram_id: int) -> Person | None:
    async with app.services.unit_of_work() as uow:
        return await uow.people.by_telegram_id(telegram_id)


async def recorded_as_blocked(app: TelegramBot, telegram_id: int, blocked: bool = True) -> None:
    """The my_chat_member update is handled a moment after Telegram sends it."""
    for _ in range(100):
        found = await person_row(app, telegram_id)
        if found is not None and (found.blocked_at is not None) == blocked:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"person {telegram_id} never recorded as blocked={blocked}")


async def tick_nudges(app: TelegramBot, clock: Clock) -> int:
    """What the nudge timer does on its next tick, at the test's clock; then the relay sends."""
    job = next(job for job in app.timers.jobs if job.name == "nudge")
    nudged = await job.run(clock())
    assert isinstance(nudged, int)
    await app.relay.deliver_due()
    return nudged


def refusals(emulator: BotApiEmulator) -> list[str]:
    return [f"{r.method} {r.params.get('chat_id')}" for r in emulator.requests if r.status == 403]


async def stopped_at_the_age_question(person: Callable[..., Chat], user_id: int = 1001) -> Chat:
    young = person(user_id, "Inès")
    await young.starts()
    await young.taps("Je cherche un·e mentor·e", expect="prénom")
    await young.says("Inès", expect="Quel âge as-tu")
    return young


# --- a blocked bot --------------------------------------------------------------------------------


async def test_a_person_who_blocked_the_bot_hears_nothing_when_their_contact_is_taken(
    app: TelegramBot, emulator: BotApiEmulator, person: Callable[..., Chat]
) -> None:
    camille = await join(app, emulator, 900001, "Camille", FIRST)
    young = await complete_sign_up(person)
    card = await card_of(camille)
    young.user.block()
    await recorded_as_blocked(app, young.user.id)
    sent_before = len(emulator.calls("sendMessage", chat_id=young.user.id))

    press(camille.user, card.message_id, "Je m'en occupe")

    toast = await toast_on(camille.user, card.message_id)
    assert "bloqué le bot" in (toast.text or "")
    assert "téléphone" in (toast.text or "")
    [handoff] = await handoffs_in_db(app)
    assert handoff.status == "taken"
    await app.relay.deliver_due()
    await asyncio.sleep(0.3)  # the relay's own pass, had anything been queued for her
    assert len(emulator.calls("sendMessage", chat_id=young.user.id)) == sent_before
    assert refusals(emulator) == []


async def test_after_unblocking_the_person_hears_the_news_again(
    app: TelegramBot, emulator: BotApiEmulator, person: Callable[..., Chat]
) -> None:
    camille = await join(app, emulator, 900001, "Camille", FIRST)
    young = await complete_sign_up(person)
    card = await card_of(camille)
    young.user.block()
    await recorded_as_blocked(app, young.user.id)
    young.user.unblock()
    await recorded_as_blocked(app, young.user.id, blocked=False)

    press(camille.user, card.message_id, "Je m'en occupe")

    await young.reads(expect="Bonne nouvelle")
    toast = await toast_on(camille.user, card.message_id)
    assert "prévenue" in (toast.text or "")


# --- one nudge ------------------------------------------------------------------------------------


async def test_one_nudge_after_a_day_and_its_button_resumes_at_the_question(
    app: TelegramBot, emulator: BotApiEmulator, person: Callable[..., Chat], clock: Clock
) -> None:
    young = await stopped_at_the_age_question(person)

    clock.offset = DAY - timedelta(minutes=5)
    assert await tick_nudges(app, clock) == 0
    clock.offset = DAY + timedelta(minutes=1)
    assert await tick_nudges(app, clock) == 1

    nudge = await young.reads(expect="On reprend")
    assert "« Âge »" in (nudge.text or "")
    assert "Tu t'es arrêté·e" in (nudge.text or "")
    assert nudge.button_texts == ["Reprendre"]
    clock.offset = 3 * DAY
    assert await tick_nudges(app, clock) == 0

    await young.taps("Reprendre", expect="Quel âge as-tu")
    # And the questionnaire goes on from there.
    await young.says("17", expect="code postal")
    nudges = [m for m in young.user.messages if "On reprend" in (m.text or "")]
    assert len(nudges) == 1


async def test_the_nudge_button_after_a_cancel_shows_where_things_stand(
    app: TelegramBot, emulator: BotApiEmulator, person: Callable[..., Chat], clock: Clock
) -> None:
    young = await stopped_at_the_age_question(person)
    clock.offset = DAY + timedelta(minutes=1)
    assert await tick_nudges(app, clock) == 1
    await young.reads(expect="On reprend")
    young.user.send_command("cancel")
    await young.reads()

    answer = await young.taps("Reprendre")

    # No questionnaire to resume: the welcome again, not the age question.
    assert "Quel âge as-tu" not in (answer.text or "")


async def test_no_nudge_after_cancel(
    app: TelegramBot, emulator: BotApiEmulator, person: Callable[..., Chat], clock: Clock
) -> None:
    young = await stopped_at_the_age_question(person)
    young.user.send_command("cancel")
    await young.reads()

    clock.offset = 2 * DAY
    assert await tick_nudges(app, clock) == 0
    await asyncio.sleep(0.3)
    assert not [m for m in young.user.messages if "On reprend" in (m.text or "")]


async def test_no_nudge_to_a_person_who_blocked_the_bot(
    app: TelegramBot, emulator: BotApiEmulator, person: Callable[..., Chat], clock: Clock
) -> None:
    young = await stopped_at_the_age_question(person)
    young.user.block()
    await recorded_as_blocked(app, young.user.id)

    clock.offset = 2 * DAY
    assert await tick_nudges(app, clock) == 0
    await asyncio.sleep(0.3)
    assert refusals(emulator) == []


async def test_no_nudge_when_nudge_after_hours_is_zero(
    emulator: BotApiEmulator, sqlite_url: str, person: Callable[..., Chat], clock: Clock
) -> None:
    settings = settings_for(emulator, sqlite_url).model_copy(update={"nudge_after_hours": 0})
    async with running(build_bot(settings, clock=clock)) as app:
        young = await stopped_at_the_age_question(person)
        clock.offset = 30 * DAY

        assert "nudge" not in [job.name for job in app.timers.jobs]
        assert app.services.policy.nudge_after is None
        for job in app.timers.jobs:
            if job.name in ("silence", "waiting list", "retention"):
                await job.run(clock())
        await app.relay.deliver_due()
        await asyncio.sleep(0.3)
        assert not [m for m in young.user.messages if "On reprend" in (m.text or "")]


# --- webhook mode ---------------------------------------------------------------------------------


async def test_in_webhook_mode_a_block_is_asked_for_and_recorded(
    webhook: str,  # noqa: F811
    emulator: BotApiEmulator,
    applications: list[TelegramBot],  # noqa: F811
) -> None:
    [call] = emulator.calls("setWebhook")
    assert "my_chat_member" in str(call.params["allowed_updates"])
    user = emulator.user(6001, "Inès")
    user.send_command("start")
    assert await post(webhook, take_update(emulator)) == 200

    user.block()
    assert await post(webhook, take_update(emulator)) == 200

    # Handled before the answer: recorded when the 200 came back, and nothing was sent.
    [app] = applications
    found = await person_row(app, 6001)
    assert found is not None
    assert found.blocked_at is not None
    assert refusals(emulator) == []
