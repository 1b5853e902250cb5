"""The questionnaire engine, driven the way a person answers: typing, tapping, going back, editing."""

from __future__ import annotations

from dataclasses import replace

import pytest

from conversations import validators
from conversations.engine import (
    SKIPPED,
    advance,
    begin,
    current,
    display,
    match_choice,
    normalize,
    progress,
    reopen,
)
from conversations.flows import FLOWS
from conversations.flows.options import (
    DIPLOMAS,
    THEMES,
    WORK_THEMES,
    YES_NO_UNKNOWN_AREA,
)
from conversations.model import (
    SUMMARY,
    Ask,
    BackInput,
    Choice,
    ChoiceInput,
    Completed,
    ConfirmInput,
    ContactInput,
    DoneInput,
    EditInput,
    Exited,
    Input,
    Invalid,
    NonTextInput,
    Outcome,
    Progress,
    SkipInput,
    Stale,
    Status,
    Summary,
    TextInput,
    ToggleInput,
    Validator,
)
from conversations.text import Text, _
from tests.unit.helpers import Reply, answer_until, asked_steps, drive, localize, pick, tick

MENTEE = FLOWS["mentee"]
MENTOR = FLOWS["mentor"]


def asking(outcome: Outcome, key: str) -> Ask:
    assert isinstance(outcome, Ask), f"expected the question {key}, got {outcome!r}"
    assert outcome.step.key == key
    assert outcome.state.step == key
    return outcome


def at_summary(flow: str = "mentee", **replies: Reply) -> Summary:
    outcome, _asked = answer_until(flow, **replies)
    assert isinstance(outcome, Summary)
    return outcome


def mentee_at(key: str, **replies: Reply) -> Ask:
    outcome, _asked = answer_until("mentee", key, **replies)
    return asking(outcome, key)


def choice_values(ask: Ask) -> list[str]:
    return [choice.value for choice in ask.choices]


# --- starting ------------------------------------------------------------------------------


@pytest.mark.parametrize("flow", ["mentee", "mentor"])
def test_each_flow_opens_on_the_first_name_as_question_one(flow: str) -> None:
    first = begin(FLOWS[flow])

    asking(first, "first_name")
    assert first.progress == Progress(position=1, percent=0)
    assert first.state.status is Status.ACTIVE
    assert first.state.answers == {}
    assert not first.can_go_back


# --- the whole mentee questionnaire --------------------------------------------------------


def test_a_17_year_old_in_saint_denis_completes_the_mentee_questionnaire() -> None:
    summary = drive(
        "mentee",
        "Nadia",
        "j'ai 17 ans",
        "93200",
        pick("situation", "high_school"),
        tick("needs", "orientation", "confidence"),
        pick("format", "in_person"),
        pick("area", "qpv"),
        pick("contact_method", "phone"),
        "06 12 34 56 78",
        pick("consent", "yes"),
    )
    expected = {
        "first_name": "Nadia",
        "age": 17,
        "postal_code": "93200",
        "situation": "high_school",
        "needs": ("orientation", "confidence"),
        "format": "in_person",
        "area": "qpv",
        "contact_method": "phone",
        "phone": "+33612345678",
        "consent": True,
    }
    assert isinstance(summary, Summary)
    assert summary.state.answers == expected
    assert [line.step for line in summary.lines] == list(expected)

    done = advance(MENTEE, summary.state, ConfirmInput(), localize)

    assert isinstance(done, Completed)
    assert done.state.status is Status.COMPLETED
    assert done.state.step is None
    assert done.state.answers == expected


def test_the_summary_reads_answers_back_as_the_person_saw_them() -> None:
    summary = at_summary()
    lines = {line.step: line.value for line in summary.lines}

    assert lines["situation"] == _("Lycée général ou technologique")
    assert lines["needs"] == (_("Orientation, choix d'études"),)
    assert lines["area"] == SKIPPED
    assert lines["consent"] == _("Oui, je suis d'accord")
    assert lines["phone"] == "+33612345678"


def test_anything_typed_at_the_summary_shows_it_again_with_a_hint() -> None:
    summary = at_summary()

    again = advance(MENTEE, summary.state, TextInput("c'est bon"), localize)

    assert isinstance(again, Summary)
    assert again.problem is not None
    assert again.state == summary.state


def test_a_finished_conversation_ignores_further_inputs() -> None:
    done = advance(MENTEE, at_summary().state, ConfirmInput(), localize)

    assert isinstance(advance(MENTEE, done.state, ConfirmInput(), localize), Stale)
    assert isinstance(advance(MENTEE, done.state, TextInput("Nadia"), localize), Stale)


# --- age rules -----------------------------------------------------------------------------


def test_under_15_the_parent_gives_a_name_and_a_phone_before_the_consent() -> None:
    asked = asked_steps("mentee", age="14")

    assert asked[-3:] == ["parent_name", "parent_phone", "consent"]


def test_at_15_no_parent_question_is_asked() -> None:
    asked = asked_steps("mentee", age="15")

    assert not {"parent_name", "parent_phone"} & set(asked)


def test_a_4_year_old_is_told_the_programme_starts_at_5() -> None:
    outcome = drive("mentee", "Léo", "4")

    assert isinstance(outcome, Exited)
    assert outcome.state.status is Status.EXITED
    assert outcome.state.step == "age"
    assert outcome.state.answers == {"first_name": "Léo", "age": 4}
    assert outcome.offer_flow is None
    assert "5 à 30 ans" in outcome.reason.msgid


def test_a_31_year_old_is_offered_the_mentor_questionnaire() -> None:
    outcome = drive("mentee", "Karim", "31")

    assert isinstance(outcome, Exited)
    assert outcome.state.status is Status.EXITED
    assert outcome.offer_flow == "mentor"


@pytest.mark.parametrize("age", ["5", "30"])
def test_the_youngest_and_oldest_mentees_carry_on(age: str) -> None:
    assert isinstance(drive("mentee", "Léo", age), Ask)


# --- living abroad and refusing consent -----------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        ChoiceInput("postal_code", "abroad"),
        TextInput("Je n'habite pas en France"),
        TextInput("je n’habite pas en france"),
    ],
)
@pytest.mark.parametrize("flow", ["mentee", "mentor"])
def test_a_person_living_abroad_is_thanked_and_not_signed_up(
    flow: str, reply: ChoiceInput | TextInput
) -> None:
    at_postal_code, _asked = answer_until(flow, "postal_code")

    outcome = drive(flow, reply, start=at_postal_code)

    assert isinstance(outcome, Exited)
    assert outcome.state.status is Status.EXITED
    assert outcome.state.answers["postal_code"] == "abroad"
    assert outcome.offer_flow is None


def test_a_partial_match_of_the_abroad_button_is_read_as_a_postal_code() -> None:
    outcome = drive("mentee", "Nadia", "17", "pas en France")

    ask = asking(outcome, "postal_code")
    assert ask.problem is not None
    assert "postal_code" not in ask.state.answers


@pytest.mark.parametrize("reply", [pick("consent", "no"), "non", "2"])
@pytest.mark.parametrize("flow", ["mentee", "mentor"])
def test_refusing_consent_ends_the_questionnaire_without_completing(flow: str, reply: str) -> None:
    at_consent, _asked = answer_until(flow, "consent")

    outcome = drive(flow, reply, start=at_consent)

    assert isinstance(outcome, Exited)
    assert outcome.state.status is Status.EXITED
    assert outcome.state.answers["consent"] is False
    assert outcome.offer_flow is None


@pytest.mark.parametrize("reply", ["oui", "1", "Oui, je suis d'accord"])
def test_typed_agreement_counts_as_consent(reply: str) -> None:
    outcome = drive("mentee", reply, start=mentee_at("consent"))

    assert isinstance(outcome, Summary)
    assert outcome.state.answers["consent"] is True


# --- undoing a mistake that ended the questionnaire ----------------------------------------


def test_a_typo_in_the_age_is_undone_by_asking_the_age_again() -> None:
    ended = drive("mentee", "Léo", "4")
    assert isinstance(ended, Exited)

    again = asking(reopen(MENTEE, ended.state), "age")

    assert again.state.status is Status.ACTIVE
    assert again.state.answers == {"first_name": "Léo"}
    assert again.can_go_back
    assert again.problem is None
    assert again.progress == begin_and_answer_first_name().progress
    asking(drive("mentee", "14", start=again), "postal_code")


def begin_and_answer_first_name() -> Ask:
    return asking(drive("mentee", "Léo"), "age")


def test_a_refused_consent_can_be_given_after_all() -> None:
    at_consent = mentee_at("consent")
    ended = drive("mentee", "non", start=at_consent)
    assert isinstance(ended, Exited)
    assert ended.state.step == "consent"
    assert ended.state.answers == {**at_consent.state.answers, "consent": False}

    again = asking(reopen(MENTEE, ended.state), "consent")

    assert again.state == at_consent.state
    outcome = drive("mentee", "oui", start=again)
    assert isinstance(outcome, Summary)
    assert outcome.state.answers["consent"] is True


def test_an_early_end_while_editing_goes_back_to_the_summary_once_undone() -> None:
    summary = at_summary()
    ended = drive("mentee", EditInput("postal_code"), "Je n'habite pas en France", start=summary)
    assert isinstance(ended, Exited)

    again = asking(reopen(MENTEE, ended.state), "postal_code")
    outcome = drive("mentee", "75011", start=again)

    assert isinstance(outcome, Summary)
    assert outcome.state.answers == {**summary.state.answers, "postal_code": "75011"}


def test_an_early_end_takes_no_more_answers_until_reopened() -> None:
    ended = drive("mentee", "Léo", "4")

    assert isinstance(advance(MENTEE, ended.state, TextInput("14"), localize), Stale)
    assert isinstance(advance(MENTEE, ended.state, BackInput("age"), localize), Stale)
    assert isinstance(current(MENTEE, ended.state), Stale)


def test_only_an_early_end_can_be_reopened() -> None:
    ended = drive("mentee", "Léo", "4").state
    active = mentee_at("postal_code").state
    completed = advance(MENTEE, at_summary().state, ConfirmInput(), localize).state
    # Stored before the step was kept, or at a step the flow has since lost.
    ended_before = replace(ended, step=None)
    ended_at_a_lost_step = replace(ended, step="favourite_colour")

    for state in (active, completed, ended_before, ended_at_a_lost_step):
        outcome = reopen(MENTEE, state)
        assert isinstance(outcome, Stale)
        assert outcome.state == state


# --- typed answers that cannot be used -----------------------------------------------------


@pytest.mark.parametrize(
    ("key", "garbage", "validator"),
    [
        ("first_name", "1234", validators.first_name),
        ("age", "abc", validators.age),
        ("postal_code", "9320", validators.postal_code),
        ("phone", "pas de téléphone", validators.phone),
    ],
)
def test_an_unusable_typed_answer_asks_the_same_question_again(
    key: str, garbage: str, validator: Validator
) -> None:
    ask = mentee_at(key)

    again = drive("mentee", garbage, start=ask)

    again = asking(again, key)
    reason = validator(garbage, {})
    assert isinstance(reason, Invalid)
    assert again.problem == reason.reason
    assert again.state == ask.state
    assert again.progress == ask.progress


def test_an_unusable_email_asks_for_the_email_again() -> None:
    ask = mentee_at("email", contact_method=pick("contact_method", "email"))

    again = asking(drive("mentee", "nadia at exemple", start=ask), "email")

    assert again.problem is not None
    assert again.state.answers == ask.state.answers


@pytest.mark.parametrize("kind", ["sticker", "photo", "voice"])
def test_a_sticker_asks_for_text_instead(kind: str) -> None:
    ask = mentee_at("postal_code")

    again = asking(advance(MENTEE, ask.state, NonTextInput(kind), localize), "postal_code")

    assert again.problem is not None
    assert "texte" in again.problem.msgid
    assert again.state == ask.state


def use_the_buttons_hint(ask: Ask) -> Text | None:
    """What typing something unclear at a button question says."""
    return asking(drive(ask.state.flow, "astronaute", start=ask), ask.step.key).problem


@pytest.mark.parametrize("key", ["situation", "needs", "consent"])
@pytest.mark.parametrize("kind", ["sticker", "photo", "voice"])
def test_a_sticker_at_a_button_question_points_to_the_buttons(key: str, kind: str) -> None:
    ask = mentee_at(key)

    again = asking(advance(MENTEE, ask.state, NonTextInput(kind), localize), key)

    assert again.problem is not None
    assert again.problem == use_the_buttons_hint(ask)
    assert "boutons" in again.problem.msgid
    assert again.state == ask.state


def test_a_shared_contact_at_a_button_question_points_to_the_buttons() -> None:
    ask = mentee_at("format")

    again = advance(MENTEE, ask.state, ContactInput("33612345678", is_own=True), localize)

    assert asking(again, "format").problem == use_the_buttons_hint(ask)


def test_a_shared_contact_answers_the_phone_question() -> None:
    ask = mentee_at("phone")

    outcome = advance(MENTEE, ask.state, ContactInput("33612345678", is_own=True), localize)

    asking(outcome, "consent")
    assert outcome.state.answers["phone"] == "+33612345678"


def test_a_shared_contact_outside_a_phone_question_asks_again() -> None:
    ask = mentee_at("postal_code")

    again = advance(MENTEE, ask.state, ContactInput("33612345678", is_own=True), localize)

    assert asking(again, "postal_code").problem is not None
    assert again.state == ask.state


# --- typing instead of tapping a button ----------------------------------------------------


@pytest.mark.parametrize(
    ("age", "typed", "value"),
    [
        ("17", "lycée pro", "vocational_high_school"),
        ("17", "Lycee Professionnel", "vocational_high_school"),
        ("17", "2", "vocational_high_school"),
        ("17", "apprentissage", "apprenticeship"),
        ("15", "collège", "middle_school"),
        ("15", "COLLEGE", "middle_school"),
    ],
)
def test_typed_text_picks_the_one_option_it_clearly_means(age: str, typed: str, value: str) -> None:
    ask = mentee_at("situation", age=age)

    outcome = drive("mentee", typed, start=ask)

    asking(outcome, "needs")
    assert outcome.state.answers["situation"] == value


@pytest.mark.parametrize("typed", ["lycée", "astronaute", "0", "99", "l", ""])
def test_typed_text_that_is_ambiguous_or_unknown_asks_to_use_the_buttons(typed: str) -> None:
    ask = mentee_at("situation")

    again = asking(drive("mentee", typed, start=ask), "situation")

    assert again.problem is not None
    assert again.state == ask.state


def test_typed_text_does_not_pick_an_option_hidden_for_this_age() -> None:
    # "Collège" exists but is not offered at 17.
    ask = mentee_at("situation", age="17")

    again = asking(drive("mentee", "collège", start=ask), "situation")

    assert again.problem is not None
    assert "situation" not in again.state.answers


# --- words typed instead of "Passer", "Je ne sais pas", "Aucun" -----------------------------


@pytest.mark.parametrize(
    "typed", ["passer", "Passer !", "je passe", "Suivant", "skip", "Pass", "next", "passe"]
)
def test_typing_skip_at_an_optional_question_skips_it(typed: str) -> None:
    ask = mentee_at("area")

    outcome = asking(drive("mentee", typed, start=ask), "contact_method")

    assert outcome.state.answers["area"] is None
    assert outcome.answered == SKIPPED


def test_typing_skip_at_an_optional_typed_question_skips_it_too() -> None:
    ask, _asked = answer_until("mentor", "employer")

    outcome = asking(drive("mentor", "je passe", start=ask), "mentee_groups")

    assert outcome.state.answers["employer"] is None


def test_typing_skip_at_a_required_question_is_read_as_before() -> None:
    at_format = mentee_at("format")
    at_first_name = begin(MENTEE)

    format_again = asking(drive("mentee", "passer", start=at_format), "format")
    named = asking(drive("mentee", "Suivant", start=at_first_name), "age")

    assert format_again.problem == use_the_buttons_hint(at_format)
    assert named.state.answers["first_name"] == "Suivant"


@pytest.mark.parametrize(
    "typed",
    [
        "je sais pas",
        "Je ne sais pas",
        "j'sais pas",
        "sais pas",
        "jsp",
        "chais pas",
        "aucune idée",
        "I don't know",
        "dont know",
        "idk",
    ],
)
def test_typing_i_dont_know_picks_the_i_dont_know_option(typed: str) -> None:
    found = match_choice(typed, YES_NO_UNKNOWN_AREA, localize)
    outcome = asking(drive("mentee", typed, start=mentee_at("area")), "contact_method")

    assert found is not None
    assert found.value == "unknown"
    assert outcome.state.answers["area"] == "unknown"


def test_typing_i_dont_know_where_no_option_means_it_asks_to_use_the_buttons() -> None:
    ask = mentee_at("format")

    again = asking(drive("mentee", "jsp", start=ask), "format")

    assert again.problem == use_the_buttons_hint(ask)
    assert "format" not in again.state.answers


@pytest.mark.parametrize("typed", ["aucun", "Aucune", "rien", "none", "Nothing"])
def test_typing_none_picks_the_none_option(typed: str) -> None:
    ask = mentee_at("diploma", age="20", situation=pick("situation", "job_seeker"))

    outcome = asking(drive("mentee", typed, start=ask), "needs")

    assert outcome.state.answers["diploma"] == "none"
    found = match_choice(typed, DIPLOMAS, localize)
    assert found is not None
    assert found.value == "none"
    neither = match_choice(typed, YES_NO_UNKNOWN_AREA, localize)
    assert neither is not None
    assert neither.value == "neither"


def test_typing_none_where_no_option_means_it_ticks_nothing() -> None:
    ask = mentee_at("needs")

    again = asking(drive("mentee", "rien", start=ask), "needs")

    assert again.problem == use_the_buttons_hint(ask)
    assert again.selected == ()


def test_numbers_and_labels_still_win_over_those_words() -> None:
    assert match_choice("4", YES_NO_UNKNOWN_AREA, localize) == YES_NO_UNKNOWN_AREA[3]
    assert (
        match_choice("ni l'un ni l'autre", YES_NO_UNKNOWN_AREA, localize)
        == (YES_NO_UNKNOWN_AREA[2])
    )
    assert match_choice("CAP", DIPLOMAS, localize) == DIPLOMAS[1]


def test_a_dropped_ne_still_matches_a_button_typed_in_full() -> None:
    outcome = drive("mentee", "Nadia", "17", "j'habite pas en France")

    assert isinstance(outcome, Exited)
    assert outcome.state.answers["postal_code"] == "abroad"


# --- stale buttons -------------------------------------------------------------------------


def test_a_double_tap_on_a_choice_answers_once() -> None:
    ask = mentee_at("format")
    once = advance(MENTEE, ask.state, pick("format", "remote"), localize)

    twice = advance(MENTEE, once.state, pick("format", "in_person"), localize)

    assert isinstance(twice, Stale)
    assert twice.state == once.state
    assert once.state.answers["format"] == "remote"


@pytest.mark.parametrize(
    "given",
    [
        ToggleInput("needs", "orientation"),
        DoneInput("needs"),
        BackInput("age"),
        SkipInput("area"),
        EditInput("age"),
        ConfirmInput(),
    ],
)
def test_a_button_of_another_message_changes_nothing(given: Input) -> None:
    ask = mentee_at("format")

    outcome = advance(MENTEE, ask.state, given, localize)

    assert isinstance(outcome, Stale)
    assert outcome.state == ask.state


def test_a_choice_that_is_not_offered_changes_nothing() -> None:
    ask = mentee_at("format")

    outcome = advance(MENTEE, ask.state, pick("format", "teleportation"), localize)

    assert isinstance(outcome, Stale)
    assert outcome.state == ask.state


# --- several answers -----------------------------------------------------------------------


def test_a_double_tap_on_an_unticked_option_ticks_it_once_rather_than_undoing_it() -> None:
    ask = mentee_at("needs")
    select = ToggleInput("needs", "culture", select=True)

    once = asking(advance(MENTEE, ask.state, select, localize), "needs")
    twice = asking(advance(MENTEE, once.state, select, localize), "needs")
    cleared = asking(
        advance(MENTEE, twice.state, ToggleInput("needs", "culture", select=False), localize),
        "needs",
    )

    assert (once.selected, twice.selected, cleared.selected) == (("culture",), ("culture",), ())


def test_toggling_an_option_ticks_it_on_the_same_message() -> None:
    ask = mentee_at("needs")

    toggled = asking(advance(MENTEE, ask.state, ToggleInput("needs", "culture"), localize), "needs")

    assert toggled.in_place
    assert toggled.selected == ("culture",)
    assert "needs" not in toggled.state.answers


def test_toggling_an_option_twice_unticks_it() -> None:
    ask = mentee_at("needs")

    outcome = drive(
        "mentee", ToggleInput("needs", "culture"), ToggleInput("needs", "culture"), start=ask
    )

    toggled = asking(outcome, "needs")
    assert toggled.selected == ()
    assert toggled.in_place


def test_valider_with_nothing_ticked_asks_for_at_least_one() -> None:
    ask = mentee_at("needs")

    again = asking(advance(MENTEE, ask.state, DoneInput("needs"), localize), "needs")

    assert again.problem is not None
    assert "needs" not in again.state.answers


def test_valider_keeps_the_options_in_the_order_they_are_shown() -> None:
    ask = mentee_at("needs")

    outcome = drive("mentee", tick("needs", "culture", "school_support", "confidence"), start=ask)

    asking(outcome, "format")
    assert outcome.state.answers["needs"] == ("school_support", "confidence", "culture")


def test_typing_an_option_of_a_multi_choice_ticks_it_with_a_new_message() -> None:
    ask = mentee_at("needs")

    toggled = asking(drive("mentee", "confiance", start=ask), "needs")

    assert toggled.selected == ("confidence",)
    assert not toggled.in_place


def test_tapping_a_single_choice_button_on_a_multi_choice_changes_nothing() -> None:
    ask = mentee_at("needs")

    outcome = advance(MENTEE, ask.state, ChoiceInput("needs", "culture"), localize)

    assert isinstance(outcome, Stale)
    assert outcome.state == ask.state


# --- going back ----------------------------------------------------------------------------


def test_back_returns_to_the_previous_question_and_forgets_its_answer() -> None:
    ask = mentee_at("postal_code")

    back = asking(advance(MENTEE, ask.state, BackInput("postal_code"), localize), "age")

    assert "age" not in back.state.answers
    assert back.state.answers["first_name"] == "Nadia"
    assert back.can_go_back


def test_back_skips_questions_that_were_not_asked() -> None:
    ask = mentee_at("consent", contact_method=pick("contact_method", "email"))

    back = asking(advance(MENTEE, ask.state, BackInput("consent"), localize), "email")

    assert back.state.answers["contact_method"] == "email"


def test_answering_again_after_back_carries_on_where_it_was() -> None:
    ask = mentee_at("consent", contact_method=pick("contact_method", "email"))

    outcome = drive("mentee", BackInput("consent"), "autre@exemple.fr", start=ask)

    again = asking(outcome, "consent")
    assert again.state.answers == {**ask.state.answers, "email": "autre@exemple.fr"}


def test_back_to_a_multi_choice_shows_the_previous_ticks() -> None:
    ask = mentee_at("format", needs=tick("needs", "orientation", "culture"))

    back = asking(advance(MENTEE, ask.state, BackInput("format"), localize), "needs")

    assert back.selected == ("orientation", "culture")
    assert back.state.draft == ("orientation", "culture")
    validated = drive("mentee", DoneInput("needs"), start=back)
    assert validated.state.answers["needs"] == ("orientation", "culture")


def test_back_to_a_single_choice_shows_nothing_selected_once_forgotten() -> None:
    ask = mentee_at("needs")

    back = asking(advance(MENTEE, ask.state, BackInput("needs"), localize), "situation")

    assert back.selected == ()


def test_back_on_the_first_question_stays_there() -> None:
    first = begin(MENTEE)

    again = asking(advance(MENTEE, first.state, BackInput("first_name"), localize), "first_name")

    assert again.state == first.state
    assert not again.can_go_back


# --- skipping ------------------------------------------------------------------------------


def test_an_optional_question_can_be_skipped() -> None:
    ask = mentee_at("area")

    outcome = asking(advance(MENTEE, ask.state, SkipInput("area"), localize), "contact_method")

    assert "area" in outcome.state.answers
    assert outcome.state.answers["area"] is None
    assert outcome.answered == SKIPPED


def test_a_required_question_cannot_be_skipped() -> None:
    ask = mentee_at("format")

    again = asking(advance(MENTEE, ask.state, SkipInput("format"), localize), "format")

    assert again.problem is not None
    assert again.state == ask.state


# --- editing from the summary --------------------------------------------------------------


def test_editing_an_answer_from_the_summary_comes_back_to_the_summary() -> None:
    summary = at_summary()

    edit = asking(advance(MENTEE, summary.state, EditInput("format"), localize), "format")
    assert edit.selected == ("either",)
    assert edit.can_go_back
    outcome = advance(MENTEE, edit.state, pick("format", "remote"), localize)

    assert isinstance(outcome, Summary)
    assert outcome.state.answers == {**summary.state.answers, "format": "remote"}
    assert not outcome.state.editing


def test_editing_a_multi_choice_starts_from_the_previous_ticks() -> None:
    summary = at_summary(needs=tick("needs", "orientation", "culture"))

    edit = asking(advance(MENTEE, summary.state, EditInput("needs"), localize), "needs")
    assert edit.selected == ("orientation", "culture")
    outcome = drive("mentee", tick("needs", "culture"), start=edit)

    assert isinstance(outcome, Summary)
    assert outcome.state.answers["needs"] == ("orientation",)


def test_back_while_editing_keeps_the_previous_answer() -> None:
    summary = at_summary()

    outcome = drive("mentee", EditInput("format"), BackInput("format"), start=summary)

    assert isinstance(outcome, Summary)
    assert outcome.state.answers == summary.state.answers


def test_editing_a_question_that_is_not_asked_changes_nothing() -> None:
    summary = at_summary()

    outcome = advance(MENTEE, summary.state, EditInput("parent_name"), localize)

    assert isinstance(outcome, Stale)
    assert outcome.state == summary.state


def test_switching_contact_to_email_asks_the_email_and_drops_the_phone() -> None:
    summary = at_summary()

    outcome = drive(
        "mentee", EditInput("contact_method"), pick("contact_method", "email"), start=summary
    )
    outcome = drive("mentee", "nadia@exemple.fr", start=asking(outcome, "email"))

    assert isinstance(outcome, Summary)
    assert "phone" not in outcome.state.answers
    assert outcome.state.answers["email"] == "nadia@exemple.fr"


def test_editing_the_age_down_to_13_asks_the_new_questions_then_returns_to_the_summary() -> None:
    summary = at_summary(needs=tick("needs", "orientation", "job"))

    edited = drive("mentee", EditInput("age"), "13", start=summary)

    asking(edited, "situation")
    # Lycée is not offered at 13, and nobody offers a 13-year-old help to find a job.
    assert "situation" not in edited.state.answers
    assert edited.state.answers["needs"] == ("orientation",)
    outcome, asked = answer_until(
        "mentee", SUMMARY, edited, situation=pick("situation", "middle_school")
    )
    assert asked == ["situation", "parent_name", "parent_phone"]
    assert isinstance(outcome, Summary)
    assert outcome.state.answers["situation"] == "middle_school"
    assert outcome.state.answers["parent_phone"] == "+33781234567"


def test_back_after_editing_the_age_down_still_asks_the_parent_questions() -> None:
    summary = at_summary()

    outcome = drive("mentee", EditInput("age"), "13", BackInput("situation"), start=summary)
    if isinstance(outcome, Summary):
        outcome = advance(MENTEE, outcome.state, ConfirmInput(), localize)

    assert not isinstance(outcome, Completed), outcome.state.answers
    assert isinstance(outcome, Ask)


# --- options that depend on age ------------------------------------------------------------


def test_a_9_year_old_is_offered_neither_higher_education_nor_job_themes() -> None:
    situation = mentee_at("situation", age="9")
    needs = mentee_at("needs", age="9", situation=pick("situation", "primary_school"))

    assert "higher_education" not in choice_values(situation)
    assert "primary_school" in choice_values(situation)
    assert not WORK_THEMES & set(choice_values(needs))
    assert "school_support" in choice_values(needs)


def test_a_17_year_old_is_offered_every_theme() -> None:
    needs = mentee_at("needs", age="17")

    assert choice_values(needs) == [theme.value for theme in THEMES]


def test_tapping_a_situation_hidden_for_this_age_changes_nothing() -> None:
    ask = mentee_at("situation", age="9")

    outcome = advance(MENTEE, ask.state, pick("situation", "higher_education"), localize)

    assert isinstance(outcome, Stale)
    assert outcome.state == ask.state


# --- progress and resuming -----------------------------------------------------------------


def test_progress_counts_the_questions_answered_and_those_that_may_still_come() -> None:
    # Nadia, 17, has answered 9 questions; the consent is the last that can come.
    assert mentee_at("consent").progress == Progress(position=10, percent=90)
    # Before the age, the parent's questions may still come; at 17 they are ruled out.
    at_age = progress(MENTEE, {"first_name": "Nadia"}, "age")
    at_postal_code = mentee_at("postal_code").progress
    assert at_postal_code.position == at_age.position + 1
    assert at_postal_code.percent > at_age.percent


def test_current_shows_the_same_question_again_after_a_crash() -> None:
    ask = mentee_at("needs")
    toggled = advance(MENTEE, ask.state, ToggleInput("needs", "culture"), localize)

    resumed = current(MENTEE, toggled.state)

    resumed = asking(resumed, "needs")
    assert resumed.prompt == ask.prompt
    assert resumed.choices == ask.choices
    assert resumed.progress == ask.progress
    assert resumed.selected == ("culture",)
    assert resumed.state == toggled.state


def test_current_shows_the_summary_again_at_the_summary() -> None:
    summary = at_summary()

    resumed = current(MENTEE, summary.state)

    assert isinstance(resumed, Summary)
    assert resumed.lines == summary.lines


def test_current_after_the_end_has_nothing_to_show() -> None:
    done = advance(MENTEE, at_summary().state, ConfirmInput(), localize)

    assert isinstance(current(MENTEE, done.state), Stale)


def test_current_passes_a_problem_along() -> None:
    ask = mentee_at("age")
    problem = _("Désolé, je n'ai pas compris.")

    assert asking(current(MENTEE, ask.state, problem), "age").problem == problem


def test_an_answer_is_echoed_on_the_message_it_answered() -> None:
    ask = mentee_at("format")

    outcome = asking(advance(MENTEE, ask.state, pick("format", "remote"), localize), "area")

    assert outcome.answered == _("À distance (visio, téléphone)")


# --- the mentor questionnaire --------------------------------------------------------------


@pytest.mark.parametrize("situation", ["private_employee", "public_servant", "self_employed"])
def test_a_working_mentor_is_asked_for_the_employer(situation: str) -> None:
    asked = asked_steps("mentor", situation=pick("situation", situation))

    assert asked.index("employer") == asked.index("situation") + 1


@pytest.mark.parametrize("situation", ["retiree", "job_seeker", "university_student", "other"])
def test_a_mentor_who_does_not_work_is_not_asked_for_an_employer(situation: str) -> None:
    asked = asked_steps(
        "mentor",
        age_bracket=pick("age_bracket", "60_plus" if situation == "retiree" else "18_25"),
        situation=pick("situation", situation),
    )

    assert "employer" not in asked


def test_a_mentor_may_skip_the_employer() -> None:
    ask, _asked = answer_until("mentor", "employer")

    outcome = asking(advance(MENTOR, ask.state, SkipInput("employer"), localize), "mentee_groups")

    assert outcome.state.answers["employer"] is None


def test_a_15_year_old_mentor_is_not_offered_retirement() -> None:
    outcome, _asked = answer_until("mentor", "situation", age_bracket=pick("age_bracket", "15_17"))

    offered = choice_values(asking(outcome, "situation"))
    assert "retiree" not in offered
    assert "high_school_student" in offered


def test_the_mentor_questionnaire_completes() -> None:
    summary, asked = answer_until("mentor")

    assert isinstance(summary, Summary)
    assert "phone" not in asked
    assert summary.state.answers["themes"] == ("orientation", "internship")
    done = advance(MENTOR, summary.state, ConfirmInput(), localize)
    assert isinstance(done, Completed)
    assert done.state.answers["consent"] is True


# --- matching typed text and reading answers back ------------------------------------------


def test_normalize_folds_case_accents_and_punctuation() -> None:
    assert normalize("  Lycée  PRO ! ") == "lycee pro"
    assert normalize("N’habite") == "n habite"


OPTIONS = (
    Choice("a", _("Lycée général ou technologique")),
    Choice("b", _("Lycée professionnel")),
    Choice("c", _("Collège")),
)


@pytest.mark.parametrize(
    ("typed", "value"),
    [
        ("3", "c"),
        ("collège", "c"),
        ("pro", "b"),
        ("technologique", "a"),
        ("lycée", None),
        ("4", None),
        ("co", None),
        ("ège", None),
    ],
)
def test_match_choice_finds_an_option_only_when_it_is_clear(typed: str, value: str | None) -> None:
    found = match_choice(typed, OPTIONS, localize)

    assert (found.value if found else None) == value


def test_match_choice_exact_only_ignores_numbers_and_partial_words() -> None:
    assert match_choice("1", OPTIONS, localize, exact_only=True) is None
    assert match_choice("pro", OPTIONS, localize, exact_only=True) is None
    found = match_choice("Collège", OPTIONS, localize, exact_only=True)
    assert found is not None
    assert found.value == "c"


def test_answers_are_read_back_as_labels_typed_text_or_skipped() -> None:
    assert display(MENTEE.step("area"), None, {}) == SKIPPED
    assert display(MENTEE.step("consent"), False, {}) == _("Non")
    assert display(MENTEE.step("first_name"), "Nadia", {}) == "Nadia"


def test_sharing_ones_own_number_at_the_parent_phone_question_is_refused() -> None:
    from conversations.model import ContactInput

    state = drive_to_parent_phone()
    outcome = advance(MENTEE, state, ContactInput("33612345678", is_own=True), localize)
    assert isinstance(outcome, Ask)
    assert outcome.step.key == "parent_phone"
    assert outcome.problem is not None
    assert "parent_phone" not in outcome.state.answers


def test_typing_ones_own_number_as_the_parents_is_refused() -> None:
    state = drive_to_parent_phone()
    outcome = advance(MENTEE, state, TextInput("06 12 34 56 78"), localize)
    assert isinstance(outcome, Ask)
    assert outcome.step.key == "parent_phone"
    accepted = advance(MENTEE, state, TextInput("06 98 76 54 32"), localize)
    assert accepted.state.answers["parent_phone"] == "+33698765432"


def test_a_parents_contact_card_is_accepted_at_the_parent_phone_question() -> None:
    from conversations.model import ContactInput

    state = drive_to_parent_phone()
    outcome = advance(MENTEE, state, ContactInput("+33698765432", is_own=False), localize)
    assert outcome.state.answers["parent_phone"] == "+33698765432"


def drive_to_parent_phone():  # type: ignore[no-untyped-def]
    outcome = begin(MENTEE)
    for given in (
        TextInput("Léo"),
        TextInput("13"),
        TextInput("1"),
        TextInput("93200"),
        TextInput("1"),
    ):
        outcome = advance(MENTEE, outcome.state, given, localize)
    while outcome.step.key != "parent_phone":  # type: ignore[union-attr]
        step = outcome.step  # type: ignore[union-attr]
        if step.kind.value == "multi":
            outcome = advance(
                MENTEE,
                outcome.state,
                ToggleInput(step.key, step.choices_for(outcome.state.answers)[0].value),
                localize,
            )
            outcome = advance(MENTEE, outcome.state, DoneInput(step.key), localize)
        elif step.key == "contact_method":
            outcome = advance(MENTEE, outcome.state, ChoiceInput(step.key, "phone"), localize)
        elif step.key == "phone":
            outcome = advance(MENTEE, outcome.state, TextInput("06 12 34 56 78"), localize)
        elif step.optional:
            outcome = advance(MENTEE, outcome.state, SkipInput(step.key), localize)
        elif step.key == "parent_name":
            outcome = advance(MENTEE, outcome.state, TextInput("Nadia Benali"), localize)
        else:
            choice = step.choices_for(outcome.state.answers)[0]
            outcome = advance(MENTEE, outcome.state, ChoiceInput(step.key, choice.value), localize)
    return outcome.state
