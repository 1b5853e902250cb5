"""Where a person is in a questionnaire ("Question 4 · ▰▰▰▱▱▱▱▱▱▱ 30 %"), and how many
questions a questionnaire asks in all: the share shown never goes back while they answer on."""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from bot.i18n import Translator
from bot.render import Renderer
from conversations import engine
from conversations.engine import advance, begin, progress, question_range
from conversations.flows import FLOWS
from conversations.model import (
    Answer,
    Answers,
    Ask,
    Choice,
    ChoiceInput,
    DoneInput,
    EditInput,
    Exit,
    Exited,
    Flow,
    Input,
    Outcome,
    Progress,
    SkipInput,
    Step,
    StepKind,
    Summary,
    TextInput,
    ToggleInput,
    exit_on,
)
from conversations.text import _
from tests.unit.helpers import answer_until, localize

# --- small flows, built for each test ------------------------------------------------------


def a_step(key: str, kind: StepKind = StepKind.TEXT, **changes: Any) -> Step:
    return replace(Step(key=key, title=_(key), prompt=_(key), kind=kind), **changes)


def text_step(key: str, **changes: Any) -> Step:
    return a_step(key, **changes)


def choice_step(key: str, *values: str, **changes: Any) -> Step:
    choices = tuple(Choice(value, _(value)) for value in values)
    return a_step(key, StepKind.CHOICE, choices=choices, **changes)


def consent_step(key: str = "consent", *values: str) -> Step:
    return a_step(
        key,
        StepKind.CONSENT,
        choices=tuple(Choice(value, _(value)) for value in values or ("yes", "no")),
        exit_if=exit_on(False, _("Rien n'a été envoyé.")),
    )


def a_flow(*steps: Step, name: str = "test") -> Flow:
    return Flow(name=name, steps=steps, address="tu")


def when(key: str, value: Answer) -> Callable[[Answers], bool]:
    return lambda answers: answers.get(key) == value


# --- progress ------------------------------------------------------------------------------


def test_the_first_question_is_question_one_with_nothing_done() -> None:
    for flow in FLOWS.values():
        assert begin(flow).progress == Progress(position=1, percent=0)


def test_a_question_that_may_still_come_counts_until_an_answer_rules_it_out() -> None:
    flow = a_flow(
        choice_step("pet", "cat", "none"),
        text_step("pet_name", ask_if=when("pet", "cat")),
        text_step("city"),
    )

    assert progress(flow, {}, "pet") == Progress(1, 0)
    # With a cat, two questions are left of three: one done.
    assert progress(flow, {"pet": "cat"}, "pet_name") == Progress(2, 33)
    # Without one, the cat's name is ruled out: one done of two.
    assert progress(flow, {"pet": "none"}, "city") == Progress(2, 50)


def test_a_question_that_hangs_on_one_never_asked_is_not_counted() -> None:
    flow = a_flow(
        choice_step("pet", "cat", "none"),
        text_step("pet_name", ask_if=when("pet", "cat")),
        text_step("vet", ask_if=lambda answers: "pet_name" in answers),
        text_step("city"),
    )

    # The vet question looks at the cat's name, which will never come without a cat.
    assert progress(flow, {"pet": "none"}, "city") == Progress(2, 50)
    assert progress(flow, {"pet": "cat"}, "pet_name") == Progress(2, 25)


def test_a_question_is_counted_while_the_answer_its_condition_reads_is_not_given() -> None:
    flow = a_flow(
        text_step("first_name"),
        choice_step("contact", "phone", "email"),
        text_step("phone", ask_if=lambda answers: answers["contact"] == "phone"),
        text_step("email", ask_if=lambda answers: answers["contact"] == "email"),
    )

    # Before the contact is chosen, both the phone and the e-mail may come: 0 done of 4.
    assert progress(flow, {}, "first_name") == Progress(1, 0)
    assert progress(flow, {"first_name": "Inès"}, "contact") == Progress(2, 25)
    assert progress(flow, {"first_name": "Inès", "contact": "email"}, "email") == Progress(3, 66)


def test_editing_from_the_summary_shows_every_other_answer_as_done() -> None:
    summary, _asked = answer_until("mentee")
    assert isinstance(summary, Summary)
    answered = len(summary.lines)

    edit = advance(FLOWS["mentee"], summary.state, EditInput("format"), localize)

    assert isinstance(edit, Ask)
    assert edit.progress == Progress(answered, 100 * (answered - 1) // answered)


def test_the_progress_line_shows_the_number_a_ten_cell_bar_and_the_share() -> None:
    renderer = Renderer(Translator())
    ask, _asked = answer_until("mentee", "consent")
    assert isinstance(ask, Ask)
    position, percent = ask.progress.position, ask.progress.percent
    assert percent >= 80

    first = renderer.ask("fr", begin(FLOWS["mentee"])).text
    last = renderer.ask("fr", ask).text

    assert first.startswith("<i>Question 1 · ▱▱▱▱▱▱▱▱▱▱ 0 %</i>\n\n")
    bar = "▰" * (percent // 10) + "▱" * (10 - percent // 10)
    assert last.startswith(f"<i>Question {position} · {bar} {percent} %</i>\n\n")


# --- whole runs of the real flows ----------------------------------------------------------

# Typed answers every flow accepts, tried in turn when one is refused (a parent's phone may not
# be the person's own).
TYPED = {
    StepKind.TEXT: ("Inès Martin",),
    StepKind.POSTAL_CODE: ("93200",),
    StepKind.PHONE: ("0612345678", "0698765432"),
    StepKind.EMAIL: ("a@b.fr",),
    StepKind.NUMBER: ("18",),
}


@dataclass
class Run:
    """One person's way through a flow: the progress of each question, and what was offered."""

    shown: list[Progress] = field(default_factory=list)
    end: Outcome | None = None
    offered: set[tuple[str, str]] = field(default_factory=set)
    taken: set[tuple[str, str]] = field(default_factory=set)


def reply(ask: Ask, sample: int, rng: random.Random, attempt: int, run: Run) -> list[Input]:
    """A valid answer to whatever step is asked, chosen by its kind."""
    step = ask.step
    key = step.key
    # A multi-choice is always answered with its first option: the others change nothing later.
    shown = ask.choices[:1] if step.kind is StepKind.MULTI else ask.choices
    run.offered |= {(key, c.value) for c in shown}
    if step.optional and rng.random() < 0.3:
        return [SkipInput(key)]
    if step.kind is StepKind.MULTI:
        run.taken.add((key, ask.choices[0].value))
        return [ToggleInput(key, ask.choices[0].value), DoneInput(key)]
    if step.kind in (StepKind.CHOICE, StepKind.CONSENT):
        choice = ask.choices[rng.randrange(len(ask.choices))]
        run.taken.add((key, choice.value))
        return [ChoiceInput(key, choice.value)]
    if step.samples:
        return [TextInput(str(step.samples[sample % len(step.samples)]))]
    return [TextInput(TYPED[step.kind][attempt])]


def run_through(flow: Flow, sample: int, seed: int) -> Run:
    rng = random.Random(seed)
    run = Run()
    outcome: Outcome = begin(flow)
    attempt = 0
    for _turn in range(100):
        if not isinstance(outcome, Ask):
            run.end = outcome
            return run
        if attempt == 0:
            run.shown.append(outcome.progress)
        asked = outcome.step.key
        for given in reply(outcome, sample, rng, attempt, run):
            outcome = advance(flow, outcome.state, given, localize)
        refused = isinstance(outcome, Ask) and outcome.step.key == asked
        attempt = attempt + 1 if refused else 0
    raise AssertionError(f"{flow.name}: the run never ended")


def samples_of(flow: Flow) -> int:
    return max((len(step.samples) for step in flow.steps), default=1) or 1


def runs_of(flow: Flow) -> list[Run]:
    # Every sample (every age), each with several random ways through the other questions.
    per_sample = max(12, 300 // samples_of(flow))
    return [
        run_through(flow, sample, seed=sample * 1000 + seed)
        for sample in range(samples_of(flow))
        for seed in range(per_sample)
    ]


@functools.cache
def runs(name: str) -> list[Run]:
    return runs_of(FLOWS[name])


@pytest.mark.parametrize("name", list(FLOWS))
def test_the_share_never_goes_back_and_the_number_goes_up_by_one_per_answer(name: str) -> None:
    for run in runs(name):
        assert run.shown[0] == Progress(1, 0)
        for before, after in zip(run.shown, run.shown[1:], strict=False):
            assert after.position == before.position + 1, run.shown
            assert after.percent >= before.percent, run.shown
        assert all(0 <= shown.percent < 100 for shown in run.shown)


@pytest.mark.parametrize("name", list(FLOWS))
def test_the_runs_took_every_option_offered_and_reached_the_summary(name: str) -> None:
    """The runs above are worth something only if they went everywhere."""
    done = runs(name)
    offered = set().union(*(run.offered for run in done))
    taken = set().union(*(run.taken for run in done))

    assert offered - taken == set()
    assert sum(isinstance(run.end, Summary) for run in done) >= len(done) // 4
    assert all(isinstance(run.end, (Summary, Exited)) for run in done)


@pytest.mark.parametrize("name", list(FLOWS))
def test_every_complete_run_asks_a_number_of_questions_within_the_flows_range(name: str) -> None:
    fewest, most = question_range(FLOWS[name])
    counts = {len(run.shown) for run in runs(name) if isinstance(run.end, Summary)}

    assert fewest <= min(counts)
    assert max(counts) <= most
    # And the range is tight: some run asked the fewest, some the most.
    assert (min(counts), max(counts)) == (fewest, most)


# --- the question count --------------------------------------------------------------------


def test_a_flow_without_conditions_asks_all_its_questions() -> None:
    assert question_range(a_flow(text_step("a"), text_step("b"), text_step("c"))) == (3, 3)


def test_a_question_asked_only_after_some_answers_widens_the_range() -> None:
    flow = a_flow(
        choice_step("pet", "cat", "dog", "none"),
        text_step("pet_name", ask_if=lambda answers: answers.get("pet") in ("cat", "dog")),
        text_step("vet", ask_if=when("pet", "dog")),
        consent_step(),
    )

    assert question_range(flow) == (2, 4)


def test_refusing_consent_is_not_a_complete_run() -> None:
    flow = a_flow(
        choice_step("role", "alone", "parent"),
        text_step("parent_name", ask_if=when("role", "parent")),
        consent_step("parent_consent"),
    )

    assert question_range(flow) == (2, 3)


def test_each_sample_of_a_typed_answer_is_tried_but_one_that_ends_early_is_not_counted() -> None:
    def too_old(value: Answer, _answers: Answers) -> Exit | None:
        return Exit(_("Jusqu'à 30 ans.")) if value == 40 else None

    age = a_step("age", StepKind.NUMBER, samples=(5, 10, 40), exit_if=too_old)
    # A 5-year-old is asked for the school (2 questions), a 10-year-old is not (1): the
    # 40-year-old, who would be asked 3, leaves at the age.
    flow = a_flow(
        age,
        text_step("school", ask_if=when("age", 5)),
        text_step("job", ask_if=when("age", 40)),
        text_step("boss", ask_if=when("age", 40)),
    )

    assert question_range(flow) == (1, 2)


def test_skipping_an_optional_question_can_save_the_next() -> None:
    flow = a_flow(
        choice_step("grant", "yes", "no", optional=True),
        text_step("grant_office", ask_if=lambda answers: answers.get("grant") is not None),
        text_step("city"),
    )

    assert question_range(flow) == (2, 3)


def test_a_shortcut_that_does_not_end_the_flow_is_a_way_through_it() -> None:
    abroad = Choice("abroad", _("Je n'habite pas en France"))
    where = a_step("postal_code", StepKind.POSTAL_CODE, shortcuts=(abroad,))
    flow = a_flow(where, text_step("country", ask_if=when("postal_code", "abroad")))

    assert question_range(flow) == (1, 2)


def test_a_flow_that_always_ends_early_has_no_range() -> None:
    flow = a_flow(text_step("first_name"), consent_step("consent", "no"))

    with pytest.raises(ValueError, match="reaches its summary"):
        question_range(flow)


def test_the_count_is_kept_per_flow_not_per_name() -> None:
    short = a_flow(text_step("a"), name="same")
    long = a_flow(text_step("a"), text_step("b"), name="same")

    assert question_range(short) == (1, 1)
    assert question_range(long) == (2, 2)
    assert question_range(short) == (1, 1)


def test_counting_the_real_flows_visits_few_states_and_is_remembered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Counted, not timed (a shared machine): today 650 to 6,519 states for the real flows; an
    # exponential search (no merging of equal states) would visit millions.
    visits = {"n": 0}
    walk = engine._Search.questions_from

    def counted(search: Any, answers: Any, depth: int) -> Any:
        visits["n"] += 1
        return walk(search, answers, depth)

    monkeypatch.setattr(engine._Search, "questions_from", counted)
    for flow in FLOWS.values():
        engine._RANGES.pop(id(flow), None)
        visits["n"] = 0
        found = question_range(flow)
        assert 0 < visits["n"] < 50_000, flow.name
        visits["n"] = 0
        assert question_range(flow) == found
        assert visits["n"] == 0, f"{flow.name} is not remembered"
