"""The outbox's typed messages as JSON, and back: what the `payload` column holds.

A message is an object tagged with its `type`. Inside it, a `conversations.text` value is an
object tagged with `t` ("text", "lines", "when"); a tuple is a JSON array; str and int are
themselves. Nothing else is accepted: a value that would not come back equal is refused when
it is written, not discovered when the relay reads it. `AssociationWebhook.body` is plain JSON,
stored as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from conversations.handoff import HandoffVerb
from conversations.ports import (
    AdminAlert,
    AssociationWebhook,
    CardButton,
    ContactCard,
    CoordinatorNotice,
    OutboxMessage,
    PersonNotice,
)
from conversations.text import Lines, Param, Text, When

CONTACT_CARD = "contact_card"
PERSON_NOTICE = "person_notice"
COORDINATOR_NOTICE = "coordinator_notice"
ADMIN_ALERT = "admin_alert"
ASSOCIATION_WEBHOOK = "association_webhook"


T = TypeVar("T")


class UndecodablePayload(ValueError):
    """A payload that is no message: scrubbed by an erasure, or written by an older version."""


# --- texts ---------------------------------------------------------------------------------


def encode_param(value: Param) -> Any:
    if isinstance(value, Text):
        return encode_text(value)
    if isinstance(value, Lines):
        return {"t": "lines", "items": [_encode_item(item) for item in value.items]}
    if isinstance(value, When):
        return _encode_when(value.moment)
    if isinstance(value, tuple):
        return [_encode_item(item) for item in value]
    if isinstance(value, str | int):  # a bool too, which JSON keeps apart from ints
        return value
    raise TypeError(f"cannot store {type(value).__name__} in a text")


def _encode_item(item: Text | str) -> Any:
    # What `Lines` and tuples hold: texts and strings only, as decoding expects.
    if not isinstance(item, Text | str):
        raise TypeError(f"cannot store {type(item).__name__} in a list of texts")
    return encode_param(item)


def encode_text(text: Text) -> dict[str, Any]:
    encoded: dict[str, Any] = {"t": "text", "msgid": text.msgid}
    if text.params:
        encoded["params"] = {str(name): encode_param(value) for name, value in text.params.items()}
    if text.plural is not None:
        encoded["plural"] = text.plural
    if text.count is not None:
        encoded["count"] = text.count
    return encoded


def _encode_when(moment: datetime) -> dict[str, Any]:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("naive datetime: a When needs an aware time")
    encoded: dict[str, Any] = {"t": "when", "at": moment.isoformat()}
    # The zone itself, not just this moment's offset, and which of a repeated hour it was:
    # the wall time and zone come back as they were, even in a DST gap or overlap.
    if isinstance(moment.tzinfo, ZoneInfo):
        encoded["zone"] = moment.tzinfo.key
    if moment.fold:
        encoded["fold"] = moment.fold
    return encoded


def decode_param(value: Any) -> Param:
    if isinstance(value, str | int):
        return value
    if isinstance(value, list):
        return tuple(_text_or_str(item) for item in value)
    if isinstance(value, dict):
        tag = value.get("t")
        if tag == "text":
            return decode_text(value)
        if tag == "lines":
            return Lines(tuple(_text_or_str(item) for item in _list(value, "items")))
        if tag == "when":
            return When(_decode_when(value))
    raise UndecodablePayload(f"not a text parameter: {value!r:.80}")


def decode_text(value: Any) -> Text:
    if not isinstance(value, dict) or value.get("t") != "text":
        raise UndecodablePayload(f"not a text: {value!r:.80}")
    params = value.get("params", {})
    if not isinstance(params, dict):
        raise UndecodablePayload("text params must be an object")
    return Text(
        _str(value, "msgid"),
        {str(name): decode_param(param) for name, param in params.items()},
        _optional(value, "plural", str),
        _optional(value, "count", int),
    )


def _text_or_str(value: Any) -> Text | str:
    decoded = decode_param(value)
    if not isinstance(decoded, Text | str):
        raise UndecodablePayload(f"expected a text or a string: {value!r:.80}")
    return decoded


def _decode_when(value: dict[str, Any]) -> datetime:
    try:
        moment = datetime.fromisoformat(_str(value, "at"))
        zone = _optional(value, "zone", str)
        if zone is not None:
            moment = moment.replace(tzinfo=ZoneInfo(zone))
        moment = moment.replace(fold=_optional(value, "fold", int) or 0)
    except (ValueError, KeyError) as error:
        raise UndecodablePayload(f"not a moment: {value!r:.80}") from error
    if moment.tzinfo is None:
        raise UndecodablePayload("a When must be aware")
    return moment


# --- messages ------------------------------------------------------------------------------


def encode(message: OutboxMessage) -> dict[str, Any]:
    """The payload to store for a message."""
    if isinstance(message, ContactCard):
        return {
            "type": CONTACT_CARD,
            "chat_id": message.chat_id,
            "language": message.language,
            "handoff_id": message.handoff_id,
            "coordinator_id": message.coordinator_id,
            "body": encode_text(message.body),
            "status": None if message.status is None else encode_text(message.status),
            "buttons": [_encode_button(button) for button in message.buttons],
            "message_id": message.message_id,
        }
    if isinstance(message, PersonNotice | CoordinatorNotice):
        tag = PERSON_NOTICE if isinstance(message, PersonNotice) else COORDINATOR_NOTICE
        encoded: dict[str, Any] = {
            "type": tag,
            "chat_id": message.chat_id,
            "language": message.language,
            "text": encode_text(message.text),
        }
        if isinstance(message, PersonNotice) and message.resume is not None:
            # Only when there is one: rows written before the button existed read the same.
            encoded["resume"] = encode_text(message.resume)
        return encoded
    if isinstance(message, AdminAlert):
        return {
            "type": ADMIN_ALERT,
            "chat_id": message.chat_id,
            "language": message.language,
            "text": encode_text(message.text),
        }
    if isinstance(message, AssociationWebhook):
        return {
            "type": ASSOCIATION_WEBHOOK,
            "url": message.url,
            "handoff_id": message.handoff_id,
            "association": message.association,
            "body": dict(message.body),
        }
    raise TypeError(f"not an outbox message: {type(message).__name__}")


def decode(payload: Mapping[str, Any]) -> OutboxMessage:
    """The message a payload holds; UndecodablePayload when it holds none (see `scrubbed`)."""
    if not isinstance(payload, Mapping):
        raise UndecodablePayload(f"not an object: {payload!r:.80}")
    tag = payload.get("type")
    if tag == CONTACT_CARD:
        status = payload.get("status")
        return ContactCard(
            chat_id=_int(payload, "chat_id"),
            language=_str(payload, "language"),
            handoff_id=_int(payload, "handoff_id"),
            coordinator_id=_int(payload, "coordinator_id"),
            body=decode_text(payload.get("body")),
            status=None if status is None else decode_text(status),
            buttons=tuple(_decode_button(button) for button in _list(payload, "buttons")),
            message_id=_optional(payload, "message_id", int),
        )
    if tag == PERSON_NOTICE:
        resume = payload.get("resume")
        return PersonNotice(
            chat_id=_int(payload, "chat_id"),
            language=_str(payload, "language"),
            text=decode_text(payload.get("text")),
            resume=None if resume is None else decode_text(resume),
        )
    if tag == COORDINATOR_NOTICE:
        return CoordinatorNotice(
            chat_id=_int(payload, "chat_id"),
            language=_str(payload, "language"),
            text=decode_text(payload.get("text")),
        )
    if tag == ADMIN_ALERT:
        return AdminAlert(
            chat_id=_int(payload, "chat_id"),
            text=decode_text(payload.get("text")),
            language=_str(payload, "language"),
        )
    if tag == ASSOCIATION_WEBHOOK:
        body = payload.get("body")
        if not isinstance(body, dict):
            raise UndecodablePayload("a webhook body must be an object")
        return AssociationWebhook(
            url=_str(payload, "url"),
            handoff_id=_int(payload, "handoff_id"),
            association=_str(payload, "association"),
            body=body,
        )
    raise UndecodablePayload(f"unknown message type {tag!r:.40}")


# What an erased person's message keeps: enough to know what it was, none of what it said.
_IDS = ("type", "handoff_id", "coordinator_id")


def scrubbed(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A payload reduced to ids (no text, no chat, no url); it no longer decodes."""
    return {"erased": True, **{key: payload[key] for key in _IDS if key in payload}}


def _encode_button(button: CardButton) -> dict[str, Any]:
    return {"verb": button.verb, "label": encode_text(button.label), "reason": button.reason}


def _decode_button(value: Any) -> CardButton:
    if not isinstance(value, dict):
        raise UndecodablePayload(f"not a button: {value!r:.80}")
    try:
        verb = HandoffVerb(_str(value, "verb"))
    except ValueError as error:
        raise UndecodablePayload(f"unknown button verb: {value.get('verb')!r:.40}") from error
    return CardButton(
        verb=verb,
        label=decode_text(value.get("label")),
        reason=_optional(value, "reason", str),
    )


def _str(values: Mapping[str, Any], key: str) -> str:
    value = values.get(key)
    if not isinstance(value, str):
        raise UndecodablePayload(f"{key} must be a string")
    return value


def _int(values: Mapping[str, Any], key: str) -> int:
    value = values.get(key)
    if not isinstance(value, int):
        raise UndecodablePayload(f"{key} must be an integer")
    return value


def _list(values: Mapping[str, Any], key: str) -> list[Any]:
    value = values.get(key, [])
    if not isinstance(value, list):
        raise UndecodablePayload(f"{key} must be an array")
    return value


def _optional(values: Mapping[str, Any], key: str, kind: type[T]) -> T | None:
    value = values.get(key)
    if value is None:
        return None
    if not isinstance(value, kind):
        raise UndecodablePayload(f"{key} must be a {kind.__name__}")
    return value
