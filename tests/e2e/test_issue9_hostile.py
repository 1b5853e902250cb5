"""Hostile review of issue 9: the CRM's inbound endpoint, one open request per person and role."""

# Fixtures imported from other test modules are parameters of the tests here (pytest's way).
# ruff: noqa: F811
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import ClientSession

from bot.app import TelegramBot, build_bot
from bot.sandbox.emulator import BotApiEmulator
from bot.web import operations_server
from tests.e2e.conftest import Chat, running, settings_for
from tests.e2e.test_crm import (  # noqa: F401
    SECRET,
    Crm,
    crm,
    crm_says,
    on_the_crm,
    served,
    signed_headers,
    signed_up_to_the_crm,
)
from tests.e2e.test_handoff import (  # noqa: F401
    FIRST,
    Clock,
    app,
    card_of,
    clock,
    complete_sign_up,
    handoffs_in_db,
    join,
)
from tests.e2e.test_webhook import free_port


@pytest.fixture
async def pg_served(
    emulator: BotApiEmulator, postgres_url: str
) -> AsyncIterator[tuple[TelegramBot, ClientSession]]:
    port = free_port()
    settings = settings_for(emulator, postgres_url).model_copy(update={"web_port": port})
    async with (
        running(build_bot(settings, clock=Clock())) as running_app,
        operations_server(running_app, settings),
        ClientSession(f"http://127.0.0.1:{port}") as client,
    ):
        yield running_app, client


async def post_raw(
    client: ClientSession, slug: str, handoff_id: int | str, body: bytes, **headers: str
) -> tuple[int, str]:
    async with client.post(
        f"/associations/{slug}/handoffs/{handoff_id}", data=body, headers=headers
    ) as response:
        return response.status, await response.text()


# --- the CRM endpoint --------------------------------------------------------------------------


@pytest.mark.postgres
async def test_a_nul_in_the_slug_is_no_500_on_postgresql(
    pg_served: tuple[TelegramBot, ClientSession],
) -> None:
    _app, client = pg_served
    body = b'{"handoff_id": 1, "verb": "taken"}'
    for slug in ("prox%00ite", "%FF%FE", "x" * 1000, "caf%C3%A9"):
        status, text = await post_raw(client, slug, 1, body, **signed_headers(body))
        assert status == 401, (slug, status, text)


async def test_a_float_handoff_id_in_the_body_is_refused(
    served: tuple[TelegramBot, ClientSession], crm: Crm, person: Callable[..., Chat]
) -> None:
    app, client, _young, handoff_id = await signed_up_to_the_crm(served, crm, person)
    for value in (float(handoff_id), str(handoff_id), True):
        body = json.dumps({"handoff_id": value, "verb": "taken"}).encode()
        status, text = await post_raw(client, FIRST, handoff_id, body, **signed_headers(body))
        assert status == 400, (value, status, text)
    (handoff,) = await handoffs_in_db(app)
    assert handoff.status == "delivered"


async def test_odd_timestamps_are_refused_without_a_500(
    served: tuple[TelegramBot, ClientSession], crm: Crm, person: Callable[..., Chat]
) -> None:
    app, client, _young, handoff_id = await signed_up_to_the_crm(served, crm, person)
    from conversations.services.crm import signature

    body = json.dumps({"handoff_id": handoff_id, "verb": "taken"}).encode()
    import time

    now = int(time.time())
    for ts in ("-1", f"{now}.0", "9" * 30, "", "١٢٣", f"{now}\t", f"+{now}", f"0{now}"):
        headers = {
            "X-Mentorat-Timestamp": ts,
            "X-Mentorat-Signature": signature(SECRET, ts, body),
        }
        try:
            status, text = await post_raw(client, FIRST, handoff_id, body, **headers)
        except ValueError:
            continue  # aiohttp client refuses the header itself
        assert status in (401, 200), (ts, status, text)
        if ts == f"0{now}":
            continue
        assert status == 401, (ts, status, text)
    (handoff,) = await handoffs_in_db(app)
    assert handoff.status in ("delivered", "taken")


async def test_non_utf8_and_duplicate_keys_and_deep_nesting(
    served: tuple[TelegramBot, ClientSession], crm: Crm, person: Callable[..., Chat]
) -> None:
    app, client, _young, handoff_id = await signed_up_to_the_crm(served, crm, person)
    bodies = [
        b"\xff\xfe{}",
        b"[" * 4000 + b"]" * 0,
        b'{"handoff_id": %d, "verb": "taken", "reason": {"a": [' % handoff_id + b"[" * 2000 + b"]}",
        b'{"handoff_id": 1e999, "verb": "taken"}',
        b'{"handoff_id": NaN, "verb": "taken"}',
        ('{"handoff_id": %d, "verb": "taken", "reason": "\ud800"}' % handoff_id).encode(  # noqa: UP031
            "utf-8", "surrogatepass"
        ),
        b'{"handoff_id": ' + b"9" * 4000 + b', "verb": "taken"}',
        b'{"handoff_id": %d, "verb": "declined", "reason": ["full"]}' % handoff_id,
        b'{"handoff_id": %d, "verb": "declined", "reason": {"a": 1}}' % handoff_id,
    ]
    for body in bodies:
        status, text = await post_raw(client, FIRST, handoff_id, body, **signed_headers(body))
        assert status == 400, (body[:40], status, text)
    (handoff,) = await handoffs_in_db(app)
    assert handoff.status == "delivered"


async def test_a_signed_body_whose_verb_is_a_list_or_an_object_is_a_400_not_a_500(
    served: tuple[TelegramBot, ClientSession], crm: Crm, person: Callable[..., Chat]
) -> None:
    app, client, _young, handoff_id = await signed_up_to_the_crm(served, crm, person)
    for verb in (b'["taken"]', b'{"taken": 1}'):
        body = b'{"handoff_id": %d, "verb": %s}' % (handoff_id, verb)
        status, text = await post_raw(client, FIRST, handoff_id, body, **signed_headers(body))
        assert status == 400, (verb, status, text)
    (handoff,) = await handoffs_in_db(app)
    assert handoff.status == "delivered"


@pytest.mark.postgres
async def test_two_declines_at_once_reroute_exactly_once_on_postgresql(
    pg_served: tuple[TelegramBot, ClientSession], crm: Crm, person: Callable[..., Chat]
) -> None:
    app, client, _young, handoff_id = await signed_up_to_the_crm(pg_served, crm, person)
    answers = await asyncio.gather(
        *(crm_says(client, handoff_id, "declined", reason="full") for _ in range(4)),
        crm_says(client, handoff_id, "taken"),
    )
    for status, answer in answers:
        assert status in (200, 409, 503), (status, answer)
    stored = await handoffs_in_db(app)
    assert len(stored) <= 2, [(h.association_id, h.status) for h in stored]
    changed = [a for s, a in answers if s == 200 and a.get("changed")]
    assert len(changed) == 1, answers


async def test_a_crm_acting_on_a_withdrawn_or_erased_handoff_is_a_409(
    served: tuple[TelegramBot, ClientSession], crm: Crm, person: Callable[..., Chat]
) -> None:
    app, client, young, handoff_id = await signed_up_to_the_crm(served, crm, person)
    await young.starts(None)
    await young.taps("Je cherche un·e mentor·e", expect="déjà une demande en cours")
    await young.taps("Oui, la remplacer", expect="prénom")
    for verb, more in (("taken", {}), ("declined", {"reason": "full"}), ("closed", {})):
        status, answer = await crm_says(client, handoff_id, verb, **more)
        assert status == 409, (verb, status, answer)
    assert [h.status for h in await handoffs_in_db(app)] == ["withdrawn"]
    withdrawn = await crm.event("handoff.withdrawn")
    assert withdrawn["handoff_id"] == handoff_id
    assert "Inès" not in json.dumps(withdrawn)


# --- one open request per person and role --------------------------------------------------


async def answers_from_the_first_question(chat: Chat) -> None:
    """The 17-year-old of Saint-Denis again, from "prénom" to the summary, then sent."""
    await chat.says("Inès", expect="Question")
    await chat.says("17", expect="Question")
    await chat.says("93200", expect="Question")
    await chat.taps("Lycée professionnel", expect="Question")
    await chat.toggles("Orientation")
    await chat.taps("Valider", expect="Question")
    await chat.taps("Les deux me vont", expect="Question")
    await chat.taps("Quartier prioritaire", expect="Question")
    await chat.taps("Par téléphone", expect="Question")
    chat.user.press("📱 Partager mon numéro")
    await chat.reads(expect="Question")
    await chat.taps("Oui, je suis d'accord", expect="Tes réponses")
    await chat.taps("C'est bon", expect="Merci")


def replace_data(offer: Any) -> str:
    """The callback data of the offer's "Oui, la remplacer" button, as the bot wrote it."""
    return next(str(b["callback_data"]) for b in offer.buttons if b["text"] == "Oui, la remplacer")


async def test_an_old_replace_button_does_not_silently_withdraw_the_newer_request(
    app: TelegramBot,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],
) -> None:
    await join(app, emulator, 900001, "Camille", FIRST)
    young = await complete_sign_up(person)
    await young.starts(None)
    offer = await young.taps("Je cherche un·e mentor·e", expect="déjà une demande en cours")
    await young.taps("Oui, la remplacer", expect="prénom")
    await answers_from_the_first_question(young)
    first, second = await handoffs_in_db(app)
    assert (first.status, second.status) == ("withdrawn", "proposed") or second.status == (
        "delivered"
    )

    # A second tap on the old offer (a client that had not yet drawn the edit): its data names
    # the first request, which is gone: a toast, and the newer request stays.
    emulator._push_callback_query(young.user, offer, replace_data(offer))
    toast = await young.user.next_toast()
    while toast.text is None:  # the silent answers of the presses before it
        toast = await young.user.next_toast()
    assert toast.text == "Ce bouton n'est plus valable."
    await asyncio.sleep(0.3)
    first, second = await handoffs_in_db(app)
    # The second request was never offered for replacement: it must still be open.
    assert second.status in ("proposed", "delivered"), second.status


async def test_a_replace_with_nothing_to_replace_does_not_say_a_request_was_withdrawn(
    app: TelegramBot,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],
) -> None:
    await join(app, emulator, 900001, "Camille", FIRST)
    young = await complete_sign_up(person)
    await young.starts(None)
    offer = await young.taps("Je cherche un·e mentor·e", expect="déjà une demande en cours")
    await young.taps("Oui, la remplacer", expect="prénom")
    young.user.send_command("cancel")
    await young.reads(expect="arrêté")
    # The old offer, pressed again (double tap, forged callback): no open request any more.
    emulator._push_callback_query(young.user, offer, replace_data(offer))
    toast = await young.user.next_toast()
    while toast.text is None:  # the silent answers of the presses before it
        toast = await young.user.next_toast()
    assert "retirée" not in toast.text, toast.text
    assert [h.status for h in await handoffs_in_db(app)] == ["withdrawn"]


async def test_start_after_replacing_then_cancelling_does_not_claim_a_new_request(
    app: TelegramBot,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],
) -> None:
    await join(app, emulator, 900001, "Camille", FIRST)
    young = await complete_sign_up(person)
    await young.starts(None)
    await young.taps("Je cherche un·e mentor·e", expect="déjà une demande en cours")
    await young.taps("Oui, la remplacer", expect="prénom")
    young.user.send_command("cancel")
    await young.reads(expect="arrêté")
    status = await young.starts(None)
    # No new request exists: "remplacé par une nouvelle demande" is not true.
    assert "remplacé par une nouvelle demande" not in (status.text or ""), status.text


async def test_no_personal_data_in_debug_logs_while_a_crm_declines(
    served: tuple[TelegramBot, ClientSession],
    crm: Crm,
    person: Callable[..., Chat],
    caplog: pytest.LogCaptureFixture,
) -> None:
    _app, client, young, handoff_id = await signed_up_to_the_crm(served, crm, person)
    import logging

    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        status, _answer = await crm_says(client, handoff_id, "declined", reason="scope")
        await young.reads(expect="Du nouveau")
        await asyncio.sleep(0.3)
    assert status == 200
    # The libraries are capped by bot.cli.configure_logging in production: only ours (and
    # aiohttp's server, which LOG_LEVEL=DEBUG leaves on) are checked.
    ours = "\n".join(
        r.getMessage()
        for r in caplog.records
        if r.name.split(".")[0] in ("bot", "conversations", "storage", "aiohttp")
    )
    for secret_word in ("Inès", "+33612345678", "93200", SECRET):
        assert secret_word not in ours, secret_word
