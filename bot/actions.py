"""What a person asked for, decoded from an update; and how buttons carry it in callback_data.

Telegram caps callback_data at 64 bytes, so each action is a one-letter tag and short fields.
A button always names the step it answers, so a press on an old message is recognised as stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from conversations.model import (
    BackInput,
    ChoiceInput,
    ConfirmInput,
    DoneInput,
    EditInput,
    Input,
    SkipInput,
    ToggleInput,
)

CALLBACK_DATA_MAX_BYTES = 64
_HANDOFF_ACTIONS = frozenset({"take", "decline", "contacted", "close", "keep"})
_DECLINE_REASONS = frozenset({"full", "scope", "unreachable"})
_SEP = "|"


@dataclass(frozen=True)
class Start:
    payload: str | None = None


@dataclass(frozen=True)
class ChooseFlow:
    flow: str


@dataclass(frozen=True)
class Answer:
    given: Input


@dataclass(frozen=True)
class Restart:
    pass


@dataclass(frozen=True)
class Cancel:
    pass


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class ShowLanguages:
    pass


@dataclass(frozen=True)
class ChooseLanguage:
    language: str


@dataclass(frozen=True)
class ShowMyData:
    pass


@dataclass(frozen=True)
class AskErase:
    pass


@dataclass(frozen=True)
class ConfirmErase:
    pass


@dataclass(frozen=True)
class KeepData:
    pass


@dataclass(frozen=True)
class ActOnHandoff:
    """A coordinator's button on a contact card; authorised on the server, never trusted."""

    handoff_id: int
    action: str  # take, decline, contacted, close
    reason: str | None = None


@dataclass(frozen=True)
class ConfirmJoin:
    token: str


@dataclass(frozen=True)
class DeclineJoin:
    pass


@dataclass(frozen=True)
class ShowQueue:
    pass


@dataclass(frozen=True)
class PauseAssociation:
    paused: bool


Action: TypeAlias = (
    Start
    | ChooseFlow
    | Answer
    | Restart
    | Cancel
    | Help
    | ShowLanguages
    | ChooseLanguage
    | ShowMyData
    | AskErase
    | ConfirmErase
    | KeepData
    | ActOnHandoff
    | ConfirmJoin
    | DeclineJoin
    | ShowQueue
    | PauseAssociation
)


def encode(action: Action) -> str:
    """The callback_data of a button that performs `action`."""
    data = _encode(action)
    if len(data.encode()) > CALLBACK_DATA_MAX_BYTES:
        raise ValueError(f"callback_data over {CALLBACK_DATA_MAX_BYTES} bytes: {data!r}")
    return data


def _encode(action: Action) -> str:
    match action:
        case ChooseFlow(flow):
            return f"f{_SEP}{flow}"
        case ChooseLanguage(language):
            return f"l{_SEP}{language}"
        case ConfirmErase():
            return "z"
        case KeepData():
            return "k"
        case ActOnHandoff(handoff_id, verb, reason):
            return f"h{_SEP}{verb}{_SEP}{handoff_id}" + (f"{_SEP}{reason}" if reason else "")
        case ConfirmJoin(token):
            return f"j{_SEP}{token}"
        case DeclineJoin():
            return "jn"
        case Answer(ChoiceInput(step, value)):
            return f"s{_SEP}{step}{_SEP}{value}"
        case Answer(ToggleInput(step, value)):
            return f"t{_SEP}{step}{_SEP}{value}"
        case Answer(DoneInput(step)):
            return f"d{_SEP}{step}"
        case Answer(BackInput(step)):
            return f"b{_SEP}{step}"
        case Answer(SkipInput(step)):
            return f"p{_SEP}{step}"
        case Answer(EditInput(target)):
            return f"e{_SEP}{target}"
        case Answer(ConfirmInput()):
            return "c"
    raise ValueError(f"no button for {action!r}")


def decode(data: str) -> Action | None:
    """The action a button press asks for, or None for data we never produced (forged or obsolete)."""
    tag, *fields = data.split(_SEP)
    match tag, fields:
        case "f", [flow]:
            return ChooseFlow(flow)
        case "l", [language]:
            return ChooseLanguage(language)
        case "z", []:
            return ConfirmErase()
        case "k", []:
            return KeepData()
        case "h", [verb, handoff_id] if handoff_id.isdigit() and verb in _HANDOFF_ACTIONS:
            return ActOnHandoff(int(handoff_id), verb)
        case "h", [verb, handoff_id, reason] if (
            handoff_id.isdigit() and verb == "decline" and reason in _DECLINE_REASONS
        ):
            return ActOnHandoff(int(handoff_id), verb, reason)
        case "j", [token]:
            return ConfirmJoin(token)
        case "jn", []:
            return DeclineJoin()
        case "s", [step, value]:
            return Answer(ChoiceInput(step, value))
        case "t", [step, value]:
            return Answer(ToggleInput(step, value))
        case "d", [step]:
            return Answer(DoneInput(step))
        case "b", [step]:
            return Answer(BackInput(step))
        case "p", [step]:
            return Answer(SkipInput(step))
        case "e", [target]:
            return Answer(EditInput(target))
        case "c", []:
            return Answer(ConfirmInput())
    return None
