"""The aiohttp transport behaves as PTB's httpx one: same requests, same timeouts, same errors."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from telegram import Bot, InputFile
from telegram.error import BadRequest, NetworkError, TimedOut
from telegram.request import RequestData
from telegram.request._requestparameter import RequestParameter

from bot.sandbox.emulator import BotApiEmulator
from bot.transport import AiohttpRequest
from tests.e2e.crowd import free_port

TOKEN = "123456:TRANSPORT-test"


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[web.Request], dict[str, bytes]]]:
    """A server that records what it got; `/slow` answers after 2 s."""
    seen: list[web.Request] = []
    bodies: dict[str, bytes] = {}

    async def handle(request: web.Request) -> web.Response:
        seen.append(request)
        bodies[request.path] = await request.read()
        if request.path == "/slow":
            await asyncio.sleep(2)
        return web.json_response({"ok": True, "result": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}", seen, bodies
    await runner.cleanup()


def data(**values: object) -> RequestData:
    return RequestData([RequestParameter.from_input(name, value) for name, value in values.items()])


async def test_a_request_is_sent_as_ptb_sends_it_and_its_answer_returned(
    server: tuple[str, list[web.Request], dict[str, bytes]],
) -> None:
    base, seen, bodies = server
    async with AiohttpRequest() as request:
        status, body = await request.do_request(
            f"{base}/sendMessage", "POST", data(chat_id=5, text="Héhé & co", entities=[{"a": 1}])
        )
    assert (status, body) == (200, b'{"ok": true, "result": true}')
    assert seen[0].headers["User-Agent"].startswith("python-telegram-bot")
    assert seen[0].content_type == "application/x-www-form-urlencoded"
    assert (
        bodies["/sendMessage"]
        == b"chat_id=5&text=H%C3%A9h%C3%A9+%26+co&entities=%5B%7B%22a%22%3A+1%7D%5D"
    )


async def test_a_file_goes_as_multipart(
    server: tuple[str, list[web.Request], dict[str, bytes]],
) -> None:
    base, seen, bodies = server
    upload = InputFile(b"%PDF-1.4 hello", filename="consent.pdf")
    async with AiohttpRequest() as request:
        await request.do_request(f"{base}/sendDocument", "POST", data(chat_id=5, document=upload))
    assert seen[0].content_type == "multipart/form-data"
    assert b'filename="consent.pdf"' in bodies["/sendDocument"]
    assert b"%PDF-1.4 hello" in bodies["/sendDocument"]


async def test_a_file_handle_sent_again_goes_whole_and_its_name_unquoted(
    server: tuple[str, list[web.Request], dict[str, bytes]],
) -> None:
    """As httpx does: a retry (after a 429) sends the same handle from its start, and a name
    with accents is not percent-encoded."""
    base, _seen, bodies = server
    with tempfile.TemporaryFile() as handle:
        handle.write(b"%PDF-1.4 whole")
        handle.seek(0)
        upload = InputFile(handle, filename="élève.pdf", read_file_handle=False)
        async with AiohttpRequest() as request:
            for path in ("/first", "/again"):
                await request.do_request(f"{base}{path}", "POST", data(chat_id=5, document=upload))
    for path in ("/first", "/again"):
        assert b"%PDF-1.4 whole" in bodies[path]
        assert 'filename="élève.pdf"'.encode() in bodies[path]


async def test_no_answer_within_the_read_timeout_is_timed_out(
    server: tuple[str, list[web.Request], dict[str, bytes]],
) -> None:
    base, _seen, _bodies = server
    async with AiohttpRequest(read_timeout=0.3) as request:
        with pytest.raises(TimedOut):
            await request.do_request(f"{base}/slow", "POST", data(chat_id=5))
        # A timeout given with the call wins over the default.
        status, _body = await request.do_request(f"{base}/slow", "POST", read_timeout=5)
    assert status == 200


async def test_a_full_pool_times_out_saying_the_request_was_not_sent(
    server: tuple[str, list[web.Request], dict[str, bytes]],
) -> None:
    base, seen, _bodies = server
    async with AiohttpRequest(connection_pool_size=1, pool_timeout=0.2) as request:
        slow = asyncio.create_task(request.do_request(f"{base}/slow", "POST"))
        await asyncio.sleep(0.3)
        with pytest.raises(TimedOut, match="not\\* sent"):
            await request.do_request(f"{base}/fast", "POST")
        await slow
    assert [r.path for r in seen] == ["/slow"]


async def test_nobody_listening_is_a_network_error() -> None:
    async with AiohttpRequest(connect_timeout=1) as request:
        with pytest.raises(NetworkError, match="aiohttp"):
            await request.do_request(f"http://127.0.0.1:{free_port()}/getMe", "POST")


async def test_it_must_be_initialized_and_refuses_a_socks_proxy() -> None:
    with pytest.raises(RuntimeError, match="not initialized"):
        await AiohttpRequest().do_request("http://127.0.0.1:1/getMe", "POST")
    with pytest.raises(ValueError, match="http"):
        AiohttpRequest(proxy="socks5://127.0.0.1:1080")


async def test_a_bot_on_it_talks_to_the_bot_api_and_gets_its_errors() -> None:
    async with BotApiEmulator() as emulator:
        user = emulator.user(5, "Inès")
        user.send_command("start")
        async with Bot(TOKEN, base_url=emulator.base_url, request=AiohttpRequest()) as bot:
            me = await bot.get_me()
            sent = await bot.send_message(user.id, "<b>Bonjour</b>", parse_mode="HTML")
            with pytest.raises(BadRequest, match=r"(?i)chat not found"):
                await bot.send_message(999_999, "nobody")
    assert me.is_bot
    assert [m.text for m in user.messages] == ["Bonjour"]
    assert sent.message_id == user.messages[0].message_id
