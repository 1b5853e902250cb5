"""Typed outbox messages survive the JSON payload column exactly, nested texts and all."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
from conversations.text import Lines, Param, Text, When, _, ngettext
from storage import codec

PARIS = ZoneInfo("Europe/Paris")


def zones() -> st.SearchStrategy[Any]:
    fixed = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
    return st.one_of(st.just(UTC), st.timezones(), fixed)


moments = st.datetimes(timezones=zones(), allow_imaginary=True)
texts: st.SearchStrategy[Text] = st.deferred(
    lambda: st.builds(
        Text,
        st.text(),
        st.dictionaries(st.text(max_size=8), params, max_size=3),
        st.none() | st.text(),
        st.none() | st.integers(),
    )
)
text_or_str = st.one_of(st.text(), texts)
params: st.SearchStrategy[Param] = st.deferred(
    lambda: st.one_of(
        st.text(),
        st.integers(),
        st.booleans(),
        texts,
        st.builds(Lines, st.lists(text_or_str, max_size=3).map(tuple)),
        st.builds(When, moments),
        st.lists(text_or_str, max_size=3).map(tuple),
    )
)
buttons = st.builds(CardButton, st.sampled_from(HandoffVerb), texts, st.none() | st.text())
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)
messages: st.SearchStrategy[OutboxMessage] = st.one_of(
    st.builds(
        ContactCard,
        chat_id=st.integers(),
        language=st.text(),
        handoff_id=st.integers(),
        coordinator_id=st.integers(),
        body=texts,
        status=st.none() | texts,
        buttons=st.lists(buttons, max_size=3).map(tuple),
        message_id=st.none() | st.integers(),
    ),
    st.builds(PersonNotice, st.integers(), st.text(), texts),
    st.builds(CoordinatorNotice, st.integers(), st.text(), texts),
    st.builds(AdminAlert, st.integers(), texts, st.text()),
    st.builds(
        AssociationWebhook,
        st.text(),
        st.integers(),
        st.text(),
        st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    ),
)


def through_the_column(message: OutboxMessage) -> OutboxMessage:
    """What the relay reads back: the payload goes through JSON text, as in the database."""
    return codec.decode(json.loads(json.dumps(codec.encode(message))))


@given(messages)
def test_every_message_comes_back_exactly(message: OutboxMessage) -> None:
    decoded = through_the_column(message)
    assert decoded == message
    # repr shows what == forgives: a datetime's zone and fold, a dict's order, bool vs int.
    assert repr(decoded) == repr(message)


@given(params)
def test_every_text_parameter_comes_back_exactly(param: Param) -> None:
    decoded = codec.decode_param(json.loads(json.dumps(codec.encode_param(param))))
    assert decoded == param
    assert repr(decoded) == repr(param)


CARD = ContactCard(
    chat_id=-1001234,
    language="en",
    handoff_id=7,
    coordinator_id=3,
    body=_("Contact n° %(id)s: %(name)s, %(age)s ans").fmt(
        id=7, name="Inès <b>&", age=ngettext("%(count)s an", "%(count)s ans", 17)
    ),
    status=_("Pris par %(who)s le %(when)s").fmt(
        who="Camille", when=When(datetime(2026, 11, 26, 15, 0, tzinfo=UTC))
    ),
    buttons=(
        CardButton(HandoffVerb.TAKE, _("Je le prends")),
        CardButton(HandoffVerb.DECLINE, _("Pas pour nous : %(reason)s").fmt(reason="full"), "full"),
    ),
    message_id=42,
)
TABLE: list[OutboxMessage] = [
    CARD,
    ContactCard(chat_id=1, language="fr", handoff_id=1, coordinator_id=1, body=_("x")),
    PersonNotice(
        5001,
        "fr",
        _("%(association)s a pris votre demande :\n%(lines)s").fmt(
            association="Afev",
            lines=Lines((_("Besoins : %(needs)s").fmt(needs=("orientation", _("Emploi"))), "—")),
        ),
    ),
    CoordinatorNotice(
        3001,
        "en",
        _("Rappel le %(when)s").fmt(when=When(datetime(2026, 10, 25, 2, 30, tzinfo=PARIS, fold=1))),
    ),
    AdminAlert(555, _("⚠️ n° %(id)s").fmt(id=12)),
    AssociationWebhook(
        "https://crm.example.org/hook?x=1",
        7,
        "afev",
        {"event": "handoff.proposed", "handoff_id": 7, "profile": {"needs": ["job"], "age": 17}},
    ),
]


@pytest.mark.parametrize("message", TABLE, ids=lambda m: type(m).__name__)
def test_each_kind_of_message_round_trips(message: OutboxMessage) -> None:
    decoded = through_the_column(message)
    assert decoded == message
    assert repr(decoded) == repr(message)


def test_a_payload_names_its_type_and_is_plain_json() -> None:
    payload = codec.encode(CARD)
    assert payload["type"] == "contact_card"
    assert json.loads(json.dumps(payload)) == payload
    assert codec.encode(TABLE[-1])["body"] == TABLE[-1].body  # type: ignore[union-attr]


def test_what_would_not_come_back_is_refused_when_written() -> None:
    with pytest.raises(ValueError, match="naive"):
        codec.encode(AdminAlert(1, _("%(when)s").fmt(when=When(datetime(2026, 1, 1)))))
    with pytest.raises(TypeError):
        codec.encode(AdminAlert(1, _("%(x)s").fmt(x=1.5)))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        codec.encode(AdminAlert(1, _("%(x)s").fmt(x=(1, 2))))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        codec.encode(AdminAlert(1, _("%(x)s").fmt(x=Lines((When(datetime.now(UTC)),)))))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        codec.encode("hello")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "payload",
    [
        codec.scrubbed(codec.encode(CARD)),
        {"kind": "handoff", "text": "<b>an older format</b>", "coordinator_id": 3},
        {"type": "contact_card", "chat_id": "1"},
        {"type": "person_notice", "chat_id": 1, "language": "fr", "text": "not a Text"},
    ],
)
def test_a_payload_that_holds_no_message_says_so(payload: dict[str, Any]) -> None:
    with pytest.raises(codec.UndecodablePayload):
        codec.decode(payload)


payload_like = st.one_of(
    json_values,
    st.dictionaries(
        st.sampled_from(
            (
                *("type", "chat_id", "language", "handoff_id", "coordinator_id", "body"),
                *("status", "buttons", "message_id", "text", "url", "association"),
                *("t", "msgid", "params"),
            )
        ),
        json_values | st.sampled_from(["contact_card", "person_notice", "text", "when"]),
    ),
    messages.map(codec.encode).map(
        lambda payload: {key: value for key, value in payload.items() if key != "language"}
    ),
)


@given(payload_like)
def test_any_json_is_a_message_or_undecodable_never_a_crash(payload: Any) -> None:
    with contextlib.suppress(codec.UndecodablePayload):
        codec.decode(payload)


def test_a_scrubbed_payload_keeps_ids_only() -> None:
    assert codec.scrubbed(codec.encode(CARD)) == {
        "erased": True,
        "type": "contact_card",
        "handoff_id": 7,
        "coordinator_id": 3,
    }
