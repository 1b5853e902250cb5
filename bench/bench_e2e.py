"""Issue 13's end-to-end bench: the bot, in its own process, against the floor (bare echo bots)
on the same Bot API emulator and the same load, then with 1,000 and 1,000,000 stored people.

    python bench/bench_e2e.py                     # what `make bench` runs (~10 minutes)
    python bench/bench_e2e.py --quick             # a smoke check (~2 minutes)
    python bench/bench_e2e.py --people 100 --backends sqlite,postgresql --stored 1000,1000000

Contenders, each its own process polling a fresh instance of bot/sandbox/emulator.py:
- the bot (`python -m bot run`) on SQLite and on PostgreSQL (a fresh database per run, dropped
  afterwards), in polling mode, then in webhook mode (this script plays Telegram's part: it
  POSTs each update to the bot's webhook);
- bench/echo_ptb.py on PTB's default httpx transport, and on this repository's aiohttp one;
- bench/echo_aiogram.py, aiogram 3 from PyPI in the bench's own virtualenv (bench/.venv-bench,
  created here when missing; never a dependency of the project).

The load: N people at once, in closed loop (each acts as soon as the previous reply came). On the
bot each fills in the whole young person's questionnaire, answering whatever is asked; on an echo
bot each sends as many updates, of the same kinds (texts and button presses; the shared contact
is a text), in the same order.
Then the same at a fixed pace (--rate updates/s), for the reply time at that rate.

Printed per contender: updates/s; reply time p50/p95/p99 (from an update to the reply it
awaited, as the emulator records it); the process's CPU per update (/proc/<pid>/stat) and peak
RSS (VmHWM); Bot API calls per answer (the emulator's request log); for the bot, database round
trips per answer (its /metrics) and, on PostgreSQL, the CPU of its server backends. No assertion:
this is an instrument, never a test (not part of `make test`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import platform
import re
import secrets
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
import asyncpg  # type: ignore[import-untyped]

# Run as a plain script from anywhere: the project root is the parent of bench/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.sandbox.emulator import BotApiEmulator, EmulatedUser
from bot.sandbox.models import ChatMessage, EventKind

ROOT = Path(__file__).resolve().parents[1]

TOKEN = "123456:BENCH"
WEBHOOK_SECRET = "bench_webhook_secret_of_enough_length_42"
# Never reached: the emulator only checks that it is https; the bench POSTs to the bot itself.
WEBHOOK_URL = "https://bench.invalid/telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
BENCH_VENV = ROOT / "bench" / ".venv-bench"
AIOGRAM_REQUIREMENT = "aiogram>=3.20,<4"
# Seeded people's Telegram ids start here, far from the bench's people (10_000 up).
SEEDED_IDS = 10**12
# One reply awaited longer than this: the contender is stuck, the run says so and goes on.
REPLY_TIMEOUT = 60.0
# A questionnaire that takes more moves than this loops (an answer refused again and again).
MAX_MOVES = 40
# After the last reply: the calls and round trips that follow it (toasts, the inbox's batch).
SETTLE = 1.0


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- the emulator, observed -------------------------------------------------------------------


Listener = Callable[[EventKind, ChatMessage, float], None]


class ObservedEmulator(BotApiEmulator):
    """The emulator, telling the bench of each bot message as it is stored (the moment is the
    reply time's end), and, in webhook mode, handing each update to the bench to POST.

    EmulatedUser.wait_for_message would do, but each of its waiters re-scans its chat on every
    change anywhere: with 100 people waiting, the bench would cost more CPU than an echo bot."""

    def __init__(self) -> None:
        super().__init__()
        self.listeners: dict[int, Listener] = {}
        self.forward: Callable[[dict[str, Any]], None] | None = None

    def _record_event(self, chat: Any, kind: EventKind, message: ChatMessage) -> None:
        super()._record_event(chat, kind, message)
        listener = self.listeners.get(chat.id)
        if listener is not None and message.from_bot:
            listener(kind, chat.events[-1].message, time.perf_counter())

    def _push_update(self, kind: str, payload: dict[str, Any]) -> int:
        update_id = super()._push_update(kind, payload)
        if self.forward is not None:
            self.forward(self._all_updates[update_id])
        return update_id


class WebhookTelegram:
    """Telegram's part in webhook mode: each update POSTed to the bot with the secret, a 500
    sent again (in closed loop a person has one update in flight: the order holds)."""

    def __init__(self, emulator: ObservedEmulator, url: str) -> None:
        self._url = url
        self._emulator = emulator
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.failures = 0

    async def __aenter__(self) -> WebhookTelegram:
        connector = aiohttp.TCPConnector(limit=100)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=REPLY_TIMEOUT)
        )
        self._emulator.forward = self._deliver
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._emulator.forward = None
        for task in list(self._tasks):
            task.cancel()
        if self._session is not None:
            await self._session.close()

    def _deliver(self, update: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._post(update))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, update: dict[str, Any]) -> None:
        assert self._session is not None
        for attempt in range(5):
            try:
                async with self._session.post(
                    self._url, json=update, headers={SECRET_HEADER: WEBHOOK_SECRET}
                ) as response:
                    # A method in the response is run, as Telegram does.
                    await self._emulator.webhook_response(
                        response.status, response.content_type, await response.read()
                    )
                    if response.status == 200:
                        return
            except (aiohttp.ClientError, OSError, TimeoutError):
                pass
            self.failures += 1
            await asyncio.sleep(0.3 * (attempt + 1))


# --- people -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Move:
    """What a person does next: a command, a typed text, or a press on a button."""

    kind: Literal["command", "text", "press", "contact"]
    value: str
    message_id: int | None = None
    # A tick of a multiple choice: its reply is the same question, edited.
    toggle: bool = False
    # The summary's "send": whatever comes next ends the questionnaire.
    last: bool = False
    # The pressed message's text: once edited into the next question, it no longer starts so.
    pressed_text: str = ""


class Stuck(Exception):
    """A person's reply never came, or their questionnaire loops."""


class Person:
    """One emulated person and their chat as the bench sees it: the reply awaited, when it came."""

    def __init__(self, emulator: ObservedEmulator, user_id: int, name: str) -> None:
        self.user: EmulatedUser = emulator.user(user_id, name)
        self.name = name
        self.phone = f"06{user_id % 100_000_000:08d}"
        self.moves: list[Move] = []
        self.waits: list[float] = []
        self._accept: Callable[[EventKind, ChatMessage], bool] | None = None
        self._reply: asyncio.Future[tuple[ChatMessage, float]] | None = None
        emulator.listeners[user_id] = self._on_event

    def _on_event(self, kind: EventKind, message: ChatMessage, at: float) -> None:
        reply, accept = self._reply, self._accept
        if reply is not None and not reply.done() and accept is not None and accept(kind, message):
            reply.set_result((message, at))

    async def exchange(
        self, move: Move, accept: Callable[[EventKind, ChatMessage], bool]
    ) -> ChatMessage:
        """Makes the move, waits for the reply `accept` recognises; records how long it took."""
        self._reply = asyncio.get_running_loop().create_future()
        self._accept = accept
        started = time.perf_counter()
        if move.kind == "command":
            self.user.send_command(move.value)
        elif move.kind == "text":
            self.user.send_text(move.value)
        elif move.kind == "contact":
            self.user.send_contact(move.value)
        else:
            self.user.press(move.value, message_id=move.message_id)
        try:
            message, at = await asyncio.wait_for(self._reply, REPLY_TIMEOUT)
        except TimeoutError:
            raise Stuck(
                f"{self.name}: no reply in {REPLY_TIMEOUT:.0f} s to {move}; the chat shows:\n"
                + transcript(self.user)
            ) from None
        finally:
            self._reply = self._accept = None
        self.moves.append(move)
        self.waits.append(at - started)
        return message


def name_for(number: int) -> str:
    """A first name the bot accepts (letters only), different for each person."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    return f"Inès-{letters[number // 676 % 26].upper()}{letters[number // 26 % 26]}{letters[number % 26]}"


def transcript(user: EmulatedUser, last: int = 6) -> str:
    lines = []
    for message in user.history[-last:]:
        who = "bot" if message.from_bot else "person"
        text = (message.text or str(message.extra))[:120].replace("\n", " ")
        lines.append(f"  #{message.message_id} {who}: {text} {message.button_texts or ''}")
    return "\n".join(lines)


# The questionnaire is answered by what it asks, not by its wording or its order: the progress
# line only needs to start with "Question <n>" (it may become "Question 3 · ▰▰▱ 30 %").
QUESTION = re.compile(r"Question\s*\d+")
TICKS = ("⬜", "☑️")
NAVIGATION = ("Retour", "Passer", "Valider", "✏️")


def typed_answers(person: Person) -> tuple[tuple[re.Pattern[str], str], ...]:
    """What to type when a question's prompt says this (French: the bot's default language)."""
    return (
        (re.compile(r"\bprénom\b", re.IGNORECASE), person.name),
        (re.compile(r"\bâge\b", re.IGNORECASE), "17"),
        (re.compile(r"code postal", re.IGNORECASE), "93200"),
        (re.compile(r"téléphone", re.IGNORECASE), person.phone),
        (re.compile(r"e-?mail", re.IGNORECASE), "a@b.fr"),
    )


def next_move(message: ChatMessage, person: Person) -> Move | None:
    """The young person's answer to a bot message; None when it asks nothing ("C'est noté")."""
    text = message.text or ""
    buttons = message.button_texts
    here = message.message_id
    question = QUESTION.search(text)
    keyboard = message.keyboard_markup or {}
    if any(b.get("request_contact") for row in keyboard.get("keyboard", []) for b in row):
        # "📱 Partager mon numéro", as most people answer it (not typing their number).
        return Move("contact", person.phone)
    if question is not None:
        prompt = text[question.end() :]
        for asks, answer in typed_answers(person):
            if asks.search(prompt):
                return Move("text", answer)
        ticks = [b for b in buttons if b.startswith(TICKS)]
        if ticks:
            if not any(b.startswith("☑️") for b in ticks):
                return Move("press", ticks[0], here, toggle=True, pressed_text=text)
            done = [b for b in buttons if "Valider" in b]
            return Move("press", done[0], here, pressed_text=text) if done else None
        options = [b for b in buttons if not any(word in b for word in NAVIGATION)]
        return Move("press", options[0], here, pressed_text=text) if options else None
    send = [b for b in buttons if "C'est bon" in b or "envoie" in b]
    if send:
        return Move("press", send[0], here, last=True, pressed_text=text)
    # The welcome's "who are you": the young person is the one looking for a mentor.
    mentee = [b for b in buttons if "cherche" in b]
    options = mentee or [b for b in buttons if not any(word in b for word in NAVIGATION)]
    return Move("press", options[0], here, pressed_text=text) if options else None


def reply_to(move: Move, person: Person) -> Callable[[EventKind, ChatMessage], bool]:
    """Which bot message answers `move`: the next one asking something, the edited question
    for a tick, anything new after the summary's "send". Edits that only close a question
    (its buttons go, the answer shows) are not replies."""

    def accept(kind: EventKind, message: ChatMessage) -> bool:
        if kind == "new":
            return move.last or next_move(message, person) is not None
        if message.message_id != move.message_id:
            return False
        if move.toggle:
            return any(b.startswith("☑️") for b in message.button_texts)
        # The pressed question edited into the next one ("✓ <answer>", then the question); a
        # question only closed ("→ <answer>" added below it) asks nothing more; the summary
        # sent keeps its text, then its answer and the thanks.
        text = message.text or ""
        if not text.startswith(move.pressed_text):
            return True
        return move.last and "\n\n" in text[len(move.pressed_text) :].strip()

    return accept


async def fill_in_questionnaire(person: Person) -> None:
    """/start, then whatever the bot asks, until the summary is sent."""
    move = Move("command", "start")
    for _ in range(MAX_MOVES):
        message = await person.exchange(move, reply_to(move, person))
        if move.last:
            return
        following = next_move(message, person)
        if following is None:
            raise Stuck(f"{person.name}: nothing to answer in:\n{transcript(person.user)}")
        move = following
    raise Stuck(f"{person.name}: {MAX_MOVES} moves and no end:\n{transcript(person.user)}")


def any_new(kind: EventKind, _message: ChatMessage) -> bool:
    return kind == "new"


async def echo_exchanges(person: Person, kinds: Sequence[str]) -> None:
    """The same number and kinds of updates as a questionnaire, to an echo bot."""
    last: ChatMessage | None = None
    for kind in kinds:
        if kind == "press" and last is not None and last.buttons:
            move = Move("press", last.button_texts[0], last.message_id)
        elif kind == "command":
            move = Move("command", "start")
        else:
            move = Move("text", "Bonjour")
        last = await person.exchange(move, any_new)


# --- processes --------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return math.nan


class ServerCpu:
    """CPU of the PostgreSQL server processes serving one database (their title names it),
    sampled every 100 ms: the bot's pool closes its overflow connections, and what a backend
    used must not leave with it. One that lives less than 100 ms is missed."""

    def __init__(self, database: str) -> None:
        self._database = database
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._ours: set[int] = set()
        self._others: set[int] = set()
        self._task: asyncio.Task[None] | None = None

    def _sample(self, *, at_start: bool) -> None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            with contextlib.suppress(OSError, IndexError, ValueError):
                if pid in self._others:
                    continue
                if pid not in self._ours:
                    title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                    if not title.startswith("postgres:"):
                        self._others.add(pid)
                        continue
                    # Not cached when it is another database's: a backend starting names it late.
                    if f" {self._database} " not in title:
                        continue
                    self._ours.add(pid)
                self._last[pid] = cpu_seconds(pid)
                # A backend born during the phase used nothing before it.
                self._first.setdefault(pid, self._last[pid] if at_start else 0.0)

    async def _sampling(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            self._sample(at_start=False)

    def start(self) -> None:
        self._sample(at_start=True)
        self._task = asyncio.get_running_loop().create_task(self._sampling())

    async def stop(self) -> float:
        """The CPU seconds used since start()."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._sample(at_start=False)
        return sum(self._last[pid] - self._first[pid] for pid in self._last)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Process:
    """A contender's process: started by the bench, its log kept for a failure's post-mortem."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    process: asyncio.subprocess.Process | None = None

    @property
    def log_path(self) -> Path:
        return self.cwd / f"{re.sub(r'[^a-z0-9]+', '-', self.name.lower())}.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> None:
        with self.log_path.open("ab") as output:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                env=self.env,
                cwd=self.cwd,
                stdout=output,
                stderr=output,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.terminate()
        try:
            await asyncio.wait_for(self.process.wait(), timeout=20)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()

    def log_tail(self, chars: int = 2500) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return self.log_path.read_text(errors="replace")[-chars:]


async def round_trips(port: int) -> float | None:
    """The bot's own count of what it sent to its database (`/metrics`)."""
    with contextlib.suppress(aiohttp.ClientError, OSError):
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/metrics") as response,
        ):
            for line in (await response.text()).splitlines():
                if line.startswith("mentorat_db_round_trips_total "):
                    return float(line.split()[1])
    return None


async def wait_ready(port: int, process: Process, timeout: float = 60) -> None:  # noqa: ASYNC109
    """Webhook mode: the bot's /readyz answers."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if not process.alive():
                break
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise Stuck(f"{process.name} did not get ready:\n{process.log_tail()}")


# --- databases --------------------------------------------------------------------------------


@dataclass
class Database:
    backend: Literal["sqlite", "postgresql"]
    url: str
    # PostgreSQL: the database's name, for its server processes' CPU.
    name: str | None = None


@contextlib.asynccontextmanager
async def fresh_database(backend: str, directory: Path, admin_url: str) -> AsyncIterator[Database]:
    """An empty database: a file in `directory`, or `mentorat_bench_<random>`, dropped after."""
    if backend == "sqlite":
        yield Database("sqlite", f"sqlite:///{directory / 'bench.db'}")
        return
    name = f"mentorat_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    host = admin_url.split("://", 1)[1].rsplit("/", 1)[0]
    try:
        yield Database("postgresql", f"postgresql+asyncpg://{host}/{name}", name)
    finally:
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def migrate(database: Database, cwd: Path) -> None:
    """`mentorat-bot migrate`, as the bot would at its start, so that rows can go in first."""
    env = {**os.environ, "DATABASE_URL": database.url, "LOG_LEVEL": "WARNING"}
    subprocess.run(
        [sys.executable, "-m", "bot", "migrate"],
        env=env,
        cwd=cwd,
        check=True,
        stdout=subprocess.DEVNULL,
    )


@dataclass(frozen=True)
class Column:
    name: str
    required: bool  # NOT NULL without a default


def _values(table: str, column: str, i: int, now: dt.datetime) -> Any:
    """A seeded row's value, as the bot would have written it (Python types; see _sqlite)."""
    telegram_id = SEEDED_IDS + i
    known: dict[str, Any] = (
        {
            "id": i + 1,
            "telegram_id": telegram_id,
            "language": "fr",
            "telegram_language": "fr",
            "created_at": now,
            "last_seen_at": now,
            "address": "tu",
        }
        if table == "people"
        else {
            "id": i + 1,
            "person_id": i + 1,
            "chat_id": telegram_id,
            "flow": "mentee",
            "step": "age",
            "answers": {"first_name": "Camille"},
            "draft": {"selected": []},
            "editing": False,
            "status": "active",
            "journey": f"{i:016x}",
            "started_at": now,
            # Just now: neither the half-way reminder nor the purge of abandoned ones is due.
            "updated_at": now,
            "version": 1,
        }
    )
    return known.get(column)


def _check_columns(table: str, columns: list[Column]) -> list[str]:
    now = dt.datetime.now(dt.UTC)
    unknown = [c.name for c in columns if c.required and _values(table, c.name, 0, now) is None]
    if unknown:
        raise RuntimeError(f"the bench does not know what to seed in {table}.{unknown}")
    return [c.name for c in columns if _values(table, c.name, 0, now) is not None]


def _sqlite(value: Any) -> Any:
    """What SQLAlchemy's SQLite dialect stores: naive UTC text, JSON text, 0/1."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, bool):
        return int(value)
    return value


def seed_sqlite(path: Path, people: int, open_conversations: int) -> None:
    """executemany in one transaction; the bot's own schema, read back from the database."""
    now = dt.datetime.now(dt.UTC)
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("BEGIN")
        for table, count in (("people", people), ("conversations", open_conversations)):
            columns = [
                # table_info: (cid, name, type, notnull, dflt_value, pk)
                Column(row[1], bool(row[3]) and row[4] is None and not row[5])
                for row in db.execute(f"PRAGMA table_info({table})")
            ]
            names = _check_columns(table, columns)
            placeholders = ", ".join("?" for _ in names)
            db.executemany(
                f"INSERT INTO {table} ({', '.join(names)}) VALUES ({placeholders})",
                (
                    tuple(_sqlite(_values(table, name, i, now)) for name in names)
                    for i in range(count)
                ),
            )
        db.execute("COMMIT")


async def seed_postgresql(url: str, people: int, open_conversations: int) -> None:
    """COPY (binary) from Python tuples; the serial counters moved past the seeded ids."""
    now = dt.datetime.now(dt.UTC)
    db = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        for table, count in (("people", people), ("conversations", open_conversations)):
            rows = await db.fetch(
                "SELECT column_name, is_nullable, column_default FROM information_schema.columns "
                "WHERE table_name = $1 ORDER BY ordinal_position",
                table,
            )
            columns = [
                Column(
                    r["column_name"],
                    r["is_nullable"] == "NO"
                    and r["column_default"] is None
                    and r["column_name"] != "id",
                )
                for r in rows
            ]
            names = _check_columns(table, columns)

            def pg(value: Any) -> Any:
                return json.dumps(value) if isinstance(value, dict | list) else value

            await db.copy_records_to_table(
                table,
                columns=names,
                records=(
                    tuple(pg(_values(table, name, i, now)) for name in names) for i in range(count)
                ),
            )
            if count:
                await db.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {count})")
        # As autovacuum would soon: the planner knows the tables are big.
        await db.execute("ANALYZE people")
        await db.execute("ANALYZE conversations")
    finally:
        await db.close()


# --- measures ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest rank: the smallest value at or above `share` of them."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


@dataclass
class Result:
    contender: str
    phase: str  # "closed" (N people at once) or "paced" (--rate)
    people: int
    updates: int = 0
    seconds: float = math.nan
    waits: list[float] = field(default_factory=list)
    cpu_ms: float = math.nan  # the contender's process, per update
    db_cpu_ms: float = math.nan  # PostgreSQL's server processes for its database, per update
    bench_cpu: float = math.nan  # this process (emulator + people), share of one core
    rss_mb: float = math.nan
    calls: float = math.nan  # Bot API calls per answer, getUpdates included
    get_updates: float = math.nan  # of which getUpdates
    trips: float = math.nan  # database round trips per answer
    stored: int = 0
    open_conversations: int = 0
    seed_seconds: float = math.nan
    rate: float = 0.0
    failures: list[str] = field(default_factory=list)
    webhook_retries: int = 0
    questionnaire_bot: bool = False
    # The machine's 1-minute load average as the phase began (it is shared: see BENCHMARKS.md).
    load: float = math.nan
    # Bot API calls per answer, by method (getUpdates included).
    methods: dict[str, float] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.updates / self.seconds if self.seconds else math.nan

    def wait_ms(self, share: float) -> float:
        return 1000 * percentile(self.waits, share)

    @property
    def cost_ms(self) -> float:
        """The bot's CPU per update, its database server's included (SQLite is in-process)."""
        return self.cpu_ms + (0.0 if math.isnan(self.db_cpu_ms) else self.db_cpu_ms)

    def to_json(self) -> dict[str, Any]:
        return {
            "contender": self.contender,
            "phase": self.phase,
            "people": self.people,
            "updates": self.updates,
            "seconds": self.seconds,
            "updates_per_second": self.per_second,
            "p50_ms": self.wait_ms(0.50),
            "p95_ms": self.wait_ms(0.95),
            "p99_ms": self.wait_ms(0.99),
            "cpu_ms_per_update": self.cpu_ms,
            "db_server_cpu_ms_per_update": self.db_cpu_ms,
            "bench_cpu_share": self.bench_cpu,
            "peak_rss_mb": self.rss_mb,
            "bot_api_calls_per_answer": self.calls,
            "get_updates_per_answer": self.get_updates,
            "db_round_trips_per_answer": self.trips,
            "stored_people": self.stored,
            "open_conversations": self.open_conversations,
            "seed_seconds": self.seed_seconds,
            "rate": self.rate,
            "failures": self.failures,
            "webhook_re_posts": self.webhook_retries,
            "load_average": self.load,
            "bot_api_calls_per_answer_by_method": self.methods,
        }


@dataclass
class Contender:
    """A process under load: how to start it, and how its people behave."""

    name: str
    argv: list[str]
    env: dict[str, str]
    questionnaire: bool  # the bot (fills in the questionnaire) or an echo bot
    metrics_port: int | None = None
    webhook_port: int | None = None
    database: Database | None = None


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        # The kinds of update of one questionnaire, learnt from the first run of the bot.
        self.kinds: list[str] = ["command", "press", "text", "text", "text"] + ["press"] * 9
        self.learnt = False
        self.next_id = 10_000

    def people(self, emulator: ObservedEmulator, count: int) -> list[Person]:
        made = [
            Person(emulator, self.next_id + i, name_for(self.next_id + i)) for i in range(count)
        ]
        self.next_id += count
        return made

    async def run(
        self, contender: Contender, *, paced: bool, stored: int = 0, opened: int = 0
    ) -> list[Result]:
        """Starts the contender against a fresh emulator, warms it up, loads it, stops it."""
        log(f"-- {contender.name}")
        results: list[Result] = []
        emulator = ObservedEmulator()
        async with emulator:
            env = {**contender.env, "TELEGRAM_API_BASE_URL": emulator.base_url}
            with tempfile.TemporaryDirectory(prefix="bench-") as directory:
                process = Process(contender.name, contender.argv, env, Path(directory))
                await process.start()
                try:
                    async with self._telegram(contender, emulator) as webhook:
                        await self._warm_up(contender, emulator, process)
                        phases = ["closed", "paced"] if paced and self.args.rate > 0 else ["closed"]
                        for phase in phases:
                            result = await self._phase(contender, emulator, process, phase)
                            result.webhook_retries = webhook.failures if webhook else 0
                            result.stored, result.open_conversations = stored, opened
                            results.append(result)
                            log(f"   {phase}: {describe(result)}")
                        for result in results:
                            result.rss_mb = peak_rss_mb(process.pid)
                except Stuck as stuck:
                    log(f"   FAILED: {stuck}\n   its log:\n{process.log_tail()}")
                    failed = Result(contender.name, "closed", self.args.people)
                    failed.failures.append(str(stuck).splitlines()[0])
                    results.append(failed)
                finally:
                    await process.stop()
        return results

    @contextlib.asynccontextmanager
    async def _telegram(
        self, contender: Contender, emulator: ObservedEmulator
    ) -> AsyncIterator[WebhookTelegram | None]:
        if contender.webhook_port is None:
            yield None
            return
        url = f"http://127.0.0.1:{contender.webhook_port}/telegram"
        async with WebhookTelegram(emulator, url) as webhook:
            yield webhook

    async def _warm_up(
        self, contender: Contender, emulator: ObservedEmulator, process: Process
    ) -> None:
        """Ready when it answers; one whole questionnaire first (imports, caches), not timed."""
        if contender.webhook_port is not None:
            await wait_ready(contender.webhook_port, process)
        (person,) = self.people(emulator, 1)
        try:
            if contender.questionnaire:
                await fill_in_questionnaire(person)
                if not self.learnt:
                    self.kinds = [m.kind for m in person.moves]
                    self.learnt = True
                    log(f"   a questionnaire is {len(self.kinds)} updates: {self.kinds}")
            else:
                await echo_exchanges(person, self.kinds)
        except Stuck:
            if not process.alive():
                raise Stuck(f"{contender.name} exited:\n{process.log_tail()}") from None
            raise

    async def _phase(
        self, contender: Contender, emulator: ObservedEmulator, process: Process, phase: str
    ) -> Result:
        people = self.people(emulator, self.args.people)
        result = Result(contender.name, phase, len(people))
        result.questionnaire_bot = contender.questionnaire
        result.load = float(load_average().split()[0])
        database = contender.database
        port = contender.metrics_port or contender.webhook_port
        trips_before = await round_trips(port) if port else None
        requests_before = len(emulator.requests)
        cpu_before = cpu_seconds(process.pid)
        server = ServerCpu(database.name) if database and database.name else None
        if server is not None:
            server.start()
        bench_before = time.process_time()
        started = time.perf_counter()

        async def one(person: Person) -> None:
            if contender.questionnaire:
                await fill_in_questionnaire(person)
            else:
                await echo_exchanges(person, self.kinds)

        if phase == "closed":
            outcomes = await asyncio.gather(*(one(p) for p in people), return_exceptions=True)
        else:
            result.rate = self.args.rate
            outcomes = await paced(people, self.args.rate, contender.questionnaire, self.kinds)
        result.seconds = time.perf_counter() - started
        result.bench_cpu = (time.process_time() - bench_before) / result.seconds
        await asyncio.sleep(SETTLE)
        result.cpu_ms = 1000 * (cpu_seconds(process.pid) - cpu_before)
        if server is not None:
            result.db_cpu_ms = 1000 * await server.stop()
        requests = emulator.requests[requests_before:]
        result.updates = sum(len(p.moves) for p in people)
        result.waits = [w for p in people for w in p.waits]
        result.failures = [str(o).splitlines()[0] for o in outcomes if isinstance(o, Exception)]
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, Stuck):
                raise outcome
        if result.failures:
            first = next(o for o in outcomes if isinstance(o, Exception))
            log(f"   {len(result.failures)} people stuck; the first:\n{first}")
        if result.updates:
            result.cpu_ms /= result.updates
            result.db_cpu_ms /= result.updates
            # A method the bot put in its webhook response is not a call it made (no request,
            # no round trip): listed by method, with "(in webhook responses)", not counted.
            made = [r for r in requests if not r.in_webhook_response]
            result.calls = len(made) / result.updates
            result.get_updates = sum(r.method == "getUpdates" for r in made) / result.updates
            methods = Counter(
                f"{r.method} (in webhook responses)" if r.in_webhook_response else r.method
                for r in requests
            )
            result.methods = {m: n / result.updates for m, n in methods.most_common()}
            trips_after = await round_trips(port) if port else None
            if trips_before is not None and trips_after is not None:
                result.trips = (trips_after - trips_before) / result.updates
        return result


async def paced(
    people: list[Person], rate: float, questionnaire: bool, kinds: Sequence[str]
) -> list[BaseException | None]:
    """Open loop at `rate` updates/s: at each tick the person idle longest makes their next
    move (a tick waits when nobody is idle: then the achieved rate says so)."""
    idle: deque[int] = deque(range(len(people)))
    someone_idle = asyncio.Event()
    someone_idle.set()
    state: list[Move | None] = [Move("command", "start") for _ in people]
    echoed: list[ChatMessage | None] = [None for _ in people]
    steps = [0 for _ in people]
    outcomes: list[BaseException | None] = [None for _ in people]
    running: set[asyncio.Task[None]] = set()

    async def step(index: int) -> None:
        person = people[index]
        try:
            if questionnaire:
                move = state[index]
                assert move is not None
                message = await person.exchange(move, reply_to(move, person))
                following = None if move.last else next_move(message, person)
                if not move.last and following is None:
                    raise Stuck(f"{person.name}: nothing to answer in:\n{transcript(person.user)}")
                if len(person.moves) >= MAX_MOVES:
                    raise Stuck(f"{person.name}: {MAX_MOVES} moves and no end")
                state[index] = following
            else:
                kind, last = kinds[steps[index]], echoed[index]
                if kind == "press" and last is not None and last.buttons:
                    move = Move("press", last.button_texts[0], last.message_id)
                else:
                    move = Move("command", "start") if kind == "command" else Move("text", "Hi")
                echoed[index] = await person.exchange(move, any_new)
                steps[index] += 1
                if steps[index] == len(kinds):
                    state[index] = None
        except Stuck as stuck:
            outcomes[index] = stuck
            state[index] = None
        if state[index] is not None:
            idle.append(index)
            someone_idle.set()

    loop = asyncio.get_running_loop()
    tick = loop.time()
    while any(s is not None for s in state):
        if not idle:
            someone_idle.clear()
            if not running:
                break
            waiter = asyncio.ensure_future(someone_idle.wait())
            await asyncio.wait({waiter, *running}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            # Late: the schedule starts again from now rather than catching up in a burst.
            tick = max(tick, loop.time())
            continue
        task = loop.create_task(step(idle.popleft()))
        running.add(task)
        task.add_done_callback(running.discard)
        tick += 1 / rate
        await asyncio.sleep(max(0.0, tick - loop.time()))
    if running:
        await asyncio.gather(*running)
    return outcomes


def describe(result: Result) -> str:
    if not result.updates:
        return "no update answered"
    return (
        f"{result.updates} updates in {result.seconds:.1f} s, {result.per_second:.0f}/s, "
        f"p50 {result.wait_ms(0.5):.0f} ms, p99 {result.wait_ms(0.99):.0f} ms, "
        f"{result.cpu_ms:.2f} ms CPU/update, bench {100 * result.bench_cpu:.0f} % of a core"
        + (f", {len(result.failures)} stuck" if result.failures else "")
    )


# --- the contenders ---------------------------------------------------------------------------


def bot_contender(database: Database, mode: str) -> Contender:
    port = free_port()
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "DATABASE_URL": database.url,
        "TELEGRAM_MAX_REQUESTS_PER_SECOND": "0",
        "LOG_LEVEL": "WARNING",
        "WEB_HOST": "127.0.0.1",
        # /metrics, for the database round trips; the webhook too in webhook mode.
        "WEB_PORT": str(port),
    }
    label = "SQLite" if database.backend == "sqlite" else "PostgreSQL"
    contender = Contender(
        f"bot · {label} · {mode}",
        [sys.executable, "-m", "bot", "run"],
        env,
        questionnaire=True,
        database=database,
    )
    if mode == "webhook":
        env |= {"WEBHOOK_URL": WEBHOOK_URL, "WEBHOOK_SECRET": WEBHOOK_SECRET}
        contender.webhook_port = port
    else:
        contender.metrics_port = port
    return contender


ECHO_BOTS = ("httpx", "aiohttp", "aiogram")


def echo_contenders(chosen: Sequence[str], aiogram: Path | None) -> list[Contender]:
    env = {**os.environ, "TELEGRAM_BOT_TOKEN": TOKEN}
    here = ROOT / "bench"
    contenders = [
        Contender(
            f"echo · PTB · {transport}",
            [sys.executable, str(here / "echo_ptb.py"), transport],
            env,
            questionnaire=False,
        )
        for transport in ("httpx", "aiohttp")
        if transport in chosen
    ]
    if "aiogram" in chosen and aiogram is not None:
        contenders.append(
            Contender(
                "echo · aiogram",
                [str(aiogram), str(here / "echo_aiogram.py")],
                env,
                questionnaire=False,
            )
        )
    return contenders


def aiogram_python(given: str | None) -> Path | None:
    """The bench's own virtualenv with aiogram, created on first use (PyPI, `pip install`)."""
    python = Path(given) if given else BENCH_VENV / "bin" / "python"
    check = [str(python), "-c", "import aiogram"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    if given:
        log(f"{given} cannot import aiogram: the aiogram echo bot is left out")
        return None
    log(f"creating {BENCH_VENV.relative_to(ROOT)} with {AIOGRAM_REQUIREMENT} …")
    try:
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(BENCH_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", AIOGRAM_REQUIREMENT],
            check=True,
            stderr=subprocess.DEVNULL,
        )
    except (subprocess.CalledProcessError, OSError) as error:
        log(f"could not install aiogram ({error}): the aiogram echo bot is left out")
        return None
    return python


# --- the machine ------------------------------------------------------------------------------


def version_of(python: Path | str, module: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({module!r}))"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return done.stdout.strip() or "?"


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine(aiogram: Path | None, postgres: str) -> dict[str, str]:
    """What the figures were measured on, for BENCHMARKS.md."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = next(
        line.split()[1]
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return {
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "cpus": f"{os.cpu_count()} × {cpu}",
        "ram": f"{int(memory) / 1024**2:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python-telegram-bot": version_of(sys.executable, "python-telegram-bot"),
        "aiogram": version_of(aiogram, "aiogram") if aiogram else "not installed",
        "aiohttp": version_of(sys.executable, "aiohttp"),
        "httpx": version_of(sys.executable, "httpx"),
        "SQLAlchemy": version_of(sys.executable, "SQLAlchemy"),
        "SQLite": sqlite3.sqlite_version,
        "PostgreSQL": postgres,
        "load average at start (1, 5, 15 min)": load_average(),
    }


async def postgres_version(url: str) -> str | None:
    """The server's version, or None (after saying why) when it cannot be reached."""
    try:
        db = await asyncpg.connect(url, timeout=5)
    except (OSError, asyncpg.PostgresError) as error:
        log(f"PostgreSQL at {url} not reached ({error}): its runs are left out")
        return None
    try:
        return str(await db.fetchval("SHOW server_version"))
    finally:
        await db.close()


# --- the report -------------------------------------------------------------------------------


def number(value: float, digits: int = 0) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join(
        [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)]
    )


def load_table(results: Sequence[Result]) -> str:
    headers = [
        "contender",
        "updates",
        "updates/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "CPU ms/update",
        "+ PG server",
        "peak RSS MB",
        "API calls/answer",
        "of which getUpdates",
        "DB trips/answer",
        "bench CPU",
    ]
    rows = [
        [
            r.contender
            + (f" ({len(r.failures)} stuck)" if r.failures else "")
            + (f" ({r.webhook_retries} re-POSTs)" if r.webhook_retries else ""),
            str(r.updates),
            number(r.per_second),
            number(r.wait_ms(0.5), 1),
            number(r.wait_ms(0.95), 1),
            number(r.wait_ms(0.99), 1),
            number(r.cpu_ms, 2),
            number(r.db_cpu_ms, 2),
            number(r.rss_mb),
            number(r.calls, 2),
            number(r.get_updates, 2),
            number(r.trips, 1),
            f"{number(100 * r.bench_cpu)} %",
        ]
        for r in results
    ]
    return table(headers, rows)


def ratio_table(bots: Sequence[Result], echoes: Sequence[Result]) -> str:
    """Each figure of the bot ÷ the same figure of each echo bot, in the same run."""

    def ratio(ours: float, theirs: float, digits: int) -> str:
        if math.isnan(ours) or math.isnan(theirs) or theirs == 0:
            return "–"
        return f"{number(ours / theirs, digits)}×"

    headers = [
        "bot",
        "echo bot",
        "updates/s",
        "p50",
        "p95",
        "p99",
        "CPU/update",
        "peak RSS",
        "API calls/answer",
    ]
    rows = [
        [
            b.contender,
            e.contender,
            ratio(b.per_second, e.per_second, 2),
            ratio(b.wait_ms(0.5), e.wait_ms(0.5), 1),
            ratio(b.wait_ms(0.95), e.wait_ms(0.95), 1),
            ratio(b.wait_ms(0.99), e.wait_ms(0.99), 1),
            ratio(b.cpu_ms, e.cpu_ms, 1),
            ratio(b.rss_mb, e.rss_mb, 1),
            ratio(b.calls, e.calls, 2),
        ]
        for b in bots
        for e in echoes
        if b.updates and e.updates
    ]
    return table(headers, rows) if rows else "(no pair to compare)"


def stored_table(results: Sequence[Result]) -> str:
    headers = [
        "contender",
        "stored people",
        "open conversations",
        "seeded in",
        "updates/s",
        "p50 ms",
        "p99 ms",
        "CPU ms/update",
        "+ PG server",
        "DB trips/answer",
    ]
    rows = [
        [
            r.contender,
            f"{r.stored:,}",
            f"{r.open_conversations:,}",
            f"{number(r.seed_seconds, 1)} s",
            number(r.per_second),
            number(r.wait_ms(0.5), 1),
            number(r.wait_ms(0.99), 1),
            number(r.cpu_ms, 2),
            number(r.db_cpu_ms, 2),
            number(r.trips, 1),
        ]
        for r in results
    ]
    return table(headers, rows)


def scale_pairs(results: Sequence[Result]) -> list[tuple[str, Result, Result]]:
    """Per backend, the run with the fewest stored people and the one with the most."""
    pairs = []
    for backend in ("SQLite", "PostgreSQL"):
        runs = sorted(
            (r for r in results if backend in r.contender and r.updates), key=lambda r: r.stored
        )
        if len(runs) >= 2 and runs[0].stored != runs[-1].stored:
            pairs.append((backend, runs[0], runs[-1]))
    return pairs


def scale_lines(results: Sequence[Result]) -> list[str]:
    return [
        f"{backend}: per-update cost, {big.stored:,} ÷ {small.stored:,} stored = "
        f"{big.cost_ms / small.cost_ms:.2f}× ({big.cost_ms:.2f} vs {small.cost_ms:.2f} ms of CPU "
        + ("for the bot and its PostgreSQL server" if backend == "PostgreSQL" else "for the bot")
        + f"); updates/s {big.per_second / small.per_second:.2f}×, "
        f"reply p50 {big.wait_ms(0.5) / small.wait_ms(0.5):.2f}×, "
        f"DB trips {number(big.trips, 1)} vs {number(small.trips, 1)} per answer"
        for backend, small, big in scale_pairs(results)
    ]


def target_rows(
    closed: Sequence[Result], paced_: Sequence[Result], stored: Sequence[Result]
) -> list[list[str]]:
    def find(results: Sequence[Result], name: str) -> Result | None:
        return next((r for r in results if r.contender == name and r.updates), None)

    def met(ok: bool | None) -> str:
        return "–" if ok is None else ("yes" if ok else "**no**")

    rows: list[list[str]] = []
    bot = find(closed, "bot · SQLite · polling")
    aiogram = find(closed, "echo · aiogram")
    if bot and aiogram:
        share = bot.per_second / aiogram.per_second
        rows.append(
            [
                "bot on SQLite ≥ 1.0× the aiogram echo bot's updates/s",
                f"{share:.2f}× ({bot.per_second:.0f} vs {aiogram.per_second:.0f}/s)",
                met(share >= 1.0),
            ]
        )
    for name in ("bot · SQLite · polling", "bot · PostgreSQL · polling"):
        run = find(closed, name)
        if run:
            rows.append(
                [
                    f"{name}: CPU ≤ 0.6 ms/update",
                    f"{run.cpu_ms:.2f} ms"
                    + (
                        f" (+ {run.db_cpu_ms:.2f} ms PostgreSQL)"
                        if not math.isnan(run.db_cpu_ms)
                        else ""
                    ),
                    met(run.cpu_ms <= 0.6),
                ]
            )
    for run in paced_:
        if run.questionnaire_bot and run.updates:
            rows.append(
                [
                    f"{run.contender}: reply p99 < 25 ms at 100 updates/s",
                    f"{run.wait_ms(0.99):.0f} ms at {run.per_second:.0f}/s (paced at {run.rate:.0f})",
                    # At another rate, the figure says something, not whether the target is met.
                    met(run.wait_ms(0.99) < 25 and run.per_second >= 95)
                    if run.rate == 100
                    else "–",
                ]
            )
    for name in (
        "bot · SQLite · webhook",
        "bot · PostgreSQL · webhook",
        "bot · SQLite · polling",
        "bot · PostgreSQL · polling",
    ):
        run = find(closed, name)
        if run:
            limit = 1.1 if "webhook" in name else 1.7
            rows.append(
                [
                    f"{name}: ≤ {limit} Bot API calls per answer",
                    f"{run.calls:.2f}",
                    met(run.calls <= limit),
                ]
            )
    for backend, small, big in scale_pairs(stored):
        share = big.cost_ms / small.cost_ms
        rows.append(
            [
                f"{backend}: per-update cost, {big.stored:,} ÷ {small.stored:,} stored ≤ 1.1×",
                f"{share:.2f}×",
                met(share <= 1.1),
            ]
        )
    for run in [*closed, *stored]:
        if run.contender.startswith("bot") and not math.isnan(run.rss_mb):
            label = run.contender + (f", {run.stored:,} stored" if run.stored else "")
            rows.append(
                [f"{label}: peak RSS < 200 MB", f"{run.rss_mb:.0f} MB", met(run.rss_mb < 200)]
            )
    return rows


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--people", type=int, default=None, help="people at once (default 100)")
    parser.add_argument(
        "--backends", default="sqlite,postgresql", help="sqlite, postgresql or both (default)"
    )
    parser.add_argument(
        "--modes",
        default="polling,webhook",
        help="the bot's modes: polling, webhook or both; none: the bot only in --stored runs",
    )
    parser.add_argument(
        "--stored",
        default=None,
        help="stored people for the scale runs, comma-separated (default 1000,1000000; 0: none)",
    )
    parser.add_argument(
        "--open",
        type=int,
        default=10_000,
        help="open conversations among the stored people (at most one each; default 10000)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="the paced phase's updates/s (default 100; 0: none)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="every contender this many times, the best round shown (default 2; --quick: 1)",
    )
    parser.add_argument(
        "--echo",
        default=",".join(ECHO_BOTS),
        help="the echo bots: httpx (PTB's default), aiohttp (PTB on bot/transport.py), aiogram; "
        "none: no echo bot",
    )
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL server, to create and drop the runs' databases",
    )
    parser.add_argument(
        "--aiogram-python", default=None, help="a Python with aiogram (default: bench/.venv-bench)"
    )
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument(
        "--quick", action="store_true", help="a smoke check: 10 people, 1,000 stored, 20/s"
    )
    args = parser.parse_args(argv)
    args.people = args.people or (10 if args.quick else 100)
    args.rounds = max(1, args.rounds or (1 if args.quick else 2))
    args.rate = args.rate if args.rate is not None else (20.0 if args.quick else 100.0)
    stored = args.stored or ("1000" if args.quick else "1000,1000000")
    args.stored = [int(s) for s in stored.split(",") if int(s) > 0]
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip() not in ("", "none")]
    args.echo = [e.strip() for e in args.echo.split(",") if e.strip() not in ("", "none")]
    for echo in args.echo:
        if echo not in ECHO_BOTS:
            parser.error(f"unknown echo bot {echo!r} (one of {', '.join(ECHO_BOTS)})")
    for backend in args.backends:
        if backend not in ("sqlite", "postgresql"):
            parser.error(f"unknown backend {backend!r}")
    for mode in args.modes:
        if mode not in ("polling", "webhook"):
            parser.error(f"unknown mode {mode!r}")
    return args


@contextlib.contextmanager
def timed(what: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    log(f"   {what}: {time.perf_counter() - started:.1f} s")


@dataclass
class Round:
    closed: list[Result] = field(default_factory=list)
    paced: list[Result] = field(default_factory=list)
    stored: list[Result] = field(default_factory=list)


async def one_round(
    bench: Bench, args: argparse.Namespace, backends: list[str], aiogram: Path | None
) -> Round:
    """Every contender once: the bot (each backend, each mode), the echo bots, the stored runs."""
    results = Round()

    def keep(runs: list[Result]) -> None:
        for run in runs:
            (results.closed if run.phase == "closed" else results.paced).append(run)

    with tempfile.TemporaryDirectory(prefix="bench-db-") as scratch:
        for backend in backends:
            for mode in args.modes:
                directory = Path(scratch) / f"{backend}-{mode}"
                directory.mkdir()
                async with fresh_database(backend, directory, args.postgres) as database:
                    keep(await bench.run(bot_contender(database, mode), paced=mode == "polling"))
        for contender in echo_contenders(args.echo, aiogram):
            keep(await bench.run(contender, paced=True))
        for backend in backends:
            for count in args.stored:
                directory = Path(scratch) / f"{backend}-{count}"
                directory.mkdir()
                opened = min(args.open, count)
                async with fresh_database(backend, directory, args.postgres) as database:
                    migrate(database, directory)
                    started = time.perf_counter()
                    if backend == "sqlite":
                        seed_sqlite(directory / "bench.db", count, opened)
                    else:
                        await seed_postgresql(database.url, count, opened)
                    seeded = time.perf_counter() - started
                    log(
                        f"-- seeded {count:,} people, {opened:,} open conversations: {seeded:.1f} s"
                    )
                    contender = bot_contender(database, "polling")
                    for run in await bench.run(contender, paced=False, stored=count, opened=opened):
                        run.seed_seconds = seeded
                        results.stored.append(run)
    return results


def best(runs: Sequence[Result]) -> Result:
    """The round least disturbed by the machine's other work: the most updates/s in closed
    loop, the lowest p99 when paced (every figure of a row comes from that one round)."""
    answered = [r for r in runs if r.updates and not r.failures] or list(runs)
    if answered[0].phase == "paced":
        return min(answered, key=lambda r: r.wait_ms(0.99))
    return max(answered, key=lambda r: r.per_second)


def merge(rounds: Sequence[Round], part: str) -> tuple[list[Result], list[list[Result]]]:
    """Per contender, the best round's result, and every round's, for the spread."""
    grouped: dict[tuple[str, str, int], list[Result]] = {}
    for one in rounds:
        for run in getattr(one, part):
            grouped.setdefault((run.contender, run.phase, run.stored), []).append(run)
    return [best(runs) for runs in grouped.values()], list(grouped.values())


async def main(args: argparse.Namespace) -> int:
    began = time.perf_counter()
    aiogram = aiogram_python(args.aiogram_python) if "aiogram" in args.echo else None
    postgres = await postgres_version(args.postgres) if "postgresql" in args.backends else None
    facts = machine(aiogram, postgres or "not used")
    backends = [b for b in args.backends if b == "sqlite" or postgres is not None]
    bench = Bench(args)
    rounds = []
    for number_ in range(1, args.rounds + 1):
        facts[f"load average before round {number_}"] = load_average()
        log(f"== round {number_} of {args.rounds}")
        rounds.append(await one_round(bench, args, backends, aiogram))
    facts["load average at the end"] = load_average()
    facts["took"] = f"{time.perf_counter() - began:.0f} s"
    closed, closed_rounds = merge(rounds, "closed")
    paced_, paced_rounds = merge(rounds, "paced")
    stored, stored_rounds = merge(rounds, "stored")
    report(args, facts, closed, paced_, stored)
    if args.rounds > 1:
        print(f"\n### Spread between the {args.rounds} rounds (the tables show the best round)")
        print(spread_table([*closed_rounds, *paced_rounds, *stored_rounds]))
    if args.json:
        write_json(
            Path(args.json),
            facts,
            [r for one in rounds for r in one.closed],
            [r for one in rounds for r in one.paced],
            [r for one in rounds for r in one.stored],
        )
    return 0


def spread_table(groups: Sequence[Sequence[Result]]) -> str:
    def span(values: list[float], digits: int) -> str:
        shown = [v for v in values if not math.isnan(v)]
        if not shown:
            return "–"
        return f"{number(min(shown), digits)}–{number(max(shown), digits)}"

    rows = []
    for runs in groups:
        first = runs[0]
        label = first.contender + (f", {first.stored:,} stored" if first.stored else "")
        rows.append(
            [
                label,
                first.phase,
                span([r.per_second for r in runs], 0),
                span([r.wait_ms(0.5) for r in runs], 0),
                span([r.wait_ms(0.99) for r in runs], 0),
                span([r.cpu_ms for r in runs], 2),
                span([r.load for r in runs], 1),
            ]
        )
    headers = ["contender", "phase", "updates/s", "p50 ms", "p99 ms", "CPU ms/update", "load"]
    return table(headers, rows)


def write_json(
    path: Path,
    facts: dict[str, str],
    closed: Sequence[Result],
    paced_: Sequence[Result],
    stored: Sequence[Result],
) -> None:
    figures = {
        "command": command_line(),
        "machine": facts,
        "closed": [r.to_json() for r in closed],
        "paced": [r.to_json() for r in paced_],
        "stored": [r.to_json() for r in stored],
    }
    path.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n")


def command_line() -> str:
    return " ".join(["python", "bench/bench_e2e.py", *sys.argv[1:]])


def report(
    args: argparse.Namespace,
    facts: dict[str, str],
    closed: Sequence[Result],
    paced_: Sequence[Result],
    stored: Sequence[Result],
) -> None:
    print(f"\n$ {command_line()}")
    for key, value in facts.items():
        print(f"  {key}: {value}")
    print(
        f"\n### {args.people} people at once, closed loop (each acts when the previous reply "
        f"came): the whole questionnaire on the bot; on the echo bots as many updates, of the same "
        f"kinds (texts, button presses), in the same order"
    )
    print(load_table(closed))
    print("\nBot API calls per answer, by method:")
    for run in closed:
        if run.methods:
            calls = ", ".join(f"{m} {n:.2f}" for m, n in run.methods.items())
            print(f"- {run.contender}: {calls}")
    bots = [r for r in closed if r.contender.startswith("bot") and "polling" in r.contender]
    echoes = [r for r in closed if r.contender.startswith("echo")]
    print("\n### Bot ÷ echo bot, each figure (closed loop, polling)")
    print(ratio_table(bots, echoes))
    if paced_:
        print(f"\n### Paced: {args.people} people, one update every {1000 / args.rate:.0f} ms")
        print(load_table(paced_))
    if stored:
        print("\n### Stored people (bot, polling, closed loop)")
        print(stored_table(stored))
        for line in scale_lines(stored):
            print(f"- {line}")
    print("\n### Issue 13's targets")
    print(table(["target", "today", "met"], target_rows(closed, paced_, stored)))


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(parse_args())))
