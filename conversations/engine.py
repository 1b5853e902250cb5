"""The questionnaire engine: given a flow, a conversation's state and one input, say what comes next.

Pure and deterministic: no clock, no I/O. The only outside help is `localize`, which turns a label into
the person's language so that typed text can be matched to a button option.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
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
    Meaning,
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

_BUTTON_KINDS = (StepKind.CHOICE, StepKind.CONSENT, StepKind.MULTI)
# Words typed instead of tapping a button, as `normalize` and `_fold` leave them. They are what
# people type whatever their language is set to, so French and English are both always read.
_SKIP_WORDS = frozenset({"passer", "passe", "je passe", "suivant", "skip", "pass", "next"})
_MEANT: dict[Meaning, frozenset[str]] = {
    Meaning.DONT_KNOW: frozenset(
        {
            "je sais pas",
            "sais pas",
            "jsp",
            "chais pas",
            "chai pas",
            "aucune idee",
            "i don t know",
            "i dont know",
            "i do not know",
            "don t know",
            "dont know",
            "idk",
            "no idea",
        }
    ),
    Meaning.NONE: frozenset({"aucun", "aucune", "aucun e", "rien", "none", "nothing"}),
}


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


def reopen(flow: Flow, state: ConversationState) -> Ask | Stale:
    """After an early end, the question whose answer ended it, asked again without that answer."""
    if state.status is not Status.EXITED or state.step is None:
        return Stale(state)
    try:
        step = flow.step(state.step)
    except KeyError:
        return Stale(state)
    answers = {k: v for k, v in state.answers.items() if k != step.key}
    if not step.ask_if(answers):
        return Stale(state)
    again = replace(state, answers=answers, status=Status.ACTIVE, draft=())
    return _ask(flow, again, step)


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
        return _ask(flow, state, step, problem=_not_text(flow, step))
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
            return _ask(flow, state, step, problem=_not_text(flow, step))
        if given.is_own and not step.own_number:
            return _ask(flow, state, step, problem=validators.NOT_YOUR_NUMBER)
        return _validated(flow, state, step, given.phone)
    if isinstance(given, TextInput):
        return _typed(flow, state, step, given.text, localize)
    return Stale(state)


def _not_text(flow: Flow, step: Step) -> Text:
    """What to say to a sticker, a photo or a contact card where it answers nothing."""
    return (_USE_BUTTONS if step.kind in _BUTTON_KINDS else _TEXT_ONLY)[flow.address]


def _typed(
    flow: Flow, state: ConversationState, step: Step, typed: str, localize: Localize
) -> Outcome:
    if step.optional and _fold(normalize(typed)) in _SKIP_WORDS:
        return _record(flow, state, step, None)
    if step.kind in _BUTTON_KINDS:
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
            # The step stays, so that a typo ("4" for "14") can be undone: see `reopen`.
            ended = replace(state, answers=answers, step=step.key, status=Status.EXITED, draft=())
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
    return _prune(flow, answers)


def _prune(
    flow: Flow, answers: Answers, look: Callable[[Step, Answers], Answers] | None = None
) -> dict[str, Answer]:
    kept = dict(answers)
    changed = True
    while changed:
        changed = False
        for step in flow.steps:
            if step.key not in kept:
                continue
            value = kept[step.key]
            seen = kept if look is None else look(step, kept)
            if not step.ask_if(seen):
                del kept[step.key]
                changed = True
            elif step.kind in (StepKind.CHOICE, StepKind.MULTI) and value is not None:
                allowed = {c.value for c in _options(step, seen)}
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
    """ "Question 4 · 30 %" at step `key`: the answers that count, over those plus every question
    still to come that some answer could yet make the person see. An answer only ever rules
    questions out, so on the way forward the share never drops and the number goes up by one."""
    done = sum(1 for s in flow.steps if s.key != key and s.key in answers and s.ask_if(answers))
    later = flow.steps[flow.index(key) + 1 :]
    possible = _possible(flow, answers)
    remaining = 1 + sum(1 for s in later if s.key not in answers and s.key in possible)
    return Progress(position=done + 1, percent=100 * done // (done + remaining))


def _possible(flow: Flow, answers: Answers) -> set[str]:
    """The steps that apply, or may once the answers their condition looks at are given."""
    possible: set[str] = set()
    for index, step in enumerate(flow.steps):
        reads: set[str] = set()
        seen = _Reads(answers, reads)
        try:
            asked = step.ask_if(seen)
        except KeyError:
            # `answers["contact"]` before the contact is given: the engine never asks that
            # early, but the key it wanted is among the reads, and is looked at below.
            asked = False
        if asked or seen.iterated:
            possible.add(step.key)
            continue
        # A key no step asks, or one of a step that will not be asked, stays unanswered for good;
        # a later step's key (a flow reading ahead) might still come.
        pending = {s.key for s in flow.steps[index:]} | possible
        if any(key not in answers and key in pending for key in reads):
            possible.add(step.key)
    return possible


class _Reads(Mapping[str, Answer]):
    """Answers that note each key a condition looks up, to tell what the condition depends on."""

    def __init__(self, answers: Answers, reads: set[str]) -> None:
        self._answers = answers
        self.reads = reads
        self.iterated = False

    def __getitem__(self, key: str) -> Answer:
        self.reads.add(key)
        return self._answers[key]

    # Mapping's own `get` and `in` would come through __getitem__ too, raising and catching a
    # KeyError for each missing key: question_range calls them many thousand times.
    def get(self, key: str, default: Answer = None) -> Answer:  # type: ignore[override]
        self.reads.add(key)
        return self._answers.get(key, default)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.reads.add(key)
        return key in self._answers

    def __iter__(self) -> Iterator[str]:
        # A condition that goes through every answer may depend on any of them, even one to come.
        self.iterated = True
        self.reads.update((*self._answers, _EVERY))
        return iter(self._answers)

    def __len__(self) -> int:
        self.iterated = True
        self.reads.update((*self._answers, _EVERY))
        return len(self._answers)


_EVERY = "*"


# One value that a typed step accepts, standing for all when the step gives no `samples`.
_PLACEHOLDERS: dict[StepKind, Answer] = {
    StepKind.TEXT: "Inès Martin",
    StepKind.NUMBER: 18,
    StepKind.POSTAL_CODE: "93200",
    StepKind.PHONE: "+33612345678",
    StepKind.EMAIL: "a@b.fr",
}
_RANGES: dict[int, tuple[Flow, tuple[int, int]]] = {}


def question_range(flow: Flow) -> tuple[int, int]:
    """The fewest and the most questions of a run that reaches the summary (none that ends
    early), for intros such as "8 to 12 questions"."""
    cached = _RANGES.get(id(flow))
    if cached is not None and cached[0] is flow:
        return cached[1]
    # Runs that differ only in answers nothing looks at (a first name, a postal code) go on
    # alike, so they are counted once: the search merges states equal on the keys it has seen
    # the conditions read, and starts over with more keys until no condition reads a new one.
    relevant: frozenset[str] = frozenset()
    while True:
        search = _Search(flow, relevant)
        found = search.questions_from({}, 0)
        reads = search.reads()
        if reads <= relevant:
            break
        relevant = relevant | reads
    if found is None:
        raise ValueError(f"no run of the {flow.name} flow reaches its summary")
    _RANGES[id(flow)] = (flow, found)
    return found


class _Search:
    """One walk through every way of answering a flow, for `question_range`."""

    def __init__(self, flow: Flow, relevant: frozenset[str]) -> None:
        self.flow = flow
        self.relevant = sorted(relevant)
        self.memo: dict[object, tuple[int, int] | None] = {}
        # The keys each step's conditions (ask_if, choices, exit_if) have looked at so far.
        self.read_by: dict[str, set[str]] = {step.key: set() for step in flow.steps}

    def reads(self) -> set[str]:
        return set().union(*self.read_by.values())

    def seen(self, step: Step, answers: Answers) -> _Reads:
        return _Reads(answers, self.read_by[step.key])

    def questions_from(self, answers: dict[str, Answer], depth: int) -> tuple[int, int] | None:
        """The fewest and most questions from here to the summary; None if all ways end early."""
        if depth > 2 * len(self.flow.steps):
            raise ValueError(f"the {self.flow.name} flow asks its questions in a loop")
        key = (frozenset(answers), tuple((k, answers[k]) for k in self.relevant if k in answers))
        if key in self.memo:
            return self.memo[key]
        steps = self.flow.steps
        step = next(
            (s for s in steps if s.key not in answers and s.ask_if(self.seen(s, answers))), None
        )
        if step is None:
            self.memo[key] = (0, 0)
            return self.memo[key]
        counts = []
        for value in _tries(step, self.seen(step, answers)):
            after = self.settle({**answers, step.key: value}, step.key)
            exit_if = step.exit_if
            if exit_if is not None and exit_if(value, self.seen(step, after)) is not None:
                continue
            found = self.questions_from(after, depth + 1)
            if found is not None:
                counts.append(found)
        fewest = 1 + min(c[0] for c in counts) if counts else 0
        most = 1 + max(c[1] for c in counts) if counts else 0
        self.memo[key] = (fewest, most) if counts else None
        return self.memo[key]

    def settle(self, answers: dict[str, Answer], changed: str) -> dict[str, Answer]:
        """`prune`, skipped when no answered step's conditions ever looked at the changed key:
        nothing they decided can have changed. It is most of the walk's time otherwise."""
        for answered in answers:
            looked_at = self.read_by.get(answered, ())
            if changed in looked_at or _EVERY in looked_at:
                return _prune(self.flow, answers, self.seen)
        return answers


def _tries(step: Step, answers: Answers) -> list[Answer]:
    """The answers worth trying at a step to find every way through a flow."""
    choices = step.choices_for(answers)
    if step.kind is StepKind.MULTI:
        # How many options are ticked changes no later question.
        values: list[Answer] = [(choices[0].value,)] if choices else []
    elif step.kind in _BUTTON_KINDS:
        values = [_choice_value(step, c.value) for c in (*choices, *step.shortcuts)]
    else:
        values = [*(step.samples or (_PLACEHOLDERS[step.kind],))]
        values += [c.value for c in step.shortcuts]
    if step.optional:
        values.append(None)
    return values


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


def submitted(flow: Flow, state: ConversationState) -> Summary:
    """The summary of what was sent: the record the chat keeps of it."""
    return _summary(flow, state)


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


def _fold(normalized: str) -> str:
    """Spoken French's dropped "ne" folded too: "je sais pas" reads as "je ne sais pas"."""
    words = ("je" if word == "j" else word for word in normalized.split())
    return " ".join(word for word in words if word not in ("ne", "n"))


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
    folded = _fold(wanted)
    exact = [option for option, label in labels if _fold(label) == folded]
    if exact:
        return exact[0] if len(exact) == 1 else None
    # "jsp", "rien": the option meaning "I don't know" or "none", when the step has one.
    meant = [o for o in options if o.meaning is not None and folded in _MEANT[o.meaning]]
    if len(meant) == 1:
        return meant[0]
    if exact_only or len(wanted) < 3:
        return None
    pattern = re.compile(rf"(^|\s){re.escape(wanted)}")
    partial = [option for option, label in labels if pattern.search(label)]
    return partial[0] if len(partial) == 1 else None
