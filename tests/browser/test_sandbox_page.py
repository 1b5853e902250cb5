"""The sandbox page in a real browser (Debian's Chromium): a young person fills the questionnaire."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Locator, Page, async_playwright, expect

from bot.sandbox.emulator import BotApiEmulator
from bot.sandbox.runner import SANDBOX_TOKEN, run_sandbox
from bot.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
# Screenshots go to the test's temporary folder; UPDATE_SCREENSHOTS=1 refreshes the README's.
DOCS = Path(__file__).resolve().parents[2] / "docs"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium)",
    ),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def emulators() -> list[BotApiEmulator]:
    """Each emulator the sandbox started (a reset starts another), newest last."""
    return []


@pytest.fixture
async def sandbox_url(tmp_path: Path, emulators: list[BotApiEmulator]) -> AsyncIterator[str]:
    port = free_port()
    ready = asyncio.Event()
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'sandbox.db'}")

    async def started(emulator: BotApiEmulator) -> None:
        emulators.append(emulator)

    task = asyncio.create_task(
        run_sandbox(settings, "127.0.0.1", port, ready=ready, on_ready=started)
    )
    ready_wait = asyncio.create_task(ready.wait())
    await asyncio.wait({task, ready_wait}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # the sandbox failed to start: show why
    assert ready.is_set(), "the sandbox did not start within 30 s"
    yield f"http://127.0.0.1:{port}"
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.fixture
async def page(sandbox_url: str) -> AsyncIterator[Page]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        context = await browser.new_context(viewport={"width": 1024, "height": 760}, locale="fr-FR")
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        await page.goto(sandbox_url)
        await expect(page.locator("body[data-ready=true]")).to_have_count(1)
        yield page
        await browser.close()
        # A script error or a blocked resource (CSP) shows up here, even if the chat worked.
        assert errors == []


async def bot_asks(pane: Locator, text: str) -> None:
    await expect(pane.locator(".message.from-bot").last).to_contain_text(text)


async def taps(pane: Locator, label: str) -> None:
    await pane.locator(".message.from-bot").last.get_by_role("button", name=label).click()


async def says(pane: Locator, text: str) -> None:
    await pane.get_by_role("textbox").fill(text)
    await pane.get_by_role("textbox").press("Enter")


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    return DOCS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path


async def test_a_young_person_fills_the_questionnaire_in_the_browser(
    page: Page, screenshots: Path
) -> None:
    young = page.locator("#pane-100001")
    mentor = page.locator("#pane-200001")
    await expect(page.get_by_role("tab", name="Jeune")).to_have_attribute("aria-selected", "true")

    await mentor.get_by_role("button", name="Démarrer").click()
    await bot_asks(mentor, "Collectif Mentorat")

    await young.get_by_role("button", name="Démarrer").click()
    await bot_asks(young, "Qui êtes-vous")
    await taps(young, "Je cherche un·e mentor·e")
    await bot_asks(young, "prénom")
    await says(young, "Inès")
    await expect(young.locator(".message.from-person .text").last).to_have_text("Inès")
    await bot_asks(young, "âge")
    await says(young, "17")
    await bot_asks(young, "code postal")
    await says(young, "93200")
    await bot_asks(young, "Où en es-tu")
    await taps(young, "Lycée professionnel")
    await bot_asks(young, "accompagné")
    await taps(young, "Orientation")
    # The toggle re-renders the buttons of the same message in place.
    await expect(young.get_by_role("button", name="☑️ Orientation")).to_have_count(1)
    await page.screenshot(path=str(screenshots / "sandbox.png"))
    await taps(young, "Valider")
    await bot_asks(young, "rencontrer")
    await taps(young, "Les deux me vont")
    await bot_asks(young, "quartier prioritaire")
    await taps(young, "Passer")
    await bot_asks(young, "joindre")
    await taps(young, "Par e-mail")
    await bot_asks(young, "e-mail")
    await says(young, "ines@example.org")
    await bot_asks(young, "Dernière question")
    await taps(young, "Oui, je suis d'accord")
    await bot_asks(young, "Tes réponses")
    await taps(young, "C'est bon, j'envoie")
    await bot_asks(young, "Merci")
    await expect(young.locator(".message.from-bot").last).to_contain_text("Pourquoi elle ?")

    # The coordinator persona receives the contact, takes it; the young person is told.
    await page.get_by_role("tab", name="Coordinateur·rice").click()
    coordinator = page.locator("#pane-900001")
    card = coordinator.locator(".message.from-bot", has_text="Nouveau contact")
    await expect(card).to_contain_text("Inès")
    await card.get_by_role("button", name="🙋 Je m'en occupe").click()
    await expect(card).to_contain_text("Vous vous en occupez")
    await page.screenshot(path=str(screenshots / "sandbox-coordinator.png"))
    await page.get_by_role("tab", name="Jeune").click()
    await bot_asks(young, "Bonne nouvelle")
    await expect(young.locator(".message.from-bot").last).to_contain_text("Camille")


async def test_starting_over_empties_the_chats_and_the_bot_answers_again(page: Page) -> None:
    young = page.locator("#pane-100001")
    await young.get_by_role("button", name="Démarrer").click()
    await taps(young, "Je cherche un·e mentor·e")
    await bot_asks(young, "prénom")

    page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.get_by_role("button", name="Recommencer").click()

    await expect(young.locator(".message")).to_have_count(0)
    await young.get_by_role("button", name="Démarrer").click()
    # A fresh database: the bot greets a newcomer instead of resuming at the first name.
    await bot_asks(young, "Qui êtes-vous")
    await expect(young.locator(".message")).to_have_count(2)


async def test_a_document_the_bot_sends_is_a_link_that_downloads_it(
    page: Page, emulators: list[BotApiEmulator]
) -> None:
    # The admin persona wrote to the bot at start-up, so the bot may send it a file.
    # As PTB (httpx) sends it: the file name in UTF-8, not percent-encoded as aiohttp would.
    form = aiohttp.FormData(quote_fields=False)
    form.add_field("chat_id", "800001")
    form.add_field("caption", "<b>Export</b> de la semaine")
    form.add_field("parse_mode", "HTML")
    form.add_field("document", b'{"a":1}', filename="données.json")
    url = f"{emulators[-1].base_url}{SANDBOX_TOKEN}/sendDocument"
    async with aiohttp.ClientSession() as http, http.post(url, data=form) as response:
        assert response.status == 200

    await page.get_by_role("tab", name="Équipe du Collectif").click()
    admin = page.locator("#pane-800001")
    link = admin.get_by_role("link", name="📄 données.json")
    await expect(link).to_have_attribute("download", "données.json")
    await expect(admin.locator(".message.from-bot").last).to_contain_text("application/json · 7 o")
    await expect(admin.locator(".message.from-bot .caption b")).to_have_text("Export")
    async with page.expect_download() as started:
        await link.click()
    download = await started.value
    assert download.suggested_filename == "données.json"
    saved = Path(await download.path())
    assert await asyncio.to_thread(saved.read_bytes) == b'{"a":1}'


async def test_a_parental_link_clicked_in_the_childs_chat_is_opened_by_the_parent(
    page: Page, emulators: list[BotApiEmulator]
) -> None:
    """As on Telegram, where the child forwards it: the link is followed from the parent's
    account (/start pc_…), and the bot answers the parent."""
    young = page.locator("#pane-100001")
    await young.get_by_role("button", name="Démarrer").click()
    await bot_asks(young, "Qui êtes-vous")
    # Any message with such a link will do: sent through the Bot API, as the bot sends it.
    text = "Envoie ce lien à ton parent : https://t.me/mentorat_sandbox_bot?start=pc_Test_Token-1."
    url = f"{emulators[-1].base_url}{SANDBOX_TOKEN}/sendMessage"
    body = {"chat_id": 100001, "text": text}
    async with aiohttp.ClientSession() as http, http.post(url, json=body) as response:
        assert response.status == 200

    link = young.get_by_role("link", name="https://t.me/mentorat_sandbox_bot?start=pc_Test_Token-1")
    await link.click()
    parent = page.locator("#pane-300001")
    await expect(page.get_by_role("tab", name="Parent")).to_have_attribute("aria-selected", "true")
    await expect(parent.locator(".message.from-person .text").last).to_have_text(
        "/start pc_Test_Token-1"
    )
    # An unknown token: the bot says so to the parent, not to the child.
    await bot_asks(parent, "n'est plus valable")
