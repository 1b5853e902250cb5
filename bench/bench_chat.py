"""Throughput of the whole bot: people answering at once, through the emulator over HTTP.

    python bench/bench_chat.py [people]    (default 100)

The bot runs as its own process (`python -m bot run`, SQLite), the emulator and the people in this
one, so the bot's CPU time is measured alone (from /proc). Each person sends /start, taps "Je
cherche un·e mentor·e", types a first name and an age: four updates, each read and written in its
own transaction and answered over HTTP. It runs twice: with Telegram's flood limit (30 requests/s,
what production does), then without it (TELEGRAM_MAX_REQUESTS_PER_SECOND=0): what the bot costs.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from bot.sandbox.emulator import BotApiEmulator, EmulatedUser

TOKEN = "123456:BENCH"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def exchange(user: EmulatedUser, send: Callable[[], object], expect: str) -> float:
    started = time.perf_counter()
    send()
    await user.wait_for_message(lambda m: expect in (m.text or ""), timeout=120)
    return time.perf_counter() - started


async def person_answers(user: EmulatedUser, waits: list[float]) -> None:
    waits.append(await exchange(user, lambda: user.send_command("start"), "Qui êtes-vous"))
    waits.append(
        await exchange(user, lambda: user.press("Je cherche un·e mentor·e"), "Question 1 ·")
    )
    waits.append(await exchange(user, lambda: user.send_text("Inès"), "Question 2 ·"))
    waits.append(await exchange(user, lambda: user.send_text("17"), "Question 3 ·"))


async def round_trips(port: int) -> float:
    """The bot's own count of what it sent to its database (`/metrics`)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        for line in (await response.text()).splitlines():
            if line.startswith("mentorat_db_round_trips_total "):
                return float(line.split()[1])
    raise RuntimeError("the bot's /metrics has no mentorat_db_round_trips_total")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def run(people: int, limit: float) -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        async with BotApiEmulator() as emulator:
            env = {
                **os.environ,
                "TELEGRAM_BOT_TOKEN": TOKEN,
                "TELEGRAM_API_BASE_URL": emulator.base_url,
                "DATABASE_URL": f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}",
                "TELEGRAM_MAX_REQUESTS_PER_SECOND": str(limit),
                "LOG_LEVEL": "WARNING",
                # /metrics, for the database round trips.
                "WEB_PORT": str(port),
            }
            bot = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "run",
                env=env,
                cwd=directory,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            try:
                # Ready when it answers: the first exchange is not timed.
                warm = emulator.user(1, "Warm-up")
                await exchange(warm, lambda: warm.send_command("start"), "Qui êtes-vous")
                users = [emulator.user(10_000 + i, f"P{i}") for i in range(people)]
                waits: list[float] = []
                requests_before = len(emulator.requests)
                trips_before = await round_trips(port)
                cpu_before = cpu_seconds(bot.pid)
                started = time.perf_counter()
                await asyncio.gather(*(person_answers(user, waits) for user in users))
                elapsed = time.perf_counter() - started
                cpu = cpu_seconds(bot.pid) - cpu_before
                # The inbox's done rows go in a batch just after the replies.
                await asyncio.sleep(1)
                trips = await round_trips(port) - trips_before
                requests = sum(
                    1 for r in emulator.requests[requests_before:] if r.method != "getUpdates"
                )
            finally:
                bot.terminate()
                await bot.wait()
    updates = 4 * people
    waits.sort()
    print(
        f"{people} people, {updates} updates in {elapsed:.2f} s: {updates / elapsed:.0f} updates/s"
    )
    print(f"  Bot API requests: {requests / updates:.1f} per update")
    print(f"  database round trips: {trips / updates:.1f} per update")
    print(
        f"  reply time: median {1000 * statistics.median(waits):.0f} ms, "
        f"p95 {1000 * waits[int(0.95 * len(waits)) - 1]:.0f} ms"
    )
    print(f"  bot process CPU: {1000 * cpu / updates:.2f} ms per update")


async def main(people: int) -> None:
    for limit in (30.0, 0.0):
        print(f"-- Telegram flood limit: {f'{limit:.0f} requests/s' if limit else 'none'}")
        await run(people, limit)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100))
