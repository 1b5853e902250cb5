"""What the hot path costs in database round trips, counted on SQLite and PostgreSQL (issue 13):
the counter counts what really goes to the server, and a connection is pinged only after idling."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from sqlalchemy import func, select, text

from conversations.model import TextInput
from conversations.services import updates
from conversations.services.actions import Action, Answer, ChooseFlow
from conversations.services.policy import Policy
from conversations.services.replies import Reply, Sender
from storage.db import RoundTrips, create_engine, session_factory
from storage.tables import funnel_events, processed_updates
from storage.uow import UnitOfWork
from tests.unit.fakes import localize

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
# BEGIN, the update id claimed (INSERT … ON CONFLICT DO NOTHING), the person and their
# conversation (one SELECT), the conversation's UPDATE, the funnel events (one INSERT), COMMIT.
TRIPS_PER_ANSWER = 6


@pytest.fixture
async def counted(database_url: str) -> AsyncIterator[tuple[UnitOfWork, RoundTrips]]:
    engine = create_engine(database_url)
    trips = RoundTrips()
    trips.watch(engine)
    yield UnitOfWork(session_factory(engine)), trips
    await engine.dispose()


async def test_a_committed_statement_costs_its_begin_itself_and_its_commit(counted) -> None:  # type: ignore[no-untyped-def]
    uow, trips = counted
    async with uow:
        await uow.ping()
        await uow.commit()
    before = trips.count

    async with uow:
        await uow.ping()
        await uow.commit()

    # No pool reset after the commit, no pre-ping of a connection used a moment ago.
    assert trips.count - before == 3


async def test_a_unit_of_work_left_without_commit_costs_one_rollback(counted) -> None:  # type: ignore[no-untyped-def]
    uow, trips = counted
    async with uow:
        await uow.ping()
    before = trips.count

    async with uow:
        await uow.ping()

    assert trips.count - before == 3


async def test_a_connection_the_server_closed_while_idle_is_replaced_before_use(
    postgres_url: str,
) -> None:
    engine = create_engine(postgres_url, ping_idle_after=0.0, pool_size=1, max_overflow=0)
    trips = RoundTrips()
    trips.watch(engine)
    uow = UnitOfWork(session_factory(engine))
    try:
        async with uow:
            pid = await uow.session.scalar(text("SELECT pg_backend_pid()"))
        killer = create_engine(postgres_url)
        async with killer.connect() as connection:
            await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        await killer.dispose()
        before = trips.count

        async with uow:
            assert await uow.session.scalar(text("SELECT pg_backend_pid()")) != pid

        # The failed ping is not counted; the fresh connection is not pinged.
        assert trips.count - before == 3
    finally:
        await engine.dispose()


async def test_a_connection_idle_for_a_while_is_pinged_and_the_ping_counted(
    postgres_url: str,
) -> None:
    engine = create_engine(postgres_url, ping_idle_after=0.0, pool_size=1, max_overflow=0)
    trips = RoundTrips()
    trips.watch(engine)
    uow = UnitOfWork(session_factory(engine))
    try:
        async with uow:
            await uow.ping()
        before = trips.count

        async with uow:
            await uow.ping()

        # asyncpg's ping outside a transaction: BEGIN, ";", ROLLBACK; then BEGIN, SELECT 1, ROLLBACK.
        assert trips.count - before == 6
    finally:
        await engine.dispose()


class Person:
    """Someone sending updates through `updates.handle` on real storage, one id after another."""

    def __init__(self, uow: UnitOfWork, telegram_id: int = 1001) -> None:
        self._uow = uow
        self._telegram_id = telegram_id
        self._ids = count(1)
        self.now = NOW

    async def sends(self, action: Action, update_id: int | None = None) -> Reply:
        sender = Sender(
            update_id=next(self._ids) if update_id is None else update_id,
            telegram_id=self._telegram_id,
            chat_id=self._telegram_id,
            telegram_language="fr",
            now=self.now,
        )
        return await updates.handle(lambda: self._uow, sender, action, Policy(), localize)


async def test_an_answer_costs_one_read_and_one_write_transaction(counted) -> None:  # type: ignore[no-untyped-def]
    uow, trips = counted
    ines = Person(uow)
    await ines.sends(ChooseFlow("mentee"))
    await ines.sends(Answer(TextInput("Inès")))
    # An hour later: last_seen_at is due too, and goes in the same transaction.
    ines.now += timedelta(hours=2)
    for typed in ("17", "93200"):
        before = trips.count

        reply = await ines.sends(Answer(TextInput(typed)))

        assert reply.screens, "the next question"
        assert trips.count - before <= TRIPS_PER_ANSWER + (1 if typed == "17" else 0)
    async with uow:
        assert await uow.session.scalar(select(func.count()).select_from(funnel_events)) > 0


async def test_a_redelivered_answer_costs_its_claim_and_changes_nothing(counted) -> None:  # type: ignore[no-untyped-def]
    uow, trips = counted
    ines = Person(uow)
    await ines.sends(ChooseFlow("mentee"))
    await ines.sends(Answer(TextInput("Inès")), update_id=10)
    before = trips.count

    again = await ines.sends(Answer(TextInput("Inès")), update_id=10)

    assert again.duplicate
    # BEGIN, the claim that inserts nothing, ROLLBACK.
    assert trips.count - before == 3
    async with uow:
        ids = await uow.session.scalars(select(processed_updates.c.update_id))
        assert sorted(ids) == [1, 10]


async def test_new_updates_are_stored_in_one_statement_and_handled_ones_not_again(counted) -> None:  # type: ignore[no-untyped-def]
    uow, trips = counted
    async with uow:
        assert await uow.updates.claim(3, NOW)
        await uow.commit()
    before = trips.count

    async with uow:
        known, answered = await uow.inbox.store([(1, {"update_id": 1}), (2, {"update_id": 2})], NOW)
        await uow.commit()

    assert (known, answered) == ({}, set())
    # BEGIN, one INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING, COMMIT.
    assert trips.count - before == 3
    async with uow:
        known, answered = await uow.inbox.store([(2, {"update_id": 2}), (3, {"update_id": 3})], NOW)
        await uow.commit()
    # A redelivery costs a second statement, for what the first did not insert.
    assert set(known) == {2}
    assert answered == {3}
