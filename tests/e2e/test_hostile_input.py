"""Whatever a person types or a client forges goes through the real handlers without a crash.

Hypothesis drives one bot per test against the emulator: hostile typed answers (thousands of
digits, "⑳", right-to-left marks, emoji, control characters, 4096-character texts) and forged
button data, mixed with ordinary taps so that every kind of question is reached. After each step
the bot must not have raised (its error handlers are never called, nobody reads "Oups") and
Telegram must not have refused any of its calls.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from telegram import Update
from telegram.ext import ContextTypes

from bot.app import TelegramBot, build_bot
from bot.sandbox.emulator import BotApiEmulator, EmulatedUser
from conversations.flows import FLOWS
from conversations.handoff import DECLINE_REASONS, HandoffVerb
from tests.e2e.conftest import Chat, running, settings_for

SETTLE_TIMEOUT = 10.0
# Each example is a new person, so that examples do not depend on one another.
user_ids = itertools.count(70_001)


@dataclass
class Watch:
    """What the bot did wrong, if anything: errors it raised, calls Telegram refused."""

    errors: list[str] = field(default_factory=list)

    async def error_handler(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        update_id = update.update_id if isinstance(update, Update) else None
        self.errors.append(f"update {update_id}: {context.error!r}")


@pytest.fixture
async def watched_bot(
    emulator: BotApiEmulator, sqlite_url: str
) -> AsyncIterator[tuple[TelegramBot, Watch]]:
    # No flood limit: the emulator does not need one, and the examples would queue behind it.
    config = settings_for(emulator, sqlite_url).model_copy(
        update={"telegram_max_requests_per_second": 0}
    )
    watch = Watch()
    bot = build_bot(config)
    # Called after the bot's own error handler, for every update whose handling raised.
    bot.application.add_error_handler(watch.error_handler)
    async with running(bot) as running_bot:
        yield running_bot, watch


# --- what people send ------------------------------------------------------------------------

HAND_WRITTEN = [
    "⑳" * 2151,  # 4,302 digits under NFKD
    "1" * 4301,
    "9" * 4096,
    "٣٣",
    "²",
    "3²",
    "½",
    "Ⅻ",
    "𝟏𝟕",
    "-17",
    "\u202eInès\u202c",
    "\u200f٩٣٢٠٠\u200f",
    "🙂" * 2048,
    "👨‍👩‍👧‍👦",
    "\x00\x01\x07\x1b[31m",
    "\u0000",
    "a\u0301" * 500,
    "<b>&amp;</b> & < >",
    "/start " + "⑳" * 40,
    "/start join-" + "x" * 60,
    "/start ../../etc/passwd",
    "Lycée" * 800,
    " " * 4095 + "x",
    "\n" * 100 + "17",
]


def repeated(digit: str, count: int, around: str) -> str:
    return (around + digit * count + around)[:4096]


typed_text = st.one_of(
    st.sampled_from(HAND_WRITTEN),
    st.text(max_size=300),
    st.text(min_size=3900, max_size=4096),
    st.builds(
        repeated,
        st.sampled_from(["1", "9", "⑳", "٣", "３", "²", "𝟗", "½", "🙂"]),
        st.integers(min_value=1, max_value=4096),
        st.text(max_size=5),
    ),
    st.text(st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Mn", "Nd", "No"]), max_size=200),
).filter(lambda text: text.strip() != "")

STEP_KEYS = sorted({step.key for flow in FLOWS.values() for step in flow.steps})
VALUES = sorted(
    {
        choice.value
        for flow in FLOWS.values()
        for step in flow.steps
        for choice in (*step.choices_for({}), *step.shortcuts)
    }
)
# Pieces of real callback data and numbers that must never reach int() or PostgreSQL.
field_text = st.one_of(
    st.sampled_from(
        [*STEP_KEYS, *VALUES, *FLOWS, "fr", "en", "xx"]
        + [verb.value for verb in HandoffVerb]
        + [choice.value for choice in DECLINE_REASONS]
    ),
    st.sampled_from(["1", "0", "007", "²", "٣", "2147483647", "2147483648", "9" * 30, "-1"]),
    st.text(max_size=12),
)
forged_data = st.one_of(
    st.text(max_size=64),
    st.builds(
        lambda tag, fields: "|".join([tag, *fields]),
        st.sampled_from([*"flzkhjsdtbpec", "jn"]),
        st.lists(field_text, max_size=3),
    ),
)

tap = st.tuples(st.just("tap"), st.integers(min_value=0, max_value=40))
typed = st.tuples(st.just("type"), typed_text)
forged = st.tuples(st.just("forge"), forged_data)


# --- driving the chat ------------------------------------------------------------------------


def press_something(user: EmulatedUser, index: int) -> None:
    """Presses one of the buttons in front of the person: inline ones, or the reply keyboard's."""
    newest = next((m for m in reversed(user.messages) if m.buttons), None)
    choices: list[tuple[str, Any]] = []
    if newest is not None:
        choices += [("inline", (newest.message_id, b["callback_data"])) for b in newest.buttons]
    if user.reply_keyboard:
        choices += [("keyboard", b["text"]) for row in user.reply_keyboard["keyboard"] for b in row]
    if not choices:
        user.send_command("start")
        return
    kind, target = choices[index % len(choices)]
    if kind == "inline":
        message_id, data = target
        user.press(callback_data=data, message_id=message_id)
    else:
        user.press(target)


# Answers that move a questionnaire on, by a word of the question asked.
GOOD_ANSWERS = [
    ("prénom et le nom", "Nadia Benali"),
    ("prénom", "Inès"),
    ("âge", "17"),
    ("code postal", "93200"),
    ("numéro", "06 98 76 54 32"),
    ("e-mail", "ines@example.org"),
]
# Buttons that step aside (back, skip, edit, "I don't live in France"): not an answer.
NAVIGATION = (
    "Retour",
    "Passer",
    "Modifier",
    "✏️",
    *(choice.label.msgid for flow in FLOWS.values() for s in flow.steps for choice in s.shortcuts),
)


def advance(user: EmulatedUser) -> None:
    """Answers the question in front of the person the way a cooperative person would."""
    newest = user.messages[-1]
    options = [b for b in newest.buttons if not any(n in b["text"] for n in NAVIGATION)]
    done = [b for b in options if "Valider" in b["text"]]
    if done and len(options) > 1:
        first = next(b for b in options if b not in done)
        user.press(callback_data=first["callback_data"], message_id=newest.message_id)
        user.press(callback_data=done[0]["callback_data"], message_id=newest.message_id)
    elif options:
        user.press(callback_data=options[0]["callback_data"], message_id=newest.message_id)
    elif user.reply_keyboard:
        user.press(user.reply_keyboard["keyboard"][0][0]["text"])
    else:
        question = newest.text or ""
        user.send_text(next((a for word, a in GOOD_ANSWERS if word in question), "La Poste"))


def forge(emulator: BotApiEmulator, user: EmulatedUser, data: str) -> None:
    """A press carrying data the bot never put on a button, on the newest message."""
    message = user.messages[-1]
    emulator._push_callback_query(user, message, data)


async def settled(emulator: BotApiEmulator, user: EmulatedUser) -> None:
    """Waits until the bot has handled everything this person sent so far.

    One chat's updates are handled in order: once a last, harmless press (data the bot never
    made, which it only acknowledges) is answered, everything before it is done.
    """
    update_id = emulator._push_callback_query(user, user.messages[-1], "zz")
    query_id = emulator._all_updates[update_id]["callback_query"]["id"]
    for _ in range(int(SETTLE_TIMEOUT / 0.01)):
        if any(toast.callback_query_id == query_id for toast in user.toasts):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the bot never answered {user.first_name}'s press {query_id}")


def assert_nothing_went_wrong(emulator: BotApiEmulator, watch: Watch, user: EmulatedUser) -> None:
    assert watch.errors == []
    refused = [(r.method, r.status) for r in emulator.requests if r.status >= 400]
    assert refused == []
    assert not [m.text for m in user.messages if "Oups" in (m.text or "")]


async def play(
    emulator: BotApiEmulator,
    watch: Watch,
    flow_button: int,
    depth: int,
    moves: list[tuple[str, Any]],
) -> None:
    user = emulator.user(next(user_ids), "Zoé")
    chat = Chat(user)
    await chat.starts()
    # Into a questionnaire, and `depth` questions into it: every kind of question gets its turn.
    press_something(user, flow_button)
    await settled(emulator, user)
    for _ in range(depth):
        advance(user)
        await settled(emulator, user)
    assert_nothing_went_wrong(emulator, watch, user)
    for kind, value in moves:
        if kind == "type":
            user.send_text(value)
        elif kind == "tap":
            press_something(user, value)
        else:
            forge(emulator, user, value)
        await settled(emulator, user)
        assert_nothing_went_wrong(emulator, watch, user)


HYPOTHESIS = settings(
    max_examples=25,
    deadline=None,
    # One bot for the whole test, on purpose: each example is a new person in front of it.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# --- the tests -------------------------------------------------------------------------------


@HYPOTHESIS
@given(
    flow_button=st.integers(min_value=0, max_value=2),
    depth=st.integers(min_value=0, max_value=16),
    moves=st.lists(st.one_of(typed, typed, tap), min_size=1, max_size=8),
)
async def test_no_typed_answer_makes_the_bot_fail_at_any_question(
    watched_bot: tuple[TelegramBot, Watch],
    emulator: BotApiEmulator,
    flow_button: int,
    depth: int,
    moves: list[tuple[str, Any]],
) -> None:
    _bot, watch = watched_bot
    await play(emulator, watch, flow_button, depth, moves)


@HYPOTHESIS
@given(
    flow_button=st.integers(min_value=0, max_value=2),
    depth=st.integers(min_value=0, max_value=16),
    moves=st.lists(st.one_of(forged, forged, tap), min_size=1, max_size=8),
)
async def test_no_forged_button_data_makes_the_bot_fail(
    watched_bot: tuple[TelegramBot, Watch],
    emulator: BotApiEmulator,
    flow_button: int,
    depth: int,
    moves: list[tuple[str, Any]],
) -> None:
    _bot, watch = watched_bot
    await play(emulator, watch, flow_button, depth, moves)


async def test_thousands_of_circled_twenties_at_a_button_question_are_asked_again(
    watched_bot: tuple[TelegramBot, Watch], emulator: BotApiEmulator
) -> None:
    _bot, watch = watched_bot
    chat = Chat(emulator.user(next(user_ids), "Inès"))
    await chat.starts()
    await chat.taps("Je cherche un·e mentor·e", expect="Question 1 ·")
    await chat.says("Inès", expect="Question 2 ·")
    await chat.says("17", expect="Question 3 ·")
    situation = await chat.says("93200", expect="Question 4 ·")
    assert situation.buttons
    again = await chat.says("⑳" * 2151)
    assert "Question 4 ·" in (again.text or "")
    assert_nothing_went_wrong(emulator, watch, chat.user)


@pytest.mark.parametrize(("typed_age", "next_step"), [("١٧", "Question 3 ·"), ("²", "chiffres")])
async def test_an_age_in_other_digits_is_read_or_asked_again_never_a_crash(
    watched_bot: tuple[TelegramBot, Watch],
    emulator: BotApiEmulator,
    typed_age: str,
    next_step: str,
) -> None:
    _bot, watch = watched_bot
    chat = Chat(emulator.user(next(user_ids), "Inès"))
    await chat.starts()
    await chat.taps("Je cherche un·e mentor·e", expect="Question 1 ·")
    await chat.says("Inès", expect="Question 2 ·")
    await chat.says(typed_age, expect=next_step)
    assert_nothing_went_wrong(emulator, watch, chat.user)


@pytest.mark.parametrize("data", ["h|take|²", "h|take|" + "1" * 30, "h|take|2147483648"])
async def test_a_forged_handoff_id_is_refused_as_forged(
    watched_bot: tuple[TelegramBot, Watch], emulator: BotApiEmulator, data: str
) -> None:
    _bot, watch = watched_bot
    chat = Chat(emulator.user(next(user_ids), "Mallory"))
    await chat.starts()
    forge(emulator, chat.user, data)
    toast = await chat.user.next_toast()
    # Refused before any use-case runs: acknowledged silently, nothing else sent.
    assert toast.text is None
    await settled(emulator, chat.user)
    assert len(chat.user.messages) == 1
    assert_nothing_went_wrong(emulator, watch, chat.user)
