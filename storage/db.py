"""Database engines: the embedded SQLite default tuned for a chat bot, or PostgreSQL for scale."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def ensure_sqlite_directory(url: str) -> None:
    """The default `data/mentorat.db` must work on a fresh clone, where `data/` does not exist."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    ensure_sqlite_directory(url)
    # SQL errors quote their parameters by default, and those are answers: names, phones,
    # e-mails. Logged with a traceback, they would leak; hide them.
    kwargs.setdefault("hide_parameters", True)
    if is_sqlite(url):
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _tune_sqlite)
        event.listen(engine.sync_engine, "begin", _begin_immediate)
        return engine
    return create_async_engine(url, pool_pre_ping=True, **kwargs)


class RoundTrips:
    """How many times this process spoke to its database: statements, plus the BEGIN, COMMIT,
    ROLLBACK and pool resets around them. The benchmark divides it by the updates handled
    (issue 13: the hot path's cost is counted, not guessed); `/metrics` exports it."""

    def __init__(self) -> None:
        self.count = 0

    def watch(self, engine: AsyncEngine) -> None:
        sync = engine.sync_engine
        for name in ("before_cursor_execute", "begin", "commit", "rollback"):
            event.listen(sync, name, self._one)
        event.listen(sync.pool, "reset", self._one)

    def _one(self, *_args: Any, **_kwargs: Any) -> None:
        self.count += 1


def _begin_immediate(connection: Any) -> None:
    # A transaction that reads, then writes, cannot wait for the write lock once another writer
    # committed after its read: SQLite answers "database is locked" at once, busy timeout or not.
    # Taking the write lock at BEGIN makes concurrent updates queue behind the busy timeout.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own implicit BEGIN would hide ours: let SQLAlchemy's "begin" event issue it.
    dbapi_connection.isolation_level = None
    # WAL lets readers and the writer proceed together; NORMAL is durable enough with WAL;
    # the busy timeout makes a second process wait for the write lock instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.close()


def write_lock(url: str) -> asyncio.Lock | None:
    """One lock per SQLite database and process: every transaction here writes (BEGIN
    IMMEDIATE), so they queue in the event loop rather than in SQLite's busy timeout, which
    64 concurrent updates would exhaust. PostgreSQL needs none."""
    return asyncio.Lock() if is_sqlite(url) else None


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
