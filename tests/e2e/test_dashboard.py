"""The staff dashboard over HTTP: signing in from the chat, rights, CSRF, and changes that stick.

The bot runs for real against the emulator; the dashboard is served by the same aiohttp routes as
in production (`add_dashboard_routes`), and a client with a cookie jar plays the browser.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.app import TelegramBot, build_bot
from bot.dashboard.app import add_dashboard_routes
from bot.sandbox.emulator import BotApiEmulator
from bot.web import dashboard_of
from tests.e2e.conftest import Chat, running, settings_for
from tests.e2e.test_handoff import FIRST, SECOND, Clock, complete_sign_up, join

ADMIN = 999
LINK = re.compile(r"/admin/sign-in/([A-Za-z0-9_-]+)")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def app(
    emulator: BotApiEmulator, sqlite_url: str, clock: Clock
) -> AsyncIterator[TelegramBot]:
    settings = settings_for(emulator, sqlite_url).model_copy(
        update={"admin_telegram_ids": (ADMIN,)}
    )
    async with running(build_bot(settings, clock=clock)) as running_bot:
        yield running_bot


@pytest.fixture
async def browser(app: TelegramBot) -> AsyncIterator[Callable[[], TestClient]]:  # type: ignore[type-arg]
    """A new browser (an empty cookie jar) on the dashboard, each time it is called."""
    web_app = web.Application()
    add_dashboard_routes(web_app, dashboard_of(app))
    server = TestServer(web_app)
    await server.start_server()
    clients: list[TestClient] = []  # type: ignore[type-arg]

    def new() -> TestClient:  # type: ignore[type-arg]
        client = TestClient(server)
        clients.append(client)
        return client

    yield new
    for client in clients:
        await client.close()
    await server.close()


async def link_for(chat: Chat) -> str:
    # An admin may get the weekly figures first (sent when the bot starts, if not yet this week).
    reply = await chat.says("/dashboard", expect="/admin/sign-in/")
    found = LINK.search(reply.text or "")
    assert found is not None, reply.text
    return found.group(0)


async def signed_in(client: TestClient, link: str) -> None:  # type: ignore[type-arg]
    page = await client.get(link)
    assert page.status == 200
    assert "Ouvrir le tableau de bord" in await page.text()
    done = await client.post(link, allow_redirects=False)
    assert done.status == 303, await done.text()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


async def test_an_admin_signs_in_with_the_link_from_the_chat_and_the_link_works_once(
    app: TelegramBot,
    emulator: BotApiEmulator,
    browser: Callable[[], TestClient],  # type: ignore[type-arg]
) -> None:
    admin = Chat(emulator.user(ADMIN, "Sam"))
    link = await link_for(admin)
    first = browser()
    await signed_in(first, link)
    overview = await first.get("/admin/")
    assert overview.status == 200
    html = await overview.text()
    assert "Aperçu de la semaine" in html
    assert overview.headers["Content-Security-Policy"].startswith("default-src 'none'")
    # The same link in another browser (forwarded, leaked): refused, and no session.
    second = browser()
    refused = await second.post(link, allow_redirects=False)
    assert refused.status == 403
    assert "déjà servi ou il a expiré" in await refused.text()
    assert (await second.get("/admin/")).status == 403
    # The sign-in is in the audit log, by Telegram id, not by name.
    audit = await (await first.get("/admin/audit")).text()
    assert "sign_in" in audit
    assert str(ADMIN) in audit


async def test_the_session_cookie_is_httponly_samesite_and_expires(
    app: TelegramBot,
    emulator: BotApiEmulator,
    browser: Callable[[], TestClient],  # type: ignore[type-arg]
) -> None:
    link = await link_for(Chat(emulator.user(ADMIN, "Sam")))
    client = browser()
    await client.get(link)
    done = await client.post(link, allow_redirects=False)
    cookie = done.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Max-Age=28800" in cookie
    assert "Path=/admin" in cookie


async def test_an_expired_link_is_refused(
    app: TelegramBot,
    emulator: BotApiEmulator,
    browser: Callable[[], TestClient],  # type: ignore[type-arg]
    clock: Clock,
) -> None:
    link = await link_for(Chat(emulator.user(ADMIN, "Sam")))
    clock.offset = timedelta(minutes=11)
    client = browser()
    refused = await client.post(link, allow_redirects=False)
    assert refused.status == 403
    assert (await client.get("/admin/")).status == 403


async def test_a_stranger_gets_no_link_and_no_page(
    app: TelegramBot,
    emulator: BotApiEmulator,
    browser: Callable[[], TestClient],  # type: ignore[type-arg]
) -> None:
    stranger = Chat(emulator.user(31337, "Eve"))
    reply = await stranger.says("/dashboard")
    assert "réservé" in (reply.text or "")
    assert LINK.search(reply.text or "") is None
    client = browser()
    for path in ("/admin/", "/admin/funnel", "/admin/associations", "/admin/exports/handoffs.csv"):
        page = await client.get(path)
        assert page.status == 403, path
        assert "/dashboard" in await page.text()
    forged = await client.get(
        "/admin/", headers={"Cookie": "mentorat_dashboard=eyJpZCI6OTk5fQ.AAAA"}
    )
    assert forged.status == 403


async def test_a_form_without_its_csrf_token_changes_nothing(
    app: TelegramBot,
    emulator: BotApiEmulator,
    browser: Callable[[], TestClient],  # type: ignore[type-arg]
) -> None:
    client = browser()
    await signed_in(client, await link_for(Chat(emulator.user(ADMIN, "Sam"))))
    page = await (await client.get("/admin/associations")).text()
    association_id = re.search(r"/admin/associations/(\d+)/pause", page).group(1)  # type: ignore[union-attr]
    for form in ({"paused": "1"}, {"paused": "1", "csrf": "forged"}):
        refused = await client.post(
            f"/admin/associations/{association_id}/pause", data=form, allow_redirects=False
        )
        assert refused.status == 403
        assert "formulaire a expiré" in await refused.text()
    async with app.services.unit_of_work() as uow:
        assert not any(r.paused for r in await uow.catalog.records())
    # With the token: paused, shown, audited.
    done = await client.post(
        f"/admin/associations/{association_id}/pause",
        data={"paused": "1", "csrf": csrf_of(page)},
    )
    assert done.status == 200
    html = await done.text()
    assert "est en pause" in html
    async with app.services.unit_of_work() as uow:
        assert [r.id for r in await uow.catalog.records() if r.paused] == [int(association_id)]


async def test_a_coordinator_sees_only_their_association_and_acts_on_its_contacts(
    app: TelegramBot,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],
    browser: Callable[[], TestClient],  # type: ignore[type-arg]
) -> None:
    camille = await join(app, emulator, 900001, "Camille", FIRST)
    await join(app, emulator, 900002, "Léo", SECOND)
    young = await complete_sign_up(person)
    await camille.user.wait_for_message(lambda m: "Nouveau contact" in (m.text or ""))
    client = browser()
    await signed_in(client, await link_for(camille))
    associations = await (await client.get("/admin/associations")).text()
    assert 'data-slug="proxite"' in associations
    assert 'data-slug="telemaque"' not in associations
    for admin_only in ("/admin/", "/admin/funnel", "/admin/exports", "/admin/audit"):
        page = await client.get(admin_only, allow_redirects=False)
        assert page.status in (303, 403), admin_only
    assert (await client.get("/admin/funnel")).status == 403
    # Another association's pause or invite: refused.
    async with app.services.unit_of_work() as uow:
        other = await uow.catalog.by_slug(SECOND)
        assert other is not None
    csrf = csrf_of(associations)
    refused = await client.post(
        f"/admin/associations/{other.id}/pause", data={"paused": "1", "csrf": csrf}
    )
    assert refused.status == 403
    refused = await client.post("/admin/invites", data={"association": str(other.id), "csrf": csrf})
    assert refused.status == 403
    # Her contact, in full, with the buttons of the card: she takes it, the young person is told.
    contacts = await (await client.get("/admin/contacts")).text()
    assert "Inès" in contacts
    handoff_id = re.search(r'id="contact-(\d+)"', contacts).group(1)  # type: ignore[union-attr]
    taken = await client.post(
        f"/admin/contacts/{handoff_id}", data={"verb": "take", "csrf": csrf_of(contacts)}
    )
    assert "C'est à vous" in await taken.text()
    told = await young.user.wait_for_message(lambda m: "Camille" in (m.text or ""))
    assert "Proxité" in (told.text or "")


async def test_an_admin_sees_contacts_pseudonymised_and_creates_an_invite_with_a_qr_code(
    app: TelegramBot,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],
    browser: Callable[[], TestClient],  # type: ignore[type-arg]
) -> None:
    await join(app, emulator, 900001, "Camille", FIRST)
    await complete_sign_up(person)
    client = browser()
    await signed_in(client, await link_for(Chat(emulator.user(ADMIN, "Sam"))))
    contacts = await (await client.get("/admin/contacts")).text()
    assert "Contact n°" in contacts
    assert "Inès" not in contacts
    assert "+33" not in contacts
    assert "612345678" not in contacts
    page = await (await client.get("/admin/coordinators")).text()
    assert "Camille" in page
    async with app.services.unit_of_work() as uow:
        record = await uow.catalog.by_slug(SECOND)
        assert record is not None
    invite = await client.post(
        "/admin/invites", data={"association": str(record.id), "csrf": csrf_of(page)}
    )
    html = await invite.text()
    link = re.search(r'id="invite-link" href="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    assert link.startswith(f"https://t.me/{app.application.bot.username}?start=join-")
    assert 'src="data:image/svg+xml' in html
    # The invite works in the chat, once.
    léo = Chat(emulator.user(900002, "Léo"))
    confirm = await léo.starts(link.split("start=")[1])
    assert record.name in (confirm.text or "")


async def test_a_removed_coordinator_loses_the_dashboard_at_once(
    app: TelegramBot,
    emulator: BotApiEmulator,
    browser: Callable[[], TestClient],  # type: ignore[type-arg]
) -> None:
    camille = await join(app, emulator, 900001, "Camille", FIRST)
    hers = browser()
    await signed_in(hers, await link_for(camille))
    assert (await hers.get("/admin/contacts")).status == 200
    admin = browser()
    await signed_in(admin, await link_for(Chat(emulator.user(ADMIN, "Sam"))))
    page = await (await admin.get("/admin/coordinators")).text()
    coordinator_id = re.search(r'data-id="(\d+)"', page).group(1)  # type: ignore[union-attr]
    removed = await admin.post(
        f"/admin/coordinators/{coordinator_id}/remove", data={"csrf": csrf_of(page)}
    )
    assert "ne reçoit plus" in await removed.text()
    refused = await hers.get("/admin/contacts")
    assert refused.status == 403
    assert "n'a plus accès" in await refused.text()


async def test_the_dashboard_speaks_english_when_asked(
    app: TelegramBot,
    emulator: BotApiEmulator,
    browser: Callable[[], TestClient],  # type: ignore[type-arg]
) -> None:
    client = browser()
    await signed_in(client, await link_for(Chat(emulator.user(ADMIN, "Sam"))))
    english = await (await client.get("/admin/?lang=en")).text()
    assert "This week at a glance" in english
    # The choice is kept for the next pages.
    assert "Where people stop" in await (await client.get("/admin/funnel")).text()
