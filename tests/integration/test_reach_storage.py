"""Reaching people, in storage on SQLite and PostgreSQL: who is due for the one nudge, what dies
when a person blocks the bot, and the nudge's button in the outbox's payload."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from conversations.model import ConversationState, Status
from conversations.ports import ContactCard, PersonNotice
from conversations.text import _
from storage import codec
from storage.uow import UnitOfWork

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
DAY = timedelta(hours=24)
UowFactory = Callable[[], UnitOfWork]


async def someone_at_age(
    uow_factory: UowFactory, telegram_id: int, since: datetime, status: Status = Status.ACTIVE
) -> int:
    """A person whose questionnaire stands at the age question since `since`; their id."""
    async with uow_factory() as uow:
        person = await uow.people.seen(telegram_id, "fr", since)
        state = ConversationState("mentee", "age", {"first_name": "Inès"}, status=status)
        uow.conversations.start(person, telegram_id, state, None, since)
        await uow.commit()
        return person.id


async def test_people_idle_since_the_delay_are_due_for_a_nudge_the_longest_idle_first(
    uow_factory: UowFactory,
) -> None:
    recent = await someone_at_age(uow_factory, 1001, NOW - DAY + timedelta(minutes=1))
    oldest = await someone_at_age(uow_factory, 1002, NOW - 3 * DAY)
    older = await someone_at_age(uow_factory, 1003, NOW - 2 * DAY)
    await someone_at_age(uow_factory, 1004, NOW - 2 * DAY, Status.CANCELLED)
    await someone_at_age(uow_factory, 1005, NOW - 2 * DAY, Status.COMPLETED)
    nudged = await someone_at_age(uow_factory, 1006, NOW - 2 * DAY)
    blocked = await someone_at_age(uow_factory, 1007, NOW - 2 * DAY)
    async with uow_factory() as uow:
        person = await uow.people.get(nudged)
        assert person is not None
        conversation = await uow.conversations.active_for(person)
        assert conversation is not None
        conversation.nudged_at = NOW - DAY
        person = await uow.people.get(blocked)
        assert person is not None
        person.blocked_at = NOW - DAY
        await uow.commit()

    async with uow_factory() as uow:
        due = await uow.conversations.stalled(NOW - DAY, 10)
        assert due == [oldest, older]
        assert await uow.conversations.stalled(NOW - DAY, 1) == [oldest]
        # A minute short of the delay, not yet; its turn comes, after the others.
        assert await uow.conversations.stalled(NOW, 10) == [oldest, older, recent]


async def test_a_block_kills_the_person_s_queued_notices_not_their_coordinator_cards(
    uow_factory: UowFactory,
) -> None:
    card = ContactCard(5001, "fr", 7, 3, _("Contact n° %(id)s").fmt(id=7))
    async with uow_factory() as uow:
        await uow.outbox.enqueue("taken:1:2", PersonNotice(5001, "fr", _("Pris")), NOW, 11)
        await uow.outbox.enqueue("handoff:7:3", card, NOW, person_id=12)
        await uow.outbox.enqueue("found:2", PersonNotice(5002, "fr", _("Trouvé")), NOW, 13)
        await uow.commit()

    async with uow_factory() as uow:
        await uow.outbox.drop_pending_notices(5001)
        await uow.commit()

    async with uow_factory() as uow:
        taken = await uow.outbox.by_key("taken:1:2")  # type: ignore[attr-defined]
        assert (taken.status, taken.last_error) == ("dead", "blocked by the person")
        claimed = await uow.outbox.claim_due(NOW, timedelta(seconds=60), 10)
        assert sorted(c.key for c in claimed) == ["found:2", "handoff:7:3"]


async def test_the_nudge_s_button_is_stored_and_read_back(uow_factory: UowFactory) -> None:
    nudge = PersonNotice(5001, "fr", _("On reprend ?"), resume=_("Reprendre"))
    async with uow_factory() as uow:
        await uow.outbox.enqueue("nudge:1", nudge, NOW, person_id=11)
        await uow.commit()
    async with uow_factory() as uow:
        [claimed] = await uow.outbox.claim_due(NOW, timedelta(seconds=60), 10)
    assert claimed.message == nudge


def test_a_notice_stored_before_the_button_existed_reads_back_without_one() -> None:
    old = {
        "type": "person_notice",
        "chat_id": 5001,
        "language": "fr",
        "text": {"t": "text", "msgid": "Bonne nouvelle !"},
    }

    assert codec.decode(old) == PersonNotice(5001, "fr", _("Bonne nouvelle !"))
    # And a notice without a button is written as before, for a relay of the previous version.
    assert codec.encode(PersonNotice(5001, "fr", _("Bonne nouvelle !"))) == old
