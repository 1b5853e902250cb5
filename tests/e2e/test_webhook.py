"""Webhook mode: updates POSTed by Telegram are checked, handled before the answer, and only once."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from telegram import Bot, Update

from bot.sandbox.emulator import BotApiEmulator
from bot.web import MAX_BODY, SECRET_HEADER, Malformed, parse_update, run_webhook
from tests.e2e.conftest import TOKEN, settings_for

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
    base: str,
    update: dict[str, Any],
    secret: str = SECRET,
    body: bytes | None = None,
    telegram: BotApiEmulator | None = None,
) -> int:
    """POSTs as Telegram does; with `telegram`, a method in the response is run, as it would."""
    async with aiohttp.ClientSession() as session:
        kwargs: dict[str, Any] = {"data": body} if body is not None else {"json": update}
        async with session.post(
            f"{base}/telegram", headers={SECRET_HEADER: secret}, **kwargs
        ) as response:
            if telegram is not None:
                await telegram.webhook_response(
                    response.status, response.content_type, await response.read()
                )
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


async def test_a_press_is_answered_in_the_response_and_becomes_the_next_question(
    webhook: str, emulator: BotApiEmulator
) -> None:
    """One Bot API call for a press: the spinner stops through the webhook response
    (answerCallbackQuery), and the pressed message is edited into the next question."""
    user = emulator.user(6002, "Inès")
    user.send_command("start")
    await post(webhook, take_update(emulator), telegram=emulator)
    welcome = user.messages[-1]
    user.press("Je cherche un·e mentor·e", message_id=welcome.message_id)
    await post(webhook, take_update(emulator), telegram=emulator)
    user.send_text("Inès")
    await post(webhook, take_update(emulator), telegram=emulator)
    user.send_text("15")
    await post(webhook, take_update(emulator), telegram=emulator)
    user.send_text("93200")
    await post(webhook, take_update(emulator), telegram=emulator)
    question = user.messages[-1]
    assert "Question 4" in (question.text or "")
    calls_before = len(emulator.requests)
    user.press("Lycée professionnel", message_id=question.message_id)
    press = take_update(emulator)
    assert await post(webhook, press, telegram=emulator) == 200
    made = emulator.requests[calls_before:]
    assert [(c.method, c.in_webhook_response) for c in made] == [
        ("editMessageText", False),
        ("answerCallbackQuery", True),
    ]
    assert made[1].params["callback_query_id"] == press["callback_query"]["id"]
    assert made[1].status == 200
    edited = user.messages[-1]
    assert edited.message_id == question.message_id
    assert (edited.text or "").startswith("✓ Lycée professionnel")
    assert "Question 5" in (edited.text or "")
    # Telegram sends it again (say our 200 was lost): nothing changes, the spinner is answered.
    assert await post(webhook, press, telegram=emulator) == 200
    assert [c.method for c in emulator.requests[calls_before + 2 :]] == ["answerCallbackQuery"]
    assert user.messages[-1].text == edited.text


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


# --- hostile bodies ---------------------------------------------------------------------------
# Whoever holds the secret (or Telegram, by a bug) may POST anything: it gets a 400, never a 500,
# and the log says why in one line, without a word of the body.

NAME = "Zéphyrine"
PHONE = "06 12 34 56 78"
REMOVE = object()


def message_update(update_id: int = 7001, user_id: int = 6100) -> dict[str, Any]:
    sender = {"id": user_id, "is_bot": False, "first_name": NAME, "language_code": "fr"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": 11,
            "date": 1_764_000_000,
            "chat": {"id": user_id, "type": "private", "first_name": NAME},
            "from": sender,
            "text": f"{NAME} {PHONE}",
            "entities": [{"type": "bold", "offset": 0, "length": 3}],
        },
    }


def callback_update(update_id: int = 7002, user_id: int = 6100) -> dict[str, Any]:
    sender = {"id": user_id, "is_bot": False, "first_name": NAME}
    bot_user = {"id": 123456, "is_bot": True, "first_name": "Mentorat"}
    return {
        "update_id": update_id,
        "callback_query": {
            "id": "4611686018427387",
            "from": sender,
            "chat_instance": "-42",
            "data": "s|age|x",
            "message": {
                "message_id": 12,
                "date": 1_764_000_000,
                "chat": {"id": user_id, "type": "private", "first_name": NAME},
                "from": bot_user,
                "text": f"Bonjour {NAME}",
            },
        },
    }


def changed(update: dict[str, Any], path: tuple[str, ...], value: object) -> dict[str, Any]:
    """A copy of `update` with the field at `path` set to `value` (or removed)."""
    result = copy.deepcopy(update)
    parent = result
    for key in path[:-1]:
        parent = parent[key]
    if value is REMOVE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return result


def as_body(update: object) -> bytes:
    return json.dumps(update, ensure_ascii=False).encode()


def with_raw(update: dict[str, Any], path: tuple[str, ...], raw: str) -> bytes:
    """The body with `raw` JSON text (NaN, a 5,000-digit number…) at `path`."""
    return as_body(changed(update, path, "@@RAW@@")).replace(b'"@@RAW@@"', raw.encode())


def nested(depth: int) -> bytes:
    """An update whose message is `depth` lists deep."""
    return b'{"update_id": 7003, "message": ' + b"[" * depth + b"]" * depth + b"}"


def nested_objects(depth: int) -> bytes:
    return b'{"update_id": 7005, "message": ' + b'{"a": ' * depth + b"1" + b"}" * (depth + 1)


M, Q = message_update(), callback_update()
not_an_object = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4),
    max_leaves=8,
)
any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)
not_int = st.one_of(
    st.text(max_size=10),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
not_text = st.one_of(
    st.integers(), st.booleans(), st.lists(st.text(max_size=3), min_size=0, max_size=2)
)
beyond_int64 = st.integers(min_value=2**63, max_value=10**19) | st.integers(
    min_value=-(10**19), max_value=-(2**63)
)
# Each strategy makes a body that must be refused, whatever else Hypothesis picks.
hostile_bodies = st.one_of(
    st.builds(lambda v: as_body({"update_id": v}), not_int | st.integers(max_value=-1)),
    st.builds(lambda v: as_body(changed(M, ("update_id",), v)), beyond_int64),
    st.builds(
        lambda n: with_raw(M, ("update_id",), "9" * n), st.integers(min_value=21, max_value=6000)
    ),
    st.builds(as_body, not_an_object),
    st.builds(
        lambda path, v: as_body(changed(M, path, v)),
        st.sampled_from(
            [("message", "chat", "id"), ("message", "from", "id"), ("message", "message_id")]
        ),
        not_int | beyond_int64,
    ),
    st.builds(
        lambda v: as_body(changed(M, ("message", "from", "id"), v)), st.integers(max_value=0)
    ),
    st.builds(
        lambda path, v: as_body(changed(M, path, v)),
        st.sampled_from(
            [("message", "text"), ("message", "from", "first_name"), ("message", "chat", "type")]
        ),
        not_text,
    ),
    st.builds(
        lambda v: as_body(changed(M, ("message", "text"), v)), st.text(min_size=4097, max_size=5000)
    ),
    st.builds(
        lambda key, v: as_body(changed(M, ("message", "entities", 0, key), v)),  # type: ignore[arg-type]
        st.sampled_from(["offset", "length"]),
        not_int | st.integers(max_value=-1),
    ),
    st.builds(
        lambda v: as_body(changed(M, ("message", "date"), v)),
        st.text(max_size=5) | st.integers(min_value=10**12, max_value=10**18),
    ),
    st.builds(
        lambda v: as_body(changed(M, ("message",), v)),
        st.text() | st.integers() | st.booleans() | st.lists(any_json, max_size=3),
    ),
    st.builds(
        lambda path: as_body(changed(M, path, REMOVE)),
        st.sampled_from(
            [
                ("message", "from"),
                ("message", "chat"),
                ("message", "message_id"),
                ("message", "chat", "id"),
            ]
        ),
    ),
    st.builds(
        lambda other: as_body(changed(M, ("message", "chat", "id"), other)),
        st.integers(min_value=1, max_value=2**62).filter(lambda other: other != 6100),
    ),
    st.builds(
        lambda path, v: as_body(changed(Q, path, v)),
        st.sampled_from([("callback_query", "id"), ("callback_query", "data")]),
        st.integers() | st.lists(st.integers(), max_size=2),
    ),
    st.builds(
        lambda path: as_body(changed(Q, path, REMOVE)),
        st.sampled_from([("callback_query", "from"), ("callback_query", "chat_instance")]),
    ),
    st.builds(
        lambda path, raw: with_raw(M, path, raw),
        st.sampled_from(
            [("update_id",), ("message", "date"), ("message", "chat", "id"), ("message", "extra")]
        ),
        st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e400"]),
    ),
    st.builds(nested, st.integers(min_value=33, max_value=5000)),
    st.builds(nested_objects, st.integers(min_value=33, max_value=3000)),
    st.builds(
        lambda at, junk: as_body(M)[:at] + junk + as_body(M)[at:],
        st.integers(min_value=0, max_value=len(as_body(M))),
        st.sampled_from([b"\xff", b"\xc3", b"\xe9", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]),
    ),
    st.binary(min_size=1, max_size=64).filter(lambda raw: not _is_json_object(raw)),
)


def _is_json_object(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except (ValueError, RecursionError):
        return False


HAND_WRITTEN_BODIES: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("not JSON", b"hello"),
    ("truncated", as_body(M)[:-5]),
    ("a JSON list", b"[1, 2]"),
    ("a JSON string", b'"update"'),
    ("a number", b"7001"),
    ("null", b"null"),
    ("an empty object", b"{}"),
    ('"message": "hi"', b'{"update_id": 7004, "message": "hi"}'),
    ("update_id 2**63", as_body(changed(M, ("update_id",), 2**63))),
    ("update_id 2**64", as_body(changed(M, ("update_id",), 2**64))),
    ("update_id -1", as_body(changed(M, ("update_id",), -1))),
    ("update_id a string", as_body(changed(M, ("update_id",), "7001"))),
    ("update_id a float", as_body(changed(M, ("update_id",), 7001.0))),
    ("update_id true", as_body(changed(M, ("update_id",), True))),
    ("update_id of 5,000 digits", with_raw(M, ("update_id",), "1" * 5000)),
    ("update_id NaN", with_raw(M, ("update_id",), "NaN")),
    ("a date of Infinity", with_raw(M, ("message", "date"), "Infinity")),
    ("a chat id of -Infinity", with_raw(M, ("message", "chat", "id"), "-Infinity")),
    ("a float beyond double", with_raw(M, ("message", "extra"), "1e999")),
    ("a private message without from", as_body(changed(M, ("message", "from"), REMOVE))),
    ("a private chat of someone else", as_body(changed(M, ("message", "chat", "id"), 6101))),
    (
        "a chat id of 0",
        as_body(changed(changed(M, ("message", "chat", "id"), 0), ("message", "from", "id"), 0)),
    ),
    ("a text that is a list", as_body(changed(M, ("message", "text"), ["hi"]))),
    ("a text over 4096 characters", as_body(changed(M, ("message", "text"), "a" * 4097))),
    ("an entity offset as text", as_body(changed(M, ("message", "entities", 0, "offset"), "0"))),  # type: ignore[arg-type]
    ("a date in the year 30000", as_body(changed(M, ("message", "date"), 10**12))),
    ("a date as text", as_body(changed(M, ("message", "date"), "yesterday"))),
    (
        "a contact whose user id is text",
        as_body(
            changed(
                M,
                ("message", "contact"),
                {"phone_number": PHONE, "first_name": NAME, "user_id": "6100"},
            )
        ),
    ),
    ("a press without from", as_body(changed(Q, ("callback_query", "from"), REMOVE))),
    ("a press with data as a number", as_body(changed(Q, ("callback_query", "data"), 5))),
    ("a press with an id as a number", as_body(changed(Q, ("callback_query", "id"), 5))),
    (
        "a press on someone else's chat",
        as_body(changed(Q, ("callback_query", "message", "chat", "id"), 6101)),
    ),
    ("nested 100,000 deep", nested(100_000)),
    ("nested 900 deep", nested(900)),
    (
        "objects nested 50 deep",
        nested_objects(50),
    ),
    (
        "reply_to_message 40 deep",
        as_body(
            changed(
                M,
                ("message", "reply_to_message"),
                json.loads(b'{"reply_to_message": ' * 40 + b"{}" + b"}" * 40),
            )
        ),
    ),
    ("latin-1", as_body(M).decode().encode("latin-1", "replace")),
    ("invalid UTF-8", b'{"update_id": 7006, "message": "\xff\xfe"}'),
    ("a lone surrogate in UTF-8", b'{"update_id": 7007, "x": "\xed\xa0\x80"}'),
    ("UTF-16", as_body(M).decode().encode("utf-16")),
    ("a byte-order mark", b"\xef\xbb\xbf" + as_body(M)),
    ("NUL bytes", b"\x00" * 100),
]


@pytest.fixture
def bot_for_parsing() -> Bot:
    return Bot(TOKEN)


def test_the_unmutated_bodies_are_updates_so_each_mutation_is_what_is_refused(
    bot_for_parsing: Bot,
) -> None:
    for update in (message_update(), callback_update()):
        assert isinstance(parse_update(as_body(update), bot_for_parsing), Update)


@pytest.mark.parametrize(
    ("case", "body"), HAND_WRITTEN_BODIES, ids=[c for c, _ in HAND_WRITTEN_BODIES]
)
def test_each_hostile_body_is_refused_with_a_reason_and_no_content(
    bot_for_parsing: Bot, case: str, body: bytes
) -> None:
    refused = parse_update(body, bot_for_parsing)
    assert isinstance(refused, Malformed), case
    assert NAME not in refused.reason
    assert "06" not in refused.reason


async def post_body(
    session: aiohttp.ClientSession, base: str, body: bytes, secret: str | None = SECRET
) -> int:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    async with session.post(f"{base}/telegram", data=body, headers=headers) as response:
        await response.read()
        return response.status


async def test_hostile_bodies_get_400_403_or_413_never_500_and_no_content_is_logged(
    webhook: str, emulator: BotApiEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with aiohttp.ClientSession() as session:
        answers = {
            case: await post_body(session, webhook, body) for case, body in HAND_WRITTEN_BODIES
        }
        for case, body in HAND_WRITTEN_BODIES[:10]:
            answers[f"{case}, wrong secret"] = await post_body(session, webhook, body, "wrong")
            answers[f"{case}, no secret"] = await post_body(session, webhook, body, None)
        too_big = as_body(changed(M, ("message", "text"), "a" * MAX_BODY))
        answers["over 1 MB"] = await post_body(session, webhook, too_big)
        answers["over 1 MB, deep"] = await post_body(session, webhook, b"[" * (MAX_BODY + 1))
    expected = {
        case: 413 if "1 MB" in case else 403 if "secret" in case else 400 for case in answers
    }
    assert answers == expected
    assert len(answers) >= 60
    refusals = [r for r in caplog.records if "malformed update" in r.getMessage()]
    # One line per body refused as malformed, and that line only: no traceback, no content.
    assert len(refusals) == len(HAND_WRITTEN_BODIES)
    assert all(r.exc_info is None for r in caplog.records)
    assert NAME not in caplog.text
    assert PHONE not in caplog.text
    assert emulator.calls("sendMessage") == []


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=hostile_bodies)
async def test_generated_hostile_bodies_are_all_refused_with_a_400(
    webhook: str, emulator: BotApiEmulator, body: bytes
) -> None:
    async with aiohttp.ClientSession() as session:
        assert await post_body(session, webhook, body) == 400
    assert emulator.calls("sendMessage") == []


MESSAGE_FIELDS = [
    "photo",
    "sticker",
    "voice",
    "video",
    "document",
    "location",
    "venue",
    "poll",
    "dice",
    "contact",
    "caption",
    "caption_entities",
    "entities",
    "reply_to_message",
    "reply_markup",
    "forward_origin",
    "via_bot",
    "sender_chat",
    "edit_date",
    "new_chat_members",
    "pinned_message",
    "web_app_data",
    "unknown_future_field",
]


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    where=st.sampled_from(MESSAGE_FIELDS),
    junk=any_json,
    in_press=st.booleans(),
)
async def test_junk_in_any_other_field_is_refused_or_handled_never_a_500(
    webhook: str, emulator: BotApiEmulator, where: str, junk: Any, in_press: bool
) -> None:
    # A real person and a real update (a fresh id, a press Telegram would let the bot answer),
    # so that a body the bot accepts is handled to the end.
    person = emulator.user(6100, NAME)
    if not person.messages:
        person.send_command("start")
        async with aiohttp.ClientSession() as session:
            assert await post_body(session, webhook, as_body(take_update(emulator))) == 200
    if in_press:
        emulator._push_callback_query(person, person.messages[0], "zz")
        path: tuple[str, ...] = ("callback_query", "message", where)
    else:
        person.send_text("bonjour")
        path = ("message", where)
    body = as_body(changed(take_update(emulator), path, junk))
    async with aiohttp.ClientSession() as session:
        assert await post_body(session, webhook, body) in (200, 400)
