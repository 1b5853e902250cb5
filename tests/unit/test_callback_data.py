"""Buttons' callback data: within Telegram's 64 bytes, and decoded back to the same action."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.callback_data import CALLBACK_DATA_MAX_BYTES, HANDOFF_ID_MAX, decode, encode
from conversations.flows import FLOWS
from conversations.handoff import HandoffVerb
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
    ActOnHandoff,
    Answer,
    ChooseFlow,
    ChooseLanguage,
    ConfirmErase,
    ConfirmJoin,
    DeclineJoin,
    KeepData,
)
from conversations.services.coordinators import new_invite_token


def every_button_action() -> list[object]:
    actions: list[object] = [ConfirmErase(), KeepData(), DeclineJoin(), Answer(ConfirmInput())]
    actions += [ChooseFlow(name) for name in FLOWS] + [
        ChooseLanguage(code) for code in ("fr", "en")
    ]
    for flow in FLOWS.values():
        for step in flow.steps:
            actions += [
                Answer(BackInput(step.key)),
                Answer(SkipInput(step.key)),
                Answer(DoneInput(step.key)),
                Answer(EditInput(step.key)),
            ]
    actions.append(ConfirmJoin(new_invite_token()))
    for verb in HandoffVerb:
        actions.append(ActOnHandoff(HANDOFF_ID_MAX, verb))
    actions += [
        ActOnHandoff(HANDOFF_ID_MAX, HandoffVerb.DECLINE, reason)
        for reason in ("full", "scope", "unreachable")
    ]
    return actions


@pytest.mark.parametrize("action", every_button_action(), ids=repr)
def test_every_button_fits_in_64_bytes_and_decodes_to_itself(action: object) -> None:
    data = encode(action)  # type: ignore[arg-type]
    assert len(data.encode()) <= 64
    assert decode(data) == action


def test_choice_and_toggle_buttons_of_every_step_round_trip() -> None:
    for flow in FLOWS.values():
        for step in flow.steps:
            for choice in step.choices_for({}) + step.shortcuts:
                for given_input in (
                    ChoiceInput(step.key, choice.value),
                    ToggleInput(step.key, choice.value),
                ):
                    assert decode(encode(Answer(given_input))) == Answer(given_input)


@given(st.text(max_size=80) | st.text(st.characters(codec=None), max_size=200))
def test_data_we_never_produced_decodes_to_nothing_or_a_harmless_action(data: str) -> None:
    # Forged data must never raise, even with lone surrogates: it is either refused (None) or an
    # action the server re-checks, and then one we could have written ourselves.
    action = decode(data)
    if action is not None:
        assert encode(action) == data


@given(st.integers(min_value=1, max_value=HANDOFF_ID_MAX), st.sampled_from(list(HandoffVerb)))
def test_every_handoff_id_postgresql_can_hold_round_trips(
    handoff_id: int, verb: HandoffVerb
) -> None:
    assert decode(encode(ActOnHandoff(handoff_id, verb))) == ActOnHandoff(handoff_id, verb)


@pytest.mark.parametrize(
    "forged",
    [
        "h|take|²",
        "h|take|٣",
        "h|take|３",
        "h|take|" + "1" * 30,
        "h|take|" + "9" * 5000,
        "h|take|2147483648",
        "h|take|99999999999",
        "h|take|0",
        "h|take|007",
        "h|take|-1",
        "h|take|+1",
        "h|take| 1",
        "h|take|1\n",
        "h|decline|2147483648|full",
        "h|decline|²|full",
    ],
)
def test_a_handoff_id_that_is_not_a_short_ascii_number_within_int4_is_refused(
    forged: str,
) -> None:
    assert decode(forged) is None


@pytest.mark.parametrize(
    "forged",
    [
        "s|age|\ud800",
        "\udfff",
        "s|" + "a" * 70 + "|x",
        "t|needs|" + "é" * 30,
        "s|age|a b",
        "s|age|",
        "e|",
        "j|" + "x" * 80,
        "f|mentee\n",
        "l|fr\u200b",
        "l|fr|en",
    ],
)
def test_steps_values_and_tokens_are_short_identifiers_or_refused(forged: str) -> None:
    assert decode(forged) is None


def test_data_over_64_bytes_is_refused_even_when_well_formed() -> None:
    data = "j|join-" + "a" * (CALLBACK_DATA_MAX_BYTES - 6)
    assert len(data.encode()) == CALLBACK_DATA_MAX_BYTES + 1
    assert decode(data) is None
    assert decode(data[:-1]) == ConfirmJoin(data[2:-1])


def test_a_button_that_could_not_be_decoded_back_is_never_made() -> None:
    with pytest.raises(ValueError, match="decode back"):
        encode(ActOnHandoff(HANDOFF_ID_MAX + 1, HandoffVerb.TAKE))
    with pytest.raises(ValueError, match="decode back"):
        encode(Answer(ChoiceInput("age", "a|b")))


@pytest.mark.parametrize(
    "forged", ["h|take|abc", "h|steal|1", "h|decline|1|x|y", "s|only", "", "zz"]
)
def test_malformed_handoff_or_step_data_is_refused(forged: str) -> None:
    assert decode(forged) is None
