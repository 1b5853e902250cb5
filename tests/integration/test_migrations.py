"""Migrations on a database several replicas start against at the same moment."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import _admin_execute, _postgres_admin_url

pytestmark = pytest.mark.postgres
REPLICAS = 3


@pytest.fixture
async def empty_postgres_url() -> AsyncIterator[str]:
    """A brand-new database with no schema at all, dropped afterwards."""
    admin_url, required = _postgres_admin_url()
    name = f"mentorat_test_{uuid.uuid4().hex[:12]}"
    try:
        await _admin_execute(admin_url, f'CREATE DATABASE "{name}"')
    except Exception as error:
        if required:
            pytest.fail(f"PostgreSQL at TEST_POSTGRES_URL is unreachable: {error}")
        pytest.skip(f"no PostgreSQL server answers at {admin_url} ({type(error).__name__})")
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await _admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_three_replicas_migrating_one_empty_postgresql_at_once_all_start(
    empty_postgres_url: str,
) -> None:
    script = "import sys; from storage.migrate import upgrade; upgrade(sys.argv[1])"
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            script,
            empty_postgres_url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(REPLICAS)
    ]
    results = await asyncio.wait_for(
        asyncio.gather(*(process.communicate() for process in processes)), timeout=120
    )
    failures = [
        stderr.decode()[-600:]
        for process, (_stdout, stderr) in zip(processes, results, strict=True)
        if process.returncode != 0
    ]
    assert failures == []
