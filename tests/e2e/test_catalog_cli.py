"""The catalogue imported with the command line, as the Collectif's staff do it, then a sign-up."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml
from aiohttp import web

from bot.app import build_bot
from bot.sandbox.emulator import BotApiEmulator
from tests.e2e.conftest import Chat, running, settings_for
from tests.e2e.test_handoff import Receiver, complete_sign_up
from tests.unit.fakes import an_association

SECRET = "a-crm-secret-of-more-than-sixteen-characters"
CLI = [sys.executable, "-m", "bot"]


def cli(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


async def test_a_catalogue_imported_with_its_webhook_secret_signs_the_handoff_of_a_sign_up(
    emulator: BotApiEmulator, sqlite_url: str, person: Callable[..., Chat], tmp_path: Path
) -> None:
    receiver = Receiver(SECRET)
    receiver.failures_left = 0
    server = web.Application()
    server.router.add_post("/crm", receiver.handle)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    crm = {"telegram": False, "webhook_url": f"http://127.0.0.1:{port}/crm"}
    entry = an_association("alpha", handoff={**crm, "webhook_secret": SECRET})
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(yaml.safe_dump({"associations": [entry]}, allow_unicode=True))
    try:
        migrated = await asyncio.to_thread(cli, "migrate", database_url=sqlite_url)
        assert migrated.returncode == 0, migrated.stderr
        imported = await asyncio.to_thread(
            cli, "catalog", "import", str(catalog), database_url=sqlite_url
        )
        assert imported.returncode == 0, imported.stderr
        listed = await asyncio.to_thread(cli, "catalog", "list", database_url=sqlite_url)
        assert listed.returncode == 0, listed.stderr
        assert "alpha" in listed.stdout
        assert SECRET not in listed.stdout + listed.stderr  # never printed
        async with running(build_bot(settings_for(emulator, sqlite_url))):
            young = await complete_sign_up(person)
            assert "Oups" not in (young.user.last_message.text or "")  # type: ignore[union-attr]
            await asyncio.wait_for(receiver.arrived.wait(), timeout=10)
        # Signed with the secret of the file (the Receiver refuses any other signature).
        assert [body["event"] for body in receiver.received] == ["handoff.proposed"]
        assert receiver.received[0]["association"] == "alpha"
    finally:
        await runner.cleanup()
