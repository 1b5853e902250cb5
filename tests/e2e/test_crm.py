"""An association on a CRM, end to end: the bot POSTs it each contact and each move, and the CRM
takes, declines or closes its contacts by signed requests to the bot's server."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import ClientSession, web

from bot.app import TelegramBot, build_bot
from bot.sandbox.emulator import BotApiEmulator
from bot.web import operations_server
from conversations.services.crm import signature
from tests.e2e.conftest import Chat, running, settings_for
from tests.e2e.test_handoff import (
    FIRST,
    SECOND,
    Clock,
    card_of,
    complete_sign_up,
    handoffs_in_db,
    join,
    press,
)
from tests.e2e.test_webhook import applications, free_port, webhook  # noqa: F401

SECRET = "a-secret-of-thirty-two-characters"


class Crm:
    """An association's CRM: receives the bot's signed POSTs, and sends its own."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.arrived = asyncio.Condition()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        expected = signature_of_outbound(body)
        assert request.headers["X-Mentorat-Signature"] == expected
        async with self.arrived:
            self.received.append(json.loads(body))
            self.arrived.notify_all()
        return web.Response(status=204)

    async def event(self, name: str) -> dict[str, Any]:
        async with self.arrived:
            await asyncio.wait_for(
                self.arrived.wait_for(lambda: any(b["event"] == name for b in self.received)),
                timeout=10,
            )
        return next(b for b in self.received if b["event"] == name)


def signature_of_outbound(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def signed_headers(body: bytes, secret: str = SECRET, age: int = 0) -> dict[str, str]:
    timestamp = str(int(time.time()) - age)
    return {
        "Content-Type": "application/json",
        "X-Mentorat-Timestamp": timestamp,
        "X-Mentorat-Signature": signature(secret, timestamp, body),
    }


@pytest.fixture
async def crm() -> AsyncIterator[Crm]:
    receiver = Crm()
    server = web.Application()
    server.router.add_post("/crm", receiver.handle)
    runner = web.AppRunner(server)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    receiver.url = f"http://127.0.0.1:{port}/crm"
    yield receiver
    await runner.cleanup()


async def on_the_crm(app: TelegramBot, slug: str, url: str, telegram: bool) -> None:
    """Its catalogue entry gets a webhook (set in the database, as test_handoff does)."""
    async with app.services.unit_of_work() as uow:
        record = await uow.catalog.by_slug(slug)
        assert record is not None
        handoff = {"telegram": telegram, "webhook_url": url, "webhook_secret": SECRET}
        record.entry = {**record.entry, "handoff": handoff}
        await uow.commit()


@pytest.fixture
async def served(
    emulator: BotApiEmulator, sqlite_url: str
) -> AsyncIterator[tuple[TelegramBot, ClientSession]]:
    """The bot in polling mode with the server `mentorat-bot run` starts beside it."""
    port = free_port()
    settings = settings_for(emulator, sqlite_url).model_copy(update={"web_port": port})
    async with (
        running(build_bot(settings, clock=Clock())) as app,
        operations_server(app, settings),
        ClientSession(f"http://127.0.0.1:{port}") as client,
    ):
        yield app, client


async def crm_says(
    client: ClientSession,
    handoff_id: int,
    verb: str,
    *,
    slug: str = FIRST,
    secret: str = SECRET,
    age: int = 0,
    **more: Any,
) -> tuple[int, dict[str, Any]]:
    body = json.dumps({"handoff_id": handoff_id, "verb": verb, **more}).encode()
    async with client.post(
        f"/associations/{slug}/handoffs/{handoff_id}",
        data=body,
        headers=signed_headers(body, secret, age),
    ) as response:
        return response.status, await response.json()


async def signed_up_to_the_crm(
    served: tuple[TelegramBot, ClientSession], crm: Crm, person: Callable[..., Chat]
) -> tuple[TelegramBot, ClientSession, Chat, int]:
    """Proxité is on a CRM only; Inès signs up and her contact reaches it."""
    app, client = served
    await on_the_crm(app, FIRST, crm.url, telegram=False)
    young = await complete_sign_up(person)
    proposed = await crm.event("handoff.proposed")
    assert proposed["association"] == FIRST
    return app, client, young, int(proposed["handoff_id"])


async def test_a_crm_takes_a_contact_by_a_signed_request_and_the_young_person_is_told(
    served: tuple[TelegramBot, ClientSession], crm: Crm, person: Callable[..., Chat]
) -> None:
    app, client, young, handoff_id = await signed_up_to_the_crm(served, crm, person)

    status, answer = await crm_says(client, handoff_id, "taken")

    assert status == 200
    assert answer == {"handoff_id": handoff_id, "status": "taken", "changed": True}
    told = await young.reads(expect="Bonne nouvelle")
    assert "Proxité" in (told.text or "")
    (handoff,) = await handoffs_in_db(app)
    assert handoff.status == "taken"
    assert handoff.taken_at is not None
    # Its own move is not echoed back to the CRM.
    await asyncio.sleep(0.3)
    assert [b["event"] for b in crm.received] == ["handoff.proposed"]


async def test_a_bad_signature_or_an_old_timestamp_is_refused_and_changes_nothing(
    served: tuple[TelegramBot, ClientSession], crm: Crm, person: Callable[..., Chat]
) -> None:
    app, client, young, handoff_id = await signed_up_to_the_crm(served, crm, person)
    before = len(young.user.messages)

    forged = await crm_says(client, handoff_id, "taken", secret="not-the-secret-at-all")
    old = await crm_says(client, handoff_id, "taken", age=6 * 60)
    body = b'{"verb": "taken"}'
    async with client.post(f"/associations/{FIRST}/handoffs/{handoff_id}", data=body) as unsigned:
        unsigned_status = unsigned.status

    assert forged[0] == old[0] == unsigned_status == 401
    assert "signature" in forged[1]["error"]
    assert "window" in old[1]["error"]
    (handoff,) = await handoffs_in_db(app)
    assert handoff.status == "delivered"
    await asyncio.sleep(0.3)
    assert len(young.user.messages) == before


async def test_a_replayed_request_changes_nothing_twice(
    served: tuple[TelegramBot, ClientSession], crm: Crm, person: Callable[..., Chat]
) -> None:
    _app, client, young, handoff_id = await signed_up_to_the_crm(served, crm, person)
    body = json.dumps({"handoff_id": handoff_id, "verb": "taken"}).encode()
    headers = signed_headers(body)
    url = f"/associations/{FIRST}/handoffs/{handoff_id}"

    async with client.post(url, data=body, headers=headers) as first:
        assert first.status == 200
    await young.reads(expect="Bonne nouvelle")
    async with client.post(url, data=body, headers=headers) as again:
        assert again.status == 200
        assert (await again.json())["changed"] is False

    await asyncio.sleep(0.5)
    told = [m for m in young.user.messages if "Bonne nouvelle" in (m.text or "")]
    assert len(told) == 1


async def test_a_crm_decline_sends_the_contact_to_the_next_association(
    served: tuple[TelegramBot, ClientSession], crm: Crm, person: Callable[..., Chat]
) -> None:
    app, client, young, handoff_id = await signed_up_to_the_crm(served, crm, person)

    status, answer = await crm_says(client, handoff_id, "declined", reason="full")

    assert (status, answer["status"]) == (200, "declined")
    told = await young.reads(expect="Du nouveau")
    assert "Proxité" in (told.text or "")
    first, second = await handoffs_in_db(app)
    assert (first.status, first.decline_reason) == ("declined", "full")
    async with app.services.unit_of_work() as uow:
        record = await uow.catalog.get(second.association_id)
        events = await uow.handoffs.events(first.id)
    assert record is not None
    assert record.slug == SECOND
    # (The relay may record the proposal's delivery after the CRM answered it: not always last.)
    assert ("declined", "crm:full") in [(e.event, e.detail) for e in events]
    # The next association's contact is not the CRM's to act on.
    refused, error = await crm_says(client, second.id, "taken")
    assert refused == 404
    assert "error" in error


async def test_an_unknown_verb_or_a_missing_reason_is_a_400(
    served: tuple[TelegramBot, ClientSession], crm: Crm, person: Callable[..., Chat]
) -> None:
    app, client, _young, handoff_id = await signed_up_to_the_crm(served, crm, person)

    unknown = await crm_says(client, handoff_id, "adopted")
    no_reason = await crm_says(client, handoff_id, "declined")

    url = f"/associations/{FIRST}/handoffs/{handoff_id}"
    huge = b"{" * 100_000
    async with client.post(url, data=huge, headers=signed_headers(huge)) as response:
        too_large = response.status

    assert (unknown[0], no_reason[0], too_large) == (400, 400, 413)
    assert "verb" in unknown[1]["error"]
    assert "reason" in no_reason[1]["error"]
    (handoff,) = await handoffs_in_db(app)
    assert handoff.status == "delivered"


async def test_the_crm_hears_when_a_coordinator_takes_its_contact(
    served: tuple[TelegramBot, ClientSession],
    crm: Crm,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],
) -> None:
    app, _client = served
    await on_the_crm(app, FIRST, crm.url, telegram=True)
    camille = await join(app, emulator, 900001, "Camille", FIRST)
    young = await complete_sign_up(person)
    card = await card_of(camille)

    press(camille.user, card.message_id, "Je m'en occupe")

    taken = await crm.event("handoff.taken")
    proposed = await crm.event("handoff.proposed")
    assert taken["handoff_id"] == proposed["handoff_id"]
    assert (taken["association"], taken["status"], taken["by"]) == (FIRST, "taken", "coordinator")
    assert "Inès" not in json.dumps(taken)
    await young.reads(expect="Bonne nouvelle")


async def test_webhook_mode_serves_the_crm_endpoint_too(webhook: str) -> None:  # noqa: F811
    body = b'{"handoff_id": 1, "verb": "taken"}'
    async with (
        ClientSession(webhook) as client,
        client.post(
            f"/associations/{FIRST}/handoffs/1", data=body, headers=signed_headers(body)
        ) as response,
    ):
        # The sample catalogue gives Proxité no webhook secret: nobody may speak for it.
        assert response.status == 401
        assert "signature" in (await response.json())["error"]
