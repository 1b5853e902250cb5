"""What the storage tests share: a unit of work on the backend under test (SQLite, PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from storage.db import create_engine, session_factory
from storage.uow import UnitOfWork


@pytest.fixture
async def uow_factory(database_url: str) -> AsyncIterator[Callable[[], UnitOfWork]]:
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    yield lambda: UnitOfWork(sessions)
    await engine.dispose()
