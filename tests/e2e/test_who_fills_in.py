"""Issue 10 end to end: whoever fills in is spoken to as they should be, a parent confirms an
under-15's sign-up from their own account, one slip is undone, and progress only moves on."""

from __future__ import annotations

import re
from collections.abc import Callable

from bot.app import TelegramBot
from bot.sandbox.emulator import BotApiEmulator
from tests.e2e.conftest import Chat
from tests.e2e.test_handoff import app, clock, handoffs_in_db  # noqa: F401
from tests.unit.test_address import MARKERS

PROGRESS = re.compile(r"Question (\d+) · [▰▱]{10} (\d+) %")
LINK = re.compile(r"https://t\.me/(\w+)\?start=(pc_[A-Za-z0-9_-]+)")


def tu_in(chat: Chat) -> list[str]:
    """Every bot message of the chat that says "tu" (tags dropped), buttons included."""
    found = []
    for message in chat.user.messages:
        if not message.from_bot:
            continue
        texts = [message.text or "", *message.button_texts]
        for text in texts:
            if MARKERS["tu"].search(re.sub(r"<[^>]+>", " ", text)):
                found.append(text)
    return found


async def a_parent_signs_up(parent: Chat, age: str) -> None:
    await parent.starts(None, expect="Qui êtes-vous")
    await parent.taps("J'inscris un·e jeune", expect="vous êtes")
    await parent.taps("Son parent", expect="prénom du ou de la jeune")
    await parent.says("Nina", expect="Quel âge a Nina")
    await parent.says(age, expect="code postal de Nina")
    situation = await parent.says("93200", expect="Où en est Nina")
    assert "École primaire" in situation.button_texts
    await parent.taps("École primaire", expect="Nina soit accompagné")
    await parent.toggles("Soutien scolaire")
    await parent.taps("Valider", expect="rencontres")
    await parent.taps("Les deux me vont", expect="quartier")
    await parent.taps("Passer", expect="votre prénom et votre nom")
    await parent.says("Samia Benali", expect="vous joindre")
    await parent.taps("Par e-mail", expect="adresse e-mail")
    consent = await parent.says("samia@exemple.fr", expect="Dernière question")
    assert "comme parent" in (consent.text or "")
    await parent.taps("Oui, d'accord", expect="Vos réponses")


async def test_a_parent_signs_up_an_8_year_old_and_reads_no_tu(
    app: TelegramBot,  # noqa: F811
    person: Callable[..., Chat],
) -> None:
    parent = person(5001, "Samia")

    await a_parent_signs_up(parent, "8")
    sent = await parent.taps("C'est bon", expect="Pour Nina")
    await parent.says("/help", expect="/privacy")
    parent.user.send_command("mydata")
    await parent.reads(expect="Vos données")
    await parent.user.wait_for_message(lambda m: m.document is not None)
    await parent.says("/privacy", expect="Vos données, en clair")

    assert "vous propose" in (sent.text or "")
    assert tu_in(parent) == []
    [handoff] = await handoffs_in_db(app)
    assert handoff.status in ("proposed", "delivered")


async def a_13_year_old_alone(young: Chat) -> str:
    """A 13-year-old fills in alone; returns the parental link the bot gives at the end."""
    await young.starts(None, expect="Qui êtes-vous")
    await young.taps("Je cherche un·e mentor·e", expect="ton prénom")
    await young.says("Léo", expect="Quel âge as-tu")
    await young.says("13", expect="code postal")
    await young.says("93200", expect="Où en es-tu")
    await young.taps("Collège", expect="accompagné")
    await young.toggles("Soutien scolaire")
    await young.taps("Valider", expect="rencontrer")
    await young.taps("Les deux me vont", expect="quartier")
    await young.taps("Passer", expect="te joindre")
    await young.taps("Par e-mail", expect="adresse e-mail")
    await young.says("leo@exemple.fr", expect="ton parent")
    await young.says("Samia Benali", expect="numéro de téléphone de ton parent")
    consent = await young.says("06 55 44 33 22", expect="Dernière question")
    assert "propre compte Telegram" in (consent.text or "")
    await young.taps("Oui, je suis d'accord", expect="Tes réponses")
    asked = await young.taps("C'est bon", expect="Dernière étape")
    found = LINK.search(asked.text or "")
    assert found is not None, asked.text
    assert found.group(1) == "mentorat_sandbox_bot"
    return found.group(2)


async def test_a_13_year_old_alone_is_handed_off_only_once_the_parent_s_account_confirms(
    app: TelegramBot,  # noqa: F811
    person: Callable[..., Chat],
) -> None:
    young = person(5002, "Léo")
    payload = await a_13_year_old_alone(young)
    assert await handoffs_in_db(app) == []

    # The child cannot answer the link for the parent.
    await young.starts(payload, expect="Ce lien est pour ton parent")
    assert await handoffs_in_db(app) == []

    parent = person(5003, "Samia")
    asked = await parent.starts(payload, expect="Êtes-vous d'accord")
    assert "Léo" in (asked.text or "")
    assert "06 55 44 33 22" in (asked.text or "") or "+33655443322" in (asked.text or "")
    await parent.taps("Oui, je suis d'accord", expect="c'est confirmé")

    told = await young.reads(expect="Ton parent a donné son accord")
    assert "Je te propose" in (told.text or "")
    [handoff] = await handoffs_in_db(app)
    assert handoff.status in ("proposed", "delivered")
    # Used once: a second opening changes nothing.
    await parent.starts(payload, expect="n'est plus valable")
    assert len(await handoffs_in_db(app)) == 1


async def test_a_parent_who_refuses_sends_nothing(
    app: TelegramBot,  # noqa: F811
    person: Callable[..., Chat],
) -> None:
    young = person(5004, "Léo")
    payload = await a_13_year_old_alone(young)
    parent = person(5005, "Samia")
    await parent.starts(payload, expect="Êtes-vous d'accord")

    await parent.taps("Non", expect="rien ne sera transmis")

    await young.reads(expect="n'a pas donné son accord")
    assert await handoffs_in_db(app) == []


async def test_an_age_typed_wrong_is_undone_with_back(
    app: TelegramBot,  # noqa: F811
    person: Callable[..., Chat],
) -> None:
    young = person(5006, "Léo")
    await young.starts(None, expect="Qui êtes-vous")
    await young.taps("Je cherche un·e mentor·e", expect="ton prénom")
    await young.says("Léo", expect="Quel âge as-tu")

    ended = await young.says("3", expect="faute de frappe")
    assert "↩️ Retour" in ended.button_texts
    again = await young.taps("Retour", expect="Quel âge as-tu")
    assert "Question 2 ·" in (again.text or "")
    await young.says("13", expect="code postal")


async def test_start_after_a_refused_consent_resumes_at_the_consent(
    app: TelegramBot,  # noqa: F811
    person: Callable[..., Chat],
) -> None:
    young = person(5007, "Inès")
    young.user.phone_number = "+33612345678"
    await young.starts(None, expect="Qui êtes-vous")
    await young.taps("Je cherche un·e mentor·e", expect="ton prénom")
    await young.says("Inès", expect="âge")
    await young.says("17", expect="code postal")
    await young.says("93200", expect="Où en es-tu")
    await young.taps("Lycée professionnel", expect="accompagné")
    await young.toggles("Orientation")
    await young.taps("Valider", expect="rencontrer")
    await young.taps("Les deux me vont", expect="quartier")
    await young.taps("Passer", expect="te joindre")
    await young.taps("Par e-mail", expect="adresse e-mail")
    await young.says("ines@exemple.fr", expect="Dernière question")
    await young.taps("Non", expect="sans ton accord")

    resumed = await young.starts(None, expect="Dernière question")
    assert "Oui, je suis d'accord" in resumed.button_texts


async def test_the_progress_of_a_whole_run_never_goes_back(
    app: TelegramBot,  # noqa: F811
    person: Callable[..., Chat],
    emulator: BotApiEmulator,
) -> None:
    young = person(5008, "Léo")
    await a_13_year_old_alone(young)

    # Every question as it was shown (a pressed question is edited into the next one).
    shown = [
        (int(m.group(1)), int(m.group(2)))
        for event in emulator.chat_events(young.user.id)
        if event.message.from_bot and (m := PROGRESS.search(event.message.text or ""))
    ]
    # A toggle redraws the buttons of the question shown: the same step, once.
    shown = [step for i, step in enumerate(shown) if i == 0 or step != shown[i - 1]]
    positions = [position for position, _percent in shown]
    percents = [percent for _position, percent in shown]
    assert positions == list(range(1, len(shown) + 1))
    assert percents == sorted(percents)
    assert percents[0] == 0
    # The intro promised the real count: this run's lies within it.
    intro = next(
        m.text for m in young.user.messages if "questions selon tes réponses" in (m.text or "")
    )
    fewest, most = map(int, re.findall(r"(\d+) à (\d+) questions", intro or "")[0])
    assert fewest <= len(shown) <= most
