"""How buttons carry an action in Telegram's callback_data, and back.

Telegram caps callback_data at 64 bytes, so each action is a one-letter tag and short fields. A
button always names the step it answers, so a press on an old message is recognised as stale.
Decoding is strict: anything we never produced (forged, obsolete) decodes to None, and it never
raises, whatever string a client sends.
"""

from __future__ import annotations

import re

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
    AnswerParental,
    ChooseFlow,
    ChooseLanguage,
    ConfirmErase,
    ConfirmJoin,
    DeclineJoin,
    KeepData,
    KeepRequest,
    Reopen,
    ReplaceRequest,
    ResumeQuestionnaire,
)

CALLBACK_DATA_MAX_BYTES = 64
# handoffs.id is a PostgreSQL integer (int4): a larger id can only be forged, and would make the
# query fail instead of finding nothing.
HANDOFF_ID_MAX = 2**31 - 1
_VERBS = {verb.value: verb for verb in HandoffVerb}
_DECLINE_REASONS = frozenset(choice.value for choice in DECLINE_REASONS)
_SEP = "|"
# Ids as we write them: ASCII digits, no leading zero, at most ten (int4's 2147483647).
_ID = re.compile(r"[1-9][0-9]{0,9}")
# Step keys, choice values, flows, languages and invite tokens are all identifiers of this kind.
_FIELD = re.compile(r"[A-Za-z0-9_-]{1,64}")


def encode(action: Action) -> str:
    """The callback_data of a button that performs `action`."""
    data = _encode(action)
    if len(data.encode()) > CALLBACK_DATA_MAX_BYTES:
        raise ValueError(f"callback_data over {CALLBACK_DATA_MAX_BYTES} bytes: {data!r}")
    if decode(data) != action:
        # What decode refuses would be a dead button: fail where the button is made instead.
        raise ValueError(f"callback_data that would not decode back: {data!r}")
    return data


def _encode(action: Action) -> str:
    match action:
        case ChooseFlow(flow):
            return f"f{_SEP}{flow}"
        case ReplaceRequest(flow, profile_id):
            return f"rr{_SEP}{flow}{_SEP}{profile_id}"
        case KeepRequest(flow):
            return f"rk{_SEP}{flow}"
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
        case Reopen(step):
            return f"o{_SEP}{step}"
        case ResumeQuestionnaire():
            return "r"
        case AnswerParental(token, agreed):
            return f"{'pa' if agreed else 'pr'}{_SEP}{token}"
        case Answer(ChoiceInput(step, value)):
            return f"s{_SEP}{step}{_SEP}{value}"
        case Answer(ToggleInput(step, value, select)):
            flag = "" if select is None else f"{_SEP}{int(select)}"
            return f"t{_SEP}{step}{_SEP}{value}{flag}"
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
    # Telegram never delivers more than 64 bytes; "surrogatepass" so that no str can raise.
    if len(data) > CALLBACK_DATA_MAX_BYTES:
        return None
    if len(data.encode("utf-8", "surrogatepass")) > CALLBACK_DATA_MAX_BYTES:
        return None
    tag, *fields = data.split(_SEP)
    if not all(_FIELD.fullmatch(field) for field in fields):
        return None
    match tag, fields:
        case "f", [flow]:
            return ChooseFlow(flow)
        case "rr", [flow, profile_id]:
            number = _row_id(profile_id)
            return None if number is None else ReplaceRequest(flow, number)
        case "rk", [flow]:
            return KeepRequest(flow)
        case "l", [language]:
            return ChooseLanguage(language)
        case "z", []:
            return ConfirmErase()
        case "k", []:
            return KeepData()
        case "h", [verb, handoff_id] if verb in _VERBS:
            number = _row_id(handoff_id)
            return None if number is None else ActOnHandoff(number, _VERBS[verb])
        case "h", [verb, handoff_id, reason] if (
            verb == HandoffVerb.DECLINE and reason in _DECLINE_REASONS
        ):
            number = _row_id(handoff_id)
            return None if number is None else ActOnHandoff(number, HandoffVerb.DECLINE, reason)
        case "j", [token]:
            return ConfirmJoin(token)
        case "jn", []:
            return DeclineJoin()
        case "o", [step]:
            return Reopen(step)
        case "r", []:
            return ResumeQuestionnaire()
        case ("pa" | "pr") as verb, [token]:
            return AnswerParental(token, agreed=verb == "pa")
        case "s", [step, value]:
            return Answer(ChoiceInput(step, value))
        case "t", [step, value]:
            return Answer(ToggleInput(step, value))
        case "t", [step, value, ("0" | "1") as flag]:
            return Answer(ToggleInput(step, value, select=flag == "1"))
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


def _row_id(field: str) -> int | None:
    """A row id (a handoff, a profile) we could have written; bounded before int() reads it."""
    if not _ID.fullmatch(field):
        return None
    number = int(field)
    return number if number <= HANDOFF_ID_MAX else None
