"""The questionnaire engine: given a flow, a conversation's state and one input, say what comes next.

Pure and deterministic: no clock, no I/O. The only outside help is `localize`, which turns a label into
the person's language so that typed text can be matched to a button option.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import replace

from conversations import validators
from conversations.model import (
    SUMMARY,
    Answer,
    Answers,
    Ask,
    BackInput,
    Choice,
    ChoiceInput,
    Completed,
    ConfirmInput,
    ContactInput,
    ConversationState,
    DoneInput,
    EditInput,
    Exited,
    Flow,
    Input,
    Invalid,
    NonTextInput,
    Outcome,
    Progress,
    SkipInput,
    Stale,
    Status,
    Step,
    StepKind,
    Summary,
    SummaryLine,
    TextInput,
    ToggleInput,
)
from conversations.text import Text, _

Localize = Callable[[Text], str]
Echo = Text | str | tuple[Text, ...] | None

_USE_BUTTONS = {
    "tu": _("Choisis une réponse avec les boutons ci-dessous."),
    "vous": _("Choisissez une réponse avec les boutons ci-dessous."),
}
_PICK_ONE = {
    "tu": _("Choisis au moins une réponse, puis appuie sur « Valider »."),
    "vous": _("Choisissez au moins une réponse, puis appuyez sur « Valider »."),
}
_TEXT_ONLY = {
    "tu": _("Je ne peux lire que du texte ici : écris ta réponse, s'il te plaît."),
    "vous": _("Je ne peux lire que du texte ici : écrivez votre réponse, s'il vous plaît."),
}
_NOT_SKIPPABLE = {
    "tu": _("Cette question est nécessaire pour te proposer une association."),
    "vous": _("Cette question est nécessaire pour vous proposer une association."),
}
_USE_SUMMARY_BUTTONS = {
    "tu": _("Vérifie tes réponses : appuie sur « C'est bon » ou sur la réponse à modifier."),
    "vous": _("Vérifiez vos réponses : appuyez sur « C'est bon » ou sur la réponse à modifier."),
}
SKIPPED = _("(passé)")


def begin(flow: Flow) -> Ask:
    """The first question of a fresh conversation."""
    state = ConversationState(flow=flow.name, step=None)
    outcome = _next(flow, state, state.answers)
    assert isinstance(outcome, Ask), "a flow starts with a question"
    return outcome


def current(flow: Flow, state: ConversationState, problem: Text | None = None) -> Outcome:
    """What the person should see now: used to re-ask after /start, a restart, or a crash."""
    if state.status is not Status.ACTIVE or state.step is None:
        return Stale(state)
    if state.step == SUMMARY:
        return _summary(flow, state, problem=problem)
    try:
        step = flow.step(state.step)
    except KeyError:
        # The flow changed since this conversation was saved: go on with what is still missing.
        return _next(flow, state, prune(flow, state.answers))
    return _ask(flow, state, step, problem=problem)


def advance(flow: Flow, state: ConversationState, given: Input, localize: Localize) -> Outcome:
    """Apply one input to the conversation and say what the person sees next."""
    if state.status is not Status.ACTIVE or state.step is None:
        return Stale(state)
    button_step = getattr(given, "step", None)
    if button_step is not None and button_step != state.step:
        return Stale(state)
    if state.step == SUMMARY:
        return _at_summary(flow, state, given)
    if isinstance(given, (EditInput, ConfirmInput)):
        return Stale(state)
    try:
        step = flow.step(state.step)
    except KeyError:
        # The flow changed since this conversation was saved: show what comes next instead.
        return current(flow, state)
    return _at_step(flow, state, step, given, localize)


def _at_summary(flow: Flow, state: ConversationState, given: Input) -> Outcome:
    if isinstance(given, ConfirmInput):
        if _first_missing(flow, state.answers) is not None:
            # Defensive: the summary is only reached when complete, but a stored state may predate
            # a flow change; never submit a profile with a required answer missing.
            return _next(flow, replace(state, editing=False), state.answers)
        return Completed(replace(state, step=None, status=Status.COMPLETED, editing=False))
    if isinstance(given, EditInput):
        return _edit(flow, state, given.target)
    return _summary(flow, state, problem=_USE_SUMMARY_BUTTONS[flow.address])


def _edit(flow: Flow, state: ConversationState, key: str) -> Outcome:
    try:
        step = flow.step(key)
    except KeyError:
        return Stale(state)
    if not step.ask_if(state.answers):
        return Stale(state)
    previous = state.answers.get(key)
    draft = previous if isinstance(previous, tuple) else ()
    return _ask(flow, replace(state, step=key, editing=True, draft=draft), step)


def _at_step(
    flow: Flow, state: ConversationState, step: Step, given: Input, localize: Localize
) -> Outcome:
    if isinstance(given, BackInput):
        return _back(flow, state, step)
    if isinstance(given, SkipInput):
        if not step.optional:
            return _ask(flow, state, step, problem=_NOT_SKIPPABLE[flow.address])
        return _record(flow, state, step, None)
    if isinstance(given, NonTextInput):
        return _ask(flow, state, step, problem=_TEXT_ONLY[flow.address])
    if isinstance(given, ChoiceInput):
        options = _options(step, state.answers)
        choice = next((c for c in options if c.value == given.value), None)
        if choice is None or step.kind is StepKind.MULTI:
            return Stale(state)
        return _record(flow, state, step, _choice_value(step, choice.value))
    if isinstance(given, ToggleInput):
        return _toggle(flow, state, step, given.value, given.select)
    if isinstance(given, DoneInput):
        return _done(flow, state, step)
    if isinstance(given, ContactInput):
        if step.kind is not StepKind.PHONE:
            return _ask(flow, state, step, problem=_TEXT_ONLY[flow.address])
        if given.is_own and not step.own_number:
            return _ask(flow, state, step, problem=validators.NOT_YOUR_NUMBER)
        return _validated(flow, state, step, given.phone)
    if isinstance(given, TextInput):
        return _typed(flow, state, step, given.text, localize)
    return Stale(state)


def _typed(
    flow: Flow, state: ConversationState, step: Step, typed: str, localize: Localize
) -> Outcome:
    if step.kind in (StepKind.CHOICE, StepKind.CONSENT, StepKind.MULTI):
        choice = match_choice(typed, _options(step, state.answers), localize)
        if choice is None:
            return _ask(flow, state, step, problem=_USE_BUTTONS[flow.address])
        if step.kind is StepKind.MULTI:
            toggled = _toggle(flow, state, step, choice.value)
            return replace(toggled, in_place=False) if isinstance(toggled, Ask) else toggled
        return _record(flow, state, step, _choice_value(step, choice.value))
    shortcut = match_choice(typed, step.shortcuts, localize, exact_only=True)
    if shortcut is not None:
        return _record(flow, state, step, shortcut.value)
    return _validated(flow, state, step, typed)


def _validated(flow: Flow, state: ConversationState, step: Step, raw: str) -> Outcome:
    if step.validate is None:
        value: Answer = raw.strip()
    else:
        result = step.validate(raw, state.answers)
        if isinstance(result, Invalid):
            return _ask(flow, state, step, problem=result.reason)
        value = result.value
    return _record(flow, state, step, value)


def _toggle(
    flow: Flow, state: ConversationState, step: Step, value: str, select: bool | None = None
) -> Ask | Stale:
    if step.kind is not StepKind.MULTI:
        return Stale(state)
    if value not in {c.value for c in step.choices_for(state.answers)}:
        return Stale(state)
    chosen = value not in state.draft if select is None else select
    draft = (
        (*state.draft, value)
        if chosen and value not in state.draft
        else tuple(v for v in state.draft if v != value or chosen)
    )
    return _ask(flow, replace(state, draft=draft), step, in_place=True)


def _done(flow: Flow, state: ConversationState, step: Step) -> Outcome:
    if step.kind is not StepKind.MULTI:
        return Stale(state)
    if not state.draft:
        if step.optional:
            return _record(flow, state, step, None)
        return _ask(flow, state, step, problem=_PICK_ONE[flow.address])
    order = [c.value for c in step.choices_for(state.answers)]
    chosen = tuple(sorted(state.draft, key=order.index))
    return _record(flow, state, step, chosen)


def _back(flow: Flow, state: ConversationState, step: Step) -> Outcome:
    # Back from an edit returns to the summary, unless the edit opened questions still unanswered
    # (an age changed to 13 now needs a parent's consent): then it is an ordinary step back.
    if state.editing and _first_missing(flow, state.answers) is None:
        return _summary(flow, replace(state, step=SUMMARY, editing=False, draft=()))
    previous = _previous_step(flow, state.answers, step)
    if previous is None:
        return _ask(flow, state, step)
    old = state.answers.get(previous.key)
    answers = {k: v for k, v in state.answers.items() if k != previous.key}
    draft = old if isinstance(old, tuple) else ()
    return _ask(flow, replace(state, step=previous.key, answers=answers, draft=draft), previous)


def _record(flow: Flow, state: ConversationState, step: Step, value: Answer) -> Outcome:
    answers = prune(flow, {**state.answers, step.key: value})
    echo = display(step, value, answers)
    if step.exit_if is not None:
        exit_ = step.exit_if(value, answers)
        if exit_ is not None:
            ended = replace(state, answers=answers, step=None, status=Status.EXITED, draft=())
            return Exited(ended, exit_.reason, exit_.offer_flow)
    return _next(flow, replace(state, answers=answers, draft=()), answers, echo)


def _first_missing(flow: Flow, answers: Answers) -> Step | None:
    for step in flow.steps:
        if step.key not in answers and step.ask_if(answers):
            return step
    return None


def _next(flow: Flow, state: ConversationState, answers: Answers, echo: Echo = None) -> Outcome:
    step = _first_missing(flow, answers)
    if step is not None:
        return _ask(flow, replace(state, step=step.key, draft=()), step, answered=echo)
    return _summary(flow, replace(state, step=SUMMARY, editing=False), answered=echo)


def prune(flow: Flow, answers: Answers) -> dict[str, Answer]:
    """Drop answers that an edit made moot: a step no longer asked, or a choice no longer offered."""
    kept = dict(answers)
    changed = True
    while changed:
        changed = False
        for step in flow.steps:
            if step.key not in kept:
                continue
            value = kept[step.key]
            if not step.ask_if(kept):
                del kept[step.key]
                changed = True
            elif step.kind in (StepKind.CHOICE, StepKind.MULTI) and value is not None:
                allowed = {c.value for c in _options(step, kept)}
                values = value if isinstance(value, tuple) else (value,)
                still = tuple(v for v in values if v in allowed)
                if not still:
                    del kept[step.key]
                    changed = True
                elif step.kind is StepKind.MULTI and still != values:
                    kept[step.key] = still
                    changed = True
    return kept


def _previous_step(flow: Flow, answers: Answers, step: Step) -> Step | None:
    earlier = flow.steps[: flow.index(step.key)]
    for candidate in reversed(earlier):
        if candidate.key in answers and candidate.ask_if(answers):
            return candidate
    return None


def progress(flow: Flow, answers: Answers, key: str) -> Progress:
    """ "Question 4/10": the total counts the steps that apply given the answers so far."""
    applicable = [s.key for s in flow.steps if s.key == key or s.ask_if(answers)]
    return Progress(applicable.index(key) + 1, len(applicable))


def _ask(
    flow: Flow,
    state: ConversationState,
    step: Step,
    problem: Text | None = None,
    in_place: bool = False,
    answered: Echo = None,
) -> Ask:
    selected = state.draft
    if step.kind is not StepKind.MULTI:
        previous = state.answers.get(step.key)
        has_buttons = step.kind in (StepKind.CHOICE, StepKind.CONSENT)
        selected = (previous,) if has_buttons and isinstance(previous, str) else ()
    return Ask(
        state=state,
        step=step,
        prompt=step.prompt_for(state.answers),
        choices=step.choices_for(state.answers),
        progress=progress(flow, state.answers, step.key),
        problem=problem,
        selected=selected,
        can_go_back=state.editing or _previous_step(flow, state.answers, step) is not None,
        in_place=in_place,
        answered=answered,
    )


def _summary(
    flow: Flow,
    state: ConversationState,
    problem: Text | None = None,
    answered: Echo = None,
) -> Summary:
    lines = tuple(
        SummaryLine(step.key, step.title, display(step, state.answers[step.key], state.answers))
        for step in flow.steps
        if step.key in state.answers and step.ask_if(state.answers)
    )
    return Summary(state=state, lines=lines, problem=problem, answered=answered)


def display(step: Step, value: Answer, answers: Answers) -> Text | str | tuple[Text, ...]:
    """An answer as the person reads it back: a choice's label, the text they typed, or "skipped"."""
    if value is None:
        return SKIPPED
    labels = {c.value: c.label for c in _options(step, answers)}
    if isinstance(value, tuple):
        return tuple(labels[v] for v in value if v in labels)
    if isinstance(value, bool):
        return labels.get("yes" if value else "no", str(value))
    if isinstance(value, str) and value in labels:
        return labels[value]
    return str(value)


def _options(step: Step, answers: Answers) -> tuple[Choice, ...]:
    return (*step.choices_for(answers), *step.shortcuts)


def _choice_value(step: Step, value: str) -> Answer:
    if step.kind is StepKind.CONSENT:
        return value == "yes"
    return value


def normalize(text: str) -> str:
    """Case, accents and punctuation folded, so "lycee" and "Lycée" compare equal."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(re.sub(r"[^\w]+", " ", bare).split())


def match_choice(
    typed: str, options: tuple[Choice, ...], localize: Localize, exact_only: bool = False
) -> Choice | None:
    """The one option a typed answer clearly means, or None when it is unclear."""
    wanted = normalize(typed)
    if not wanted or not options:
        return None
    # An option's number: up to three ASCII digits. NFKD folds "⑳" to "20", and 2,151 of them
    # to 4,302 digits, more than int() agrees to read.
    number = wanted.isascii() and wanted.isdigit() and len(wanted) <= 3
    if not exact_only and number and 1 <= int(wanted) <= len(options):
        return options[int(wanted) - 1]
    labels = [(option, normalize(localize(option.label))) for option in options]
    exact = [option for option, label in labels if label == wanted]
    if exact or exact_only:
        return exact[0] if len(exact) == 1 else None
    if len(wanted) < 3:
        return None
    pattern = re.compile(rf"(^|\s){re.escape(wanted)}")
    partial = [option for option, label in labels if pattern.search(label)]
    return partial[0] if len(partial) == 1 else None
