"""The packaged entry point, started the way the image starts it: `migrate`, then `run`, as
processes, with the image's settings (ALLOW_SANDBOX=false), against the emulator.

Webhook mode is what compose.yaml runs (SQLite and PostgreSQL); polling mode is what the image runs
alone, and its HEALTHCHECK (deploy/healthcheck.py) must pass there too.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy.engine import make_url

from bot.sandbox.emulator import BotApiEmulator
from bot.web import SECRET_HEADER
from tests.conftest import _admin_execute, _postgres_admin_url
from tests.e2e.conftest import TOKEN

ROOT = Path(__file__).resolve().parents[2]
HEALTHCHECK = ROOT / "deploy" / "healthcheck.py"
SECRET = "a_webhook_secret_of_enough_length-42"
PUBLIC_URL = "https://bot.example.test/telegram"
# Bounds: a start migrates an empty database first (a few seconds on this 2-core machine).
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database with no schema at all, as on an operator's first start."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mentorat.db'}"
        return
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


def image_env(
    emulator: BotApiEmulator, database_url: str, port: int, **extra: str
) -> dict[str, str]:
    """The environment the image gives the bot, on the loopback instead of 0.0.0.0."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"TELEGRAM_BOT_TOKEN", "WEBHOOK_URL", "WEBHOOK_SECRET", "DATABASE_URL"}
    }
    return env | {
        "ALLOW_SANDBOX": "false",
        "WEB_HOST": "127.0.0.1",
        "WEB_PORT": str(port),
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_BASE_URL": emulator.base_url,
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "WARNING",
        **extra,
    }


async def bot_command(env: dict[str, str], cwd: Path, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=START_TIMEOUT)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@asynccontextmanager
async def image_started(env: dict[str, str], cwd: Path) -> AsyncIterator[str]:
    """`mentorat-bot migrate && exec mentorat-bot run` (the image's CMD); yields its base URL
    once /healthz answers, and stops it with SIGTERM as `docker stop` does."""
    code, out, err = await bot_command(env, cwd, "migrate")
    assert code == 0, err
    assert "database is up to date" in out
    log = cwd / "bot.log"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=log.open("ab"),
    )
    base = f"http://127.0.0.1:{env['WEB_PORT']}"
    try:
        await until_healthy(base, process, log)
        yield base
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout=STOP_TIMEOUT)
            except TimeoutError:
                process.kill()
                await process.wait()
    assert process.returncode == 0, logged(log)


async def until_healthy(base: str, process: asyncio.subprocess.Process, log: Path) -> None:
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while asyncio.get_running_loop().time() < deadline:
            if process.returncode is not None:
                pytest.fail(f"the bot exited with {process.returncode}: {logged(log)}")
            try:
                async with session.get(f"{base}/healthz") as health:
                    if health.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    pytest.fail(f"/healthz did not answer within {START_TIMEOUT} s: {logged(log)}")


async def until_status(base: str, path: str, status: int) -> None:
    """Bounded: a getUpdates in progress ends within its long poll (10 s)."""
    deadline = asyncio.get_running_loop().time() + 30
    while (await get(base, path))[0] != status:
        assert asyncio.get_running_loop().time() < deadline, f"{path} never answered {status}"
        await asyncio.sleep(0.2)


def logged(log: Path) -> str:
    """What the bot wrote on stderr, for a failure's message."""
    return log.read_text(errors="replace") if log.exists() else "(nothing logged)"


async def get(base: str, path: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.get(f"{base}{path}") as response,
    ):
        return response.status, await response.text()


async def healthcheck(env: dict[str, str]) -> int:
    """The image's HEALTHCHECK command, with the container's environment."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HEALTHCHECK),
        env=env | {"WEB_HOST": "0.0.0.0"},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(process.wait(), timeout=10)


async def test_migrate_then_run_in_webhook_mode_serves_health_and_answers_an_update(
    emulator: BotApiEmulator, empty_database: str, tmp_path: Path
) -> None:
    env = image_env(
        emulator,
        empty_database,
        free_port(),
        WEBHOOK_URL=PUBLIC_URL,
        WEBHOOK_SECRET=SECRET,
    )
    async with image_started(env, tmp_path) as base:
        assert emulator.webhook_url == PUBLIC_URL
        assert await get(base, "/healthz") == (200, "ok\n")
        assert await get(base, "/readyz") == (200, "ready\n")
        assert await healthcheck(env) == 0

        user = emulator.user(7001, "Inès")
        user.send_command("start")
        [update] = emulator.pending_updates[-1:]
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
            session.post(f"{base}/telegram", json=update, headers={SECRET_HEADER: SECRET}) as post,
        ):
            assert post.status == 200
        # Handled before the answer: the welcome reached the person when the 200 came back.
        welcome = await user.wait_for_message(lambda m: "Collectif Mentorat" in (m.text or ""))
        assert welcome.buttons

        status, metrics = await get(base, "/metrics")
        assert status == 200
        assert 'mentorat_webhook_requests_total{result="updates"} 1.0' in metrics
    # Stopped: the HEALTHCHECK says so.
    assert await healthcheck(env) == 1


async def test_the_image_alone_polls_and_its_healthcheck_follows_the_poller(
    emulator: BotApiEmulator, tmp_path: Path
) -> None:
    env = image_env(emulator, f"sqlite:///{tmp_path / 'mentorat.db'}", free_port())
    async with image_started(env, tmp_path) as base:
        assert await get(base, "/readyz") == (200, "ready\n")
        assert await healthcheck(env) == 0
        status, metrics = await get(base, "/metrics")
        assert status == 200
        assert "mentorat_outbox_messages" in metrics
        # Nothing is POSTed in polling mode: no webhook counter that would always read 0.
        assert "mentorat_webhook_requests" not in metrics

        user = emulator.user(7002, "Inès")
        user.send_command("start")
        await user.wait_for_message(lambda m: "Collectif Mentorat" in (m.text or ""), timeout=30)
        # What the benchmark divides by the updates handled: it counts, and the welcome cost some.
        before = round_trips(metrics)
        _status, metrics = await get(base, "/metrics")
        assert round_trips(metrics) > before

        # The token is revoked: polling stops for good, and the HEALTHCHECK says so.
        emulator.faults.add(method="getUpdates", status=401, times=None)
        await until_status(base, "/healthz", 503)
        assert await healthcheck(env) == 1


async def test_without_a_token_the_image_refuses_to_serve_the_sandbox(
    emulator: BotApiEmulator, tmp_path: Path
) -> None:
    port = free_port()
    env = image_env(emulator, f"sqlite:///{tmp_path / 'm.db'}", port)
    del env["TELEGRAM_BOT_TOKEN"]
    env["SANDBOX_DATABASE_URL"] = f"sqlite:///{tmp_path / 'sandbox.db'}"
    code, _, err = await bot_command(env, tmp_path, "run")
    assert code == 2
    assert "TELEGRAM_BOT_TOKEN" in err
    assert "ALLOW_SANDBOX=true" in err
    assert not (tmp_path / "sandbox.db").exists()
    with socket.socket() as probe:
        # Nothing listens where the sandbox page would have been.
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def round_trips(metrics: str) -> float:
    [line] = [
        line for line in metrics.splitlines() if line.startswith("mentorat_db_round_trips_total ")
    ]
    return float(line.split()[1])
