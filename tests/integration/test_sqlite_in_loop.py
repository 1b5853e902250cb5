"""SQLite in the event loop's thread (storage.sqlite): the default driver must never stop the loop
while it waits for another writer, must give up like SQLite's busy timeout did, and must leave
`sqlite+aiosqlite://` URLs working."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from storage import sqlite as in_loop
from storage.db import RoundTrips, create_engine, session_factory, write_lock
from storage.uow import UnitOfWork


def database_file(url: str) -> Path:
    return Path(make_url(url).database or "")


def hold_write_lock(path: Path, released: threading.Event, held: threading.Event) -> None:
    """Another process's writer, as SQLite sees it: its own connection, in another thread."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("BEGIN IMMEDIATE")
    held.set()
    released.wait(10)
    connection.execute("COMMIT")
    connection.close()


@contextlib.contextmanager
def another_writer(path: Path) -> Iterator[threading.Event]:
    """Another connection holding the write lock until the event it yields is set."""
    released, held = threading.Event(), threading.Event()
    other = threading.Thread(target=hold_write_lock, args=(path, released, held))
    other.start()
    try:
        assert held.wait(5)
        yield released
    finally:
        released.set()
        other.join()


async def test_the_default_sqlite_url_runs_in_the_loop_and_aiosqlite_stays_available(
    tmp_path: Path,
) -> None:
    default = create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    chosen = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
    try:
        assert default.dialect.driver == in_loop.DRIVER
        assert chosen.dialect.driver == "aiosqlite"
        for engine in (default, chosen):
            async with engine.begin() as connection:
                await connection.execute(text("CREATE TABLE t (a INTEGER)"))
                await connection.execute(text("INSERT INTO t VALUES (1)"))
            async with engine.connect() as connection:
                assert (await connection.execute(text("SELECT a FROM t"))).scalar_one() == 1
    finally:
        await default.dispose()
        await chosen.dispose()


async def test_waiting_for_another_writer_leaves_the_loop_running(sqlite_url: str) -> None:
    url, path = sqlite_url, database_file(sqlite_url)
    engine = create_engine(url)
    try:
        with another_writer(path) as released:
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    if ticks == 5:
                        released.set()  # the other writer commits once the loop showed it runs
                    await asyncio.sleep(0.01)

            ticking = asyncio.create_task(ticker())
            async with UnitOfWork(session_factory(engine), write_lock(url)) as uow:
                await uow.ping()  # BEGIN IMMEDIATE waits here, in the loop, for the other writer
                waited = ticks
                await uow.commit()
            ticking.cancel()
        # The loop ran while the transaction waited: the other writer was only let go by it.
        assert waited >= 5
    finally:
        await engine.dispose()


async def test_a_writer_that_never_finishes_makes_the_transaction_fail_as_locked(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(in_loop, "BUSY_TIMEOUT", 0.2)
    url, path = sqlite_url, database_file(sqlite_url)
    engine = create_engine(url)
    try:
        with another_writer(path), pytest.raises(OperationalError, match="locked"):
            async with UnitOfWork(session_factory(engine), write_lock(url)) as uow:
                await uow.ping()
        # Nothing was left half-done: once the other writer is gone, the next one goes through.
        async with UnitOfWork(session_factory(engine), write_lock(url)) as uow:
            await uow.ping()
            await uow.commit()
    finally:
        await engine.dispose()


async def test_transactions_without_the_process_lock_queue_in_the_loop(tmp_path: Path) -> None:
    """A use outside the unit of work (no asyncio lock): concurrent transactions on separate
    connections wait for each other by sleeping, instead of SQLite's busy handler freezing the
    thread that the writer they wait for needs."""
    url = f"sqlite:///{tmp_path / 'm.db'}"
    engine = create_engine(url, pool_size=8)
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE t (a INTEGER)"))

    async def writer(n: int) -> None:
        for _ in range(10):
            async with engine.begin() as connection:
                await connection.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})
                await asyncio.sleep(0)  # another coroutine's BEGIN comes while this one holds

    try:
        await asyncio.wait_for(asyncio.gather(*(writer(n) for n in range(6))), 30)
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT count(*) FROM t"))).scalar_one() == 60
    finally:
        await engine.dispose()


async def test_the_begin_of_each_transaction_is_counted_as_one_round_trip(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    trips = RoundTrips()
    trips.watch(engine)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("SELECT 1"))
        assert trips.count == 3  # BEGIN IMMEDIATE, the SELECT, COMMIT
    finally:
        await engine.dispose()
