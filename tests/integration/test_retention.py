"""Retention on SQLite and PostgreSQL: unfinished questionnaires after 30 days, people after 3 years."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Table, func, select

from conversations.entities import Person, Profile
from conversations.model import ConversationState, Status
from conversations.ports import UnitOfWorkFactory
from conversations.services import privacy
from conversations.services.policy import Policy
from storage.tables import conversations, funnel_events, profiles
from storage.uow import UnitOfWork

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


async def a_person(
    uow_factory: UnitOfWorkFactory,
    telegram_id: int,
    last_seen: datetime,
    status: Status | None = None,
    with_profile: bool = False,
) -> None:
    async with uow_factory() as uow:
        person = await uow.people.seen(telegram_id, "fr", last_seen)
        if status is not None:
            state = ConversationState("mentee", None, {"first_name": "Inès"}, status)
            row = uow.conversations.start(person, telegram_id, state, None, last_seen)
            await uow.flush()
            if with_profile:
                uow.profiles.add(
                    Profile(
                        person_id=person.id,
                        conversation_id=row.id,
                        role="mentee",
                        flow="mentee",
                        answers={"first_name": "Inès"},
                        language="fr",
                        source=None,
                        department="93",
                        submitted_at=last_seen,
                    )
                )
        uow.funnel.record("mentee", None, "started", last_seen)
        await uow.commit()


async def count(uow_factory: UnitOfWorkFactory, table: Table) -> int:
    async with uow_factory() as uow:
        assert isinstance(uow, UnitOfWork)
        return int(await uow.session.scalar(select(func.count()).select_from(table)) or 0)


async def test_old_unfinished_data_and_people_gone_for_years_are_erased_the_rest_is_kept(
    uow_factory: UnitOfWorkFactory,
) -> None:
    await a_person(uow_factory, 1, NOW - timedelta(days=40), Status.CANCELLED)  # abandoned
    await a_person(uow_factory, 2, NOW - timedelta(days=5), Status.ACTIVE)  # still answering
    await a_person(uow_factory, 3, NOW - timedelta(days=4 * 365), Status.COMPLETED, True)  # too old
    await a_person(uow_factory, 4, NOW - timedelta(days=365), Status.COMPLETED, True)  # kept
    await a_person(uow_factory, 5, NOW - timedelta(days=60))  # said /start, nothing else
    policy = Policy(abandoned_after=timedelta(days=30), retention=timedelta(days=3 * 365))
    purged = await privacy.purge(uow_factory, NOW, policy)
    assert purged.conversations == 1
    assert purged.people == 3
    async with uow_factory() as uow:
        assert isinstance(uow, UnitOfWork)
        left = sorted(p.telegram_id for p in await uow.session.scalars(select(Person)))
    assert left == [2, 4]
    assert await count(uow_factory, profiles) == 1
    assert await count(uow_factory, conversations) == 2
    assert await count(uow_factory, funnel_events) == 5  # anonymous counts outlive the people
    again = await privacy.purge(uow_factory, NOW, policy)
    assert (again.conversations, again.people) == (0, 0)
