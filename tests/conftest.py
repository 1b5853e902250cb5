"""Fixtures shared by every test level: databases on SQLite and on this machine's PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from storage.migrate import upgrade

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'mentorat.db'}"
    upgrade(url)
    return url


def _postgres_admin_url() -> tuple[str, bool]:
    """The server to create test databases on, and whether the run demands it (CI sets the URL)."""
    configured = os.environ.get("TEST_POSTGRES_URL")
    return (configured or DEFAULT_POSTGRES_URL), configured is not None


async def _admin_execute(admin_url: str, statement: str) -> None:
    import asyncpg

    url = make_url(admin_url)
    connection = await asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database=url.database,
        timeout=5,
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@asynccontextmanager
async def _fresh_postgres_database() -> AsyncIterator[str]:
    """A new database, dropped afterwards: tests never assume an empty one exists."""
    admin_url, required = _postgres_admin_url()
    name = f"mentorat_test_{uuid.uuid4().hex[:12]}"
    try:
        await _admin_execute(admin_url, f'CREATE DATABASE "{name}"')
    except (OSError, Exception) as error:
        if required:
            pytest.fail(f"PostgreSQL at TEST_POSTGRES_URL is unreachable: {error}")
        pytest.skip(f"no PostgreSQL server answers at {admin_url} ({type(error).__name__})")
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await _admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh, migrated PostgreSQL database per test."""
    async with _fresh_postgres_database() as url:
        await asyncio.to_thread(upgrade, url)
        yield url


@pytest.fixture
async def empty_postgres_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database with no schema at all: what replicas starting together meet."""
    async with _fresh_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each storage test runs on both backends."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture(autouse=True)
def no_env_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never pick up a developer's real token or database from the environment or .env."""
    for name in (
        "TELEGRAM_BOT_TOKEN",
        "DATABASE_URL",
        "TELEGRAM_API_BASE_URL",
        "ADMIN_TELEGRAM_IDS",
    ):
        monkeypatch.delenv(name, raising=False)
