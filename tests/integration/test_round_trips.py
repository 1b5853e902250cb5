"""What the hot path costs in database round trips, counted on SQLite and PostgreSQL (issue 13):
the counter counts what really goes to the server, and a connection is pinged only after idling."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from storage.db import RoundTrips, create_engine, session_factory
from storage.uow import UnitOfWork


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
