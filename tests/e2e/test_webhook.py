"""Webhook mode: updates POSTed by Telegram are checked, handled before the answer, and only once."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from bot.sandbox.emulator import BotApiEmulator
from bot.web import SECRET_HEADER, run_webhook
from tests.e2e.conftest import settings_for

SECRET = "a_webhook_secret_of_enough_length-42"
PUBLIC_URL = "https://bot.example.test/telegram"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def applications(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The applications run_webhook builds, for tests that reach inside."""
    import bot.web

    built: list[Any] = []
    original = bot.web.build_bot

    def keep(settings: Any) -> Any:
        built.append(original(settings))
        return built[-1]

    monkeypatch.setattr(bot.web, "build_bot", keep)
    return built


@pytest.fixture
async def webhook(
    emulator: BotApiEmulator, sqlite_url: str, applications: list[Any]
) -> AsyncIterator[str]:
    port = free_port()
    settings = settings_for(emulator, sqlite_url).model_copy(
        update={"webhook_url": PUBLIC_URL, "webhook_secret": SecretStr(SECRET), "web_port": port}
    )
    ready, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_webhook(settings, ready=ready, stop=stop))
    waiting = asyncio.create_task(ready.wait())
    await asyncio.wait({task, waiting}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # it failed to start: show why
    assert ready.is_set()
    yield f"http://127.0.0.1:{port}"
    stop.set()
    await asyncio.wait_for(task, timeout=30)


async def post(
    base: str, update: dict[str, Any], secret: str = SECRET, body: bytes | None = None
) -> int:
    async with aiohttp.ClientSession() as session:
        kwargs: dict[str, Any] = {"data": body} if body is not None else {"json": update}
        async with session.post(
            f"{base}/telegram", headers={SECRET_HEADER: secret}, **kwargs
        ) as response:
            return response.status


def take_update(emulator: BotApiEmulator) -> dict[str, Any]:
    """What Telegram would POST: the emulator keeps updates while a webhook is set."""
    [update] = emulator.pending_updates[-1:]
    return update


async def test_the_bot_registers_its_webhook_with_the_secret(
    webhook: str, emulator: BotApiEmulator
) -> None:
    assert emulator.webhook_url == PUBLIC_URL
    [call] = emulator.calls("setWebhook")
    assert call.params["secret_token"] == SECRET


async def test_an_update_is_answered_once_even_when_telegram_posts_it_twice(
    webhook: str, emulator: BotApiEmulator
) -> None:
    user = emulator.user(6001, "Inès")
    user.send_command("start")
    update = take_update(emulator)
    assert await post(webhook, update) == 200
    # Handled before the answer: the reply already went out when the 200 came back.
    assert "Collectif Mentorat" in (user.messages[-1].text or "")
    assert await post(webhook, update) == 200
    assert len(user.messages) == 1


async def test_a_post_without_the_secret_is_refused_and_changes_nothing(
    webhook: str, emulator: BotApiEmulator
) -> None:
    user = emulator.user(6002, "Mallory")
    user.send_command("start")
    assert await post(webhook, take_update(emulator), secret="wrong") == 403
    assert await post(webhook, {}, body=b"x" * (2 * 1024 * 1024)) == 413
    assert await post(webhook, {}, body=b"not json") == 400
    assert user.messages == []


async def test_operators_get_health_readiness_and_metrics(
    webhook: str, emulator: BotApiEmulator
) -> None:
    user = emulator.user(6003, "Inès")
    user.send_command("start")
    await post(webhook, take_update(emulator))
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{webhook}/healthz") as health:
            assert health.status == 200
        async with session.get(f"{webhook}/readyz") as ready:
            assert ready.status == 200
        async with session.get(f"{webhook}/metrics") as metrics:
            body = await metrics.text()
    assert 'mentorat_webhook_requests_total{result="updates"} 1' in body
    assert "Inès" not in body


async def test_odd_requests_get_a_client_error_never_a_crash(
    webhook: str, emulator: BotApiEmulator
) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{webhook}/telegram",
            headers={SECRET_HEADER: SECRET},
            json=[1, 2],
        ) as not_an_object:
            assert not_an_object.status == 400
        async with session.post(
            f"{webhook}/telegram",
            headers={SECRET_HEADER: "caf\xe9"},
            json={},
        ) as latin1_secret:
            assert latin1_secret.status == 403


async def test_an_update_that_failed_gets_a_500_so_telegram_sends_it_again(
    webhook: str, emulator: BotApiEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conversations.services import updates

    original = updates.handle
    calls = []

    async def fails_once(*args: Any) -> Any:
        calls.append(args)
        if len(calls) == 1:
            raise RuntimeError("the database went away")
        return await original(*args)

    monkeypatch.setattr(updates, "handle", fails_once)
    user = emulator.user(6004, "Inès")
    user.send_command("start")
    update = take_update(emulator)
    assert await post(webhook, update) == 500
    assert await post(webhook, update) == 200
    assert "Collectif Mentorat" in (user.messages[-1].text or "")
