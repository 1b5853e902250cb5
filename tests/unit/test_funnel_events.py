"""The funnel a questionnaire leaves behind: each journey's steps reached, answered, refused and
left with "Retour", under one anonymous token with the person's language and source."""

from __future__ import annotations

from conversations.entities import Milestone
from conversations.model import (
    BackInput,
    ConfirmInput,
    DoneInput,
    EditInput,
    NonTextInput,
    SkipInput,
    TextInput,
    ToggleInput,
)
from conversations.services.actions import Cancel, ChooseLanguage, Restart
from tests.unit.fakes import Chat, FunnelEvent, Scene, a_catalog, an_association
from tests.unit.helpers import pick

R, A, NO, B = Milestone.REACHED, Milestone.ANSWERED, Milestone.INVALID, Milestone.BACK


def events(scene: Scene) -> list[FunnelEvent]:
    return sorted(scene.db.tables.funnel.values(), key=lambda e: e.id)


def steps_and_events(scene: Scene, after: int = 0) -> list[tuple[str | None, str]]:
    return [(e.step, e.event) for e in events(scene)[after:]]


async def test_one_sign_up_leaves_every_step_reached_answered_refused_and_left_under_one_journey() -> (
    None
):
    scene = Scene()
    await scene.import_catalog(a_catalog(an_association("alpha")))
    inès = Chat(scene, 101, language="en")
    await inès.start("lycee-voltaire")
    await inès.choose("mentee")
    await inès.answer(TextInput("Inès"))
    await inès.answer(TextInput("dix-sept"))  # refused: not a number
    await inès.answer(TextInput("17"))
    await inès.answer(BackInput("postal_code"))  # back to the age, whose answer goes
    await inès.answer(BackInput("postal_code"))  # an old button: a toast, nothing recorded
    await inès.answer(TextInput("17"))
    await inès.answer(TextInput("93200"))
    await inès.answer(TextInput("1"))
    await inès.answer(ToggleInput("needs", "orientation"))  # toggles redraw, count nothing
    await inès.answer(ToggleInput("needs", "orientation"))
    await inès.answer(DoneInput("needs"))  # refused: nothing chosen
    await inès.answer(ToggleInput("needs", "orientation"))
    await inès.answer(DoneInput("needs"))
    for reply in (
        pick("format", "either"),
        pick("area", "neither"),
        pick("contact_method", "phone"),
        TextInput("06 12 34 56 78"),
        pick("consent", "yes"),
    ):
        await inès.answer(reply)
    await inès.answer(TextInput("ok?"))  # at the summary: no step, so no refusal counted
    await inès.answer(EditInput("format"))
    await inès.answer(pick("format", "remote"))  # edited: no second first answer
    await inès.answer(ConfirmInput())

    assert steps_and_events(scene) == [
        ("first_name", Milestone.STARTED),
        ("first_name", R),
        ("first_name", A),
        ("age", R),
        ("age", NO),
        ("age", A),
        ("postal_code", R),
        ("postal_code", B),
        ("age", R),
        ("age", A),
        ("postal_code", R),
        ("postal_code", A),
        ("situation", R),
        ("situation", A),
        ("needs", R),
        ("needs", NO),
        ("needs", A),
        ("format", R),
        ("format", A),
        ("area", R),
        ("area", A),
        ("contact_method", R),
        ("contact_method", A),
        ("phone", R),
        ("phone", A),
        ("consent", R),
        ("consent", A),
        ("format", R),
        (None, Milestone.COMPLETED),
    ]
    recorded = events(scene)
    assert {(e.flow, e.language, e.source) for e in recorded} == {
        ("mentee", "en", "lycee-voltaire")
    }
    assert len({e.journey for e in recorded}) == 1
    conversation = next(iter(scene.db.tables.conversations.values()))
    assert recorded[0].journey == conversation.journey
    assert recorded[0].journey is not None


async def test_a_refused_skip_a_photo_typed_text_on_buttons_and_back_from_the_first_step_count() -> (
    None
):
    scene = Scene()
    nadia = scene.person(101)
    await nadia.choose("mentee")
    await nadia.answer(BackInput("first_name"))  # nowhere to go back to: asked again
    await nadia.answer(TextInput("Nadia"))
    await nadia.answer(SkipInput("age"))  # not optional
    await nadia.answer(NonTextInput("photo"))
    await nadia.answer(TextInput("17"))
    await nadia.answer(TextInput("75001"))
    await nadia.answer(TextInput("1"))
    await nadia.answer(ToggleInput("needs", "orientation"))
    await nadia.answer(DoneInput("needs"))
    await nadia.answer(TextInput("peut-être ?"))  # buttons expected: "use the buttons"

    assert steps_and_events(scene) == [
        ("first_name", Milestone.STARTED),
        ("first_name", R),
        ("first_name", B),
        ("first_name", A),
        ("age", R),
        ("age", NO),
        ("age", NO),
        ("age", A),
        ("postal_code", R),
        ("postal_code", A),
        ("situation", R),
        ("situation", A),
        ("needs", R),
        ("needs", A),
        ("format", R),
        ("format", NO),
    ]


async def test_a_language_chosen_midway_is_the_language_of_the_next_events() -> None:
    scene = Scene()
    nadia = scene.person(101)
    await nadia.choose("mentee")
    await nadia.send(ChooseLanguage("en"))
    await nadia.answer(TextInput("Nadia"))

    assert [(e.event, e.language) for e in events(scene)] == [
        (Milestone.STARTED, "fr"),
        (R, "fr"),
        (A, "en"),
        (R, "en"),
    ]


async def test_a_restart_ends_the_journey_and_begins_a_new_one_at_the_first_step() -> None:
    scene = Scene()
    nadia = scene.person(101)
    await nadia.start("salon-2026")
    await nadia.answer_until("mentee", "postal_code")

    await nadia.send(Restart())
    await nadia.answer(TextInput("Nadia"))

    *before, restarted, reached, answered, next_reached = events(scene)
    assert (restarted.step, restarted.event) == ("postal_code", Milestone.RESTARTED)
    assert {e.journey for e in before} == {restarted.journey}
    assert (reached.step, reached.event) == ("first_name", R)
    assert reached.journey != restarted.journey
    assert {answered.journey, next_reached.journey} == {reached.journey}
    assert (reached.source, reached.language) == ("salon-2026", "fr")
    old, new = sorted(scene.db.tables.conversations.values(), key=lambda c: c.id)
    assert (old.journey, new.journey) == (restarted.journey, reached.journey)


async def test_an_exit_a_cancel_and_a_no_match_carry_their_journey() -> None:
    scene = Scene()
    paris_only = an_association(
        "alpha", national=False, departments=["75"], remote=False, formats=["in_person"]
    )
    await scene.import_catalog(a_catalog(paris_only))
    too_old = scene.person(101)
    await too_old.answer_until("mentee", "age")
    await too_old.answer(TextInput("45"))
    quitter = scene.person(102)
    await quitter.answer_until("mentee", "situation")
    await quitter.send(Cancel())
    far = scene.person(103)
    await far.fill(postal_code="13001")

    ends = [e for e in events(scene) if e.event not in (R, A)]
    journeys = {
        conversation.person_id: conversation.journey
        for conversation in scene.db.tables.conversations.values()
    }
    people = {p.telegram_id: p.id for p in scene.db.tables.people.values()}
    assert [(e.journey, e.step, e.event, e.detail) for e in ends] == [
        (journeys[people[101]], "first_name", Milestone.STARTED, None),
        (journeys[people[101]], "age", Milestone.EXITED, None),
        (journeys[people[102]], "first_name", Milestone.STARTED, None),
        (journeys[people[102]], "situation", Milestone.CANCELLED, None),
        (journeys[people[103]], "first_name", Milestone.STARTED, None),
        (journeys[people[103]], None, Milestone.COMPLETED, None),
        (journeys[people[103]], None, Milestone.NO_MATCH, "13"),
    ]
    assert len(set(journeys.values())) == 3
