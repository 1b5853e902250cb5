"""Helpers for the fault tests: bot processes to kill, people who answer whatever question they
see, a Telegram that POSTs webhooks and sends again what failed, and what the database holds."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import SecretStr
from sqlalchemy import func, select

from bot.sandbox.emulator import BotApiEmulator, EmulatedUser, EmulatorTimeout
from bot.sandbox.models import ChatMessage
from bot.settings import Settings
from bot.web import SECRET_HEADER, run_webhook
from storage.db import create_engine
from storage.tables import (
    consents,
    conversations,
    funnel_events,
    handoffs,
    inbox,
    outbox,
    people,
    processed_updates,
    profiles,
)
from tests.e2e.conftest import TOKEN

SECRET = "a_webhook_secret_of_enough_length-42"
PUBLIC_URL = "https://bot.example.test/telegram"
# A row a killed process left is taken over after this long (30 s in production).
TAKEOVER_SECONDS = 2.0
# Short, for a quick recovery after a kill, yet long enough for a send under this load: a relay
# gives one send half the lease, and a send cut short may have been delivered (then it shows twice).
OUTBOX_LEASE_SECONDS = 10.0


def seeded(default: int) -> random.Random:
    """The run's randomness: FAULTS_SEED replays a run; the seed is printed either way."""
    seed = int(os.environ.get("FAULTS_SEED", default))
    print(f"FAULTS_SEED={seed}")
    return random.Random(seed)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- bot processes ----------------------------------------------------------------------------


class BotProcess:
    """`python -m bot run` in its own process, killed with SIGKILL and started again at will."""

    def __init__(
        self,
        emulator: BotApiEmulator,
        database_url: str,
        cwd: Path,
        *,
        name: str = "bot",
        webhook_port: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self._emulator = emulator
        self.name = name
        self.port = webhook_port
        self.cwd = cwd
        self.log_path = cwd / f"{name}.log"
        self.env = {
            **os.environ,
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_API_BASE_URL": emulator.base_url,
            "DATABASE_URL": database_url,
            # FAULTS_LOG_LEVEL=INFO shows what each process did with each update.
            "LOG_LEVEL": os.environ.get("FAULTS_LOG_LEVEL", "WARNING"),
            "OUTBOX_LEASE_SECONDS": str(OUTBOX_LEASE_SECONDS),
            "INBOX_TAKEOVER_SECONDS": str(TAKEOVER_SECONDS),
            # The flood limit would set the pace; a local Bot API server lifts it too.
            "TELEGRAM_MAX_REQUESTS_PER_SECOND": "0",
        }
        if webhook_port is not None:
            self.env |= {
                "WEBHOOK_URL": PUBLIC_URL,
                "WEBHOOK_SECRET": SECRET,
                "WEB_PORT": str(webhook_port),
            }
        self.env |= env or {}
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.kills = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        polls = len(self._emulator.calls("getUpdates"))
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts + 1} ---\n".encode())
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "run",
                env=self.env,
                cwd=self.cwd,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log,
            )
        self.starts += 1
        self._polls_before = polls

    async def ready(self, timeout: float = 60) -> None:  # noqa: ASYNC109
        """Polling: its first getUpdates; webhook: its /readyz answers."""
        deadline = time.monotonic() + timeout
        if self.port is None:
            await self._emulator.wait_for_call(
                "getUpdates", after=self._polls_before, timeout=timeout
            )
            return
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                self._check_alive()
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with session.get(f"{self.base}/readyz") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name} did not get ready in {timeout} s:\n{self.log_tail()}")

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def _check_alive(self) -> None:
        if self.process is not None and self.process.returncode is not None:
            raise AssertionError(
                f"{self.name} exited with {self.process.returncode} at start:\n{self.log_tail()}"
            )

    async def start_ready(self) -> None:
        await self.start()
        await self.ready()

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()
            self.kills += 1

    async def stop(self) -> None:
        """A clean stop (SIGTERM), or a kill if it does not stop in time."""
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), timeout=20)
        except TimeoutError:
            await self.kill()

    def log_tail(self, chars: int = 3000) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return self.log_path.read_text(errors="replace")[-chars:]


# --- Telegram, in webhook mode ----------------------------------------------------------------


@dataclass
class Delivery:
    update_id: int
    target: str
    status: int | None  # None: the connection failed (the process is dead, or died mid-request)
    at: float
    took: float


class WebhookTelegram:
    """Plays Telegram's part in webhook mode: POSTs each update with the secret to one of the
    bot processes (a load balancer's pick), one chat's updates in order; a 500 is sent again
    soon, a failed connection again a little later, as Telegram does, until a 200."""

    def __init__(
        self,
        emulator: BotApiEmulator,
        targets: list[str],
        rng: random.Random,
        *,
        twice_rate: float = 0.0,
        retry_500: float = 0.3,
        retry_unreachable: float = TAKEOVER_SECONDS + 0.5,
    ) -> None:
        self._emulator = emulator
        self.targets = list(targets)
        self._rng = rng
        self._twice_rate = twice_rate
        self._retry_500 = retry_500
        self._retry_unreachable = retry_unreachable
        self._queues: dict[int, asyncio.Queue[int]] = {}
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._bodies: dict[int, dict[str, Any]] = {}
        self._wanted: set[int] = set()
        self._refresh = asyncio.Lock()
        self._refreshed = 0.0
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._session: aiohttp.ClientSession | None = None
        self.deliveries: list[Delivery] = []
        self.acknowledged: set[int] = set()
        self.errors: list[Exception] = []

    async def __aenter__(self) -> WebhookTelegram:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        return self

    async def __aexit__(self, *_exc: object) -> None:
        for worker in self._workers.values():
            worker.cancel()
        for worker in self._workers.values():
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        if self._session is not None:
            await self._session.close()

    def deliver(self, chat_id: int, update_id: int) -> None:
        """A person did something: Telegram has an update to POST."""
        self._wanted.add(update_id)
        self._busy += 1
        self._idle.clear()
        queue = self._queues.setdefault(chat_id, asyncio.Queue())
        queue.put_nowait(update_id)
        if chat_id not in self._workers:
            self._workers[chat_id] = asyncio.create_task(self._work(queue))

    async def drained(self, timeout: float = 60) -> None:  # noqa: ASYNC109
        await asyncio.wait_for(self._idle.wait(), timeout)
        assert self.errors == []

    def slowest(self) -> float:
        return max((d.took for d in self.deliveries if d.status == 200), default=0.0)

    async def _work(self, queue: asyncio.Queue[int]) -> None:
        try:
            await self._deliver_in_order(queue)
        except Exception as error:
            # Kept: a dead worker would leave its person waiting with no other clue.
            self.errors.append(error)
            raise

    async def _deliver_in_order(self, queue: asyncio.Queue[int]) -> None:
        while True:
            update_id = await queue.get()
            body = await self._body(update_id)
            tries = 0
            while True:
                tries += 1
                statuses = await self._post_once(update_id, body)
                if 200 in statuses:
                    break
                unreachable = None in statuses
                await asyncio.sleep(self._retry_unreachable if unreachable else self._retry_500)
                if tries > 200:
                    raise AssertionError(f"update {update_id} was never acknowledged")
            self.acknowledged.add(update_id)
            self._bodies.pop(update_id, None)
            self._busy -= 1
            if self._busy == 0:
                self._idle.set()

    def write_log(self, path: Path) -> None:
        """What was POSTed where and how it went, for a failure's post-mortem."""
        # Wall-clock times, as in the bots' logs.
        offset = time.time() - time.monotonic()
        lines = [
            f"{time.strftime('%H:%M:%S', time.localtime(d.at + offset))}{(d.at + offset) % 1:.3f}"[
                1:
            ]
            + f" {d.took:.3f} {d.update_id} {d.target} {d.status}"
            for d in self.deliveries
        ]
        path.write_text("\n".join(lines) + "\n")

    async def _post_once(self, update_id: int, body: dict[str, Any]) -> list[int | None]:
        if len(self.targets) > 1 and self._rng.random() < self._twice_rate:
            # Two processes get the same update at once (a retry racing a slow first try).
            chosen = self._rng.sample(self.targets, 2)
        else:
            chosen = [self._rng.choice(self.targets)]
        return list(await asyncio.gather(*(self._post(t, update_id, body) for t in chosen)))

    async def _post(self, target: str, update_id: int, body: dict[str, Any]) -> int | None:
        assert self._session is not None
        status: int | None
        began = time.monotonic()
        try:
            async with self._session.post(
                f"{target}/telegram", json=body, headers={SECRET_HEADER: SECRET}
            ) as response:
                status = response.status
                # A method in the response (a press's answerCallbackQuery) is run, as Telegram does.
                await self._emulator.webhook_response(
                    status, response.content_type, await response.read()
                )
        except (aiohttp.ClientError, OSError, TimeoutError):
            status = None
        took = time.monotonic() - began
        self.deliveries.append(Delivery(update_id, target, status, began, took))
        return status

    async def _body(self, update_id: int) -> dict[str, Any]:
        # The emulator keeps every update while a webhook is set; one copy serves every worker
        # waiting at that moment (copying them all for each would cost more than the bot).
        async with self._refresh:
            if update_id not in self._bodies:
                # At most ten copies a second: each then serves every update made meanwhile.
                await asyncio.sleep(max(0.0, self._refreshed + 0.1 - time.monotonic()))
                self._refreshed = time.monotonic()
                for update in self._emulator.pending_updates:
                    wanted = int(update["update_id"])
                    if wanted in self._wanted and wanted not in self.acknowledged:
                        self._bodies.setdefault(wanted, update)
                self._wanted -= set(self._bodies)
        return self._bodies[update_id]


# --- people -----------------------------------------------------------------------------------


NAME_LETTERS = "abcdefghijklmnopqrstuvwxyz"
TERMINAL = ("c'est envoyé", "a bien été envoyée", "bien enregistrée")
# A repeat of a question already answered (a crash re-sent it) is answered again only if the
# bot shows nothing newer meanwhile: the first answer is usually still on its way.
PATIENCE = 3.0
# Nothing new in the chat for this long: the reply is missing.
STUCK_AFTER = 45.0
# A tap that changed nothing in sight (its copy of the question was stale) is tried again.
RETAP_AFTER = 6.0


def name_for(index: int) -> str:
    return "Inès-" + NAME_LETTERS[index // 26 % 26].upper() + NAME_LETTERS[index % 26]


def expected_answers(name: str, phone: str) -> dict[str, Any]:
    return {
        "first_name": name,
        "age": 17,
        "postal_code": "93200",
        "situation": "vocational_high_school",
        "needs": ["orientation", "internship"],
        "format": "either",
        "area": "qpv",
        "contact_method": "phone",
        "phone": phone,
        "consent": True,
    }


QUESTION_HEADER = re.compile(r"^Question (\d+) ·", re.MULTILINE)


def rank(message: ChatMessage) -> int | None:
    """Where a bot message stands in the questionnaire; None for anything else."""
    text = message.text or ""
    if any(words in text for words in TERMINAL):
        return 1000
    if "Tes réponses" in text:
        return 100
    # A question's header starts a line: the first one comes after the flow's intro.
    if found := QUESTION_HEADER.search(text):
        return int(found.group(1))
    if "Qui êtes-vous" in text:
        return 0
    return None


def prompt(message: ChatMessage) -> int | None:
    """Where a message stands if it asks the person something (the welcome's "Qui êtes-vous ?",
    a question, the summary): what a crash may show once more. None for a notice."""
    position = rank(message)
    return position if position is not None and position < 1000 else None


@dataclass
class Person:
    """A young person who signs up the way test_questionnaire's Inès does, answering whatever
    question the chat shows last; never types /start again."""

    emulator: BotApiEmulator
    user: EmulatedUser
    name: str
    rng: random.Random
    sent: Callable[[int, int], None] = lambda _chat, _update: None
    think: float = 0.2
    update_ids: list[int] = field(default_factory=list)
    actions: int = 0
    welcomed: bool = False
    finished: bool = False
    # What the person acted on (message id, text, buttons), and when: a tap that changed
    # nothing in sight is tried again, as people do; a typed answer is not.
    _acted: dict[tuple[Any, ...], tuple[float, bool]] = field(default_factory=dict)
    _answered: set[tuple[Any, ...]] = field(default_factory=set)
    _seen_at: dict[tuple[Any, ...], float] = field(default_factory=dict)

    @property
    def phone(self) -> str:
        return self.user.phone_number

    def _did(self, update_id: int) -> None:
        self.update_ids.append(update_id)
        self.actions += 1
        self.sent(self.user.id, update_id)

    def current(self) -> ChatMessage | None:
        """The furthest point the chat shows, and of its messages the one changed last: a
        repeat sent after a crash can arrive late and must not take the person back, and a
        toggle edits an older copy of a question after a newer copy was sent."""
        touched = {
            event.message.message_id: event.seq
            for event in self.emulator.chat_events(self.user.id)
            if event.message.from_bot
        }
        best: ChatMessage | None = None
        best_key = (-1, -1)
        for message in self.user.messages:
            position = rank(message)
            if position is None:
                continue
            key = (position, touched.get(message.message_id, 0))
            if key > best_key:
                best, best_key = message, key
        return best

    async def sign_up(self) -> None:
        self.user.drain()
        self._did(self.user.send_command("start", "ecole_93"))
        last_change = time.monotonic()
        while True:
            message = self.current()
            if message is not None and rank(message) == 1000:
                self.finished = True
                return
            wait = STUCK_AFTER
            if message is not None:
                self.welcomed = True
                wait = self._maybe_act(message) or wait
            try:
                await self.user.wait_for_message(timeout=wait, include_edits=True)
                last_change = time.monotonic()
            except EmulatorTimeout:
                if time.monotonic() - last_change >= STUCK_AFTER:
                    raise AssertionError(
                        f"{self.name} (id {self.user.id}) got no reply for {STUCK_AFTER} s "
                        f"after its updates {self.update_ids[-4:]}; the chat shows:\n"
                        + "\n".join(transcript(self.user)[-8:])
                        + "\nwhat the bot asked Telegram for this chat lately:\n"
                        + "\n".join(bot_calls_for(self.emulator, self.user)[-12:])
                    ) from None
            if self.think:
                await asyncio.sleep(self.rng.uniform(0, self.think))

    def _maybe_act(self, message: ChatMessage) -> float | None:
        """Acts on the message unless already done; returns how long to wait before looking
        again, when that is not "until something changes"."""
        now = time.monotonic()
        state = (message.message_id, message.text, tuple(message.button_texts))
        if state in self._acted:
            at, tap = self._acted[state]
            if not tap:
                return None
            if now - at < RETAP_AFTER:
                return RETAP_AFTER - (now - at)
        content = state[1:]
        if content in self._answered and state not in self._acted:
            first = self._seen_at.setdefault(state, now)
            if now - first < PATIENCE:
                return PATIENCE - (now - first)
        answer = self._answer(message)
        if answer is None:
            return None
        action, tap = answer
        self._acted[state] = (now, tap)
        self._answered.add(content)
        self._did(action())
        return RETAP_AFTER if tap else None

    def _answer(self, message: ChatMessage) -> tuple[Callable[[], int], bool] | None:
        text = message.text or ""
        if "Qui êtes-vous" in text:
            return self._press(message, "Je cherche un·e mentor·e")
        if "Tes réponses" in text:
            return self._press(message, "C'est bon")
        if "ton prénom" in text:
            return (lambda: self.user.send_text(self.name)), False
        if "Quel âge" in text:
            return (lambda: self.user.send_text("17")), False
        if "ton code postal" in text:
            return (lambda: self.user.send_text("93200")), False
        if "Où en es-tu" in text:
            return self._press(message, "Lycée professionnel")
        if "Sur quoi aimerais-tu" in text:
            return self._needs(message)
        if "rencontrer ton ou ta mentor" in text:
            return self._press(message, "Les deux me vont")
        if "quartier prioritaire" in text:
            return self._press(message, "Quartier prioritaire")
        if "peut-elle te joindre" in text:
            return self._press(message, "Par téléphone")
        if "ton numéro de téléphone" in text:
            return self.user.send_contact, False
        if "Dernière question" in text:
            return self._press(message, "Oui, je suis d'accord")
        raise AssertionError(f"{self.name} does not know how to answer: {text!r}")

    def _tap(self, message: ChatMessage, button: str) -> Callable[[], int]:
        return lambda: self.user.press(button, message_id=message.message_id)

    def _press(self, message: ChatMessage, label: str) -> tuple[Callable[[], int], bool] | None:
        for button in message.button_texts:
            if label in button:
                return self._tap(message, button), True
        return None  # answered already: the buttons went with the echo

    def _needs(self, message: ChatMessage) -> tuple[Callable[[], int], bool] | None:
        wanted = ("Orientation", "Trouver un stage")
        for button in message.button_texts:
            if not button.startswith(("☑️", "⬜")):
                continue
            if any(w in button for w in wanted) != button.startswith("☑️"):
                return self._tap(message, button), True
        return self._press(message, "Valider")


def bot_calls_for(emulator: BotApiEmulator, user: EmulatedUser) -> list[str]:
    """The bot's requests about one person (their chat, their button presses), for a post-mortem:
    a toast, a refused edit, a timed-out send are not in the chat."""
    presses = {
        query_id: query.data
        for query_id, query in emulator._callbacks.items()
        if query.user_id == user.id
    }
    lines = []
    for request in emulator.requests:
        params = request.params
        query_id = str(params.get("callback_query_id", ""))
        if str(params.get("chat_id")) != str(user.id) and query_id not in presses:
            continue
        shown = {k: str(v)[:60] for k, v in params.items() if k not in ("chat_id", "reply_markup")}
        if query_id in presses:
            shown["pressed"] = presses[query_id]
        lines.append(f"  {request.at % 10_000:.3f} {request.method} {request.status} {shown}")
    return lines


def transcript(user: EmulatedUser) -> list[str]:
    lines = []
    for message in user.history:
        who = "bot" if message.from_bot else "person"
        text = (message.text or str(message.extra))[:90].replace("\n", " ")
        lines.append(f"  #{message.message_id} {who}: {text} {message.button_texts or ''}")
    return lines


def crowd(
    emulator: BotApiEmulator,
    size: int,
    rng: random.Random,
    *,
    first_id: int = 50_000,
    sent: Callable[[int, int], None] | None = None,
    think: float = 0.2,
) -> list[Person]:
    people_ = []
    for index in range(size):
        user = emulator.user(first_id + index, name_for(index), language_code="fr")
        user.phone_number = f"+3361{index:07d}"
        person = Person(emulator, user, name_for(index), random.Random(rng.random()), think=think)
        if sent is not None:
            person.sent = sent
        people_.append(person)
    return people_


def progress(people_: list[Person]) -> int:
    return sum(p.actions for p in people_)


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


async def kill_under_load(
    process: BotProcess,
    people_: list[Person],
    rng: random.Random,
    kills: int,
    *,
    between: tuple[int, int] = (3, 10),
) -> list[int]:
    """SIGKILLs the bot `kills` times, each a random number of answers after it came back (and
    a random fraction of a second), and starts it again; returns the progress at each kill."""
    moments = []
    # Once every person saw the welcome: a /start whose welcome is lost in a crash is left
    # unanswered (see test_a_welcome_lost_in_a_crash_is_sent_after_the_restart).
    await until(lambda: all(p.welcomed for p in people_), 30, "every welcome")
    for kill in range(kills):
        target = progress(people_) + rng.randint(*between)

        def reached(target: int = target) -> bool:
            return progress(people_) >= target or all(p.finished for p in people_)

        await until(reached, 60, f"{target} answers before kill {kill + 1}")
        assert not all(p.finished for p in people_), f"everyone finished before kill {kill + 1}"
        await asyncio.sleep(rng.uniform(0, 0.8))
        moments.append(progress(people_))
        await process.kill()
        await process.start_ready()
    return moments


# --- in-process webhook server ----------------------------------------------------------------


@contextlib.asynccontextmanager
async def webhook_server(settings: Settings) -> AsyncIterator[str]:
    """run_webhook in this process, as tests/e2e/test_webhook.py runs it; yields its base URL."""
    port = free_port()
    settings = settings.model_copy(
        update={
            "webhook_url": PUBLIC_URL,
            "webhook_secret": SecretStr(SECRET),
            "web_port": port,
        }
    )
    ready, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_webhook(settings, ready=ready, stop=stop))
    waiting = asyncio.create_task(ready.wait())
    await asyncio.wait({task, waiting}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
    assert ready.is_set()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def post(base: str, update: dict[str, Any]) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/telegram", json=update, headers={SECRET_HEADER: SECRET}) as response,
    ):
        return response.status


def update_of(emulator: BotApiEmulator, update_id: int) -> dict[str, Any]:
    return next(u for u in emulator.pending_updates if u["update_id"] == update_id)


# --- what the database holds ------------------------------------------------------------------


@dataclass
class Stored:
    person_ids: dict[int, int]  # telegram id -> people.id
    conversations: Counter[int]  # people.id -> conversations
    profiles: dict[int, list[dict[str, Any]]]  # people.id -> answers of each profile
    consents: Counter[tuple[int, str]]
    handoffs: Counter[int]  # profile id -> handoffs
    funnel: Counter[tuple[str, str | None, str]]
    processed: set[int]
    inbox: list[tuple[int, int, bool]]  # update id, attempts, given up
    outbox: list[tuple[int | None, str, Any]]  # chat id, status, payload


async def stored(database_url: str) -> Stored:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as db:
            person_ids = dict((await db.execute(select(people.c.telegram_id, people.c.id))).all())
            per_conversation = await db.execute(
                select(conversations.c.person_id, func.count()).group_by(conversations.c.person_id)
            )
            by_person: dict[int, list[dict[str, Any]]] = {}
            profile_rows = await db.execute(select(profiles.c.person_id, profiles.c.answers))
            for person_id, answers in profile_rows:
                by_person.setdefault(person_id, []).append(answers)
            consent_rows = await db.execute(select(consents.c.person_id, consents.c.kind))
            handoff_rows = await db.execute(select(handoffs.c.profile_id))
            funnel_rows = await db.execute(
                select(funnel_events.c.flow, funnel_events.c.step, funnel_events.c.event)
            )
            processed = set((await db.scalars(select(processed_updates.c.update_id))).all())
            inbox_rows = await db.execute(
                select(inbox.c.update_id, inbox.c.attempts, inbox.c.failed_at.is_not(None))
            )
            outbox_rows = await db.execute(
                select(outbox.c.chat_id, outbox.c.status, outbox.c.payload)
            )
            return Stored(
                person_ids=person_ids,
                conversations=Counter(dict(per_conversation.all())),
                profiles=by_person,
                consents=Counter(tuple(row) for row in consent_rows.all()),
                handoffs=Counter(row[0] for row in handoff_rows.all()),
                funnel=Counter(tuple(row) for row in funnel_rows.all()),
                processed=processed,
                inbox=[tuple(row) for row in inbox_rows.all()],
                outbox=[tuple(row) for row in outbox_rows.all()],
            )
    finally:
        await engine.dispose()


async def inbox_empty(database_url: str, timeout: float = 20) -> Stored:  # noqa: ASYNC109
    """Done rows leave the inbox in batches, just after their reply: wait for the last. The
    outbox too: a message the killed process held is sent by another once its lease and its
    back-off are over."""
    deadline = time.monotonic() + timeout
    while True:
        now = await stored(database_url)
        pending = any(status == "pending" for _chat, status, _payload in now.outbox)
        if (not now.inbox and not pending) or time.monotonic() > deadline:
            return now
        await asyncio.sleep(0.25)


def check_each_person_signed_up_once(now: Stored, people_: list[Person]) -> None:
    """One conversation, one profile with the right answers, one consent, one handoff each;
    and each step answered once in all (the funnel counts every recorded answer)."""
    problems = []
    for person in people_:
        person_id = now.person_ids.get(person.user.id)
        if person_id is None:
            problems.append(f"{person.name}: not stored")
            continue
        answers = now.profiles.get(person_id, [])
        if answers != [expected_answers(person.name, person.phone)]:
            problems.append(f"{person.name}: profiles {answers}")
        if now.conversations[person_id] != 1:
            problems.append(f"{person.name}: {now.conversations[person_id]} conversations")
        if now.consents[(person_id, "contact")] != 1:
            problems.append(f"{person.name}: {now.consents[(person_id, 'contact')]} consents")
    assert problems == [], "\n".join(problems)
    assert len(now.handoffs) == len(people_)
    assert set(now.handoffs.values()) == {1}, now.handoffs
    # Whether an association fits is the matching's business, not the faults'.
    counts = {(s, e): n for (_f, s, e), n in now.funnel.items() if e != "no_match"}
    steps = list(expected_answers("x", "y"))
    wanted: dict[tuple[str | None, str], int] = {(s, "answered"): len(people_) for s in steps}
    wanted |= {("first_name", "started"): len(people_), (None, "completed"): len(people_)}
    # Each step shown once per person: a replayed update shows no step a second time.
    wanted |= {(s, "reached"): len(people_) for s in steps}
    assert counts == wanted


def check_nothing_lost(now: Stored, people_: list[Person]) -> None:
    """Every update a person sent was handled (recorded), none given up, the inbox is empty."""
    sent = {update_id for person in people_ for update_id in person.update_ids}
    assert sent - now.processed == set()
    assert now.inbox == []


RESUMED = re.compile(r"update (\d+) was handled before a crash")


def resumed_updates(processes: list[BotProcess]) -> set[int]:
    """The updates whose person a process sent their screen again (logged at INFO)."""
    found: set[int] = set()
    for process in processes:
        if process.log_path.exists():
            found |= {int(n) for n in RESUMED.findall(process.log_path.read_text(errors="replace"))}
    return found


def repeats(people_: list[Person]) -> Counter[int]:
    """How many times each person was shown the same prompt (1 everywhere = no repeat)."""
    worst: Counter[int] = Counter()
    for person in people_:
        shown = Counter(n for m in person.user.messages if (n := prompt(m)) is not None)
        worst[person.user.id] = max(shown.values(), default=0)
    return worst


async def all_of(tasks: list[asyncio.Task[Any]], timeout: float, what: str) -> None:  # noqa: ASYNC109
    """Waits for every task; the first failure is raised and the others are cancelled."""
    done, pending = await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_EXCEPTION)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        task.result()
    if pending:
        raise AssertionError(f"{len(pending)} of {len(tasks)} {what} not done after {timeout} s")
