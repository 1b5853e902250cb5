"""SQLite in the event loop's own thread: the default driver for `sqlite:///…` URLs.

Why not aiosqlite: it runs each connection in a thread of its own, and every statement is a hop
there and back (a queue, a thread wake-up, a future resolved from the other thread). A chat
bot's statements are tiny reads and writes on a local file, a few microseconds each in SQLite,
so the hops cost far more than the work: issue 13 measured SQLite slower than PostgreSQL over a
socket. Here sqlite3 runs where SQLAlchemy's async layer already is, inside its greenlet, and a
statement never leaves the thread.

What keeps that safe:
- A statement blocks the loop for as long as SQLite takes. In WAL mode a commit does not wait
  for the disk (synchronous=NORMAL), so that is microseconds; a checkpoint now and then is the
  exception (a few milliseconds).
- Waiting for the write lock must never block the loop: another coroutine of this process may
  hold it and could then never finish. So connections have no busy timeout, and the BEGIN
  IMMEDIATE that opens every transaction (see storage.db), like a new connection's switch to
  WAL, is retried with `asyncio.sleep` between tries.
  Within one process, transactions already queue on the unit of work's lock
  (storage.db.write_lock); the retry is for another process (the CLI, a second bot) or a use
  outside the unit of work.
- No statement stays open on a connection: rows are read whole at execute (`_Cursor`).

`sqlite+aiosqlite:///…` URLs keep aiosqlite, for whoever prefers it.
"""

from __future__ import annotations

import asyncio
import collections
import sqlite3
import time
from typing import Any, Self

from sqlalchemy import pool
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.util.concurrency import await_, in_greenlet

DRIVER = "inloop"

# How long a BEGIN IMMEDIATE waits for another writer before it gives up ("database is
# locked"): the same 15 s the aiosqlite connections wait in SQLite's own busy handler.
BUSY_TIMEOUT = 15.0
FIRST_RETRY = 0.001
LONGEST_RETRY = 0.05


class _Cursor(sqlite3.Cursor):
    """Reads a query's rows whole at `execute`, as aiosqlite does. A sqlite3 statement read in
    part stays open on its connection: past COMMIT it pins its read snapshot (every later
    BEGIN IMMEDIATE there then fails, SQLITE_BUSY_SNAPSHOT), and a RETURNING not read to the
    end makes COMMIT fail ("SQL statements in progress"). A bot's results are a few rows."""

    _rows: collections.deque[Any] | None = None

    def execute(self, sql: str, parameters: Any = (), /) -> Self:
        super().execute(sql, parameters)
        self._rows = collections.deque(super().fetchall()) if self.description else None
        return self

    def executemany(self, sql: str, parameters: Any, /) -> Self:
        self._rows = None
        super().executemany(sql, parameters)
        return self

    def fetchone(self) -> Any:
        if self._rows is None:
            return super().fetchone()
        return self._rows.popleft() if self._rows else None

    def fetchmany(self, size: int | None = None) -> list[Any]:
        size = self.arraysize if size is None else size
        if self._rows is None:
            return super().fetchmany(size)
        return [self._rows.popleft() for _ in range(min(size, len(self._rows)))]

    def fetchall(self) -> list[Any]:
        if self._rows is None:
            return super().fetchall()
        rows = list(self._rows)
        self._rows.clear()
        return rows

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> Any:
        row = self.fetchone()
        if row is None:
            raise StopIteration
        return row

    async def _async_soft_close(self) -> None:
        """SQLAlchemy's async results call this once a statement ran, for an async driver to
        fetch its rows: they are here already."""


class _Connection(sqlite3.Connection):
    def cursor(self, factory: Any = _Cursor) -> Any:
        return super().cursor(factory)


class SQLiteDialect_inloop(SQLiteDialect_pysqlite):
    """The standard sqlite3 dialect, declared async so that `create_async_engine` takes it:
    SQLAlchemy's async layer runs it in a greenlet, where a driver that never awaits just runs."""

    driver = DRIVER
    is_async = True
    supports_statement_cache = True

    # AsyncConnection.execute insists that a statement awaited something (a sync driver
    # slipped into an async engine by mistake would never do so): each statement passes once
    # through the greenlet's parent, without a trip round the event loop.
    def do_execute(self, cursor: Any, statement: str, parameters: Any, context: Any = None) -> None:
        _touch_the_loop()
        cursor.execute(statement, parameters)

    def do_executemany(
        self, cursor: Any, statement: str, parameters: Any, context: Any = None
    ) -> None:
        _touch_the_loop()
        cursor.executemany(statement, parameters)

    def do_execute_no_params(self, cursor: Any, statement: str, context: Any = None) -> None:
        _touch_the_loop()
        cursor.execute(statement)

    def create_connect_args(self, url: URL) -> Any:
        args, options = super().create_connect_args(url)
        options["factory"] = _Connection
        # sqlite3's own busy handler (5 s by default) would sleep in the loop's thread from the
        # very first statement; waiting happens in `retry_while_busy` instead.
        options.setdefault("timeout", 0)
        return args, options

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        # The async pool: a coroutine waiting for a connection awaits instead of blocking the
        # thread on a condition variable, which here is the loop's.
        if cls._is_url_file_db(url):
            return pool.AsyncAdaptedQueuePool
        return pool.StaticPool


registry.register(f"sqlite.{DRIVER}", __name__, "SQLiteDialect_inloop")


def in_loop_url(url: str | URL) -> URL:
    """`sqlite:///…` (no driver named) runs in the loop; any other URL is left as it is."""
    parsed = make_url(url)
    if parsed.drivername == "sqlite":
        return parsed.set(drivername=f"sqlite+{DRIVER}")
    return parsed


async def _at_once() -> None:
    return None


def _touch_the_loop() -> None:
    if in_greenlet():
        await_(_at_once())


def uses_loop_driver(dialect: Any) -> bool:
    return getattr(dialect, "driver", None) == DRIVER


def retry_while_busy(dbapi_connection: sqlite3.Connection, statement: str) -> None:
    """`statement`, waiting for another connection's lock by sleeping in the event loop, never
    in SQLite's busy handler (which would stop the loop, and with it the writer we wait for):
    BEGIN IMMEDIATE, or switching a new connection to WAL. Given up, it fails as SQLAlchemy's
    OperationalError, as a statement would."""
    try:
        _retry_while_busy(dbapi_connection, statement)
    except sqlite3.Error as error:
        raise DBAPIError.instance(statement, None, error, sqlite3.Error) from error


def _retry_while_busy(dbapi_connection: sqlite3.Connection, statement: str) -> None:
    deadline = time.monotonic() + BUSY_TIMEOUT
    pause = FIRST_RETRY
    while True:
        try:
            dbapi_connection.execute(statement)
            return
        except sqlite3.OperationalError as error:
            if not _is_busy(error) or time.monotonic() + pause > deadline:
                raise
        if in_greenlet():
            await_(asyncio.sleep(pause))
        else:  # a synchronous use (a script): nothing else runs in this thread to wait for
            time.sleep(pause)
        pause = min(pause * 2, LONGEST_RETRY)


# A read snapshot older than the last commit: waiting never clears it (see _Cursor).
SQLITE_BUSY_SNAPSHOT = 517


def _is_busy(error: sqlite3.OperationalError) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        if code == SQLITE_BUSY_SNAPSHOT:
            return False
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(error) or "busy" in str(error)
