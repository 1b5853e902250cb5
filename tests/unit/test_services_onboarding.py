"""The questionnaire through `updates.handle`: start, choose a flow, answer, submit, restart, cancel."""

from __future__ import annotations

from datetime import timedelta

import pytest

from conversations.entities import ConsentKind, Milestone, ProfileStatus
from conversations.model import (
    Ask,
    BackInput,
    ChoiceInput,
    EditInput,
    Status,
    TextInput,
    ToggleInput,
)
from conversations.ports import AdminAlert, ContactCard
from conversations.services import announce, handoffs, onboarding, stats
from conversations.services.actions import (
    Cancel,
    ChooseFlow,
    ChooseLanguage,
    Help,
    Reopen,
    Restart,
)
from conversations.services.replies import Notice, Reply
from tests.unit.fakes import (
    ADMINS,
    Scene,
    a_catalog,
    an_association,
    only,
    sample_catalog,
)


def asked(reply: Reply) -> str:
    """The key of the question the reply ends on."""
    screen = reply.screens[-1]
    assert isinstance(screen, Ask), reply
    return screen.step.key


# --- /start and choosing a flow ---------------------------------------------------------------


async def test_start_welcomes_a_newcomer_with_the_flows_to_choose_from() -> None:
    reply = await Scene().person(101).start()

    assert reply.screens == (Notice(onboarding.WELCOME, onboarding.FLOW_BUTTONS),)


async def test_start_with_a_campaign_payload_records_where_the_person_came_from() -> None:
    scene = Scene()
    await scene.import_catalog(a_catalog(an_association("alpha")))
    nadia = scene.person(101)

    await nadia.start("lycee-voltaire")
    await nadia.fill()

    assert only(scene.db.tables.people.values()).source == "lycee-voltaire"
    assert only(scene.db.tables.conversations.values()).source == "lycee-voltaire"
    assert only(scene.db.tables.profiles.values()).source == "lycee-voltaire"


@pytest.mark.parametrize("payload", ["two words", "x" * 65, "é"])
async def test_a_start_payload_telegram_would_never_send_is_not_recorded(payload: str) -> None:
    scene = Scene()

    await scene.person(101).start(payload)

    assert only(scene.db.tables.people.values()).source is None


async def test_start_in_the_middle_of_a_questionnaire_asks_the_same_question_again() -> None:
    scene = Scene()
    nadia = scene.person(101)
    await nadia.choose("mentee")
    await nadia.answer(TextInput("Nadia"))

    reply = await nadia.start()

    assert reply.screens[0] == Notice(onboarding.WELCOME_BACK)
    assert asked(reply) == "age"


async def test_a_coordinator_saying_start_is_reminded_of_their_commands() -> None:
    scene = Scene()
    await scene.import_catalog(a_catalog(an_association("alpha")))
    camille = await scene.coordinator("alpha", 501, "Camille")

    reply = await camille.start()

    assert reply.screens[0] == Notice(onboarding.COORDINATOR_HELLO)
    assert reply.screens[1] == Notice(onboarding.WELCOME, onboarding.FLOW_BUTTONS)


async def test_choosing_a_flow_twice_resumes_instead_of_starting_again() -> None:
    scene = Scene()
    nadia = scene.person(101)
    await nadia.choose("mentee")
    await nadia.answer(TextInput("Nadia"))
    scene.later(timedelta(minutes=1))

    again = await nadia.choose("mentee")

    assert again.toast == onboarding.ALREADY_IN_PROGRESS
    assert asked(again) == "age"
    conversation = only(scene.db.tables.conversations.values())
    assert conversation.answers == {"first_name": "Nadia"}
    assert scene.funnel(Milestone.STARTED) == 1


async def test_a_double_tap_on_the_welcome_is_only_a_toast_the_question_is_on_screen() -> None:
    scene = Scene()
    nadia = scene.person(101)
    first = await nadia.choose("mentee")
    scene.later(timedelta(seconds=1))

    again = await nadia.choose("mentee")

    assert asked(first) == "first_name"
    assert again.toast == onboarding.ALREADY_IN_PROGRESS
    assert again.screens == ()
    assert scene.funnel(Milestone.STARTED) == 1


async def test_a_forged_flow_is_refused_and_starts_nothing() -> None:
    scene = Scene()

    reply = await scene.person(101).send(ChooseFlow("admin"))

    assert reply.toast == onboarding.FORGED
    assert scene.db.tables.conversations == {}


# --- answering ----------------------------------------------------------------------------------


async def test_the_first_answer_to_a_step_counts_in_the_funnel_but_not_its_edit() -> None:
    scene = Scene()
    nadia = scene.person(101)
    await nadia.answer_until("mentee", "_summary")
    assert scene.funnel(Milestone.ANSWERED, "first_name") == 1

    await nadia.answer(EditInput("first_name"))
    await nadia.answer(TextInput("Nadège"))

    assert scene.funnel(Milestone.ANSWERED, "first_name") == 1
    assert only(scene.db.tables.conversations.values()).answers["first_name"] == "Nadège"


async def test_going_back_and_answering_again_counts_the_step_once() -> None:
    scene = Scene()
    nadia = scene.person(101)
    await nadia.choose("mentee")
    await nadia.answer(TextInput("Nadia"))
    back = await nadia.answer(BackInput("age"))
    assert asked(back) == "first_name"

    await nadia.answer(TextInput("Nadia"))

    # The event log has both answers; the figures count the person once (one journey).
    assert scene.funnel(Milestone.ANSWERED, "first_name") == 2
    figures = await stats.report(scene.db.unit_of_work)
    mentee = next(f for f in figures.flows if f.flow == "mentee")
    first_name = next(s for s in mentee.steps if s.step == "first_name")
    assert (first_name.answered, first_name.share) == (1, 1.0)


async def test_ticking_a_choice_updates_its_keyboard_in_place_and_counts_nothing_yet() -> None:
    scene = Scene()
    nadia = scene.person(101)
    await nadia.answer_until("mentee", "needs")

    reply = await nadia.answer(ToggleInput("needs", "orientation"))

    assert reply.in_place is not None
    assert reply.in_place.selected == ("orientation",)
    assert reply.screens == ()
    assert scene.funnel(Milestone.ANSWERED, "needs") == 0


async def test_answering_the_phone_question_removes_the_share_my_number_keyboard() -> None:
    scene = Scene()
    nadia = scene.person(101)
    await nadia.answer_until("mentee", "phone")

    reply = await nadia.answer(TextInput("06 12 34 56 78"))

    assert reply.close_reply_keyboard
    assert asked(reply) != "phone"


async def test_a_button_of_an_older_question_is_answered_with_a_toast_and_moves_nothing() -> None:
    scene = Scene()
    nadia = scene.person(101)
    await nadia.answer_until("mentee", "situation")
    before = dict(only(scene.db.tables.conversations.values()).answers)

    reply = await nadia.answer(ChoiceInput("format", "remote"))

    assert reply.toast == onboarding.ALREADY_ANSWERED
    conversation = only(scene.db.tables.conversations.values())
    assert conversation.step == "situation"
    assert conversation.answers == before


async def test_typing_with_no_questionnaire_in_progress_shows_the_welcome() -> None:
    reply = await Scene().person(101).answer(TextInput("bonjour"))

    assert reply.screens == (Notice(onboarding.WELCOME, onboarding.FLOW_BUTTONS),)


async def test_a_button_with_no_questionnaire_in_progress_is_answered_with_a_toast() -> None:
    reply = await Scene().person(101).answer(ChoiceInput("format", "remote"))

    assert reply.toast == onboarding.ALREADY_ANSWERED
    assert reply.screens == ()


async def test_a_person_too_old_to_be_mentored_is_offered_to_become_a_mentor() -> None:
    scene = Scene()
    nadia = scene.person(101)
    await nadia.answer_until("mentee", "age")

    reply = await nadia.answer(TextInput("35"))

    notice = only(reply.screens)
    assert isinstance(notice, Notice)
    assert [b.action for b in notice.buttons] == [Reopen("age"), ChooseFlow("mentor")]
    assert only(scene.db.tables.conversations.values()).status == Status.EXITED
    assert scene.funnel(Milestone.EXITED, "age") == 1
    assert scene.db.tables.profiles == {}


# --- submitting ---------------------------------------------------------------------------------


async def test_a_completed_questionnaire_is_stored_with_the_contact_consent() -> None:
    scene = Scene()
    await scene.import_catalog(a_catalog(an_association("alpha")))

    reply = await scene.person(101).fill()

    assert reply.echo == onboarding.SENT
    profile = only(scene.db.tables.profiles.values())
    assert (profile.role, profile.department, profile.language) == ("mentee", "93", "fr")
    assert profile.answers["first_name"] == "Nadia"
    assert profile.status == ProfileStatus.MATCHED
    assert profile.match is not None
    assert [r["slug"] for r in profile.match["ranked"]] == ["alpha"]
    consent = only(scene.db.tables.consents.values())
    assert (consent.kind, consent.profile_id) == (ConsentKind.CONTACT, profile.id)
    assert only(scene.db.tables.conversations.values()).status == Status.COMPLETED
    assert scene.funnel(Milestone.COMPLETED) == 1


async def test_a_parent_s_agreement_is_stored_as_a_parental_consent_too() -> None:
    scene = Scene()
    await scene.import_catalog(a_catalog(an_association("alpha")))

    await scene.person(101).fill("referral", age="13")

    kinds = sorted(c.kind for c in scene.db.tables.consents.values())
    assert kinds == [ConsentKind.CONTACT, ConsentKind.PARENTAL]


async def test_a_sign_up_is_proposed_to_the_best_association_and_each_of_its_active_coordinators() -> (
    None
):
    scene = Scene()
    await scene.import_catalog(sample_catalog())
    await scene.coordinator("proxite", 501, "Camille")
    await scene.coordinator("proxite", 502, "Bob")
    await scene.coordinator("telemaque", 503, "Dora")
    async with scene.unit_of_work() as uow:
        bob = await uow.coordinators.get(scene.coordinator_row(502).id)
        assert bob is not None
        bob.active = False
        await uow.commit()

    reply = await scene.person(101).fill()

    handoff = only(scene.handoffs())
    assert scene.slug_of(handoff) == "proxite"
    card = only(scene.pending(ContactCard))
    assert (card.chat_id, card.handoff_id) == (501, handoff.id)
    notice = only(reply.screens)
    assert isinstance(notice, Notice)
    assert notice.text.msgid == announce.MATCHED["mentee"].msgid
    assert notice.text.params["association"] == "Proxité"
    assert only(scene.db.tables.profiles.values()).association_slug == "proxite"


async def test_an_english_speaker_reads_the_association_s_english_description() -> None:
    scene = Scene()
    await scene.import_catalog(a_catalog(an_association("alpha")))
    nadia = scene.person(101)
    nadia.language = "en"

    reply = await nadia.fill()

    notice = only(reply.screens)
    assert isinstance(notice, Notice)
    assert notice.text.params["description"] == "alpha mentors."
    assert only(scene.db.tables.profiles.values()).language == "en"


async def test_a_profile_nothing_fits_goes_on_the_waiting_list_and_each_admin_hears_once() -> None:
    scene = Scene()
    await scene.import_catalog(a_catalog(an_association("alpha", roles=["mentor"])))

    reply = await scene.person(101).fill()

    notice = only(reply.screens)
    assert isinstance(notice, Notice)
    assert notice.text == announce.NO_MATCH["mentee"].fmt(name="Nadia")
    profile = only(scene.db.tables.profiles.values())
    assert (profile.status, profile.association_slug) == (ProfileStatus.WAITING, None)
    assert scene.handoffs() == []
    alerts = scene.pending(AdminAlert)
    assert sorted(a.chat_id for a in alerts) == sorted(ADMINS)
    assert {a.text.msgid for a in alerts} == {handoffs.NO_MATCH_ALERT.msgid}
    no_match = only(e for e in scene.db.tables.funnel.values() if e.event == Milestone.NO_MATCH)
    assert no_match.detail == "93"


async def test_an_association_with_nobody_to_receive_contacts_makes_the_admins_invite_someone() -> (
    None
):
    scene = Scene()
    await scene.import_catalog(a_catalog(an_association("alpha")))

    await scene.person(101).fill()

    handoff = only(scene.handoffs())
    alerts = scene.pending(AdminAlert)
    assert sorted(a.chat_id for a in alerts) == sorted(ADMINS)
    expected = handoffs.NO_COORDINATOR.fmt(association="Alpha", id=handoff.id, slug="alpha")
    assert [a.text for a in alerts] == [expected] * len(ADMINS)


# --- restart, cancel, language, help ----------------------------------------------------------


async def test_restart_cancels_the_questionnaire_and_asks_the_first_question_keeping_the_source() -> (
    None
):
    scene = Scene()
    nadia = scene.person(101)
    await nadia.start("salon-2026")
    await nadia.answer_until("mentee", "postal_code")

    reply = await nadia.send(Restart())

    assert reply.screens[0] == Notice(onboarding.RESTARTED)
    assert asked(reply) == "first_name"
    old, new = sorted(scene.db.tables.conversations.values(), key=lambda c: c.id)
    assert old.status == Status.CANCELLED
    assert (new.status, new.answers, new.source) == (Status.ACTIVE, {}, "salon-2026")
    assert scene.funnel(Milestone.RESTARTED, "postal_code") == 1


async def test_cancel_stops_the_questionnaire_and_sends_it_to_nobody() -> None:
    scene = Scene()
    await scene.import_catalog(a_catalog(an_association("alpha")))
    await scene.coordinator("alpha", 501, "Camille")
    nadia = scene.person(101)
    await nadia.answer_until("mentee", "_summary")

    reply = await nadia.send(Cancel())

    assert reply.screens == (Notice(onboarding.CANCELLED["tu"]),)
    assert reply.close_reply_keyboard
    assert only(scene.db.tables.conversations.values()).status == Status.CANCELLED
    assert scene.db.tables.profiles == {}
    assert scene.db.tables.outbox == {}
    assert scene.funnel(Milestone.CANCELLED) == 1
    assert (await nadia.answer(TextInput("Nadia"))).screens[0] == Notice(
        onboarding.WELCOME_AGAIN["tu"], onboarding.FLOW_BUTTONS
    )


async def test_cancel_with_nothing_in_progress_says_so() -> None:
    reply = await Scene().person(101).send(Cancel())

    assert reply.screens == (Notice(onboarding.NOTHING_TO_CANCEL["vous"]),)


async def test_a_chosen_language_is_kept_for_every_reply_after_it() -> None:
    scene = Scene()
    nadia = scene.person(101)
    await nadia.choose("mentee")

    chosen = await nadia.send(ChooseLanguage("en"))
    later = await nadia.send(Help())

    assert chosen.language == "en"
    assert asked(chosen) == "first_name"  # the question in progress, asked again in English
    assert later.language == "en"
    assert only(scene.db.tables.people.values()).language == "en"


async def test_a_forged_language_is_refused() -> None:
    scene = Scene()

    reply = await scene.person(101).send(ChooseLanguage("xx"))

    assert reply.toast == onboarding.FORGED
    assert only(scene.db.tables.people.values()).language is None


async def test_without_a_choice_the_telegram_language_is_followed() -> None:
    scene = Scene()
    ines = scene.person(102)
    ines.language = "en-GB"

    assert (await ines.send(Help())).language == "en"
