"""Structural checks of the questionnaires, and a property test of the engine over random conversations.

They catch a flow edit that would break Telegram buttons or let a person through without consent.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import TypeAlias

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conversations.engine import advance, begin, current
from conversations.flows import FLOWS
from conversations.flows.mentee import MAX_AGE as MENTEE_MAX_AGE
from conversations.flows.mentee import MIN_AGE as MENTEE_MIN_AGE
from conversations.flows.mentor import AGE_BRACKETS
from conversations.model import (
    SUMMARY,
    Answers,
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
    Flow,
    Input,
    NonTextInput,
    Outcome,
    SkipInput,
    Stale,
    Status,
    Step,
    StepKind,
    Summary,
    TextInput,
    ToggleInput,
)
from conversations.text import Text
from tests.unit.helpers import Reply, answer_until, localize, pick

# Telegram refuses an inline button whose callback_data is over 64 bytes.
CALLBACK_DATA_MAX = 64

ALL_FLOWS = sorted(FLOWS)


def contexts() -> Iterator[Answers]:
    """Answers that change what a step shows: every age, every bracket, who fills in, contact."""
    yield {}
    for age in range(MENTEE_MIN_AGE, MENTEE_MAX_AGE + 1):
        yield {"age": age}
        yield {"age": age, "referrer_role": "parent", "first_name": "Nina"}
        yield {"age": age, "referrer_role": "professional", "first_name": "Nina"}
    for bracket in AGE_BRACKETS:
        yield {"age_bracket": bracket.value}
    for method in ("phone", "email", "both"):
        yield {"contact_method": method}


def all_choices(step: Step) -> list[Choice]:
    found = {choice.value: choice for choice in step.shortcuts}
    for answers in contexts():
        found.update((choice.value, choice) for choice in step.choices_for(answers))
    return list(found.values())


def every_step() -> Iterator[tuple[Flow, Step]]:
    for name in ALL_FLOWS:
        for step in FLOWS[name].steps:
            yield FLOWS[name], step


STEPS = [pytest.param(flow, step, id=f"{flow.name}.{step.key}") for flow, step in every_step()]
BUTTONS = (StepKind.CHOICE, StepKind.MULTI, StepKind.CONSENT)
BUTTON_STEPS = [
    pytest.param(flow, step, id=f"{flow.name}.{step.key}")
    for flow, step in every_step()
    if step.kind in BUTTONS
]


# --- structure -----------------------------------------------------------------------------


def test_flows_are_stored_under_their_own_name() -> None:
    assert {name: flow.name for name, flow in FLOWS.items()} == {name: name for name in FLOWS}
    assert {flow.address for flow in FLOWS.values()} <= {"tu", "vous"}


@pytest.mark.parametrize("name", ALL_FLOWS)
def test_step_keys_are_unique(name: str) -> None:
    keys = [step.key for step in FLOWS[name].steps]

    assert len(keys) == len(set(keys))
    assert SUMMARY not in keys


@pytest.mark.parametrize(("flow", "step"), STEPS)
def test_every_button_fits_in_telegram_callback_data(flow: Flow, step: Step) -> None:
    for choice in all_choices(step):
        data = f"s|{step.key}|{choice.value}"
        assert len(data.encode("utf-8")) <= CALLBACK_DATA_MAX, data
        # The edge splits callback data on "|".
        assert "|" not in step.key
        assert "|" not in choice.value


@pytest.mark.parametrize(("flow", "step"), STEPS)
def test_option_values_of_a_step_are_distinct(flow: Flow, step: Step) -> None:
    for answers in contexts():
        values = [c.value for c in (*step.choices_for(answers), *step.shortcuts)]
        assert len(values) == len(set(values)), values


@pytest.mark.parametrize(("flow", "step"), STEPS)
def test_every_text_shown_is_translatable(flow: Flow, step: Step) -> None:
    assert isinstance(step.title, Text)
    assert step.hint is None or isinstance(step.hint, Text)
    for answers in contexts():
        assert isinstance(step.prompt_for(answers), Text)
    for choice in all_choices(step):
        assert isinstance(choice.label, Text)
        assert choice.label.msgid


@pytest.mark.parametrize(("flow", "step"), BUTTON_STEPS)
def test_button_steps_offer_something_at_every_age(flow: Flow, step: Step) -> None:
    for answers in contexts():
        assert step.choices_for(answers), answers


@pytest.mark.parametrize("name", ALL_FLOWS)
def test_every_flow_ends_with_a_consent_that_can_be_refused(name: str) -> None:
    last = FLOWS[name].steps[-1]

    assert last.key == "consent"
    assert last.kind is StepKind.CONSENT
    assert not last.optional
    assert all(last.ask_if(answers) for answers in contexts())
    assert {c.value for c in last.choices_for({})} == {"yes", "no"}
    assert last.exit_if is not None
    assert last.exit_if(False, {}) is not None
    assert last.exit_if(True, {}) is None


@pytest.mark.parametrize("name", ALL_FLOWS)
def test_typed_steps_have_a_validator_and_button_steps_have_none(name: str) -> None:
    for step in FLOWS[name].steps:
        typed = step.kind not in BUTTONS
        assert (step.validate is not None) == typed, step.key


# --- random conversations ------------------------------------------------------------------

# One abstract action; indexes pick among what the current message offers, so any list is playable.
Action: TypeAlias = tuple[str, int | str]

TEXTS = [
    "Nadia", "4", "9", "13", "14", "15", "17", "31", "93200", "97411", "20200", "98000",
    "06 12 34 56 78", "07 81 23 45 67", "nadia@exemple.fr", "Samia Benali", "lycée", "lycée pro",
    "collège", "1", "2", "3", "oui", "non", "Je n'habite pas en France", "abc", "", "😀",
]  # fmt: skip

actions = st.one_of(
    st.tuples(st.just("text"), st.sampled_from(TEXTS) | st.text(max_size=12)),
    st.tuples(st.sampled_from(["choice", "toggle", "edit", "stale"]), st.integers(0, 20)),
    st.tuples(st.sampled_from(["done", "back", "skip", "sticker", "confirm"]), st.just(0)),
    st.tuples(st.just("contact"), st.sampled_from(["33612345678", "123"])),
)


@cache
def start_of(start: str) -> Outcome:
    """Where a random conversation starts: fresh, or at the summary of a typical person."""
    flow, _, where = start.partition(":")
    if where == "begin":
        return begin(FLOWS[flow])
    age = {"summary": "17", "summary13": "13", "summary12p": "12"}[where]
    replies: dict[str, Reply] = {}
    if flow == "mentee":
        replies = {"age": age}
    elif flow == "referral":
        role = "professional" if where == "summary12p" else "parent"
        replies = {"age": age, "referrer_role": pick("referrer_role", role), "situation": "1"}
    outcome, _asked = answer_until(flow, **replies)
    return outcome


STARTS = [
    "mentee:begin",
    "mentor:begin",
    "mentee:summary",
    "mentee:summary13",
    "mentee:summary12p",
    "referral:begin",
    "referral:summary",
    "referral:summary13",
    "referral:summary12p",
    "mentor:summary",
]


def to_input(flow: Flow, shown: Outcome, action: Action) -> Input:
    kind, arg = action
    state = shown.state
    here = state.step or ""
    buttons = shown.choices if isinstance(shown, Ask) else ()
    shortcuts = shown.step.shortcuts if isinstance(shown, Ask) else ()
    number = arg if isinstance(arg, int) else 0

    def nth(options: tuple[Choice, ...]) -> str:
        return options[number % len(options)].value if options else "nope"

    if kind == "text":
        return TextInput(str(arg))
    if kind == "choice":
        return ChoiceInput(here, nth((*buttons, *shortcuts)))
    if kind == "toggle":
        return ToggleInput(here, nth(buttons))
    if kind == "edit":
        return EditInput(flow.steps[number % len(flow.steps)].key)
    if kind == "stale":
        other = flow.steps[number % len(flow.steps)]
        return ChoiceInput(other.key, "yes")
    if kind == "contact":
        return ContactInput(str(arg), is_own=True)
    fixed: dict[str, Input] = {
        "done": DoneInput(here),
        "back": BackInput(here),
        "skip": SkipInput(here),
        "sticker": NonTextInput("sticker"),
        "confirm": ConfirmInput(),
    }
    return fixed[kind]


def play(start: str, script: list[Action]) -> Iterator[tuple[Outcome, Outcome]]:
    """Each (before, after) pair of a random conversation, until it ends."""
    flow = FLOWS[start.partition(":")[0]]
    shown = start_of(start)
    for action in script:
        given = to_input(flow, shown, action)
        after = advance(flow, shown.state, given, localize)
        yield shown, after
        if after.state.status is not Status.ACTIVE:
            return
        shown = after if isinstance(after, (Ask, Summary)) else current(flow, after.state)


def check_consistent(flow: Flow, before: Outcome, after: Outcome) -> None:
    state = after.state
    answers = state.answers
    assert all(flow.step(key).ask_if(answers) for key in answers), answers
    if isinstance(after, Stale):
        assert state == before.state
    if isinstance(after, Ask):
        assert state.status is Status.ACTIVE
        assert after.step.key == state.step
        assert after.step.ask_if(answers), f"{state.step} is not asked given {answers}"
        offered = {c.value for c in after.choices}
        assert set(state.draft) <= offered
    if isinstance(after, Summary):
        assert state.step == SUMMARY
        assert state.status is Status.ACTIVE
    if isinstance(after, Exited):
        # The step whose answer ended it is kept: "Retour" asks it again.
        assert state.status is Status.EXITED
        assert state.step is not None
        assert state.step in state.answers
    if isinstance(after, Completed):
        assert state.status is Status.COMPLETED
        assert answers["consent"] is True


scripts = st.lists(actions, max_size=40)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(start=st.sampled_from(STARTS), script=scripts)
def test_random_conversations_never_crash_nor_ask_a_question_that_does_not_apply(
    start: str, script: list[Action]
) -> None:
    flow = FLOWS[start.partition(":")[0]]
    for before, after in play(start, script):
        check_consistent(flow, before, after)


def unanswered_required(flow: Flow, answers: Answers) -> list[str]:
    return [
        step.key
        for step in flow.steps
        if step.ask_if(answers) and not step.optional and step.key not in answers
    ]


AGE = FLOWS["mentee"].index("age")


@FAST
@given(start=st.sampled_from(STARTS), script=scripts)
@example(
    start="mentee:summary", script=[("edit", AGE), ("text", "13"), ("back", 0), ("confirm", 0)]
)
@example(start="mentee:summary13", script=[("edit", AGE), ("text", "9"), ("back", 0)])
def test_a_completed_conversation_has_every_required_answer(
    start: str, script: list[Action]
) -> None:
    flow = FLOWS[start.partition(":")[0]]
    for _before, after in play(start, script):
        if isinstance(after, (Summary, Completed)):
            assert unanswered_required(flow, after.state.answers) == []
        if isinstance(after, Completed):
            assert after.state.answers["consent"] is True
            if flow.name == "referral":
                needs_parent = flow.step("parent_consent").ask_if(after.state.answers)
                assert not needs_parent or after.state.answers["parent_consent"] is True
