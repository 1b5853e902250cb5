"""The outbox relay on SQLite and PostgreSQL: delivered once through faults, dead-lettered when
hopeless."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from telegram import Bot

from bot.i18n import Translator
from bot.relay import Relay
from bot.render import Renderer
from bot.sandbox.emulator import BotApiEmulator
from conversations.ports import CoordinatorNotice, UnitOfWorkFactory
from conversations.services.policy import Policy
from conversations.text import Text

TOKEN = "123456:OUTBOX-test"
ADMIN = 555


class Clock:
    """A clock the test moves by hand, so back-off delays pass instantly."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
async def emulator() -> AsyncIterator[BotApiEmulator]:
    async with BotApiEmulator() as emu:
        yield emu


@pytest.fixture
async def bot(emulator: BotApiEmulator) -> AsyncIterator[Bot]:
    async with Bot(TOKEN, base_url=emulator.base_url) as telegram_bot:
        yield telegram_bot


async def enqueue(uow_factory: UnitOfWorkFactory, key: str, chat_id: int, clock: Clock) -> None:
    async with uow_factory() as uow:
        # A text no catalogue translates is shown as it is: its key, in bold.
        notice = CoordinatorNotice(chat_id, "fr", Text("<b>%(key)s</b>").fmt(key=key))
        await uow.outbox.enqueue(key, notice, clock())
        await uow.commit()


def dispatcher_for(
    uow_factory: UnitOfWorkFactory, bot: Bot, clock: Clock, **options: object
) -> Relay:
    policy = Policy(admins=(ADMIN,))
    return Relay(uow_factory, bot, Renderer(Translator()), clock, policy, **options)  # type: ignore[arg-type]


async def test_a_message_enqueued_twice_with_one_key_is_delivered_once(
    uow_factory: UnitOfWorkFactory, bot: Bot, emulator: BotApiEmulator
) -> None:
    clock = Clock()
    user = emulator.user(1, "Camille")
    user.send_command("start")
    await enqueue(uow_factory, "handoff:1:1", user.id, clock)
    await enqueue(uow_factory, "handoff:1:1", user.id, clock)
    dispatcher = dispatcher_for(uow_factory, bot, clock)
    assert await dispatcher.deliver_due() == 1
    assert await dispatcher.deliver_due() == 0
    assert [m.text for m in user.messages] == ["handoff:1:1"]
    async with uow_factory() as uow:
        row = await uow.outbox.by_key("handoff:1:1")  # type: ignore[attr-defined]
        assert row is not None
        assert row.status == "sent"
        assert row.sent_message_id == user.messages[0].message_id


async def test_500_then_429_then_success_delivers_exactly_once_honouring_retry_after(
    uow_factory: UnitOfWorkFactory, bot: Bot, emulator: BotApiEmulator
) -> None:
    clock = Clock()
    user = emulator.user(2, "Camille")
    user.send_command("start")
    await enqueue(uow_factory, "k", user.id, clock)
    emulator.faults.add(method="sendMessage", status=500, chat_id=user.id)
    dispatcher = dispatcher_for(uow_factory, bot, clock)
    await dispatcher.deliver_due()
    assert user.messages == []
    assert await dispatcher.deliver_due() == 0  # backing off: not due yet
    clock.advance(seconds=2)
    # The rate limiter is not in play here: a bare Bot surfaces the 429 to the dispatcher.
    emulator.faults.add(method="sendMessage", status=429, retry_after=30, chat_id=user.id)
    await dispatcher.deliver_due()
    clock.advance(seconds=10)
    assert await dispatcher.deliver_due() == 0  # retry_after (30 s) is honoured
    clock.advance(seconds=21)
    await dispatcher.deliver_due()
    assert [m.text for m in user.messages] == ["k"]
    async with uow_factory() as uow:
        row = await uow.outbox.by_key("k")  # type: ignore[attr-defined]
        assert row is not None
        assert (row.status, row.attempts) == ("sent", 3)


async def test_a_recipient_who_blocked_the_bot_is_not_retried_and_admins_are_told(
    uow_factory: UnitOfWorkFactory, bot: Bot, emulator: BotApiEmulator
) -> None:
    clock = Clock()
    admin = emulator.user(ADMIN, "Admin")
    admin.send_command("start")
    user = emulator.user(3, "Camille")
    user.send_command("start")
    user.block()
    await enqueue(uow_factory, "blocked", user.id, clock)
    dispatcher = dispatcher_for(uow_factory, bot, clock)
    await dispatcher.deliver_due()
    async with uow_factory() as uow:
        row = await uow.outbox.by_key("blocked")  # type: ignore[attr-defined]
        assert row is not None
        assert row.status == "dead"
        assert "Forbidden" in (row.last_error or "")
    await dispatcher.deliver_due()  # the admin alert
    [alert] = admin.messages
    assert "n'a pas pu être remis" in (alert.text or "")
    assert len(emulator.calls("sendMessage", chat_id=user.id)) == 1


async def test_after_the_last_attempt_a_message_is_dead_lettered(
    uow_factory: UnitOfWorkFactory, bot: Bot, emulator: BotApiEmulator
) -> None:
    clock = Clock()
    user = emulator.user(4, "Camille")
    user.send_command("start")
    await enqueue(uow_factory, "hopeless", user.id, clock)
    emulator.faults.add(method="sendMessage", status=500, chat_id=user.id, times=None)
    dispatcher = dispatcher_for(uow_factory, bot, clock, max_attempts=3)
    for _ in range(3):
        await dispatcher.deliver_due()
        clock.advance(minutes=15)
    async with uow_factory() as uow:
        row = await uow.outbox.by_key("hopeless")  # type: ignore[attr-defined]
        assert row is not None
        assert (row.status, row.attempts) == ("dead", 3)
    assert len(emulator.calls("sendMessage", chat_id=user.id)) == 3


async def test_importing_the_same_catalogue_twice_changes_nothing(
    uow_factory: UnitOfWorkFactory,
) -> None:
    from bot.settings import SAMPLE_CATALOG
    from conversations.catalog import load_catalog
    from conversations.services.catalogue import associations_of, import_catalog

    catalog = load_catalog(SAMPLE_CATALOG)
    now = datetime(2026, 11, 26, tzinfo=UTC)
    first = await import_catalog(uow_factory, catalog, now)
    second = await import_catalog(uow_factory, catalog, now)
    assert len(first.added) == 13  # the eight founders and five more programmes
    assert (second.added, second.changed, len(second.unchanged)) == ((), (), 13)
    async with uow_factory() as uow:
        names = {a.name for a in associations_of(await uow.catalog.records())}
    assert "Télémaque" in names


async def test_a_slow_telegram_never_makes_two_relays_send_one_message_twice(
    uow_factory: UnitOfWorkFactory, bot: Bot, emulator: BotApiEmulator
) -> None:
    """Each send takes most of the relay's send budget: the first relay gives back what it cannot
    send and mark sent inside its lease, and the second, claiming the moment a lease ends,
    sends it; nothing is sent while another relay's send is on its way."""
    user = emulator.user(7, "Camille")
    user.send_command("start")
    keys = [f"slow:{n}" for n in range(5)]
    for key in keys:
        await enqueue(uow_factory, key, user.id, Clock())  # due since 2026-11-26
    lease = timedelta(seconds=3)  # a send budget of 1 s
    emulator.faults.add(method="sendMessage", delay=0.75, times=None)
    first = dispatcher_for(uow_factory, bot, lambda: datetime.now(UTC), lease=lease)
    second = dispatcher_for(uow_factory, bot, lambda: datetime.now(UTC), lease=lease)

    async def keep_claiming() -> None:
        await asyncio.sleep(0.1)  # the first relay has claimed them all by now
        while len(user.messages) < len(keys):
            await second.deliver_due()
            await asyncio.sleep(0.05)

    claiming = asyncio.create_task(keep_claiming())
    assert await first.deliver_due() == len(keys)
    await asyncio.wait_for(claiming, 30)
    await asyncio.sleep(1)  # a second copy on its way would arrive by now
    assert sorted(m.text for m in user.messages) == keys
    assert len([r for r in emulator.calls("sendMessage", chat_id=user.id)]) == len(keys)
