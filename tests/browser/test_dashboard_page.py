"""The staff dashboard in a real browser (Debian's Chromium), on the sandbox `make run` starts.

A known set of conversations goes through the real bot first (a finished sign-up with a refused
answer and a Back press, a decline and its re-route, a take, a questionnaire left for a day), then
an admin signs in with the link /dashboard sends, reads every figure, pauses an association and
invites a coordinator, who signs in and sees only their association.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from bot.sandbox.emulator import BotApiEmulator
from bot.sandbox.runner import ADMIN_PERSONA, run_sandbox
from bot.settings import Settings
from tests.browser.test_sandbox_page import CHROMIUM, free_port, screenshots  # noqa: F401
from tests.e2e.conftest import Chat

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium"
    ),
]

PARIS = ZoneInfo("Europe/Paris")
CAMILLE = 900001


class Clock:
    """Tuesday 10:00 (Paris) of this week, then on as real time goes: a day can be skipped
    without leaving the week the overview counts."""

    def __init__(self) -> None:
        now = datetime.now(UTC)
        today = now.astimezone(PARIS).date()
        tuesday = today - timedelta(days=today.weekday()) + timedelta(days=1)
        self.offset = datetime.combine(tuesday, time(10), PARIS).astimezone(UTC) - now

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class Sandbox:
    url: str
    emulator: BotApiEmulator
    clock: Clock


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    port = free_port()
    ready = asyncio.Event()
    emulators: list[BotApiEmulator] = []
    clock = Clock()

    async def on_ready(emulator: BotApiEmulator) -> None:
        emulators.append(emulator)

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'sandbox.db'}")
    task = asyncio.create_task(
        run_sandbox(settings, "127.0.0.1", port, ready=ready, on_ready=on_ready, clock=clock)
    )
    waiting = asyncio.create_task(ready.wait())
    await asyncio.wait({task, waiting}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
    assert ready.is_set(), "the sandbox did not start within 30 s"
    yield Sandbox(f"http://127.0.0.1:{port}", emulators[-1], clock)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield launched
        await launched.close()


async def new_page(browser: Browser, width: int = 1200) -> tuple[BrowserContext, Page, list[str]]:
    context = await browser.new_context(viewport={"width": width, "height": 900}, locale="fr-FR")
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return context, page, errors


async def sign_up_with_a_slip(chat: Chat) -> None:
    """The 17-year-old of Saint-Denis, who types her age in words first and goes back once."""
    await chat.starts("ecole_93", expect="Collectif Mentorat")
    await chat.taps("Je cherche un·e mentor·e", expect="prénom")
    await chat.says("Inès", expect="âge")
    refused = await chat.says("dix-sept")
    assert "âge" in (refused.text or "")
    await chat.says("17", expect="code postal")
    await chat.says("93200", expect="Où en es-tu")
    await chat.taps("Retour", expect="code postal")
    await chat.says("93200", expect="Où en es-tu")
    await chat.taps("Lycée professionnel", expect="accompagné")
    await chat.toggles("Orientation")
    await chat.taps("Valider", expect="rencontrer")
    await chat.taps("Les deux me vont", expect="quartier prioritaire")
    await chat.taps("Passer", expect="joindre")
    await chat.taps("Par e-mail", expect="e-mail")
    await chat.says("ines@example.org", expect="Dernière question")
    await chat.taps("Oui, je suis d'accord", expect="Tes réponses")
    await chat.taps("C'est bon, j'envoie", expect="Merci")


async def known_conversations(sandbox: Sandbox) -> tuple[str, str]:
    """Returns the names of the association that declined and of the one that took."""
    emulator = sandbox.emulator
    # Léa stops after her first name: a day later, she counts as stopped at "age".
    lea = Chat(emulator.user(5002, "Léa"))
    await lea.starts(None, expect="Collectif Mentorat")
    await lea.taps("Je cherche un·e mentor·e", expect="prénom")
    await lea.says("Léa", expect="âge")
    await sign_up_with_a_slip(Chat(emulator.user(5001, "Inès")))
    # Camille declines the first association's card (full): it goes to the next one, she takes it.
    camille = Chat(emulator.user(CAMILLE, "Camille"))
    first = await camille.user.wait_for_message(lambda m: "Nouveau contact" in (m.text or ""))
    declined = _association_of(first.text)
    camille.user.press("Refuser", message_id=first.message_id)
    await camille.user.next_edit(message_id=first.message_id)
    camille.user.press("Complet", message_id=first.message_id)
    second = await camille.user.wait_for_message(
        lambda m: "Nouveau contact" in (m.text or "") and m.message_id != first.message_id
    )
    taken = _association_of(second.text)
    assert taken != declined
    camille.user.press("🙋 Je m'en occupe", message_id=second.message_id)
    # The take is stored before its toast is shown (earlier presses had toasts of their own).
    while "C'est à vous" not in ((await camille.user.next_toast()).text or ""):
        pass
    sandbox.clock.offset += timedelta(hours=25)
    return declined, taken


def _association_of(card: str | None) -> str:
    found = re.search(r"Nouveau contact n° \d+ pour (.+)", card or "")
    assert found is not None, card
    return found.group(1).strip()


async def sign_in_link(sandbox: Sandbox, telegram_id: int, name: str) -> str:
    chat = Chat(sandbox.emulator.user(telegram_id, name))
    reply = await chat.says("/dashboard", expect="tableau de bord")
    found = re.search(r"http://\S+/admin/sign-in/[A-Za-z0-9_-]+", reply.text or "")
    assert found is not None, reply.text
    return found.group(0)


async def sign_in(page: Page, link: str) -> None:
    await page.goto(link)
    await page.get_by_role("button", name="Ouvrir le tableau de bord").click()


async def cells(page: Page, selector: str) -> list[str]:
    return [text.strip() for text in await page.locator(f"{selector} td").all_inner_texts()]


async def test_an_admin_reads_every_figure_pauses_an_association_and_invites_a_coordinator(
    sandbox: Sandbox,
    browser: Browser,
    screenshots: Path,  # noqa: F811
) -> None:
    declined, taken = await known_conversations(sandbox)
    link = await sign_in_link(sandbox, ADMIN_PERSONA, "Sam")
    context, page, errors = await new_page(browser)
    await sign_in(page, link)

    # Overview: this week's sign-ups, contacts, delays.
    await expect(page.get_by_role("heading", name="Aperçu de la semaine")).to_be_visible()
    assert await cells(page, '#sign-ups tr[data-flow="mentee"][data-language="fr"]') == [
        "Jeunes",
        "fr",
        "2",
        "1",
        "0",
        "0",
    ]
    assert await page.locator("#waiting .figure").inner_text() == "0"
    assert await page.locator("#taken .figure").inner_text() == "1"
    assert await page.locator("#declined .figure").inner_text() == "1"
    assert await page.locator("#rerouted .figure").inner_text() == "1"
    assert await page.locator("#median .figure").inner_text() == "0 h"
    assert await page.locator("#dead .figure").inner_text() == "0"
    await page.screenshot(path=str(screenshots / "dashboard-overview.png"), full_page=True)

    # Funnel: every step of the young people's flow.
    await page.get_by_role("link", name="Parcours").click()
    flow = page.locator("#funnel-mentee")
    expected = {
        # step: reached, answered, refused, back, stopped there
        "first_name": ["2", "2", "0", "0", "0"],
        "age": ["2", "1", "1", "0", "1"],
        "postal_code": ["1", "1", "0", "0", "0"],
        "situation": ["1", "1", "0", "1", "0"],
        "needs": ["1", "1", "0", "0", "0"],
        "consent": ["1", "1", "0", "0", "0"],
        "parent_name": ["0", "0", "0", "0", "0"],
    }
    for step, figures in expected.items():
        shown = await cells(page, f'#funnel-mentee tr[data-step="{step}"]')
        assert shown[1:] == figures, (step, shown)
    chart = flow.locator("img.chart")
    await expect(chart).to_be_visible()
    # Drawn on request (matplotlib): wait for it, then check it is a real 960 px wide image.
    loaded = "i => i.complete ? i.naturalWidth : new Promise(r => { i.onload = () => r(i.naturalWidth); i.onerror = () => r(-1); })"
    assert await chart.evaluate(loaded) == 960
    await page.screenshot(path=str(screenshots / "dashboard-funnel.png"), full_page=True)
    # A filter on the source keeps Inès (ecole_93) only.
    await page.get_by_label("Venu·e par").select_option("ecole_93")
    await page.get_by_role("button", name="Filtrer").click()
    assert (await cells(page, '#funnel-mentee tr[data-step="first_name"]'))[1:3] == ["1", "1"]

    # Associations: the decline, the take, then a pause from the page.
    await page.get_by_role("link", name="Associations").click()
    proxite = page.locator("#associations tbody tr", has_text=declined)
    await expect(proxite.locator(".declines")).to_have_text("Complet : 1")
    await expect(proxite.locator(".capacity")).to_contain_text("1 /")
    await expect(proxite.locator(".waiting")).to_have_text("0")
    telemaque = page.locator("#associations tbody tr", has_text=taken)
    await expect(telemaque.locator(".waiting")).to_have_text("0")
    # Taken within seconds of its re-route.
    await expect(telemaque.locator(".median")).to_have_text("0 h")
    await expect(telemaque.locator(".p90")).to_have_text("0 h")
    await expect(page.locator("#gaps")).to_contain_text("Chaque profil a trouvé une association")
    await proxite.get_by_role("button", name="Mettre en pause").click()
    await expect(page.locator(".flash")).to_contain_text(f"{declined} est en pause")
    await expect(proxite.locator(".state")).to_contain_text("En pause")
    await page.screenshot(path=str(screenshots / "dashboard-associations.png"), full_page=True)

    # Contacts: pseudonymised for the Collectif's team.
    await page.get_by_role("link", name="Contacts").click()
    await expect(page.locator(".contact")).to_have_count(1)
    await expect(page.locator(".contact")).to_contain_text(taken)
    await expect(page.locator("main")).not_to_contain_text("Inès")
    await expect(page.locator("main")).not_to_contain_text("ines@example.org")
    await page.screenshot(path=str(screenshots / "dashboard-contacts.png"), full_page=True)

    # An invite for Télémaque: a link and its QR code; Léo joins with it.
    await page.get_by_role("link", name="Coordinateurs").click()
    await page.get_by_label("Inviter un coordinateur pour").select_option(label=taken)
    await page.get_by_role("button", name="Créer une invitation").click()
    invite = await page.locator("#invite-link").get_attribute("href")
    assert invite is not None
    await expect(page.locator("img.qr")).to_be_visible()
    await page.screenshot(path=str(screenshots / "dashboard-invite.png"), full_page=True)
    leo = Chat(sandbox.emulator.user(900077, "Léo"))
    await leo.starts(invite.split("start=")[1], expect=taken)
    await leo.taps("Oui, je rejoins", expect="Bienvenue")

    # The audit log names what was done, by whom.
    await page.get_by_role("link", name="Journal").click()
    journal = page.locator("#audit")
    for action in ("sign_in", "pause", "invite"):
        await expect(journal).to_contain_text(action)
    await expect(journal).to_contain_text(str(ADMIN_PERSONA))

    # The export of the handoffs, pseudonymised.
    await page.get_by_role("link", name="Exports").click()
    async with page.expect_download() as download_info:
        await page.get_by_role("button", name="Contacts transmis (CSV)").click()
    download = await download_info.value
    exported = await asyncio.to_thread(Path(await download.path()).read_text)
    assert exported.splitlines()[0].startswith("handoff,")
    assert len(exported.splitlines()) == 3  # the header, the declined, the taken
    assert "Inès" not in exported
    assert "ines@example.org" not in exported

    # A phone-sized window still shows the figures.
    phone, small, small_errors = await new_page(browser, width=390)
    await phone.add_cookies(await context.cookies())
    await small.goto(sandbox.url + "/admin/")
    await expect(small.locator("#taken .figure")).to_have_text("1")
    await small.screenshot(path=str(screenshots / "dashboard-phone.png"), full_page=True)
    assert errors == small_errors == []

    # Léo, a coordinator of Télémaque only, signs in: his association, his contact, in full.
    leo_link = await sign_in_link(sandbox, 900077, "Léo")
    _coordinator, his, _errors = await new_page(browser)
    await sign_in(his, leo_link)
    await expect(his.get_by_role("heading", name="Contacts en cours")).to_be_visible()
    await expect(his.locator(".contact")).to_contain_text("Inès")
    await his.get_by_role("link", name="Associations").click()
    await expect(his.locator("#associations tbody tr")).to_have_count(1)
    await expect(his.locator("#associations tbody tr", has_text=taken)).to_have_count(1)
    assert (await his.goto(sandbox.url + "/admin/funnel")).status == 403  # type: ignore[union-attr]


async def test_a_reused_link_a_stranger_and_a_form_without_its_token_are_refused(
    sandbox: Sandbox, browser: Browser
) -> None:
    link = await sign_in_link(sandbox, ADMIN_PERSONA, "Sam")
    context, page, _errors = await new_page(browser)
    await sign_in(page, link)
    await expect(page.get_by_role("heading", name="Aperçu de la semaine")).to_be_visible()
    # The same link, a second time, in another browser.
    _other, again, _ = await new_page(browser)
    await sign_in(again, link)
    await expect(again.locator(".refusal")).to_contain_text("déjà servi ou il a expiré")
    # A stranger, with no session.
    _stranger, stranger, _ = await new_page(browser)
    response = await stranger.goto(sandbox.url + "/admin/associations")
    assert response is not None
    assert response.status == 403
    await expect(stranger.locator("main")).to_contain_text("/dashboard")
    # The admin's own browser, posting without the form's CSRF token: refused, nothing paused.
    await page.get_by_role("link", name="Associations").click()
    action = await page.locator('#associations tr[data-slug="proxite"] form').last.get_attribute(
        "action"
    )
    refused = await context.request.post(sandbox.url + str(action), form={"paused": "1"})
    assert refused.status == 403
    await page.reload()
    await expect(page.locator('#associations tr[data-slug="proxite"] .state')).to_contain_text(
        "Active"
    )
    # An expired link: ten minutes and more after it was sent.
    late = await sign_in_link(sandbox, ADMIN_PERSONA, "Sam")
    sandbox.clock.offset += timedelta(minutes=11)
    _late, expired, _ = await new_page(browser)
    await sign_in(expired, late)
    await expect(expired.locator(".refusal")).to_contain_text("déjà servi ou il a expiré")
