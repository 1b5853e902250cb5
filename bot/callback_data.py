"""How buttons carry an action in Telegram's callback_data, and back.

Telegram caps callback_data at 64 bytes, so each action is a one-letter tag and short fields. A
button always names the step it answers, so a press on an old message is recognised as stale.
Decoding is strict: anything we never produced (forged, obsolete) decodes to None.
"""

from __future__ import annotations

from conversations.handoff import DECLINE_REASONS, HandoffVerb
from conversations.model import (
    BackInput,
    ChoiceInput,
    ConfirmInput,
    DoneInput,
    EditInput,
    SkipInput,
    ToggleInput,
)
from conversations.services.actions import (
    Action,
    ActOnHandoff,
    Answer,
    ChooseFlow,
    ChooseLanguage,
    ConfirmErase,
    ConfirmJoin,
    DeclineJoin,
    KeepData,
)

CALLBACK_DATA_MAX_BYTES = 64
_VERBS = {verb.value: verb for verb in HandoffVerb}
_DECLINE_REASONS = frozenset(choice.value for choice in DECLINE_REASONS)
_SEP = "|"


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
    """The action a button press asks for, or None for data we never produced."""
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
        case "h", [verb, handoff_id] if handoff_id.isdigit() and verb in _VERBS:
            return ActOnHandoff(int(handoff_id), _VERBS[verb])
        case "h", [verb, handoff_id, reason] if (
            handoff_id.isdigit() and verb == HandoffVerb.DECLINE and reason in _DECLINE_REASONS
        ):
            return ActOnHandoff(int(handoff_id), HandoffVerb.DECLINE, reason)
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
