"""The end of a questionnaire names the association, says why, and alerts admins when none fits."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.app import TelegramBot, build_bot
from bot.sandbox.emulator import BotApiEmulator
from bot.settings import SAMPLE_CATALOG
from conversations.services.waiting_list import retry_waiting
from tests.e2e.conftest import Chat, running, settings_for
from tests.e2e.test_questionnaire import stored_profiles

ADMIN = 777000


async def answer_mentee(chat: Chat, age: str, postal_code: str, situation: str, need: str) -> None:
    """A young person fills in; under 15, their parent does it for them (a child alone would
    wait for the parent's confirmation)."""
    await chat.starts()
    if int(age) < 15:
        await chat.taps("J'inscris un·e jeune", expect="Question 1 ·")
        await chat.taps("Son parent", expect="Question 2 ·")
    else:
        await chat.taps("Je cherche un·e mentor·e", expect="Question 1 ·")
    await chat.says("Inès", expect="Question")
    await chat.says(age, expect="Question")
    await chat.says(postal_code, expect="Question")
    await chat.taps(situation, expect="Question")
    await chat.toggles(need)
    await chat.taps("Valider", expect="Question")
    await chat.taps("En présentiel", expect="Question")
    await chat.taps("Passer", expect="Question")
    if int(age) < 15:
        await chat.says("Nadia Benali", expect="Question")
    await chat.taps("Par e-mail", expect="Question")
    await chat.says("ines@example.fr", expect="Question")
    if int(age) < 15:
        await chat.taps("Oui, d'accord", expect="Vos réponses")
    else:
        await chat.taps("Oui, je suis d'accord", expect="Tes réponses")


async def sign_up_where_nothing_fits(chat: Chat) -> None:
    """In person only, in Mayotte, employed at 24: no sample association takes that."""
    await chat.starts()
    await chat.taps("Je cherche un·e mentor·e", expect="Question 1 ·")
    await chat.says("Inès", expect="Question 2 ·")
    await chat.says("24", expect="Question 3 ·")
    await chat.says("97600", expect="Question 4 ·")
    await chat.taps("En emploi", expect="Question 5 ·")
    await chat.taps("Bac", expect="Question 6 ·")  # young workers are asked their diploma
    await chat.toggles("Trouver un emploi")
    await chat.taps("Valider", expect="Question 7 ·")
    await chat.taps("En présentiel", expect="Question 8 ·")
    await chat.taps("Passer", expect="Question 9 ·")
    await chat.taps("Par e-mail", expect="Question 10 ·")
    await chat.says("ines@example.fr", expect="Question 11 ·")
    await chat.taps("Oui, je suis d'accord", expect="Tes réponses")


@pytest.fixture
async def bot_with_admin(emulator: BotApiEmulator, sqlite_url: str) -> AsyncIterator[TelegramBot]:
    settings = settings_for(emulator, sqlite_url).model_copy(
        update={"admin_telegram_ids": (ADMIN,)}
    )
    async with running(build_bot(settings)) as running_bot:
        yield running_bot


async def test_a_young_person_reads_the_chosen_association_and_why(
    bot_with_admin: TelegramBot,
    person: Callable[..., Chat],
    sqlite_url: str,
) -> None:
    chat = person(3101, "Inès")
    await answer_mentee(chat, "8", "75011", "École primaire", "Soutien scolaire")
    result = await chat.taps("C'est bon", expect="Merci")
    text = result.text or ""
    assert any(name in text for name in ("Entraide Scolaire Amicale", "Socrate", "Afev")), text
    assert "Pourquoi elle ?" in text
    assert text.count("• ") >= 2
    assert "jours" in text
    [profile] = await stored_profiles(sqlite_url)
    assert profile.status == "matched"
    assert profile.association_slug in ("entraide-scolaire-amicale", "socrate", "afev")
    assert profile.match is not None
    assert profile.match["ranked"][0]["slug"] == profile.association_slug
    assert profile.match["ranked"][0]["reasons"]


async def test_no_association_fits_the_person_is_told_and_admins_alerted_once(
    bot_with_admin: TelegramBot,
    person: Callable[..., Chat],
    emulator: BotApiEmulator,
    sqlite_url: str,
) -> None:
    admin = emulator.user(ADMIN, "Admin")
    admin.send_command("start")  # an admin must have talked to the bot to be messaged
    await admin.next_message()
    chat = person(3102, "Inès")
    await sign_up_where_nothing_fits(chat)
    result = await chat.taps("C'est bon", expect="Merci")
    assert "liste d'attente" in (result.text or "")
    alert = await admin.wait_for_message(lambda m: "976" in (m.text or ""))
    assert "Profil sans association" in (alert.text or "")
    assert "Inès" not in (alert.text or "")  # admins learn about the gap, not the person
    [profile] = await stored_profiles(sqlite_url)
    assert profile.status == "waiting"
    assert profile.association_slug is None
    alerts = [m for m in admin.messages if "Profil sans association" in (m.text or "")]
    assert len(alerts) == 1


def test_catalog_import_and_list_from_the_command_line(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    dry = cli("catalog", "import", str(SAMPLE_CATALOG), "--dry-run")
    assert dry.returncode == 0
    assert "13 would be added" in dry.stdout
    assert "nothing was written" in dry.stdout
    assert "empty" in cli("catalog", "list").stdout
    assert "13 added" in cli("catalog", "import", str(SAMPLE_CATALOG)).stdout
    assert "13 unchanged" in cli("catalog", "import", str(SAMPLE_CATALOG)).stdout
    listing = cli("catalog", "list").stdout
    assert "socrate" in listing
    assert "Télémaque" in listing
    bad = tmp_path / "bad.yaml"
    bad.write_text(SAMPLE_CATALOG.read_text().replace("min: 5,", "min: 3,", 1))
    refused = cli("catalog", "import", str(bad))
    assert refused.returncode == 1
    assert 'association "afev": mentee_ages' in refused.stderr


async def test_a_waiting_profile_goes_to_an_association_once_one_can_take_it(
    bot_with_admin: TelegramBot,
    person: Callable[..., Chat],
    sqlite_url: str,
) -> None:
    chat = person(3103, "Inès")
    await sign_up_where_nothing_fits(chat)
    await chat.taps("C'est bon", expect="liste d'attente")
    unit_of_work = bot_with_admin.services.unit_of_work
    policy = bot_with_admin.services.policy
    now = datetime.now(UTC)
    assert await retry_waiting(unit_of_work, now, policy) == 0  # nothing has changed yet
    async with unit_of_work() as uow:
        # NQT opens a team in Mayotte and starts taking young employees with a bac too.
        record = await uow.catalog.by_slug("nqt")
        assert record is not None
        record.entry = {
            **record.entry,
            "departments": [*record.entry["departments"], "976"],
            "mentee_situations": [*record.entry["mentee_situations"], "employed"],
            "mentee_diplomas": {"min": "bac", "max": None},
        }
        await uow.commit()
    assert await retry_waiting(unit_of_work, now, policy) == 1
    found = await chat.reads(expect="Bonne nouvelle")
    assert "NQT" in (found.text or "")
    [profile] = await stored_profiles(sqlite_url)
    assert (profile.status, profile.association_slug) == ("matched", "nqt")
    assert await retry_waiting(unit_of_work, now, policy) == 0


async def test_a_graduate_job_seeker_in_bobigny_is_sent_to_a_programme_for_graduates(
    bot_with_admin: TelegramBot,
    person: Callable[..., Chat],
    sqlite_url: str,
) -> None:
    chat = person(3104, "Yanis")
    await chat.starts()
    await chat.taps("Je cherche un·e mentor·e", expect="Question 1 ·")
    await chat.says("Yanis", expect="Question 2 ·")
    await chat.says("24", expect="Question")
    await chat.says("93000", expect="Question")
    await chat.taps("En recherche d'emploi", expect="diplôme")
    await chat.taps("Bac+4 ou plus (master, école…)", expect="Question")
    await chat.toggles("Trouver un emploi")
    await chat.taps("Valider", expect="Question")
    await chat.taps("Les deux me vont", expect="Question")
    await chat.taps("Quartier prioritaire (QPV)", expect="Question")
    await chat.taps("Par e-mail", expect="Question")
    await chat.says("yanis@example.fr", expect="Question")
    await chat.taps("Oui, je suis d'accord", expect="Tes réponses")
    result = await chat.taps("C'est bon", expect="Merci")
    text = result.text or ""
    assert "NQT" in text or "Article 1" in text, text
    assert "Son programme est fait pour les jeunes dans ta situation" in text
    [profile] = await stored_profiles(sqlite_url)
    assert profile.association_slug in ("nqt", "article-1")
