"""The vocabulary of a questionnaire: steps, flows, answers, a conversation's state, inputs and outcomes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeAlias

from conversations.text import Text

# A skipped optional step is stored as None, so "skipped" and "not asked yet" stay distinct.
Answer: TypeAlias = "str | int | bool | tuple[str, ...] | None"
Answers: TypeAlias = Mapping[str, Answer]

SUMMARY = "_summary"


class StepKind(StrEnum):
    TEXT = "text"
    NUMBER = "number"
    CHOICE = "choice"
    MULTI = "multi"
    POSTAL_CODE = "postal_code"
    PHONE = "phone"
    EMAIL = "email"
    CONSENT = "consent"


class Status(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXITED = "exited"


class Meaning(StrEnum):
    """What an option stands for beyond its label, so that a typed "jsp" or "rien" can find it."""

    DONT_KNOW = "dont_know"
    NONE = "none"


@dataclass(frozen=True)
class Choice:
    value: str
    label: Text
    meaning: Meaning | None = None


@dataclass(frozen=True)
class Valid:
    value: Answer


@dataclass(frozen=True)
class Invalid:
    reason: Text


Validation: TypeAlias = Valid | Invalid
Validator: TypeAlias = Callable[[str, Answers], Validation]


@dataclass(frozen=True)
class Exit:
    """Why a flow stops early (too young, not in France, no consent), and what to offer instead."""

    reason: Text
    offer_flow: str | None = None


def exit_on(answer: Answer, reason: Text) -> Callable[[Answer, Answers], Exit | None]:
    """A step's `exit_if` that ends the flow kindly when the person gives this very answer."""

    def check(value: Answer, _answers: Answers) -> Exit | None:
        # `is` for booleans: a refused consent is False, which == 0 would also match.
        same = value is answer if isinstance(answer, bool) else value == answer
        return Exit(reason) if same else None

    return check


def _always(_answers: Answers) -> bool:
    return True


@dataclass(frozen=True)
class Step:
    key: str
    title: Text
    prompt: Text | Callable[[Answers], Text]
    kind: StepKind
    choices: tuple[Choice, ...] | Callable[[Answers], tuple[Choice, ...]] = ()
    ask_if: Callable[[Answers], bool] = _always
    optional: bool = False
    validate: Validator | None = None
    exit_if: Callable[[Answer, Answers], Exit | None] | None = None
    # Buttons that answer a typed step with a fixed value (e.g. "I don't live in France").
    shortcuts: tuple[Choice, ...] = ()
    hint: Text | None = None
    # A phone step asking for the person's own number offers Telegram's "share my number";
    # one asking for someone else's (a parent's) must not take the person's own.
    own_number: bool = False
    # Values to try for a typed step when counting a flow's questions (engine.question_range):
    # every age the flow branches on, say. Without them one valid placeholder stands for all.
    samples: tuple[Answer, ...] = ()

    def prompt_for(self, answers: Answers) -> Text:
        return self.prompt(answers) if callable(self.prompt) else self.prompt

    def choices_for(self, answers: Answers) -> tuple[Choice, ...]:
        return self.choices(answers) if callable(self.choices) else self.choices


@dataclass(frozen=True)
class Flow:
    """One questionnaire; `address` says whether its texts say tu or vous (used by shared texts)."""

    name: str
    steps: tuple[Step, ...]
    address: str  # "tu" or "vous"

    def step(self, key: str) -> Step:
        for step in self.steps:
            if step.key == key:
                return step
        raise KeyError(key)

    def index(self, key: str) -> int:
        return next(i for i, step in enumerate(self.steps) if step.key == key)


@dataclass(frozen=True)
class ConversationState:
    flow: str
    # None before the first question and once completed; an EXITED conversation keeps the step
    # whose answer ended it, so that a typo can be undone (engine.reopen).
    step: str | None
    answers: Mapping[str, Answer] = field(default_factory=dict)
    status: Status = Status.ACTIVE
    # Toggles of a multi-choice step, kept until "Valider".
    draft: tuple[str, ...] = ()
    # Set when a step is answered again from the summary: the next stop is the summary.
    editing: bool = False


# --- inputs: what a person did, decoded by the edge ---------------------------------------


@dataclass(frozen=True)
class TextInput:
    text: str


@dataclass(frozen=True)
class ChoiceInput:
    step: str
    value: str


@dataclass(frozen=True)
class ToggleInput:
    step: str
    value: str
    # What the pressed button showed it would do (select, or unselect): a double tap, or a press
    # on a keyboard drawn before the last change, then does what the person saw, not the opposite.
    # None flips, as a plain toggle.
    select: bool | None = None


@dataclass(frozen=True)
class DoneInput:
    step: str


@dataclass(frozen=True)
class ContactInput:
    phone: str
    is_own: bool


@dataclass(frozen=True)
class NonTextInput:
    kind: str


@dataclass(frozen=True)
class BackInput:
    step: str


@dataclass(frozen=True)
class SkipInput:
    step: str


@dataclass(frozen=True)
class EditInput:
    """A summary button: answer `target` again, then come back to the summary."""

    target: str


@dataclass(frozen=True)
class ConfirmInput:
    pass


Input: TypeAlias = (
    TextInput
    | ChoiceInput
    | ToggleInput
    | DoneInput
    | ContactInput
    | NonTextInput
    | BackInput
    | SkipInput
    | EditInput
    | ConfirmInput
)


# --- outcomes: what the person should see next --------------------------------------------


@dataclass(frozen=True)
class Progress:
    """ "Question 4 · 30 %": the question's number, and the share of the way already behind.

    Neither goes back while a person answers on: the share counts every question that may still
    come, and only drops those an answer rules out.
    """

    position: int
    percent: int


@dataclass(frozen=True)
class Ask:
    state: ConversationState
    step: Step
    prompt: Text
    choices: tuple[Choice, ...]
    progress: Progress
    problem: Text | None = None
    selected: tuple[str, ...] = ()
    can_go_back: bool = False
    # A toggle changes the keyboard of the message it was pressed on; nothing new is sent.
    in_place: bool = False
    # The answer just recorded, echoed on the message whose button was pressed.
    answered: Text | str | tuple[Text, ...] | None = None


@dataclass(frozen=True)
class SummaryLine:
    step: str
    title: Text
    value: Text | str | tuple[Text, ...]


@dataclass(frozen=True)
class Summary:
    state: ConversationState
    lines: tuple[SummaryLine, ...]
    problem: Text | None = None
    answered: Text | str | tuple[Text, ...] | None = None


@dataclass(frozen=True)
class Completed:
    state: ConversationState


@dataclass(frozen=True)
class Exited:
    state: ConversationState
    reason: Text
    offer_flow: str | None


@dataclass(frozen=True)
class Stale:
    """A button of an older message: answered with a toast, the conversation does not move."""

    state: ConversationState


Outcome: TypeAlias = Ask | Summary | Completed | Exited | Stale
