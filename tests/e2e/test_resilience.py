"""Faults lose nothing and send nothing twice: a hard kill, Telegram 5xx and 429, a missing token."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp

from bot.app import TelegramBot
from bot.sandbox.emulator import BotApiEmulator
from tests.e2e.conftest import TOKEN, Chat
from tests.e2e.test_questionnaire import active_conversation


async def start_bot_process(
    emulator: BotApiEmulator, database_url: str, cwd: Path
) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_BASE_URL": emulator.base_url,
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "WARNING",
        # A dispatcher killed mid-send frees its messages after this lease (60 s in production).
        "OUTBOX_LEASE_SECONDS": "2",
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=(cwd / "bot.log").open("ab"),
    )


async def test_a_hard_kill_mid_questionnaire_resumes_at_the_same_question(
    emulator: BotApiEmulator, person: Callable[..., Chat], sqlite_url: str, tmp_path: Path
) -> None:
    process = await start_bot_process(emulator, sqlite_url, tmp_path)
    try:
        chat = person(2121, "Inès")
        await chat.starts()
        await chat.taps("Je cherche un·e mentor·e", expect="Question 1 ·")
        await chat.says("Inès", expect="Question 2 ·")
        await chat.says("17", expect="Question 3 ·")
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()

    process = await start_bot_process(emulator, sqlite_url, tmp_path)
    try:
        question = await chat.says("93200", expect="Question 4 ·")
        assert "Où en es-tu" in (question.text or "")
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    row = await active_conversation(sqlite_url)
    assert row is not None
    assert row.answers == {"first_name": "Inès", "age": 17, "postal_code": "93200"}
    # Killed right after a question went out, before the bot recorded it as sent: the restarted
    # bot may ask it once more (at least once, never lost), never a third time.
    threes = [m for m in chat.user.messages if "Question 3 ·" in (m.text or "")]
    assert 1 <= len(threes) <= 2


async def test_telegram_500_then_429_on_a_reply_still_delivers_it_exactly_once(
    bot: TelegramBot,
    person: Callable[..., Chat],
    emulator: BotApiEmulator,  # type: ignore[type-arg]
) -> None:
    chat = person(2222, "Inès")
    await chat.starts()
    await chat.taps("Je cherche un·e mentor·e", expect="Question 1 ·")
    emulator.faults.add(method="sendMessage", status=500, chat_id=chat.user.id)
    emulator.faults.add(method="sendMessage", status=429, retry_after=1, chat_id=chat.user.id)
    chat.user.send_text("Inès")
    question = await chat.reads(expect="Question 2 ·")
    assert "âge" in (question.text or "")
    failed = [r for r in emulator.calls("sendMessage") if r.status in (429, 500)]
    assert [r.status for r in failed] == [500, 429]
    twos = [m for m in chat.user.messages if "Question 2 ·" in (m.text or "")]
    assert len(twos) == 1


async def test_without_a_token_run_serves_the_sandbox_page_and_says_so_in_two_lines(
    tmp_path: Path,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"}
    env |= {
        "WEB_PORT": str(port),
        "SANDBOX_DATABASE_URL": f"sqlite:///{tmp_path / 'sandbox.db'}",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'real.db'}",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        lines = [
            (await asyncio.wait_for(process.stdout.readline(), timeout=60)).decode().strip()
            for _ in range(2)
        ]
        assert "TELEGRAM_BOT_TOKEN" in lines[0]
        assert f"http://127.0.0.1:{port}" in lines[1]
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/") as page,
        ):
            assert page.status == 200
            assert "<html" in (await page.text()).lower()
    finally:
        process.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(process.wait(), timeout=30)
    assert code == 0
    # The sandbox never touches the real bot's database.
    assert not (tmp_path / "real.db").exists()


async def test_a_handoff_committed_but_not_sent_before_a_kill_is_sent_once_after_restart(
    emulator: BotApiEmulator, person: Callable[..., Chat], sqlite_url: str, tmp_path: Path
) -> None:
    from tests.e2e.test_questionnaire import sign_up_as_17_year_old_in_saint_denis

    env = {**os.environ, "DATABASE_URL": sqlite_url}
    inviting = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "coordinator",
        "invite",
        "proxite",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
    )
    printed, _ = await inviting.communicate()
    token = printed.decode().split("start=")[1].split()[0]
    process = await start_bot_process(emulator, sqlite_url, tmp_path)
    coordinator = Chat(emulator.user(900001, "Camille"))
    try:
        await coordinator.starts(token, expect="coordinateur")
        await coordinator.taps("Oui, je rejoins", expect="Bienvenue")
        # Telegram is down for the coordinator: the card is committed, never sent.
        emulator.faults.add(
            method="sendMessage", status=500, chat_id=coordinator.user.id, times=None
        )
        young = person(4242, "Inès")
        young.user.phone_number = "+33612345678"
        await sign_up_as_17_year_old_in_saint_denis(young)
        await young.taps("C'est bon", expect="Merci")
        await emulator.wait_for_call("sendMessage", chat_id=coordinator.user.id)
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    emulator.faults.clear()
    process = await start_bot_process(emulator, sqlite_url, tmp_path)
    try:
        card = await coordinator.user.wait_for_message(
            lambda m: "Nouveau contact" in (m.text or ""), timeout=30
        )
        assert "Inès" in (card.text or "")
        await asyncio.sleep(2)
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    cards = [m for m in coordinator.user.messages if "Nouveau contact" in (m.text or "")]
    assert len(cards) == 1
