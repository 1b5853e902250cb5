"""Small factories that drive a questionnaire the way a person would, one input at a time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeAlias

from conversations.engine import advance, begin
from conversations.flows import FLOWS
from conversations.model import (
    SUMMARY,
    Ask,
    ChoiceInput,
    DoneInput,
    Input,
    Outcome,
    SkipInput,
    Summary,
    TextInput,
    ToggleInput,
)
from conversations.text import Text

# A reply to one question: typed text, one input, or several (toggles then "Valider").
Reply: TypeAlias = "str | Input | list[Input]"


def localize(text: Text) -> str:
    return text.msgid


def pick(step: str, value: str) -> ChoiceInput:
    return ChoiceInput(step, value)


def tick(step: str, *values: str) -> list[Input]:
    """Toggle each value of a multi-choice step, then press "Valider"."""
    return [*(ToggleInput(step, value) for value in values), DoneInput(step)]


def skip(step: str) -> SkipInput:
    return SkipInput(step)


def inputs_of(reply: Reply) -> list[Input]:
    if isinstance(reply, str):
        return [TextInput(reply)]
    if isinstance(reply, list):
        return reply
    return [reply]


# A 17-year-old from Saint-Denis who wants help with orientation and gives a phone number.
MENTEE_REPLIES: dict[str, Reply] = {
    "first_name": "Nadia",
    "age": "17",
    "postal_code": "93200",
    # The first situation offered at that age: "Lycée général ou technologique" at 17.
    "situation": "1",
    "needs": tick("needs", "orientation"),
    "format": pick("format", "either"),
    "area": skip("area"),
    "contact_method": pick("contact_method", "phone"),
    "phone": "06 12 34 56 78",
    "email": "nadia@exemple.fr",
    "parent_name": "Samia Benali",
    "parent_phone": "07 81 23 45 67",
    "parent_consent": pick("parent_consent", "yes"),
    "consent": pick("consent", "yes"),
}

# A 30-year-old engineer from Lyon.
MENTOR_REPLIES: dict[str, Reply] = {
    "first_name": "Julien",
    "age_bracket": pick("age_bracket", "26_40"),
    "postal_code": "69003",
    "situation": pick("situation", "private_employee"),
    "employer": "Ateliers Lumière",
    "mentee_groups": tick("mentee_groups", "high_schoolers"),
    "themes": tick("themes", "orientation", "internship"),
    "availability": pick("availability", "2h_month"),
    "commitment": pick("commitment", "yes"),
    "format": pick("format", "remote"),
    "contact_method": pick("contact_method", "email"),
    "phone": "06 98 76 54 32",
    "email": "julien@exemple.fr",
    "consent": pick("consent", "yes"),
}

# A mother signing up her 12-year-old son Yanis, in Saint-Denis.
REFERRAL_REPLIES: dict[str, Reply] = {
    "referrer_role": pick("referrer_role", "parent"),
    "first_name": "Yanis",
    "age": "12",
    "postal_code": "93200",
    "situation": pick("situation", "middle_school"),
    "needs": tick("needs", "school_support"),
    "format": pick("format", "either"),
    "area": skip("area"),
    "referrer_name": "Samia Benali",
    "referrer_organisation": "Collège Jean-Moulin",
    "contact_method": pick("contact_method", "phone"),
    "phone": "07 81 23 45 67",
    "email": "samia@exemple.fr",
    "young_phone": skip("young_phone"),
    "parent_name": "Karima Benali",
    "parent_phone": "06 55 44 33 22",
    "parent_consent": pick("parent_consent", "yes"),
    "consent": pick("consent", "yes"),
}

DEFAULT_REPLIES = {
    "mentee": MENTEE_REPLIES,
    "referral": REFERRAL_REPLIES,
    "mentor": MENTOR_REPLIES,
}


def drive(flow: str, *replies: Reply, start: Outcome | None = None) -> Outcome:
    """Feed replies one after the other, from a fresh conversation or from `start`."""
    outcome: Outcome = start if start is not None else begin(FLOWS[flow])
    for reply in replies:
        for given in inputs_of(reply):
            outcome = advance(FLOWS[flow], outcome.state, given, localize)
    return outcome


def answer_until(
    flow: str, stop: str = SUMMARY, start: Outcome | None = None, /, **replies: Reply
) -> tuple[Outcome, list[str]]:
    """Answer each question with the default reply (or the one given) until `stop` is asked.

    Returns the outcome and the keys of the questions asked on the way, in order.
    """
    chosen = {**DEFAULT_REPLIES[flow], **replies}
    outcome: Outcome = start if start is not None else begin(FLOWS[flow])
    asked: list[str] = []
    for _turn in range(50):
        if isinstance(outcome, Summary) and stop == SUMMARY:
            return outcome, asked
        assert isinstance(outcome, Ask), f"stopped on {outcome!r} before {stop}"
        key = outcome.step.key
        if key == stop:
            return outcome, asked
        asked.append(key)
        outcome = drive(flow, chosen[key], start=outcome)
        if isinstance(outcome, Ask) and outcome.step.key == key:
            raise AssertionError(f"{key}: {chosen[key]!r} was refused: {outcome.problem}")
    raise AssertionError(f"{stop} never asked")


def asked_steps(flow: str, **replies: Reply) -> list[str]:
    """The questions a person is asked, in order, until the summary."""
    return answer_until(flow, **replies)[1]


def answers_of(outcome: Outcome) -> Mapping[str, object]:
    return dict(outcome.state.answers)
