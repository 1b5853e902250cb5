"""Buttons' callback data: within Telegram's 64 bytes, and decoded back to the same action."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.callback_data import decode, encode
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
        actions.append(ActOnHandoff(2**53, verb))
    actions += [
        ActOnHandoff(2**53, HandoffVerb.DECLINE, reason)
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


@given(st.text(max_size=80))
def test_data_we_never_produced_decodes_to_nothing_or_a_harmless_action(data: str) -> None:
    # Forged data must never raise: it is either refused (None) or an action the server re-checks.
    decode(data)


@pytest.mark.parametrize(
    "forged", ["h|take|abc", "h|steal|1", "h|decline|1|x|y", "s|only", "", "zz"]
)
def test_malformed_handoff_or_step_data_is_refused(forged: str) -> None:
    assert decode(forged) is None
