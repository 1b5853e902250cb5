"""Database engines: the embedded SQLite default tuned for a chat bot, or PostgreSQL for scale."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Table, event, exc
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from storage import sqlite as in_loop


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def ensure_sqlite_directory(url: str) -> None:
    """The default `data/mentorat.db` must work on a fresh clone, where `data/` does not exist."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


# A PostgreSQL connection back in the pool for longer than this is pinged before it is used: a
# server restart or a firewall may have closed it meanwhile. Pinging every checkout (SQLAlchemy's
# pool_pre_ping) costs three round trips each time on asyncpg (BEGIN, ";", ROLLBACK).
PING_IDLE_AFTER = 30.0


def create_engine(
    url: str, *, ping_idle_after: float = PING_IDLE_AFTER, **kwargs: Any
) -> AsyncEngine:
    ensure_sqlite_directory(url)
    # SQL errors quote their parameters by default, and those are answers: names, phones,
    # e-mails. Logged with a traceback, they would leak; hide them.
    kwargs.setdefault("hide_parameters", True)
    # Every use goes through a Connection that ends its transaction (commit, or the rollback of
    # closing without one): the pool's own ROLLBACK on return would be one more call for nothing.
    kwargs.setdefault("pool_reset_on_return", None)
    if is_sqlite(url):
        engine = create_async_engine(in_loop.in_loop_url(url), **kwargs)
        if in_loop.uses_loop_driver(engine.dialect):
            event.listen(engine.sync_engine, "connect", _tune_sqlite_in_loop)
            event.listen(engine.sync_engine, "begin", _begin_immediate_in_loop)
            event.listen(engine.sync_engine.pool, "checkin", _no_transaction_pooled)
        else:
            event.listen(engine.sync_engine, "connect", _tune_sqlite)
            event.listen(engine.sync_engine, "begin", _begin_immediate)
        return engine
    engine = create_async_engine(url, **kwargs)
    _ping_when_idle(engine, ping_idle_after)
    return engine


def _ping_when_idle(engine: AsyncEngine, idle_after: float) -> None:
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    def checkin(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info["idle_since"] = time.monotonic()

    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < idle_after:
            return
        record.info[PINGED] = True
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as error:
            record.info.pop(PINGED, None)
            # The pool discards this connection and checks out another (a fresh one).
            raise exc.DisconnectionError("the connection died while idle") from error

    event.listen(pool, "checkin", checkin)
    event.listen(pool, "checkout", checkout)


PINGED = "mentorat_pinged"
# What asyncpg's ping sends outside a transaction: BEGIN, ";" and ROLLBACK.
PING_ROUND_TRIPS = 3


class RoundTrips:
    """How many times this process spoke to its database: statements, the BEGIN, COMMIT and
    ROLLBACK around them, and the pings of idle connections. The benchmark divides it by the
    updates handled (issue 13: the hot path's cost is counted, not guessed); `/metrics` exports
    it. On SQLite the BEGIN is our BEGIN IMMEDIATE statement, counted as one; on PostgreSQL
    asyncpg sends it before the transaction's first statement."""

    def __init__(self) -> None:
        self.count = 0

    def watch(self, engine: AsyncEngine) -> None:
        sync = engine.sync_engine
        names = ["before_cursor_execute", "commit", "rollback"]
        # aiosqlite's BEGIN IMMEDIATE is a statement (counted above); the in-loop driver sends
        # it on the raw connection, and asyncpg before the transaction's first statement.
        if sync.dialect.name != "sqlite" or in_loop.uses_loop_driver(sync.dialect):
            names.append("begin")
        for name in names:
            event.listen(sync, name, self._one)
        # Listeners run in order: create_engine's checkout (the ping) has marked the record.
        event.listen(sync.pool, "checkout", self._pinged)

    def _one(self, *_args: Any, **_kwargs: Any) -> None:
        self.count += 1

    def _pinged(self, _dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if record.info.pop(PINGED, False):
            self.count += PING_ROUND_TRIPS


def _begin_immediate(connection: Any) -> None:
    # A transaction that reads, then writes, cannot wait for the write lock once another writer
    # committed after its read: SQLite answers "database is locked" at once, busy timeout or not.
    # Taking the write lock at BEGIN makes concurrent updates queue behind the busy timeout.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _begin_immediate_in_loop(connection: Any) -> None:
    in_loop.retry_while_busy(connection.connection.dbapi_connection, "BEGIN IMMEDIATE")


# NORMAL is durable enough with WAL; foreign keys are off in SQLite unless asked for.
SQLITE_PRAGMAS = ("PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON")


def _tune_sqlite_in_loop(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    # No busy timeout (the connection has none from the start): waiting for another
    # connection's lock happens in the event loop, never in SQLite's busy handler, which would
    # sleep in the loop's thread and stop the writer we wait for with it.
    in_loop.retry_while_busy(dbapi_connection, "PRAGMA journal_mode=WAL")
    for pragma in SQLITE_PRAGMAS:
        dbapi_connection.execute(pragma)


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own implicit BEGIN would hide ours: let SQLAlchemy's "begin" event issue it.
    dbapi_connection.isolation_level = None
    # The busy timeout first, so that switching to WAL waits too: a second process then waits
    # for the write lock instead of failing. WAL lets readers and the writer proceed together.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA journal_mode=WAL")
    for pragma in SQLITE_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()


def _no_transaction_pooled(dbapi_connection: Any, _record: Any) -> None:
    # Without the pool's reset, a COMMIT that failed (a deferred constraint, say) would put
    # the connection back inside its transaction, and every later BEGIN on it would fail.
    if dbapi_connection is not None and dbapi_connection.in_transaction:
        dbapi_connection.rollback()


def write_lock(url: str) -> asyncio.Lock | None:
    """One lock per SQLite database and process: every transaction here writes (BEGIN
    IMMEDIATE), so they queue in the event loop rather than in SQLite's busy timeout, which
    64 concurrent updates would exhaust. PostgreSQL needs none."""
    return asyncio.Lock() if is_sqlite(url) else None


def insert_for(session: AsyncSession, table: Table) -> PgInsert | SqliteInsert:
    """An INSERT of the session's database's own dialect: one that knows ON CONFLICT."""
    return insert_of(dialect_of(session), table)


def insert_of(dialect: str, table: Table) -> PgInsert | SqliteInsert:
    return pg_insert(table) if dialect == "postgresql" else sqlite_insert(table)


def dialect_of(session: AsyncSession) -> str:
    bind = session.bind
    return bind.dialect.name if bind is not None else "sqlite"


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
