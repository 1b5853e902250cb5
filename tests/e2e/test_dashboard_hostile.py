"""The staff dashboard against a hostile user and an unlucky operator.

Forged and replayed cookies, edited ids and forms, cross-site posts, injected names and payloads,
absurd query parameters, races between two browsers, a database that stops answering. The bot
runs for real against the emulator, as in test_dashboard.py, whose fixtures are reused here.
"""

# The fixtures imported from test_dashboard.py are parameters of the tests here (pytest's way).
# ruff: noqa: F811
from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import urlsplit

import pytest
from aiohttp import ClientPayloadError, ClientResponseError, ClientSession, web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from sqlalchemy import select, text

from bot.app import TelegramBot, build_bot
from bot.cli import LIBRARY_LEVELS, TELEGRAM_LOGGERS, configure_logging
from bot.dashboard.app import FLASH_COOKIE, Dashboard, add_dashboard_routes
from bot.dashboard.sessions import COOKIE, Signer
from bot.polling import running
from bot.sandbox.emulator import BotApiEmulator
from bot.settings import Settings
from bot.web import dashboard_of, operations_server
from conversations.entities import Handoff
from storage.tables import handoffs as handoffs_table
from tests.browser.test_sandbox_page import free_port
from tests.e2e.conftest import TOKEN, Chat, settings_for

# The bot under test, and its clock, are test_dashboard.py's fixtures.
from tests.e2e.test_dashboard import ADMIN, LINK, app, clock, csrf_of, signed_in  # noqa: F401
from tests.e2e.test_handoff import FIRST, SECOND, Clock, complete_sign_up, join
from tests.e2e.test_log_privacy import Everything

Browser = Callable[[], TestClient]  # type: ignore[type-arg]
HOSTILE_NAME = "<img src=x onerror=alert(1)>\"'{{7*7}}"


# --- helpers -----------------------------------------------------------------------------------


async def link_for(chat: Chat) -> str:
    """/dashboard, then its answer, whatever came before it (a card, the weekly figures)."""
    chat.user.send_text("/dashboard")
    reply = await chat.user.wait_for_message(lambda m: LINK.search(m.text or "") is not None)
    found = LINK.search(reply.text or "")
    assert found is not None
    return found.group(0)


async def admin_browser(emulator: BotApiEmulator, browser: Browser) -> tuple[TestClient, str]:  # type: ignore[type-arg]
    client = browser()
    await signed_in(client, await link_for(Chat(emulator.user(ADMIN, "Sam"))))
    page = await (await client.get("/admin/associations")).text()
    return client, csrf_of(page)


async def association_id(app: TelegramBot, slug: str) -> int:
    async with app.services.unit_of_work() as uow:
        record = await uow.catalog.by_slug(slug)
        assert record is not None
        return record.id


async def stored_handoffs(app: TelegramBot) -> list[Handoff]:
    async with app.services.unit_of_work() as uow:
        query = select(Handoff).order_by(handoffs_table.c.id)
        return list(await uow.session.scalars(query))  # type: ignore[attr-defined]


async def serve(dashboard: Dashboard) -> TestServer:
    web_app = web.Application()
    add_dashboard_routes(web_app, dashboard)
    server = TestServer(web_app)
    await server.start_server()
    return server


def not_a_crash(status: int, body: str, what: str) -> None:
    assert status < 500, f"{what}: {status} {body[:200]!r}"
    assert "Traceback" not in body, what


# --- fixtures (app and clock come from test_dashboard.py) -----------------------------------------------------------


@pytest.fixture
async def browser(app: TelegramBot) -> AsyncIterator[Browser]:
    """A new browser (an empty cookie jar) on the dashboard, each time it is called."""
    server = await serve(dashboard_of(app))
    clients: list[TestClient] = []  # type: ignore[type-arg]

    def new() -> TestClient:  # type: ignore[type-arg]
        client = TestClient(server)
        clients.append(client)
        return client

    yield new
    for client in clients:
        await client.close()
    await server.close()


@pytest.fixture
def captured() -> Iterator[Everything]:
    """Every log record, with logging as it was before afterwards (test_log_privacy.py)."""
    root = logging.getLogger()
    names = [*LIBRARY_LEVELS, *TELEGRAM_LOGGERS]
    level, handlers = root.level, list(root.handlers)
    levels = {name: logging.getLogger(name).level for name in names}
    filters = {name: list(logging.getLogger(name).filters) for name in names}
    handler = Everything()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.setLevel(level)
        for extra in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(extra)
        for name in names:
            logging.getLogger(name).setLevel(levels[name])
            logging.getLogger(name).filters[:] = filters[name]


# --- ids, numbers and dates a person can type into the address or a form ----------------------


async def test_a_huge_id_in_an_address_is_refused_not_a_server_error(
    app: TelegramBot, emulator: BotApiEmulator, browser: Browser
) -> None:
    """`{id:\\d+}` lets any run of digits through; int() and the database then choke on it."""
    client, csrf = await admin_browser(emulator, browser)
    huge = "9" * 25
    for path, form in (
        (f"/admin/associations/{huge}/pause", {"paused": "1"}),
        (f"/admin/associations/{huge}/capacity", {"capacity": "3"}),
        (f"/admin/coordinators/{huge}/remove", {}),
        (f"/admin/contacts/{huge}", {"verb": "take"}),
    ):
        response = await client.post(path, data={**form, "csrf": csrf}, allow_redirects=False)
        not_a_crash(response.status, await response.text(), path)


async def test_digits_that_are_not_ascii_in_a_form_are_refused_not_a_server_error(
    app: TelegramBot, emulator: BotApiEmulator, browser: Browser
) -> None:
    """str.isdigit() is True for "²" and "١", which int() refuses (or reads as another number)."""
    client, csrf = await admin_browser(emulator, browser)
    first = await association_id(app, FIRST)
    for given in ("²", "٣"):
        capacity = await client.post(
            f"/admin/associations/{first}/capacity",
            data={"capacity": given, "csrf": csrf},
            allow_redirects=False,
        )
        not_a_crash(capacity.status, await capacity.text(), f"capacity {given!r}")
        invite = await client.post(
            "/admin/invites", data={"association": given, "csrf": csrf}, allow_redirects=False
        )
        not_a_crash(invite.status, await invite.text(), f"invite {given!r}")


async def test_dates_at_the_ends_of_the_calendar_fall_back_to_the_default_range(
    app: TelegramBot, emulator: BotApiEmulator, browser: Browser
) -> None:
    """A well-formed but extreme date (the form's date picker allows 9999-12-31)."""
    client, _csrf = await admin_browser(emulator, browser)
    for dates in (
        "start=9999-12-31&end=9999-12-31",
        "start=0001-01-01&end=0001-01-01",
        "start=9999-12-30&end=9999-12-31",
    ):
        for page in (
            "/admin/funnel",
            "/admin/funnel.png",
            "/admin/associations",
            "/admin/exports",
            "/admin/exports/handoffs.csv",
            "/admin/exports/funnel.csv",
        ):
            response = await client.get(f"{page}?{dates}")
            body = await response.read()
            not_a_crash(response.status, body.decode(errors="replace"), f"{page}?{dates}")


async def test_malformed_reversed_and_huge_ranges_and_unknown_filters_show_a_page(
    app: TelegramBot, emulator: BotApiEmulator, browser: Browser
) -> None:
    client, _csrf = await admin_browser(emulator, browser)
    for query in (
        "start=2024-02-30&end=yesterday",
        "start=2025-06-01&end=2024-06-01",
        "start=1900-01-01&end=2100-01-01",
        "start=2024-W01-1&end=2024-W10-1",
        "flow=bogus&language=xx&source=" + "é" * 1000,
        "flow=<script>&language=%00&source=%0d%0aSet-Cookie:x=1",
    ):
        for page in ("/admin/funnel", "/admin/associations", "/admin/exports/handoffs.csv"):
            response = await client.get(f"{page}?{query}")
            body = await response.text()
            assert response.status == 200, (page, query, body[:200])
            assert "<script>" not in body
            assert (
                "Set-Cookie" not in response.headers or "x=1" not in response.headers["Set-Cookie"]
            )
        disposition = (await client.get(f"/admin/exports/funnel.csv?{query}")).headers[
            "Content-Disposition"
        ]
        assert re.fullmatch(
            r'attachment; filename="funnel-\d{4}-\d\d-\d\d-\d{4}-\d\d-\d\d\.csv"', disposition
        )
    assert (await client.get("/admin/funnel.png?flow=bogus")).status == 404


# --- the funnel's charts ---------------------------------------------------------------------


async def test_after_filtering_on_all_flows_each_flow_shows_its_own_chart(
    app: TelegramBot, emulator: BotApiEmulator, browser: Browser
) -> None:
    """The filter form sends `flow=` for "Tous"; each chart's address then has `flow=` twice, and
    the page reads the first, empty one, as the default flow."""
    client, _csrf = await admin_browser(emulator, browser)
    page = await (await client.get("/admin/funnel?start=&end=&flow=&language=&source=")).text()
    sources = dict(
        re.findall(
            r'<section class="flow" id="funnel-(\w+)">.*?<img class="chart" src="([^"]+)"',
            page,
            re.S,
        )
    )
    assert set(sources) == {"mentee", "referral", "mentor"}
    charts = {}
    for flow, src in sources.items():
        response = await client.get(src.replace("&amp;", "&"))
        assert response.status == 200
        charts[flow] = await response.read()
    alone = await (await client.get("/admin/funnel.png?flow=mentor")).read()
    assert charts["mentor"] != charts["mentee"], "both sections show the same chart"
    assert charts["mentor"] == alone


# --- the sign-in link ------------------------------------------------------------------------


async def test_the_sign_in_page_posts_only_to_its_own_link(
    app: TelegramBot, emulator: BotApiEmulator, browser: Browser
) -> None:
    """The token is taken from the address as it comes, encoded slashes included: the page's
    button must not post to another dashboard address (`../../admin/...`)."""
    client = browser()
    for path in (
        "/admin/sign-in/..%2F..%2Fadmin%2Fsign-out",
        "/admin/sign-in/%2E%2E%2F%2E%2E%2Fadmin%2Finvites",
        "/admin/sign-in/" + "A" * 500,
        "/admin/sign-in/%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    ):
        response = await client.get(path)
        html = await response.text()
        assert "<script>alert" not in html
        for action in re.findall(r'<form method="post" action="([^"]+)"', html):
            resolved = urlsplit(str(client.make_url(path).join(client.make_url(action)))).path
            assert resolved.startswith("/admin/sign-in/"), (path, action, resolved)


async def test_two_tabs_opening_one_link_at_once_sign_in_once(
    app: TelegramBot, emulator: BotApiEmulator, browser: Browser
) -> None:
    link = await link_for(Chat(emulator.user(ADMIN, "Sam")))
    clients = [browser() for _ in range(6)]
    # A link preview, a mail scanner and the person's own GET: nothing used up.
    for client in clients:
        assert (await client.get(link)).status == 200
        assert (await client.head(link)).status == 200
    answers = await asyncio.gather(*(c.post(link, allow_redirects=False) for c in clients))
    assert sorted(a.status for a in answers) == [303] + [403] * 5


async def test_a_link_is_refused_after_ten_minutes_and_a_long_or_odd_token_changes_nothing(
    app: TelegramBot, emulator: BotApiEmulator, browser: Browser, clock: Clock
) -> None:
    sam = Chat(emulator.user(ADMIN, "Sam"))
    link = await link_for(sam)
    token = link.rsplit("/", 1)[1]
    client = browser()
    for forged in (
        token + "A",
        token[:-1],
        token.upper(),
        token + "A" * 100,
        "%00" + token,
        "é" * 30,
        "+" + token[1:],
        token[:-1] + "/",
    ):
        assert forged != token
        refused = await client.post(f"/admin/sign-in/{forged}", allow_redirects=False)
        assert refused.status in (403, 404), forged
        assert COOKIE not in refused.cookies
    clock.offset = timedelta(minutes=10, seconds=1)
    assert (await client.post(link, allow_redirects=False)).status == 403
    # A new one, used at 9 min 59 s: still good, and it was the real token all along.
    clock.offset = timedelta()
    link = await link_for(sam)
    clock.offset = timedelta(minutes=9, seconds=59)
    assert (await client.post(link, allow_redirects=False)).status == 303


async def test_a_link_made_for_a_coordinator_removed_before_using_it_signs_nobody_in(
    app: TelegramBot, emulator: BotApiEmulator, browser: Browser
) -> None:
    camille = await join(app, emulator, 900001, "Camille", FIRST)
    link = await link_for(camille)
    admin, csrf = await admin_browser(emulator, browser)
    page = await (await admin.get("/admin/coordinators")).text()
    coordinator_id = re.search(r'data-id="(\d+)"', page).group(1)  # type: ignore[union-attr]
    await admin.post(f"/admin/coordinators/{coordinator_id}/remove", data={"csrf": csrf})
    hers = browser()
    refused = await hers.post(link, allow_redirects=False)
    assert refused.status == 403
    assert COOKIE not in refused.cookies
    assert (await hers.get("/admin/contacts")).status == 403


async def test_no_sign_in_token_in_the_logs_even_at_debug(
    emulator: BotApiEmulator,
    sqlite_url: str,
    captured: Everything,
) -> None:
    """Through the server `mentorat-bot run` starts (polling mode), logging configured as it does:
    the link used, reused, mistyped, and a sign-in that fails on the database."""
    configure_logging("DEBUG")
    port = free_port()
    settings = settings_for(emulator, sqlite_url).model_copy(
        update={"admin_telegram_ids": (ADMIN,), "web_port": port}
    )
    base = f"http://127.0.0.1:{port}"
    async with (
        running(build_bot(settings)) as bot,
        operations_server(bot, settings),
        ClientSession(base) as client,
    ):
        link = await link_for(Chat(emulator.user(ADMIN, "Sam")))
        assert (await client.get(link)).status == 200
        assert (await client.post(link, allow_redirects=False)).status == 303
        await client.post(link, allow_redirects=False)  # used: refused, logged
        await client.post(link + "x", allow_redirects=False)
        await client.get("/admin/?lang=en")
        other = await link_for(Chat(emulator.user(ADMIN, "Sam")))
        async with bot.services.unit_of_work() as uow:
            await uow.session.execute(text("DROP TABLE sign_in_links"))  # type: ignore[attr-defined]
            await uow.commit()
        failed = await client.post(other, allow_redirects=False)
        assert failed.status >= 500
    tokens = [link.rsplit("/", 1)[1], other.rsplit("/", 1)[1]]
    assert captured.lines
    leaked = [line for line in captured.lines if any(t in line for t in tokens)]
    assert not leaked, leaked[:3]


async def test_a_sent_sign_in_link_is_not_kept_in_clear_in_the_database(
    app: TelegramBot, emulator: BotApiEmulator
) -> None:
    """The links are stored hashed so that a copy of the database signs nobody in; the message
    that carried the link must not keep it in clear once Telegram has it."""
    link = await link_for(Chat(emulator.user(ADMIN, "Sam")))
    token = link.rsplit("/", 1)[1]
    await asyncio.sleep(0.3)  # the relay records the send
    async with app.services.unit_of_work() as uow:
        session = uow.session  # type: ignore[attr-defined]
        tables = ("outbox",)
        found = []
        for table in tables:
            rows = (await session.execute(text(f"SELECT * FROM {table}"))).all()
            found += [table for row in rows if token in repr(tuple(row))]
    assert not found, f"the sign-in token is stored in clear in {found}"


# --- cookies -------------------------------------------------------------------------------


async def test_forged_tampered_and_replayed_cookies_sign_nobody_in(
    app: TelegramBot, emulator: BotApiEmulator, browser: Browser, clock: Clock
) -> None:
    client = browser()
    await signed_in(client, await link_for(Chat(emulator.user(ADMIN, "Sam"))))
    genuine = client.session.cookie_jar.filter_cookies(client.make_url("/admin/"))[COOKIE].value
    body, signature = genuine.split(".")
    mine = Signer.for_bot(None, TOKEN)
    others = Signer.for_bot(None, "654321:ANOTHER-bot")
    secret = Signer.for_bot("a dashboard secret of more than 32 characters", TOKEN)

    def session_of(expires: datetime) -> dict[str, object]:
        # What a session cookie holds (with every field a version of it has had).
        return {"id": ADMIN, "sid": 1, "exp": int(expires.timestamp()), "csrf": "x"}

    flash_as_session = mine.sign({"msgid": "x", "params": {}}, "flash")
    session_signed_as_flash = mine.sign({"id": ADMIN, "exp": 2**40, "csrf": "x"}, "flash")
    forged = [
        others.sign(session_of(clock() + timedelta(hours=1)), "session"),
        secret.sign(session_of(clock() + timedelta(hours=1)), "session"),
        mine.sign(session_of(clock() - timedelta(seconds=1)), "session"),
        flash_as_session,
        session_signed_as_flash,
        body + "." + signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB"),
        body[:-2] + "AA." + signature,
        body + "." + signature + "." + signature,
        body + "%00." + signature,
        "é" * 100,
        "x" * 5000,
        body + "." + signature + "=" * 3000,
        mine.sign([ADMIN, 2**40, "x"], "session"),
        mine.sign({"id": "999", "exp": "soon", "csrf": "x"}, "session"),
    ]
    for cookie in forged:
        stranger = browser()
        stranger.session.cookie_jar.update_cookies({COOKIE: cookie})
        response = await stranger.get("/admin/")
        not_a_crash(response.status, await response.text(), cookie[:40])
        assert response.status == 403, cookie[:40]
    # The session cookie as a flash shows nothing and breaks nothing.
    replayed = browser()
    replayed.session.cookie_jar.update_cookies({COOKIE: genuine, FLASH_COOKIE: genuine})
    page = await replayed.get("/admin/")
    assert page.status == 200
    assert 'class="flash"' not in await page.text()
    # Eight hours later the genuine one is dead too.
    clock.offset = timedelta(hours=8, seconds=1)
    assert (await client.get("/admin/")).status == 403


async def test_two_processes_of_one_bot_share_sessions_and_another_secret_does_not(
    app: TelegramBot, emulator: BotApiEmulator, browser: Browser
) -> None:
    client = browser()
    await signed_in(client, await link_for(Chat(emulator.user(ADMIN, "Sam"))))
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/admin/"))[COOKIE].value
    same = dashboard_of(app)
    other_secret = dataclasses.replace(
        same,
        settings=same.settings.model_copy(
            update={"dashboard_secret": SecretStr("set on one replica only, not on the other")}
        ),
    )
    for dashboard, expected in ((same, 200), (other_secret, 403)):
        server = await serve(dashboard)
        peer = TestClient(server)
        try:
            peer.session.cookie_jar.update_cookies({COOKIE: cookie})
            response = await peer.get("/admin/")
            assert response.status == expected
        finally:
            await peer.close()
            await server.close()


async def test_a_language_cookie_or_parameter_that_is_not_a_language_is_ignored(
    app: TelegramBot, emulator: BotApiEmulator, browser: Browser
) -> None:
    client, _csrf = await admin_browser(emulator, browser)
    for query, cookie, accept in (
        ("lang=%3Cscript%3E", "xx", "zz-ZZ;q=1"),
        ("lang=", "fr\r\nSet-Cookie: evil=1", "<script>"),
        ("lang=en%00", "é" * 3000, "," * 5000),
    ):
        client.session.cookie_jar.update_cookies({"mentorat_dashboard_lang": cookie})
        response = await client.get(f"/admin/?{query}", headers={"Accept-Language": accept})
        html = await response.text()
        assert response.status == 200
        assert "<script>" not in html
        assert "evil" not in response.headers.get("Set-Cookie", "")


async def test_signing_out_ends_the_session_not_only_the_cookie_in_this_browser(
    app: TelegramBot, emulator: BotApiEmulator, browser: Browser
) -> None:
    """A copy of the cookie (another browser profile, a stolen one, a shared computer's backup)
    stays good for the rest of its 8 hours after "Se déconnecter"."""
    client, csrf = await admin_browser(emulator, browser)
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/admin/"))[COOKIE].value
    out = await client.post("/admin/sign-out", data={"csrf": csrf}, allow_redirects=False)
    assert out.status == 303
    assert (await client.get("/admin/")).status == 403
    copy = browser()
    copy.session.cookie_jar.update_cookies({COOKIE: cookie})
    assert (await copy.get("/admin/")).status == 403, "the signed-out session still opens pages"


def test_a_dashboard_secret_too_short_to_resist_guessing_is_refused() -> None:
    """A coordinator has a genuine cookie: with it, a short DASHBOARD_SECRET is found offline,
    and then a session for an admin's Telegram id can be signed."""
    with pytest.raises(ValueError, match=r"(?i)dashboard_secret"):
        Settings(telegram_bot_token=SecretStr(TOKEN), dashboard_secret=SecretStr("abc"))


async def test_the_address_in_the_readme_opens_the_dashboard(
    app: TelegramBot, emulator: BotApiEmulator, browser: Browser
) -> None:
    """README and Caddyfile: the dashboard is "at /admin"; typed without its slash, a 404."""
    client, _csrf = await admin_browser(emulator, browser)
    response = await client.get("/admin")
    assert response.status == 200, response.status
    assert "Aperçu de la semaine" in await response.text()


# --- CSRF and cross-site posts ---------------------------------------------------------------


async def test_a_csrf_token_of_another_session_or_a_cross_site_origin_changes_nothing(
    app: TelegramBot, emulator: BotApiEmulator, browser: Browser
) -> None:
    mine, my_csrf = await admin_browser(emulator, browser)
    _theirs, their_csrf = await admin_browser(emulator, browser)
    assert my_csrf != their_csrf
    first = await association_id(app, FIRST)
    pause = f"/admin/associations/{first}/pause"
    for client, csrf, headers in (
        (mine, their_csrf, {}),
        (mine, my_csrf, {"Origin": "null"}),
        (mine, my_csrf, {"Origin": "https://evil.example"}),
        (mine, my_csrf, {"Origin": f"http://{mine.host}:{mine.port}.evil.example"}),
        (mine, [their_csrf, my_csrf], {}),
    ):
        data: Any = (
            [("paused", "1"), *[("csrf", c) for c in csrf]]
            if isinstance(csrf, list)
            else {"paused": "1", "csrf": csrf}
        )
        refused = await client.post(pause, data=data, headers=headers, allow_redirects=False)
        assert refused.status == 403, headers
    # The sign-in form from another site (signing a victim into the attacker's account): refused.
    link = await link_for(Chat(emulator.user(ADMIN, "Sam")))
    victim = browser()
    refused = await victim.post(
        link, headers={"Origin": "https://evil.example"}, allow_redirects=False
    )
    assert refused.status == 403
    assert COOKIE not in refused.cookies
    # The same-site post with the right token still works.
    done = await mine.post(
        pause,
        data={"paused": "1", "csrf": my_csrf},
        headers={"Origin": f"http://{mine.host}:{mine.port}"},
        allow_redirects=False,
    )
    assert done.status == 303
    async with app.services.unit_of_work() as uow:
        assert [r.id for r in await uow.catalog.records() if r.paused] == [first]


# --- a coordinator editing ids and forms -------------------------------------------------------


async def test_a_coordinator_cannot_reach_another_association_by_editing_ids(
    app: TelegramBot,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],
    browser: Browser,
) -> None:
    camille = await join(app, emulator, 900001, "Camille", FIRST)
    léo = await join(app, emulator, 900002, "Léo", SECOND)
    await complete_sign_up(person)  # a contact for Proxité: not Léo's
    # Its card delivered and recorded so: the status read below no longer moves on its own.
    await camille.user.wait_for_message(lambda m: "Nouveau contact" in (m.text or ""))
    for _ in range(100):
        if [h.status for h in await stored_handoffs(app)] == ["delivered"]:
            break
        await asyncio.sleep(0.02)
    client = browser()
    await signed_in(client, await link_for(léo))
    csrf = csrf_of(await (await client.get("/admin/associations")).text())
    first = await association_id(app, FIRST)
    [handoff] = await stored_handoffs(app)
    async with app.services.unit_of_work() as uow:
        camille_id = (await uow.coordinators.find(first, 900001)).id  # type: ignore[union-attr]
    for path, form in (
        (f"/admin/associations/{first}/capacity", {"capacity": "0"}),
        (f"/admin/associations/{first}/pause", {"paused": "1"}),
        (f"/admin/coordinators/{camille_id}/remove", {}),
        ("/admin/invites", {"association": str(first)}),
        (f"/admin/contacts/{handoff.id}", {"verb": "take"}),
        (f"/admin/contacts/{handoff.id}", {"verb": "decline", "reason": "capacity"}),
    ):
        response = await client.post(path, data={**form, "csrf": csrf})
        html = await response.text()
        assert "C'est à vous" not in html, path
        assert "Invitation pour" not in html, path
    for page in ("/admin/coordinators", "/admin/contacts", "/admin/associations"):
        html = await (await client.get(page)).text()
        for other in ("Camille", "Inès", "Proxité"):
            assert other not in html, (page, other)
    for admin_only in ("/admin/funnel.png", "/admin/exports/funnel.csv", "/admin/audit"):
        assert (await client.get(admin_only)).status == 403, admin_only
    [after] = await stored_handoffs(app)
    assert after.status == handoff.status
    assert after.taken_by is None
    async with app.services.unit_of_work() as uow:
        record = await uow.catalog.get(first)
        assert record is not None
        assert not record.paused
        assert record.weekly_capacity is None
        assert (await uow.coordinators.find(first, 900001)).active  # type: ignore[union-attr]


async def test_forged_verbs_and_reasons_change_nothing_and_a_double_take_is_harmless(
    app: TelegramBot,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],
    browser: Browser,
) -> None:
    camille = await join(app, emulator, 900001, "Camille", FIRST)
    await complete_sign_up(person)
    await camille.user.wait_for_message(lambda m: "Nouveau contact" in (m.text or ""))
    client = browser()
    await signed_in(client, await link_for(camille))
    page = await (await client.get("/admin/contacts")).text()
    csrf = csrf_of(page)
    [handoff] = await stored_handoffs(app)
    address = f"/admin/contacts/{handoff.id}"
    for form in (
        {"verb": "keep"},
        {"verb": "delete"},
        {"verb": ""},
        {},
        {"verb": "decline"},
        {"verb": "decline", "reason": "<script>alert(1)</script>"},
        {"verb": "decline", "reason": "capacity" * 100},
        {"verb": "take", "reason": "capacity"},
        {"verb": "TAKE"},
    ):
        response = await client.post(address, data={**form, "csrf": csrf})
        not_a_crash(response.status, await response.text(), repr(form))
    [unchanged] = await stored_handoffs(app)
    assert unchanged.status == handoff.status
    assert unchanged.decline_reason is None
    # The same take twice at once (a double click): one take, no error page.
    answers = await asyncio.gather(
        *(client.post(address, data={"verb": "take", "csrf": csrf}) for _ in range(2))
    )
    for answer in answers:
        not_a_crash(answer.status, await answer.text(), "double take")
    [taken] = await stored_handoffs(app)
    assert taken.status == "taken"
    async with app.services.unit_of_work() as uow:
        takes = [e for e in await uow.audit.recent(50) if e.action == "handoff_take"]
    assert len(takes) == 1


async def test_a_removed_coordinators_open_page_can_no_longer_act(
    app: TelegramBot,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],
    browser: Browser,
) -> None:
    camille = await join(app, emulator, 900001, "Camille", FIRST)
    await join(app, emulator, 900002, "Karim", FIRST)
    await complete_sign_up(person)
    hers = browser()
    await signed_in(hers, await link_for(camille))
    page = await (await hers.get("/admin/contacts")).text()
    [handoff] = await stored_handoffs(app)
    first = await association_id(app, FIRST)
    async with app.services.unit_of_work() as uow:
        coordinator = await uow.coordinators.find(first, 900001)
        assert coordinator is not None
    admin, csrf = await admin_browser(emulator, browser)
    await admin.post(f"/admin/coordinators/{coordinator.id}/remove", data={"csrf": csrf})
    # Her tab was open with a valid CSRF token: the take and the pause are refused all the same.
    for path, form in (
        (f"/admin/contacts/{handoff.id}", {"verb": "take"}),
        (f"/admin/associations/{coordinator.association_id}/pause", {"paused": "1"}),
        ("/admin/invites", {"association": str(coordinator.association_id)}),
    ):
        refused = await hers.post(path, data={**form, "csrf": csrf_of(page)}, allow_redirects=False)
        assert refused.status == 403, path
    [after] = await stored_handoffs(app)
    assert after.taken_by is None


# --- what people typed, shown on the pages -------------------------------------------------------


async def test_a_hostile_coordinator_name_is_shown_escaped_everywhere(
    app: TelegramBot,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],
    browser: Browser,
) -> None:
    mallory = await join(app, emulator, 900001, HOSTILE_NAME, FIRST)
    camille = await join(app, emulator, 900002, "Camille", FIRST)
    await complete_sign_up(person)
    await camille.user.wait_for_message(lambda m: "Nouveau contact" in (m.text or ""))
    hers = browser()
    await signed_in(hers, await link_for(mallory))
    page = await (await hers.get("/admin/contacts")).text()
    assert "<img src=x" not in page  # her own name in the header
    [handoff] = await stored_handoffs(app)
    await hers.post(f"/admin/contacts/{handoff.id}", data={"verb": "take", "csrf": csrf_of(page)})
    # Camille tries to take it too: the toast names the taker.
    other = browser()
    await signed_in(other, await link_for(camille))
    page = await (await other.get("/admin/contacts")).text()
    assert "<img src=x" not in page
    toast = await other.post(
        f"/admin/contacts/{handoff.id}", data={"verb": "take", "csrf": csrf_of(page)}
    )
    html = await toast.text()
    assert "Déjà pris par" in html
    assert "<img src=x" not in html
    assert "&lt;img src=x" in html
    admin, _csrf = await admin_browser(emulator, browser)
    for path in ("/admin/coordinators", "/admin/contacts", "/admin/audit"):
        html = await (await admin.get(path)).text()
        assert "<img src=x" not in html, path


async def test_the_exports_name_nobody_and_a_source_cannot_become_a_formula(
    app: TelegramBot,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],
    browser: Browser,
) -> None:
    await join(app, emulator, 900001, "Camille", FIRST)
    young = person(4242, "Inès")
    young.user.phone_number = "+33612345678"
    await young.starts("-2-3")
    await young.starts("=cmd")  # not a deep-link payload: ignored
    await complete_sign_up(person, user_id=4243)
    client, _csrf = await admin_browser(emulator, browser)
    for path in ("/admin/exports/handoffs.csv", "/admin/exports/funnel.csv"):
        response = await client.get(path)
        assert response.status == 200
        csv_text = await response.text()
        for private in ("Inès", "33612345678", "612345678", "Camille", "Sam"):
            assert private not in csv_text, (path, private)
        for line in csv_text.splitlines():
            for cell in line.split(","):
                assert cell[:1] not in ("=", "+", "-", "@"), (path, line)
    funnel = await (await client.get("/admin/funnel")).text()
    assert "Inès" not in funnel


# --- an empty database, a missing association, a database that stops answering -------------------


async def test_every_page_answers_on_a_fresh_database_and_after_an_association_is_removed(
    app: TelegramBot, emulator: BotApiEmulator, browser: Browser
) -> None:
    client, _csrf = await admin_browser(emulator, browser)
    pages = (
        "/admin/",
        "/admin/funnel",
        "/admin/funnel.png",
        "/admin/funnel.png?flow=mentor",
        "/admin/associations",
        "/admin/coordinators",
        "/admin/contacts",
        "/admin/exports",
        "/admin/exports/handoffs.csv",
        "/admin/exports/funnel.csv",
        "/admin/audit",
    )
    for path in pages:
        response = await client.get(path)
        assert response.status == 200, path
        await response.read()
    await join(app, emulator, 900001, "Camille", SECOND)
    async with app.services.unit_of_work() as uow:
        session = uow.session  # type: ignore[attr-defined]
        from storage.tables import associations

        await session.execute(associations.delete().where(associations.c.slug == SECOND))
        await uow.commit()
    for path in pages:
        response = await client.get(path)
        assert response.status == 200, path
        await response.read()


async def test_a_database_that_stops_answering_shows_no_trace_and_keeps_the_safety_headers(
    app: TelegramBot, emulator: BotApiEmulator, browser: Browser
) -> None:
    client, _csrf = await admin_browser(emulator, browser)
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/admin/"))[COOKIE].value

    class Down:
        async def __aenter__(self) -> Any:
            raise OSError("connection refused")

        async def __aexit__(self, *_: object) -> None:
            return None

    broken = dataclasses.replace(app.services, unit_of_work=cast(Any, lambda: Down()))
    dashboard = dataclasses.replace(dashboard_of(app), services=lambda: broken)
    server = await serve(dashboard)
    peer = TestClient(server)
    try:
        peer.session.cookie_jar.update_cookies({COOKIE: cookie})
        for path in ("/admin/", "/admin/contacts", "/admin/exports/handoffs.csv"):
            response = await peer.get(path)
            body = await response.text()
            assert "Traceback" not in body
            assert "connection refused" not in body
            assert response.status in (500, 503)
            assert response.headers.get("Cache-Control") == "no-store", path
            assert response.headers.get("X-Frame-Options") == "DENY", path
            assert response.content_type == "text/html", path
    finally:
        await peer.close()
        await server.close()


async def test_a_database_failing_in_the_middle_of_an_export_writes_no_second_answer_into_it(
    app: TelegramBot, emulator: BotApiEmulator, browser: Browser
) -> None:
    """The export's 200 and its first bytes are sent before its rows are read: a failure then
    must end the transfer (the browser marks the download failed), not append a 503 page to
    the chunked body, which no client can parse (and a proxy reusing the connection misreads)."""
    client, _csrf = await admin_browser(emulator, browser)
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/admin/"))[COOKIE].value
    real = app.services.unit_of_work
    opened = 0

    class Down:
        async def __aenter__(self) -> Any:
            raise OSError("connection refused")

        async def __aexit__(self, *_: object) -> None:
            return None

    def fails_after_the_audit_line() -> Any:
        # 1: the guard reads the session; 2: the export's audit line; 3: its first rows.
        nonlocal opened
        opened += 1
        return real() if opened <= 2 else Down()

    broken = dataclasses.replace(app.services, unit_of_work=cast(Any, fails_after_the_audit_line))
    server = await serve(dataclasses.replace(dashboard_of(app), services=lambda: broken))
    peer = TestClient(server)
    try:
        peer.session.cookie_jar.update_cookies({COOKIE: cookie})
        response = await peer.get("/admin/exports/handoffs.csv")
        assert response.status == 200
        try:
            body = await response.read()
        except ClientPayloadError:
            return  # the transfer ends unfinished: what a failed download looks like
        except ClientResponseError as error:
            pytest.fail(f"the export's body is not HTTP any more: {error.message[:120]}")
        assert b"HTTP/1.1" not in body
    finally:
        await peer.close()
        await server.close()


async def test_the_csv_exports_carry_the_pages_safety_headers(
    app: TelegramBot, emulator: BotApiEmulator, browser: Browser
) -> None:
    """A download of pseudonymised data must not be kept by a browser's or a proxy's cache."""
    client, _csrf = await admin_browser(emulator, browser)
    for path in ("/admin/exports/handoffs.csv", "/admin/exports/funnel.csv?lang=en"):
        response = await client.get(path)
        assert response.status == 200
        await response.read()
        assert response.headers.get("Cache-Control") == "no-store", path
        assert response.headers.get("X-Content-Type-Options") == "nosniff", path


# --- two coordinators at once, on PostgreSQL ---------------------------------------------------


@pytest.fixture
async def pg_app(
    emulator: BotApiEmulator,
    postgres_url: str,
    clock: Clock,
) -> AsyncIterator[TelegramBot]:
    settings = settings_for(emulator, postgres_url).model_copy(
        update={"admin_telegram_ids": (ADMIN,)}
    )
    async with running(build_bot(settings, clock=clock)) as running_bot:
        yield running_bot


@pytest.mark.postgres
async def test_two_coordinators_taking_at_once_from_the_web_get_a_toast_each(
    pg_app: TelegramBot, emulator: BotApiEmulator, person: Callable[..., Chat]
) -> None:
    app = pg_app
    camille = await join(app, emulator, 900001, "Camille", FIRST)
    karim = await join(app, emulator, 900002, "Karim", FIRST)
    await complete_sign_up(person)
    await camille.user.wait_for_message(lambda m: "Nouveau contact" in (m.text or ""))
    await karim.user.wait_for_message(lambda m: "Nouveau contact" in (m.text or ""))
    server = await serve(dashboard_of(app))
    clients = [TestClient(server), TestClient(server)]
    try:
        forms = []
        for client, who in zip(clients, (camille, karim), strict=True):
            await signed_in(client, await link_for(who))
            forms.append(csrf_of(await (await client.get("/admin/contacts")).text()))
        [handoff] = await stored_handoffs(app)
        for _attempt in range(5):
            answers = await asyncio.gather(
                *(
                    c.post(f"/admin/contacts/{handoff.id}", data={"verb": "take", "csrf": f})
                    for c, f in zip(clients, forms, strict=True)
                )
            )
            texts = [await a.text() for a in answers]
            for answer, text in zip(answers, texts, strict=True):
                not_a_crash(answer.status, text, "concurrent take")
            [now] = await stored_handoffs(app)
            if now.status == "taken":
                break
        assert sum("C'est à vous" in t for t in texts) <= 1
    finally:
        for client in clients:
            await client.close()
        await server.close()


@pytest.mark.postgres
async def test_a_huge_id_in_an_address_is_refused_on_postgresql_too(
    pg_app: TelegramBot, emulator: BotApiEmulator
) -> None:
    server = await serve(dashboard_of(pg_app))
    client = TestClient(server)
    try:
        await signed_in(client, await link_for(Chat(emulator.user(ADMIN, "Sam"))))
        csrf = csrf_of(await (await client.get("/admin/associations")).text())
        for path in (f"/admin/associations/{2**63}/pause", f"/admin/contacts/{2**63}"):
            response = await client.post(
                path, data={"paused": "1", "verb": "take", "csrf": csrf}, allow_redirects=False
            )
            not_a_crash(response.status, await response.text(), path)
    finally:
        await client.close()
        await server.close()


@pytest.mark.postgres
async def test_two_tabs_on_one_link_sign_in_once_on_postgresql(
    pg_app: TelegramBot, emulator: BotApiEmulator
) -> None:
    server = await serve(dashboard_of(pg_app))
    clients = [TestClient(server) for _ in range(8)]
    try:
        link = await link_for(Chat(emulator.user(ADMIN, "Sam")))
        answers = await asyncio.gather(*(c.post(link, allow_redirects=False) for c in clients))
        assert sorted(a.status for a in answers) == [303] + [403] * 7
    finally:
        for client in clients:
            await client.close()
        await server.close()


@pytest.mark.postgres
async def test_every_page_answers_on_a_fresh_postgresql_database(
    pg_app: TelegramBot, emulator: BotApiEmulator
) -> None:
    server = await serve(dashboard_of(pg_app))
    client = TestClient(server)
    try:
        await signed_in(client, await link_for(Chat(emulator.user(ADMIN, "Sam"))))
        for path in (
            "/admin/",
            "/admin/funnel?source=" + "x" * 64,
            "/admin/funnel.png?flow=mentor&language=en",
            "/admin/associations",
            "/admin/coordinators",
            "/admin/contacts",
            "/admin/exports/handoffs.csv",
            "/admin/exports/funnel.csv",
            "/admin/audit",
        ):
            response = await client.get(path)
            assert response.status == 200, path
            await response.read()
        logging.getLogger(__name__).info("pages fine")
    finally:
        await client.close()
        await server.close()
