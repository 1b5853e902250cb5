"""Migrations on a database several replicas start against at the same moment."""

from __future__ import annotations

import asyncio
import sys

import pytest

pytestmark = pytest.mark.postgres
REPLICAS = 3


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
