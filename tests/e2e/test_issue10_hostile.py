"""Issue 10, attacked: forged parental answers, links opened twice or by the wrong people, a child
who erases everything or starts again, Retour pressed at the wrong time, and what the logs keep.

Every attack runs the real application against the emulator. A test marked `# Found by the hostile review, fixed:` asserts the
behaviour the feature promises and fails today; the others document what held up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest

from bot.app import TelegramBot, build_bot
from bot.cli import configure_logging
from bot.polling import running
from bot.sandbox.emulator import BotApiEmulator, EmulatedUser
from bot.sandbox.models import ChatMessage
from conversations.entities import ParentalLink, Profile
from conversations.services import parental
from tests.e2e.conftest import Chat, settings_for
from tests.e2e.test_handoff import Clock, erases_own_data, handoffs_in_db, join
from tests.e2e.test_log_privacy import Everything, captured  # noqa: F401
from tests.e2e.test_who_fills_in import LINK, a_13_year_old_alone

DAY = timedelta(days=1)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def app(
    emulator: BotApiEmulator, sqlite_url: str, clock: Clock
) -> AsyncIterator[TelegramBot]:
    # No admin: test_handoff's admin 999 never wrote to the bot, so alerts to them dead-letter.
    async with running(build_bot(settings_for(emulator, sqlite_url), clock=clock)) as bot:
        yield bot


# --- helpers --------------------------------------------------------------------------------------


async def a_child_alone(
    young: Chat,
    *,
    name: str = "Léo",
    age: str = "13",
    postal_code: str = "93200",
    meeting: str = "Les deux me vont",
    email: str = "leo@exemple.fr",
    parent: str = "Samia Benali",
    parent_phone: str = "06 55 44 33 22",
    welcome: bool = True,
) -> str:
    """An under-15 fills in the young person's questionnaire alone (from the welcome, or from
    the choices already on screen); returns the link's payload."""
    if welcome:
        await young.starts(None, expect="Qui êtes-vous")
    await young.taps("Je cherche un·e mentor·e", expect="ton prénom")
    await young.says(name, expect="Quel âge as-tu")
    await young.says(age, expect="code postal")
    await young.says(postal_code, expect="Où en es-tu")
    await young.taps("Collège", expect="accompagné")
    await young.toggles("Soutien scolaire")
    await young.taps("Valider", expect="rencontrer")
    await young.taps(meeting, expect="quartier")
    await young.taps("Passer", expect="te joindre")
    await young.taps("Par e-mail", expect="adresse e-mail")
    await young.says(email, expect="ton parent")
    await young.says(parent, expect="numéro de téléphone de ton parent")
    await young.says(parent_phone, expect="Dernière question")
    await young.taps("Oui, je suis d'accord", expect="Tes réponses")
    asked = await young.taps("C'est bon", expect="Dernière étape")
    return payload_in(asked)


def payload_in(message: ChatMessage) -> str:
    found = LINK.search(message.text or "")
    assert found is not None, message.text
    return found.group(2)


def token_of(payload: str) -> str:
    return payload.removeprefix("pc_")


def last_bot_message(user: EmulatedUser) -> ChatMessage:
    return next(m for m in reversed(user.messages) if m.from_bot)


def forge(emulator: BotApiEmulator, user: EmulatedUser, data: str) -> int:
    """A callback_query with any data, on the user's newest bot message (a modified client)."""
    return emulator._push_callback_query(user, last_bot_message(user), data)


async def profiles_of(app: TelegramBot, telegram_id: int) -> list[Profile]:
    async with app.services.unit_of_work() as uow:
        person = await uow.people.by_telegram_id(telegram_id)
        return [] if person is None else await uow.profiles.for_person(person)


async def link_of(app: TelegramBot, profile_id: int) -> ParentalLink | None:
    async with app.services.unit_of_work() as uow:
        return await uow.parental_links.of_profile(profile_id)


async def settle(app: TelegramBot) -> None:
    """Whatever the outbox holds goes out, and the emulator has a moment to record it."""
    await app.relay.deliver_due()
    await asyncio.sleep(0.3)


def texts_with(user: EmulatedUser, fragment: str) -> list[str]:
    return [m.text or "" for m in user.messages if m.from_bot and fragment in (m.text or "")]


def ever_said(emulator: BotApiEmulator, user: EmulatedUser, fragment: str) -> set[int]:
    """The bot messages of the chat that ever read `fragment`, sent so or edited into it."""
    return {
        e.message.message_id
        for e in emulator.chat_events(user.id)
        if e.message.from_bot and fragment in (e.message.text or "")
    }


async def sees(chat: Chat, expect: str) -> ChatMessage:
    """What follows a press: a new message, or the pressed one edited into it."""
    return await chat.user.wait_for_message(lambda m: expect in (m.text or ""), include_edits=True)


async def toast_says(chat: Chat, expect: str) -> None:
    """A toast with `expect` comes (a press on a link already answered leaves the screen)."""
    while True:
        toast = await chat.user.next_toast()
        if expect in (toast.text or ""):
            return


def failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Errors and tracebacks logged: a crash somewhere in handling."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR or r.exc_info is not None
    ]


async def the_parent_agrees(parent: Chat, payload: str) -> None:
    await parent.starts(payload, expect="Êtes-vous d'accord")
    await parent.taps("Oui, je suis d'accord", expect="c'est confirmé")


# --- 1. forged pa| / pr| callback data --------------------------------------------------------


FORGED = [
    "pa|" + "A" * 32,  # a random token of the right shape
    "pr|" + "A" * 32,
    "pa|",  # empty token
    "pa",  # no field at all
    "",  # empty data
    "pa|" + "x" * 70,  # more than Telegram's 64 bytes
    "pa|" + "é" * 30,  # non-ASCII, 63 bytes
    "pa|tok|extra",  # one field too many
    "pa|../../etc",  # outside the token alphabet
    "pa|\x00\x00",  # control characters
]


@pytest.mark.parametrize("data", FORGED, ids=repr)
async def test_a_forged_parental_answer_changes_nothing_and_crashes_nothing(
    app: TelegramBot,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],
    caplog: pytest.LogCaptureFixture,
    data: str,
) -> None:
    caplog.set_level(logging.WARNING)
    young = person(6001, "Léo")
    payload = await a_child_alone(young)
    stranger = person(6002, "Mallory")
    await stranger.starts(None, expect="Qui êtes-vous")

    forge(emulator, stranger.user, data)
    toast = await stranger.user.next_toast()

    await settle(app)
    assert toast.text is None or "valable" in toast.text
    assert await handoffs_in_db(app) == []
    [profile] = await profiles_of(app, young.user.id)
    assert profile.status == "awaiting_parent"
    link = await link_of(app, profile.id)
    assert link is not None
    assert link.answered_at is None
    assert texts_with(young.user, "Ton parent") == []
    assert failures(caplog) == []
    # The real link still works afterwards.
    parent = person(6003, "Samia")
    await the_parent_agrees(parent, payload)
    assert len(await handoffs_in_db(app)) == 1


async def test_a_truncated_token_is_refused_and_the_real_link_still_works(
    app: TelegramBot,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    young = person(6011, "Léo")
    payload = await a_child_alone(young)
    parent = person(6012, "Samia")
    await parent.starts(None, expect="Qui êtes-vous")

    forge(emulator, parent.user, f"pa|{token_of(payload)[:-1]}")
    await sees(parent, "n'est plus valable")
    await parent.starts(payload[:-1], expect="n'est plus valable")
    await parent.starts(payload + "A", expect="n'est plus valable")
    await parent.starts("pc_", expect="n'est plus valable")

    assert await handoffs_in_db(app) == []
    await the_parent_agrees(parent, payload)
    assert len(await handoffs_in_db(app)) == 1
    assert failures(caplog) == []


async def test_the_child_cannot_answer_through_a_forged_press_with_their_own_token(
    app: TelegramBot,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],
) -> None:
    young = person(6021, "Léo")
    payload = await a_child_alone(young)

    forge(emulator, young.user, f"pa|{token_of(payload)}")
    await sees(young, "Ce lien est pour ton parent")

    assert await handoffs_in_db(app) == []
    [profile] = await profiles_of(app, young.user.id)
    assert profile.status == "awaiting_parent"


async def test_one_child_s_token_never_answers_for_another_child(
    app: TelegramBot,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],
) -> None:
    """Léo, who got hold of Zoé's link, presses "Non" with its token: whoever holds a link may
    answer it (the bot cannot tell a parent from anyone else), but each token moves only its own
    profile: Léo's stays waiting for his parent."""
    leo = person(6031, "Léo")
    leo_payload = await a_child_alone(leo)
    zoe = person(6032, "Zoé")
    zoe_payload = await a_child_alone(zoe, name="Zoé", email="zoe@exemple.fr")

    forge(emulator, leo.user, f"pr|{token_of(zoe_payload)}")
    await sees(leo, "rien ne sera transmis")

    [leo_profile] = await profiles_of(app, leo.user.id)
    [zoe_profile] = await profiles_of(app, zoe.user.id)
    assert leo_profile.status == "awaiting_parent"
    assert zoe_profile.status == "not_confirmed"
    parent = person(6033, "Samia")
    await the_parent_agrees(parent, leo_payload)
    assert len(await handoffs_in_db(app)) == 1


# --- 2. one link, opened twice ----------------------------------------------------------------


async def test_the_same_parent_opens_the_link_twice_and_agrees_from_the_older_screen(
    app: TelegramBot,
    person: Callable[..., Chat],
) -> None:
    young = person(6101, "Léo")
    payload = await a_child_alone(young)
    parent = person(6102, "Samia")
    first = await parent.starts(payload, expect="Êtes-vous d'accord")
    second = await parent.starts(payload, expect="Êtes-vous d'accord")
    assert first.message_id != second.message_id

    parent.user.press(parent.button("Oui, je suis d'accord"), message_id=first.message_id)
    await sees(parent, "c'est confirmé")
    parent.user.press(parent.button("Oui, je suis d'accord"), message_id=second.message_id)
    await toast_says(parent, "déjà reçu sa réponse")

    await settle(app)
    assert len(await handoffs_in_db(app)) == 1
    assert len(texts_with(young.user, "Ton parent a donné son accord")) == 1


async def test_two_accounts_open_the_link_one_agrees_the_other_refuses_too_late(
    app: TelegramBot,
    person: Callable[..., Chat],
) -> None:
    young = person(6111, "Léo")
    payload = await a_child_alone(young)
    mother = person(6112, "Samia")
    father = person(6113, "Yanis")
    await mother.starts(payload, expect="Êtes-vous d'accord")
    await father.starts(payload, expect="Êtes-vous d'accord")

    await mother.taps("Oui, je suis d'accord", expect="c'est confirmé")
    father.user.press(father.button("Non"))
    await toast_says(father, "déjà reçu sa réponse")

    await settle(app)
    [profile] = await profiles_of(app, young.user.id)
    assert profile.status == "matched"
    assert len(await handoffs_in_db(app)) == 1
    assert len(texts_with(young.user, "Ton parent a donné son accord")) == 1
    assert texts_with(young.user, "n'a pas donné son accord") == []


async def test_a_refusal_first_then_an_agreement_from_the_other_account_sends_nothing(
    app: TelegramBot,
    person: Callable[..., Chat],
) -> None:
    young = person(6121, "Léo")
    payload = await a_child_alone(young)
    mother = person(6122, "Samia")
    father = person(6123, "Yanis")
    await mother.starts(payload, expect="Êtes-vous d'accord")
    await father.starts(payload, expect="Êtes-vous d'accord")

    await father.taps("Non", expect="rien ne sera transmis")
    mother.user.press(mother.button("Oui, je suis d'accord"))
    await toast_says(mother, "déjà reçu sa réponse")

    await settle(app)
    assert await handoffs_in_db(app) == []
    assert len(texts_with(young.user, "n'a pas donné son accord")) == 1


async def test_agree_pressed_twice_quickly_hands_off_once(
    app: TelegramBot,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],
) -> None:
    young = person(6131, "Léo")
    payload = await a_child_alone(young)
    parent = person(6132, "Samia")
    asked = await parent.starts(payload, expect="Êtes-vous d'accord")
    label = parent.button("Oui, je suis d'accord")

    # A double tap: both presses leave before the first one's edit removes the buttons.
    parent.user.press(label, message_id=asked.message_id)
    parent.user.press(label, message_id=asked.message_id)
    await sees(parent, "c'est confirmé")
    # The second press finds the link answered: a toast, the thanks stay on screen.
    await toast_says(parent, "déjà reçu sa réponse")

    await settle(app)
    assert len(await handoffs_in_db(app)) == 1
    assert len(texts_with(young.user, "Ton parent a donné son accord")) == 1
    assert len(ever_said(emulator, parent.user, "c'est confirmé")) == 1
    # What the parent reads at the end still says their "yes" counted: the second press's
    # "n'est plus valable" must not replace the confirmation on screen.
    # BUG (not at HEAD d32c16c: only with the uncommitted "edit the pressed message into what
    # follows" change of bot/handlers.py, Handlers._following/_edit_into): the second press of
    # the double tap edits the same message again, so "Merci, c'est confirmé" (and the child's
    # answers above it) become "✓ — Ce lien n'est plus valable": the parent is left believing
    # their agreement failed. A press whose reply is a refusal (echo "—") should not be edited
    # into the pressed message once that message was already answered.
    assert texts_with(parent.user, "c'est confirmé") != [], [
        m.text for m in parent.user.messages if m.from_bot
    ]


async def test_the_old_link_is_dead_once_start_gave_a_new_one(
    app: TelegramBot,
    person: Callable[..., Chat],
) -> None:
    young = person(6141, "Léo")
    old = await a_child_alone(young)
    parent = person(6142, "Samia")
    # The parent opened the old link and kept its screen; the child asks for a new link meanwhile.
    old_screen = await parent.starts(old, expect="Êtes-vous d'accord")
    new = payload_in(await young.starts(None, expect="nouveau lien"))
    assert new != old

    parent.user.press(parent.button("Oui, je suis d'accord"), message_id=old_screen.message_id)
    await sees(parent, "n'est plus valable")
    await parent.starts(old, expect="n'est plus valable")
    assert await handoffs_in_db(app) == []

    await the_parent_agrees(parent, new)
    assert len(await handoffs_in_db(app)) == 1


async def test_start_after_the_link_expired_never_hands_out_a_dead_link(
    app: TelegramBot,
    person: Callable[..., Chat],
    clock: Clock,
) -> None:
    young = person(6151, "Léo")
    await a_child_alone(young)
    # Seven days and a minute later, before the timer's next pass has marked it expired.
    clock.offset = 7 * DAY + timedelta(minutes=1)

    answer = await young.starts(None)
    if "nouveau lien" in (answer.text or ""):
        # Found by the hostile review, fixed: parental.status_notice re-hashes a link whose expires_at has passed and shows it
        # as "un nouveau lien", but expires_at is not moved: the parent who opens it is told it
        # is no longer valid. /start must either say the link expired or give one that works.
        parent = person(6152, "Samia")
        opened = await parent.starts(payload_in(answer))
        assert "Êtes-vous d'accord" in (opened.text or ""), opened.text


async def test_a_new_link_from_start_on_day_six_lasts_long_enough_for_the_parent(
    app: TelegramBot,
    person: Callable[..., Chat],
    clock: Clock,
) -> None:
    young = person(6161, "Léo")
    await a_child_alone(young)
    clock.offset = 6 * DAY + timedelta(hours=23)
    new = payload_in(await young.starts(None, expect="nouveau lien"))

    # Two hours after the child was given "un nouveau lien", the parent opens it.
    clock.offset = 7 * DAY + timedelta(hours=1)
    parent = person(6162, "Samia")
    opened = await parent.starts(new)
    # Found by the hostile review, fixed: the new link keeps the first link's expires_at (status_notice only replaces the
    # hash), so a link handed out an hour before the end dies within the hour, without the
    # child or the parent being told how long it lasts. A new link should get a new validity.
    assert "Êtes-vous d'accord" in (opened.text or ""), opened.text


# --- 3. the wrong people open the link --------------------------------------------------------


async def matched_slug(app: TelegramBot, telegram_id: int) -> str:
    [handoff] = await handoffs_in_db(app)
    async with app.services.unit_of_work() as uow:
        record = await uow.catalog.get(handoff.association_id)
    assert record is not None
    return record.slug


async def test_the_child_opens_their_own_link_twice_and_nothing_moves(
    app: TelegramBot,
    person: Callable[..., Chat],
) -> None:
    young = person(6201, "Léo")
    payload = await a_child_alone(young)
    await young.starts(payload, expect="Ce lien est pour ton parent")
    await young.starts(payload, expect="Ce lien est pour ton parent")
    assert "Oui, je suis d'accord" not in last_bot_message(young.user).button_texts
    assert await handoffs_in_db(app) == []
    parent = person(6202, "Samia")
    await the_parent_agrees(parent, payload)


async def test_a_coordinator_of_the_receiving_association_cannot_consent_for_the_parent(
    app: TelegramBot,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],
) -> None:
    # Which association a 13-year-old of Saint-Denis goes to: found with a first child.
    probe = person(6211, "Léo")
    await the_parent_agrees(person(6212, "Samia"), await a_child_alone(probe))
    slug = await matched_slug(app, probe.user.id)
    coordinator = await join(app, emulator, 6213, "Camille", slug)

    young = person(6214, "Zoé")
    payload = await a_child_alone(young, name="Zoé", email="zoe@exemple.fr")
    opened = await coordinator.starts(payload)

    # BUG (policy): the coordinator of the very association that would receive the child's
    # profile reads the child's answers before any parent agreed, and can press "Oui, je suis
    # d'accord" as the parent; the consent is then recorded as "parent_account". The bot knows
    # this account is that association's staff (uow.coordinators.of_person): parental.open_link
    # and parental.answer should refuse it like the child's own account.
    assert "Oui, je suis d'accord" not in opened.button_texts, opened.text
    assert "Zoé" not in (opened.text or "")


async def test_a_mentor_s_account_can_answer_the_link_like_any_parent(
    app: TelegramBot,
    person: Callable[..., Chat],
) -> None:
    """The bot cannot tell a parent from a stranger: whoever the child forwards the link to may
    answer. A mentor's account answers like anyone, and is still spoken to as "vous"."""
    from tests.e2e.test_questionnaire import sign_up_as_45_year_old_mentor_in_lyon

    mentor = person(6221, "Karim")
    await sign_up_as_45_year_old_mentor_in_lyon(mentor)
    await mentor.taps("C'est bon", expect="Merci")
    young = person(6222, "Léo")
    payload = await a_child_alone(young)

    await the_parent_agrees(mentor, payload)

    await young.reads(expect="Ton parent a donné son accord")
    [profile] = await profiles_of(app, young.user.id)
    assert profile.status == "matched"
    # The mentor's own sign-up is untouched.
    [own] = await profiles_of(app, mentor.user.id)
    assert own.flow == "mentor"


# --- 4. the child erases everything while the link is open ------------------------------------


async def test_the_child_erases_their_data_then_the_parent_agrees(
    app: TelegramBot,
    person: Callable[..., Chat],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    young = person(6301, "Léo")
    payload = await a_child_alone(young)
    parent = person(6302, "Samia")
    await parent.starts(payload, expect="Êtes-vous d'accord")

    await erases_own_data(young)
    told = await parent.taps("Oui, je suis d'accord", expect="n'est plus valable")

    await settle(app)
    assert "confirmé" not in (told.text or "")
    assert await handoffs_in_db(app) == []
    assert await profiles_of(app, young.user.id) == []
    assert texts_with(young.user, "Ton parent") == []
    assert failures(caplog) == []
    # And the link opened again afterwards: the same.
    await parent.starts(payload, expect="n'est plus valable")


# --- 5. a refusal, then the child starts again ------------------------------------------------


async def test_after_a_refusal_a_new_questionnaire_gives_a_new_working_link_and_the_old_stays_dead(
    app: TelegramBot,
    person: Callable[..., Chat],
) -> None:
    young = person(6401, "Léo")
    old = await a_child_alone(young)
    parent = person(6402, "Samia")
    await parent.starts(old, expect="Êtes-vous d'accord")
    await parent.taps("Non", expect="rien ne sera transmis")
    await young.reads(expect="n'a pas donné son accord")

    status = await young.starts(None, expect="n'a pas reçu l'accord")
    assert "Je cherche un·e mentor·e" in young.button("Je cherche")
    assert status is not None
    # /restart with no questionnaire in progress: the welcome, no harm.
    await young.says("/restart", expect="nouvelle demande")
    new = await a_child_alone(young, welcome=False)
    assert new != old

    await parent.starts(old, expect="n'est plus valable")
    await the_parent_agrees(parent, new)
    await young.reads(expect="Ton parent a donné son accord")
    assert len(await handoffs_in_db(app)) == 1


async def test_a_child_refused_by_the_parent_cannot_sign_themselves_up_as_their_own_parent(
    app: TelegramBot,
    person: Callable[..., Chat],
) -> None:
    young = person(6411, "Léo")
    payload = await a_child_alone(young)
    parent = person(6412, "Samia")
    await parent.starts(payload, expect="Êtes-vous d'accord")
    await parent.taps("Non", expect="rien ne sera transmis")

    # The same account, the same child: "J'inscris un·e jeune" → "Son parent".
    await young.starts(None, expect="n'a pas reçu l'accord")
    await young.taps("J'inscris un·e jeune", expect="vous êtes")
    await young.taps("Son parent", expect="prénom du ou de la jeune")
    await young.says("Léo", expect="Quel âge a Léo")
    await young.says("13", expect="code postal de Léo")
    await young.says("93200", expect="Où en est Léo")
    await young.taps("Collège", expect="Léo soit accompagné")
    await young.toggles("Soutien scolaire")
    await young.taps("Valider", expect="rencontres")
    await young.taps("Les deux me vont", expect="quartier")
    await young.taps("Passer", expect="votre prénom et votre nom")
    await young.says("Samia Benali", expect="vous joindre")
    await young.taps("Par e-mail", expect="adresse e-mail")
    await young.says("leo@exemple.fr", expect="Dernière question")
    await young.taps("Oui, d'accord", expect="Vos réponses")
    await young.taps("C'est bon")

    # Found by the hostile review, fixed: the parent said "Non" from their own account minutes ago, and the child's own
    # account, which the bot knows told it "13 ans" in the young person's questionnaire, now
    # hands the same child off at once with a parental consent "in_chat". A consent "a child
    # cannot fake" must not be one button away: onboarding._consents_given / _submit should
    # not take a referral "Son parent" for an under-15 from an account that filled in the
    # young person's questionnaire as an under-15 (or whose parental link was refused or is
    # pending): send it through parental.ask_parent like the mentee flow.
    await settle(app)
    assert await handoffs_in_db(app) == []


async def test_a_child_waiting_for_the_parent_who_chooses_again_is_told_the_truth(
    app: TelegramBot,
    person: Callable[..., Chat],
) -> None:
    young = person(6421, "Léo")
    await a_child_alone(young)
    await young.starts(None, expect="nouveau lien")

    offer = await young.taps("Je cherche un·e mentor·e", expect="remplacer")

    # Found by the hostile review, fixed: open_request returns (profile, None) for AWAITING_PARENT as for the waiting list, so
    # choose_flow says "Tu as déjà une demande sur la liste d'attente": the request waits for
    # the parent, it is on no waiting list. onboarding.choose_flow should have a text of its own
    # for a request awaiting the parent's agreement.
    assert "liste d'attente" not in (offer.text or ""), offer.text
    assert "parent" in (offer.text or ""), offer.text


async def test_replacing_a_request_that_awaits_the_parent_kills_its_link(
    app: TelegramBot,
    person: Callable[..., Chat],
) -> None:
    young = person(6431, "Léo")
    old = await a_child_alone(young)
    await young.starts(None, expect="nouveau lien")
    link = payload_in(next(m for m in reversed(young.user.messages) if LINK.search(m.text or "")))
    await young.taps("Je cherche un·e mentor·e", expect="remplacer")
    await young.taps("Oui, la remplacer", expect="ton prénom")

    parent = person(6432, "Samia")
    await parent.starts(old, expect="n'est plus valable")
    await parent.starts(link, expect="n'est plus valable")
    assert await handoffs_in_db(app) == []


# --- 6. Retour at the wrong moment ------------------------------------------------------------


async def ended_on_an_age_of_3(
    person: Callable[..., Chat], user_id: int
) -> tuple[Chat, ChatMessage]:
    young = person(user_id, "Léo")
    await young.starts(None, expect="Qui êtes-vous")
    await young.taps("Je cherche un·e mentor·e", expect="ton prénom")
    await young.says("Léo", expect="Quel âge as-tu")
    ended = await young.says("3", expect="faute de frappe")
    assert "↩️ Retour" in ended.button_texts
    return young, ended


async def test_retour_pressed_twice_goes_back_once(
    app: TelegramBot,
    person: Callable[..., Chat],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    young, ended = await ended_on_an_age_of_3(person, 6501)
    young.user.press("↩️ Retour", message_id=ended.message_id)
    young.user.press("↩️ Retour", message_id=ended.message_id)
    await sees(young, "Quel âge as-tu")
    toast = await young.user.next_toast()
    while toast.text is None:
        toast = await young.user.next_toast()
    assert "en cours" in toast.text or "déjà" in toast.text
    await settle(app)
    await young.says("13", expect="code postal")
    assert failures(caplog) == []


async def test_retour_after_restart_or_cancel_or_completion_changes_nothing(
    app: TelegramBot,
    person: Callable[..., Chat],
    emulator: BotApiEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    young, ended = await ended_on_an_age_of_3(person, 6511)
    # Resumed by /start, then restarted from question 1: the old Retour must not take the new
    # questionnaire back to the age.
    await young.starts(None, expect="Quel âge as-tu")
    await young.says("/restart", expect="depuis le début")
    young.user.drain()
    young.user.press("↩️ Retour", message_id=ended.message_id)
    toast = await young.user.next_toast()
    assert toast.text is not None
    assert "en cours" in toast.text
    await young.says("Léo", expect="Quel âge as-tu")

    # Cancelled: an old Retour does not bring the questionnaire back.
    await young.says("/cancel", expect="C'est arrêté")
    young.user.drain()
    young.user.press("↩️ Retour", message_id=ended.message_id)
    toast = await young.user.next_toast()
    await settle(app)
    shown = young.user.drain()
    assert toast.text is not None, shown
    assert not any("Quel âge as-tu" in (m.text or "") for m in shown), shown
    assert failures(caplog) == []


async def test_retour_after_the_questionnaire_completed_changes_nothing(
    app: TelegramBot,
    person: Callable[..., Chat],
    emulator: BotApiEmulator,
) -> None:
    young, ended = await ended_on_an_age_of_3(person, 6521)
    young.user.press("↩️ Retour", message_id=ended.message_id)
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
    await young.says("06 55 44 33 22", expect="Dernière question")
    await young.taps("Oui, je suis d'accord", expect="Tes réponses")
    await young.taps("C'est bon", expect="Dernière étape")
    # The press's own answer (it can come just after the edit), not to be taken for the next.
    await young.user.presses_answered()
    young.user.drain()

    forge(emulator, young.user, "o|age")
    toast = await young.user.next_toast()
    assert toast.text is not None
    assert "déjà" in toast.text
    [profile] = await profiles_of(app, young.user.id)
    assert profile.status == "awaiting_parent"


@pytest.mark.parametrize("data", ["o|nonexistent_step", "o|", "o|postal_code", "o|age|x", "o|âge"])
async def test_a_forged_retour_is_refused_and_the_real_one_still_works(
    app: TelegramBot,
    person: Callable[..., Chat],
    emulator: BotApiEmulator,
    caplog: pytest.LogCaptureFixture,
    data: str,
) -> None:
    caplog.set_level(logging.WARNING)
    young, ended = await ended_on_an_age_of_3(person, 6531)
    young.user.drain()
    forge(emulator, young.user, data)
    await young.user.next_toast()
    await settle(app)
    assert young.user.drain() == []
    young.user.press("↩️ Retour", message_id=ended.message_id)
    await sees(young, "Quel âge as-tu")
    assert failures(caplog) == []


# --- 7. who is told what, and how often -------------------------------------------------------


async def test_after_the_agreement_the_child_is_told_exactly_once_and_the_parent_truthfully(
    app: TelegramBot,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],
) -> None:
    young = person(6601, "Léo")
    payload = await a_13_year_old_alone(young)
    parent = person(6602, "Samia")
    asked = await parent.starts(payload, expect="Êtes-vous d'accord")
    assert "propre compte" not in (asked.text or "")
    assert "Samia Benali" not in (asked.text or "")  # the parent's own name is not repeated
    await parent.taps("Oui, je suis d'accord", expect="c'est confirmé")
    await young.reads(expect="Ton parent a donné son accord")
    await settle(app)
    await app.relay.deliver_due()
    await asyncio.sleep(0.3)

    assert len(texts_with(young.user, "Ton parent a donné son accord")) == 1
    assert len(texts_with(young.user, "Je te propose")) == 1
    assert texts_with(young.user, "vous") == [] or all(
        "vous appellera" not in t for t in texts_with(young.user, "vous")
    )
    # The parent is told once, in "vous".
    assert len(ever_said(emulator, parent.user, "c'est confirmé")) == 1


async def test_the_parent_of_a_child_no_association_takes_is_not_promised_a_call(
    app: TelegramBot,
    person: Callable[..., Chat],
) -> None:
    young = person(6611, "Léo")
    # In person only, in Mayotte: no sample association takes a collégien there.
    payload = await a_child_alone(
        young, postal_code="97600", meeting="En présentiel", parent_phone="06 39 01 23 45"
    )
    parent = person(6612, "Samia")
    asked = await parent.starts(payload, expect="Êtes-vous d'accord")
    assert "aucune pour l'instant" in (asked.text or ""), asked.text

    thanks = await parent.taps("Oui, je suis d'accord", expect="c'est confirmé")

    told = await young.reads(expect="Ton parent a donné son accord")
    assert "liste d'attente" in (told.text or "")
    # Found by the hostile review, fixed: parental.answer always says PARENT_THANKS, "L'association vous appellera bientôt",
    # though the profile went to the waiting list (announce_match found no association): the
    # parent is promised a call nobody will make. The thanks should follow news (matched or
    # waiting), as the child's message does.
    assert "vous appellera bientôt" not in (thanks.text or ""), thanks.text


async def test_a_professional_attesting_the_parent_s_agreement_hands_off_at_once(
    app: TelegramBot,
    person: Callable[..., Chat],
) -> None:
    pro = person(6621, "Claire")
    await pro.starts(None, expect="Qui êtes-vous")
    await pro.taps("J'inscris un·e jeune", expect="vous êtes")
    await pro.taps("Un·e professionnel·le", expect="prénom du ou de la jeune")
    await pro.says("Nina", expect="Quel âge a Nina")
    await pro.says("12", expect="code postal de Nina")
    await pro.says("93200", expect="Où en est Nina")
    await pro.taps("Collège", expect="Nina soit accompagné")
    await pro.toggles("Soutien scolaire")
    await pro.taps("Valider", expect="rencontres")
    await pro.taps("Les deux me vont", expect="quartier")
    await pro.taps("Passer", expect="votre prénom et votre nom")
    await pro.says("Claire Martin", expect="structure")
    await pro.says("Collège Jean-Moulin", expect="vous joindre")
    await pro.taps("Par e-mail", expect="adresse e-mail")
    await pro.says("claire@college.fr", expect="parent")
    await pro.says("Samia Benali", expect="numéro de téléphone de ce parent")
    await pro.says("06 55 44 33 22", expect="son parent est-il d'accord")
    await pro.taps("Oui, il ou elle est d'accord", expect="Dernière question")
    await pro.taps("Oui, d'accord", expect="Vos réponses")
    sent = await pro.taps("C'est bon", expect="Pour Nina")

    assert "pc_" not in (sent.text or "")
    [handoff] = await handoffs_in_db(app)
    assert handoff.status in ("proposed", "delivered")
    async with app.services.unit_of_work() as uow:
        person_row = await uow.people.by_telegram_id(pro.user.id)
        assert person_row is not None
        consents = await uow.profiles.consents_for(person_row)
    assert sorted((c.kind, c.method) for c in consents) == [
        ("contact", "in_chat"),
        ("parental", "attested"),
    ]


async def test_the_child_who_blocked_the_bot_is_not_written_to_but_the_agreement_still_counts(
    app: TelegramBot,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],
) -> None:
    young = person(6631, "Léo")
    payload = await a_child_alone(young)
    young.user.block()
    for _ in range(100):
        async with app.services.unit_of_work() as uow:
            row = await uow.people.by_telegram_id(young.user.id)
        if row is not None and row.blocked_at is not None:
            break
        await asyncio.sleep(0.05)
    parent = person(6632, "Samia")
    await the_parent_agrees(parent, payload)
    await settle(app)
    assert len(await handoffs_in_db(app)) == 1
    assert [r for r in emulator.requests if r.status == 403] == []


async def chase(app: TelegramBot, clock: Clock) -> int:
    handled = await parental.chase(app.services.unit_of_work, clock(), app.services.policy)
    await settle(app)
    return handled


async def test_one_reminder_at_half_time_one_expiry_notice_and_then_the_link_is_dead(
    app: TelegramBot,
    person: Callable[..., Chat],
    clock: Clock,
) -> None:
    young = person(6641, "Léo")
    payload = await a_child_alone(young)
    assert await chase(app, clock) == 0
    clock.offset = 3 * DAY + timedelta(hours=13)
    assert await chase(app, clock) == 1
    # /start in between gives a new link: it must not bring a second reminder.
    new = payload_in(await young.starts(None, expect="nouveau lien"))
    assert await chase(app, clock) == 0
    assert len(texts_with(young.user, "pas encore confirmé")) == 1

    # The new link has a whole delay of its own (given at 3.5 days: dead at 10.5), and the
    # reminder already sent is the only one.
    clock.offset = 7 * DAY + timedelta(minutes=1)
    assert await chase(app, clock) == 0
    clock.offset = 3 * DAY + timedelta(hours=13) + 7 * DAY + timedelta(minutes=1)
    assert await chase(app, clock) == 1
    assert await chase(app, clock) == 0
    assert len(texts_with(young.user, "pas encore confirmé")) == 1
    assert len(texts_with(young.user, "a expiré sans réponse")) == 1
    parent = person(6642, "Samia")
    await parent.starts(new, expect="n'est plus valable")
    await parent.starts(payload, expect="n'est plus valable")
    assert await handoffs_in_db(app) == []
    await young.starts(None, expect="n'a pas reçu l'accord")


async def test_no_reminder_nor_expiry_notice_once_the_parent_answered(
    app: TelegramBot,
    person: Callable[..., Chat],
    clock: Clock,
) -> None:
    young = person(6651, "Léo")
    payload = await a_child_alone(young)
    await the_parent_agrees(person(6652, "Samia"), payload)
    clock.offset = 4 * DAY
    assert await chase(app, clock) == 0
    clock.offset = 8 * DAY
    assert await chase(app, clock) == 0
    assert texts_with(young.user, "pas encore confirmé") == []
    assert texts_with(young.user, "expiré") == []


# --- 8. the parent's own /mydata and /delete --------------------------------------------------


async def test_the_parent_s_mydata_shows_nothing_of_the_child_and_delete_leaves_the_child_alone(
    app: TelegramBot,
    person: Callable[..., Chat],
) -> None:
    young = person(6701, "Léo")
    payload = await a_child_alone(young, email="leo.secret@exemple.fr")
    parent = person(6702, "Samia")
    await parent.starts(payload, expect="Êtes-vous d'accord")

    parent.user.send_command("mydata")
    before = await parent.reads()
    await parent.taps("Oui, je suis d'accord", expect="c'est confirmé")
    parent.user.send_command("mydata")
    after = await parent.reads()
    await settle(app)

    for shown in (before, after):
        text = shown.text or ""
        assert "Léo" not in text
        assert "leo.secret" not in text
        assert "93200" not in text
        assert "vous" in text  # the parent is spoken to as "vous"
    documents = [m for m in parent.user.messages if m.document is not None]
    for document in documents:
        assert b"leo.secret" not in (document.document_file or b"")

    await erases_own_data(parent)
    [profile] = await profiles_of(app, young.user.id)
    assert profile.status == "matched"
    assert len(await handoffs_in_db(app)) == 1


# --- 9. the logs of a whole parental flow, at DEBUG -------------------------------------------


async def test_a_whole_parental_flow_at_debug_logs_no_token_name_phone_or_email(
    emulator: BotApiEmulator,
    sqlite_url: str,
    captured: Everything,  # noqa: F811
) -> None:
    configure_logging("DEBUG")
    async with running(build_bot(settings_for(emulator, sqlite_url))):
        young = Chat(emulator.user(6801, "Tiphaine"))
        payload = await a_child_alone(
            young,
            name="Zéphyrine",
            email="zephyrine.k@exemple.fr",
            parent="Gwendoline Kervella",
            parent_phone="06 98 76 54 32",
        )
        await young.starts(payload, expect="Ce lien est pour ton parent")
        new = payload_in(await young.starts(None, expect="nouveau lien"))
        parent = Chat(emulator.user(6802, "Maëlle"))
        await parent.starts(payload, expect="n'est plus valable")
        emulator._push_callback_query(
            parent.user, last_bot_message(parent.user), f"pa|{token_of(payload)}"
        )
        await sees(parent, "n'est plus valable")
        await parent.starts(new, expect="Êtes-vous d'accord")
        await parent.taps("Oui, je suis d'accord", expect="c'est confirmé")
        await young.reads(expect="Ton parent a donné son accord")
        young.user.send_command("mydata")
        await young.user.next_document()
        logging.getLogger("bot.probe").debug("probe at DEBUG")
    assert "DEBUG bot.probe: probe at DEBUG" in captured.lines
    secrets = {
        "a token": [token_of(payload), token_of(new)],
        "a name": ["Zéphyrine", "Gwendoline", "Kervella", "Tiphaine", "Maëlle"],
        "a phone": ["06 98 76 54 32", "+33698765432", "698765432"],
        "an e-mail": ["zephyrine.k@exemple.fr"],
    }
    leaks = {
        what: [line for line in captured.lines if any(value in line for value in values)]
        for what, values in secrets.items()
    }
    assert leaks == {what: [] for what in secrets}
