"""Hostile tests of the in-loop SQLite driver (storage.sqlite): other processes that hold, kill or
checkpoint the database, cancelled waits, an exhausted pool, results left half read, and the
errors and round trips that callers rely on."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import exc, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from conversations import ports
from storage import sqlite as in_loop
from storage.db import RoundTrips, create_engine, session_factory, write_lock
from storage.tables import processed_updates
from storage.uow import UnitOfWork

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)

# Another OS process: a writer that takes the write lock, says so, and holds it.
HOLDER = r"""
import sqlite3, sys, time
path, hold, mode = sys.argv[1], float(sys.argv[2]), sys.argv[3]
c = sqlite3.connect(path, isolation_level=None, timeout=0)
if mode == "exclusive":
    c.execute("PRAGMA locking_mode=EXCLUSIVE")
    c.execute("BEGIN EXCLUSIVE")
else:
    c.execute("BEGIN IMMEDIATE")
c.execute("INSERT INTO t VALUES (-1)")
print("held", flush=True)
time.sleep(hold)
c.execute("COMMIT")
print("done", flush=True)
"""

# Another OS process: checkpoints (TRUNCATE) and writes in a tight loop, as an operator's
# maintenance script might, while the bot works.
CHECKPOINTER = r"""
import sqlite3, sys, time

path, seconds = sys.argv[1], float(sys.argv[2])
c = sqlite3.connect(path, isolation_level=None, timeout=15)
print("started", flush=True)
end = time.monotonic() + seconds
while time.monotonic() < end:
    c.execute("INSERT INTO t VALUES (-2)")
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    time.sleep(0.001)
"""


def spawn(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_line(process: subprocess.Popen[str], expected: str) -> None:
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    assert line == expected, (line, process.stderr.read() if process.stderr else "")


@contextlib.contextmanager
def reaped(process: subprocess.Popen[str]) -> Any:
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


@contextlib.contextmanager
def lock_holder(path: Path, seconds: str, mode: str) -> Any:
    """Another process holding the database's lock (`mode`: immediate or exclusive) for
    `seconds`, from the moment this is entered."""
    with reaped(spawn(HOLDER, str(path), seconds, mode)) as holder:
        wait_line(holder, "held")
        yield holder


class Ticker:
    """A coroutine that should run every 10 ms: the largest gap says how long the loop froze."""

    def __init__(self) -> None:
        self.ticks = 0
        self.largest_gap = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            self.largest_gap = max(self.largest_gap, now - last)
            self.ticks += 1
            last = now

    async def __aenter__(self) -> Ticker:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0.02)
        return self

    async def __aexit__(self, *_: object) -> None:
        # The gap up to now counts too (the loop may have been frozen until this very moment).
        await asyncio.sleep(0.02)
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@pytest.fixture
async def database(tmp_path: Path) -> tuple[str, Path]:
    """A WAL database file with one table `t`, made by the driver under test, then let go."""
    path = tmp_path / "hostile.db"
    url = f"sqlite:///{path}"
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE t (a INTEGER)"))
    await engine.dispose()
    return url, path


async def count_rows(engine: AsyncEngine, where: str = "1") -> int:
    async with engine.connect() as connection:
        result = await connection.execute(text(f"SELECT count(*) FROM t WHERE {where}"))
        return int(result.scalar_one())


async def insert_one(engine: AsyncEngine, value: int) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("INSERT INTO t VALUES (:a)"), {"a": value})


def pooled_connections_in_transaction(engine: AsyncEngine) -> list[bool]:
    """sqlite3's own flag on every connection now idle in the pool."""
    queue = engine.sync_engine.pool._pool._queue  # type: ignore[attr-defined]
    return [
        bool(record.dbapi_connection.in_transaction)
        for record in list(queue._queue)
        if record.dbapi_connection is not None
    ]


# -- another process holds the write lock ------------------------------------------------------


async def test_a_writer_process_holding_the_lock_past_the_timeout_fails_cleanly_and_the_engine_recovers(
    database: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(in_loop, "BUSY_TIMEOUT", 0.6)
    url, path = database
    engine = create_engine(url)
    await insert_one(engine, 1)  # a pooled connection exists before the other process comes
    try:
        with lock_holder(path, "2.0", "immediate") as holder:
            started = time.monotonic()
            async with Ticker() as ticker:
                with pytest.raises(exc.OperationalError, match="locked") as raised:
                    async with UnitOfWork(session_factory(engine), write_lock(url)) as uow:
                        await uow.ping()
            waited = time.monotonic() - started
            # SQLAlchemy's error, carrying sqlite3's, after about the timeout; the loop ran.
            assert isinstance(raised.value.orig, sqlite3.OperationalError)
            assert 0.5 < waited < 1.5
            assert ticker.largest_gap < 0.2
            assert ticker.ticks > 20
            wait_line(holder, "done")
        # The same engine (same pooled connection) works as soon as the other writer is gone.
        assert pooled_connections_in_transaction(engine) == [False]
        await insert_one(engine, 2)
        assert await count_rows(engine) == 3  # 1, the other process's -1, and 2
    finally:
        await engine.dispose()


async def test_a_writer_process_killed_mid_transaction_lets_the_waiting_transaction_through(
    database: tuple[str, Path],
) -> None:
    url, path = database
    engine = create_engine(url)
    await insert_one(engine, 1)
    try:
        with lock_holder(path, "60", "immediate") as holder:
            waiting = asyncio.create_task(insert_one(engine, 2))
            await asyncio.sleep(0.2)
            assert not waiting.done()  # it waits for the other process …
            os.kill(holder.pid, signal.SIGKILL)
            holder.wait(5)
            started = time.monotonic()
            await asyncio.wait_for(waiting, 5)  # … whose lock died with it
            assert time.monotonic() - started < 1.0
        # The killed writer's uncommitted row never appears; the file is sound.
        assert await count_rows(engine, "a = -1") == 0
        assert await count_rows(engine) == 2
        async with engine.connect() as connection:
            check = await connection.execute(text("PRAGMA integrity_check"))
            assert check.scalar_one() == "ok"
    finally:
        await engine.dispose()


async def test_a_new_connection_while_another_process_holds_the_database_exclusively_leaves_the_loop_running(
    database: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """BREAKS: the connect event's `PRAGMA journal_mode=WAL` runs under sqlite3's default
    5-second busy timeout (sqlite3.connect(timeout=5.0)), then _tune_sqlite's 15 000 ms, and
    only then busy_timeout=0. A process holding the file exclusively (locking_mode=EXCLUSIVE,
    or any lock in a rollback-journal file, or a WAL recovery) makes a *new* connection sleep
    in SQLite's busy handler in the loop's thread: the whole bot freezes for 5 s."""
    monkeypatch.setattr(in_loop, "BUSY_TIMEOUT", 1.0)
    url, path = database
    engine = create_engine(url)  # no connection yet: the first one is made while locked
    try:
        with lock_holder(path, "3.0", "exclusive"):
            async with Ticker() as ticker:
                # Fails as locked, or goes through once the other process lets go: either way
                # the loop must have kept running meanwhile.
                with contextlib.suppress(exc.OperationalError):
                    async with engine.begin() as connection:
                        await connection.execute(text("SELECT 1"))
            assert ticker.largest_gap < 0.5, (
                f"the event loop froze for {ticker.largest_gap:.2f} s opening a connection"
            )
    finally:
        await engine.dispose()


async def test_a_checkpointing_process_never_surfaces_busy_on_the_bots_statements(
    database: tuple[str, Path],
) -> None:
    """SQLITE_BUSY elsewhere than at BEGIN (busy_timeout=0 lets any statement fail at once):
    another process truncating the WAL in a loop while the bot reads and writes."""
    url, path = database
    engine = create_engine(url, pool_size=2)
    sessions = session_factory(engine)
    lock = write_lock(url)
    failures: list[BaseException] = []
    try:
        with reaped(spawn(CHECKPOINTER, str(path), "2.0")) as other:
            wait_line(other, "started")
            deadline = time.monotonic() + 1.5
            n = 0
            while time.monotonic() < deadline:
                n += 1
                try:
                    async with UnitOfWork(sessions, lock) as uow:
                        await uow.session.execute(text("SELECT count(*) FROM t"))
                        await uow.session.execute(text("INSERT INTO t VALUES (:a)"), {"a": n})
                        await uow.session.execute(text("SELECT max(a) FROM t"))
                        await uow.commit()
                    async with engine.connect() as connection:  # outside the unit of work
                        await connection.execute(text("SELECT a FROM t LIMIT 5"))
                except Exception as error:
                    failures.append(error)
            other.wait(10)
            assert other.returncode == 0, other.stderr.read() if other.stderr else ""
        assert failures == []
        assert await count_rows(engine, "a > 0") == n
    finally:
        await engine.dispose()


# -- cancelled while waiting -------------------------------------------------------------------


@pytest.mark.parametrize("how", ["wait_for", "cancel"])
async def test_a_transaction_cancelled_while_waiting_for_the_lock_leaves_nothing_behind(
    database: tuple[str, Path], how: str
) -> None:
    url, path = database
    engine = create_engine(url, pool_size=1, max_overflow=0)
    lock = write_lock(url)
    assert lock is not None
    sessions = session_factory(engine)
    await insert_one(engine, 1)

    async def transaction(value: int) -> None:
        async with UnitOfWork(sessions, lock) as uow:
            await uow.session.execute(text("INSERT INTO t VALUES (:a)"), {"a": value})
            await uow.commit()

    try:
        with lock_holder(path, "1.0", "immediate") as holder:
            if how == "wait_for":
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(transaction(2), 0.2)
            else:
                task = asyncio.create_task(transaction(2))
                await asyncio.sleep(0.2)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            # The process lock is free, the connection is back in the pool, with no transaction.
            assert not lock.locked()
            assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
            assert pooled_connections_in_transaction(engine) == [False]
            # The next transaction simply waits for the other process, then goes through.
            await asyncio.wait_for(transaction(3), 5)
            wait_line(holder, "done")
        assert await count_rows(engine, "a = 2") == 0
        assert await count_rows(engine, "a = 3") == 1
    finally:
        await engine.dispose()


async def test_dispose_while_a_transaction_waits_for_the_lock(
    database: tuple[str, Path],
) -> None:
    url, path = database
    engine = create_engine(url)
    await insert_one(engine, 1)
    try:
        with lock_holder(path, "0.8", "immediate") as holder:
            waiting = asyncio.create_task(insert_one(engine, 2))
            await asyncio.sleep(0.1)
            await engine.dispose()  # an operator's shutdown or a sandbox reset meanwhile
            await asyncio.wait_for(waiting, 5)
            wait_line(holder, "done")
        await insert_one(engine, 3)  # a disposed engine makes new connections
        assert await count_rows(engine, "a > 0") == 3
    finally:
        await engine.dispose()


# -- the pool ----------------------------------------------------------------------------------


async def test_an_exhausted_pool_awaits_without_freezing_the_loop_and_times_out_cleanly(
    database: tuple[str, Path],
) -> None:
    url, _ = database
    engine = create_engine(url, pool_size=1, max_overflow=0, pool_timeout=0.5)
    try:
        async with Ticker() as ticker, engine.connect() as held:
            await held.execute(text("SELECT 1"))
            started = time.monotonic()
            with pytest.raises(exc.TimeoutError):
                async with engine.connect() as second:
                    await second.execute(text("SELECT 1"))
            assert 0.4 < time.monotonic() - started < 1.5
        assert ticker.largest_gap < 0.2

        # More concurrent transactions than connections, outside the unit of work: they queue.
        async def one(n: int) -> None:
            async with engine.begin() as connection:
                await connection.execute(text("INSERT INTO t VALUES (:a)"), {"a": n})
                await asyncio.sleep(0.01)

        await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(1, 9))), 10)
        assert await count_rows(engine) == 8
    finally:
        await engine.dispose()


# -- results -----------------------------------------------------------------------------------


async def test_a_partly_read_result_kept_alive_does_not_poison_its_pooled_connection(
    database: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """BREAKS: sqlite3 cursors step lazily (storage.sqlite._Cursor._async_soft_close's
    docstring, "sqlite3's rows are already here", is not so). A result read in part and still
    referenced (kept in a variable, a traceback's frame, a cache) leaves its statement running
    on the connection after COMMIT: the connection keeps that read snapshot. Once anybody else
    commits, the connection's next BEGIN IMMEDIATE gets SQLITE_BUSY_SNAPSHOT, which _is_busy
    takes for "busy": it retries for BUSY_TIMEOUT (15 s), then fails "database is locked", on
    every transaction, as long as the result lives. aiosqlite reads every row at execute."""
    monkeypatch.setattr(in_loop, "BUSY_TIMEOUT", 0.5)
    url, path = database
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        for n in (1, 2, 3):
            await insert_one(engine, n)
        async with engine.begin() as connection:
            kept = await connection.execute(text("SELECT a FROM t ORDER BY a"))
            assert kept.fetchone() == (1,)
        # Another writer (another process, the CLI) commits.
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("INSERT INTO t VALUES (4)")
        other.close()

        started = time.monotonic()
        async with engine.begin() as connection:
            seen = (await connection.execute(text("SELECT count(*) FROM t"))).scalar_one()
        assert seen == 4
        assert time.monotonic() - started < 0.2
        assert kept.fetchone() == (2,)  # kept alive up to here on purpose
    finally:
        await engine.dispose()


async def test_a_returning_result_not_read_to_the_end_does_not_fail_the_commit(
    database: tuple[str, Path],
) -> None:
    """BREAKS: an INSERT … RETURNING whose rows were not all read is a write statement still
    "in progress" for SQLite: COMMIT fails with "cannot commit transaction - SQL statements in
    progress" (aiosqlite read the rows at execute, so its commit goes through)."""
    url, _ = database
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with engine.begin() as connection:
            result = await connection.execute(
                text("INSERT INTO t VALUES (1), (2), (3) RETURNING a")
            )
            assert result.fetchone() == (1,)
        del result
        assert await count_rows(engine) == 3
    finally:
        await engine.dispose()


async def test_a_failed_commit_does_not_return_its_connection_to_the_pool_inside_a_transaction(
    database: tuple[str, Path],
) -> None:
    """BREAKS: when COMMIT fails (here through the half-read RETURNING above; a full disk is
    the same), SQLAlchemy forgets the transaction, and with pool_reset_on_return=None nobody
    rolls back: sqlite3's transaction stays open on the pooled connection, and every later
    transaction on it fails "cannot start a transaction within a transaction" (the bot usually
    works on a single pooled connection: it stops writing altogether). Not new in itself:
    aiosqlite does the same after any failed COMMIT (a deferred foreign key, say); the
    in-loop driver adds a way for COMMIT to fail."""
    url, _ = database
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        with contextlib.suppress(exc.OperationalError):
            async with engine.begin() as connection:
                result = await connection.execute(
                    text("INSERT INTO t VALUES (1), (2), (3) RETURNING a")
                )
                result.fetchone()
        del result
        assert pooled_connections_in_transaction(engine) == [False]
        await insert_one(engine, 4)
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT a FROM t ORDER BY a"))
            assert [a for (a,) in rows] in ([4], [1, 2, 3, 4])
    finally:
        await engine.dispose()


async def test_a_large_result_arrives_whole(database: tuple[str, Path]) -> None:
    url, _ = database
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)"
                    " INSERT INTO t SELECT i FROM n"
                )
            )
        async with UnitOfWork(session_factory(engine), write_lock(url)) as uow:
            rows = (await uow.session.execute(text("SELECT a FROM t ORDER BY a"))).all()
            in_parts = await uow.session.execute(text("SELECT a FROM t"))
            parts = sum(len(part) for part in in_parts.partitions(1000))
        assert len(rows) == 200000
        assert rows[-1] == (200000,)
        assert parts == 200000
    finally:
        await engine.dispose()


async def test_connection_stream_fails_with_a_clear_error_and_session_stream_works(
    database: tuple[str, Path],
) -> None:
    """Documents a change: aiosqlite supported AsyncConnection.stream (server-side cursors);
    the in-loop dialect refuses it at once with SQLAlchemy's InvalidRequestError.
    AsyncSession.stream still works (stream_results is ignored; sqlite3's cursor steps lazily
    anyway). Nothing in the project streams today."""
    url, _ = database
    engine = create_engine(url)
    try:
        await insert_one(engine, 1)
        async with engine.connect() as connection:
            with pytest.raises(exc.InvalidRequestError, match="server side cursors"):
                await connection.stream(text("SELECT a FROM t"))
            # The connection is still good afterwards.
            assert (await connection.execute(text("SELECT count(*) FROM t"))).scalar_one() == 1
        async with UnitOfWork(session_factory(engine), write_lock(url)) as uow:
            streamed = await uow.session.stream(text("SELECT a FROM t"))
            assert [row async for row in streamed] == [(1,)]
    finally:
        await engine.dispose()


# -- errors callers catch ----------------------------------------------------------------------


async def test_statement_errors_are_sqlalchemys_and_a_duplicate_is_a_conflict(
    sqlite_url: str,
) -> None:
    engine = create_engine(sqlite_url)
    sessions = session_factory(engine)
    lock = write_lock(sqlite_url)
    try:
        async with engine.connect() as connection:
            with pytest.raises(exc.OperationalError) as raised:
                await connection.execute(text("SELEC nonsense"))
            assert isinstance(raised.value.orig, sqlite3.OperationalError)
            # Parameters stay hidden in the error's text (hide_parameters).
            with pytest.raises(exc.StatementError) as raised_with_parameters:
                await connection.execute(
                    text("SELECT * FROM nowhere WHERE a = :a"), {"a": "secret"}
                )
            assert "secret" not in str(raised_with_parameters.value)

        async with UnitOfWork(sessions, lock) as uow:
            await uow.session.execute(
                insert(processed_updates).values(update_id=7, processed_at=NOW)
            )
            await uow.commit()

        async def duplicate() -> None:
            async with UnitOfWork(sessions, lock) as uow:
                await uow.session.execute(
                    insert(processed_updates).values(update_id=7, processed_at=NOW)
                )
                await uow.commit()

        with pytest.raises(ports.Conflict) as conflict:
            await duplicate()
        assert isinstance(conflict.value.__cause__, exc.IntegrityError)
        assert lock is not None
        assert not lock.locked()
        # And the connection is fine afterwards.
        async with UnitOfWork(sessions, lock) as uow:
            await uow.session.execute(
                insert(processed_updates).values(update_id=8, processed_at=NOW)
            )
            await uow.commit()
    finally:
        await engine.dispose()


async def test_a_memory_database_works_through_the_unit_of_work(tmp_path: Path) -> None:
    url = "sqlite:///:memory:"
    engine = create_engine(url)
    sessions = session_factory(engine)
    lock = write_lock(url)
    try:
        assert engine.dialect.driver == in_loop.DRIVER
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (a INTEGER)"))

        async def one(n: int) -> None:
            async with UnitOfWork(sessions, lock) as uow:
                await uow.session.execute(text("INSERT INTO t VALUES (:a)"), {"a": n})
                await asyncio.sleep(0)
                await uow.commit()

        await asyncio.gather(*(one(n) for n in range(20)))
        assert await count_rows(engine) == 20  # one shared connection (StaticPool): same data
    finally:
        await engine.dispose()


# -- round trips -------------------------------------------------------------------------------


async def _trips_of(engine: AsyncEngine, work: Callable[[AsyncEngine], Any]) -> int:
    trips = RoundTrips()
    trips.watch(engine)
    await work(engine)
    return trips.count


async def _mixed_work(engine: AsyncEngine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    sessions = session_factory(engine)
    lock = write_lock(url)
    async with UnitOfWork(sessions, lock) as uow:  # commit
        await uow.session.execute(text("INSERT INTO t VALUES (1)"))
        await uow.session.execute(text("SELECT count(*) FROM t"))
        await uow.commit()
    async with UnitOfWork(sessions, lock) as uow:  # left without commit: a rollback
        await uow.ping()
    async with UnitOfWork(sessions, lock) as uow:  # a savepoint
        async with uow.session.begin_nested():
            await uow.session.execute(text("INSERT INTO t VALUES (2)"))
        await uow.commit()
    async with UnitOfWork(sessions, lock) as uow:  # nothing at all: no BEGIN, nothing counted
        pass


async def test_round_trips_count_the_same_on_both_sqlite_drivers(tmp_path: Path) -> None:
    counts = {}
    for driver in ("sqlite", "sqlite+aiosqlite"):
        engine = create_engine(f"{driver}:///{tmp_path / (driver + '.db')}")
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (a INTEGER)"))
        try:
            counts[driver] = await _trips_of(engine, _mixed_work)
        finally:
            await engine.dispose()
    assert counts["sqlite"] == counts["sqlite+aiosqlite"]


async def test_a_begin_that_waited_for_another_process_is_still_one_round_trip(
    database: tuple[str, Path],
) -> None:
    url, path = database
    engine = create_engine(url)
    await insert_one(engine, 1)
    trips = RoundTrips()
    trips.watch(engine)
    try:
        with lock_holder(path, "0.3", "immediate") as holder:
            await insert_one(engine, 2)  # many BEGIN IMMEDIATE tries, one BEGIN counted
            wait_line(holder, "done")
        assert trips.count == 3  # BEGIN, INSERT, COMMIT
    finally:
        await engine.dispose()


def test_the_url_mapping_leaves_other_spellings_alone() -> None:
    assert in_loop.in_loop_url("sqlite:///a.db").drivername == "sqlite+inloop"
    assert in_loop.in_loop_url("sqlite://").drivername == "sqlite+inloop"
    assert in_loop.in_loop_url("sqlite+aiosqlite:///a.db").drivername == "sqlite+aiosqlite"
    assert in_loop.in_loop_url("sqlite+pysqlite:///a.db").drivername == "sqlite+pysqlite"
    assert make_url(str(in_loop.in_loop_url("postgresql+asyncpg://u@h/d"))).drivername == (
        "postgresql+asyncpg"
    )
