"""Validators of typed answers: what a person may type, and what is stored once it is accepted."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conversations import validators
from conversations.engine import match_choice
from conversations.geography import department_of, is_overseas
from conversations.model import Answers, Choice, Invalid, Valid, Validation
from conversations.text import _
from tests.unit.helpers import localize


def accepted(result: Validation) -> object:
    assert isinstance(result, Valid), f"refused: {result}"
    return result.value


def refused(result: Validation) -> None:
    assert isinstance(result, Invalid), f"accepted: {result}"
    assert result.reason.msgid


# --- first name -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("Nadia", "Nadia"),
        ("Zoé", "Zoé"),
        ("Jean-Pierre", "Jean-Pierre"),
        ("N'Golo", "N'Golo"),
        ("N’Golo", "N’Golo"),
        ("Marie Ange", "Marie Ange"),
        ("J.", "J."),
    ],
)
def test_names_with_accents_hyphens_and_apostrophes_are_accepted(typed: str, stored: str) -> None:
    assert accepted(validators.first_name(typed, {})) == stored


def test_first_letter_of_a_name_is_capitalised() -> None:
    assert accepted(validators.first_name("élodie", {})) == "Élodie"


def test_spaces_around_and_inside_a_name_are_tidied() -> None:
    assert accepted(validators.first_name("  Marie    Ange \n", {})) == "Marie Ange"


def test_a_decomposed_accent_is_stored_composed() -> None:
    assert accepted(validators.first_name("Zoe\u0301", {})) == "Zo\u00e9"


@pytest.mark.parametrize(
    "typed", ["Zoé2", "1234", "😀", "Nadia 😀", "", "   ", "-", "Nadia--Li", "Zoé²", "⑳", "Ⅻ"]
)
def test_names_with_digits_emoji_or_nothing_are_refused(typed: str) -> None:
    refused(validators.first_name(typed, {}))


def test_fifty_letters_is_the_longest_name_accepted() -> None:
    accepted(validators.first_name("a" * 50, {}))
    refused(validators.first_name("a" * 51, {}))


def test_a_parent_full_name_keeps_its_spacing_tidied() -> None:
    assert accepted(validators.full_name(" Samia   Benali ", {})) == "Samia Benali"


@pytest.mark.parametrize("typed", ["", "Samia 2", "😀", "Samia ½"])
def test_a_parent_full_name_in_anything_but_letters_is_refused(typed: str) -> None:
    refused(validators.full_name(typed, {}))


# --- age ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("typed", "years"), [("17", 17), ("j'ai 17 ans", 17), (" 9 ", 9)])
def test_an_age_is_read_from_the_one_number_typed(typed: str, years: int) -> None:
    assert accepted(validators.age(typed, {})) == years


@pytest.mark.parametrize("typed", ["abc", "17 18", "", "0", "120", "dix-sept", "-17", "0017"])
def test_an_age_without_exactly_one_plausible_number_is_refused(typed: str) -> None:
    refused(validators.age(typed, {}))


@pytest.mark.parametrize(("typed", "years"), [("٣٣", 33), ("１７", 17), ("j'ai ١٦ ans", 16)])
def test_an_age_typed_with_arabic_indic_or_full_width_digits_is_read(
    typed: str, years: int
) -> None:
    assert accepted(validators.age(typed, {})) == years


@pytest.mark.parametrize("typed", ["²", "3²", "⑳", "½", "Ⅻ", "١٧²", "-١٧"])
def test_an_age_in_superscripts_circled_numbers_or_fractions_is_asked_again(typed: str) -> None:
    refused(validators.age(typed, {}))


@pytest.mark.parametrize(
    "typed",
    ["1" * 4301, "1" * 5000, "٣" * 5000, "²" * 4301, "⑳" * 2151, "17 " + "a" * 4093, "9" * 4096],
)
def test_an_age_of_thousands_of_digits_is_asked_again_without_a_crash(typed: str) -> None:
    refused(validators.age(typed, {}))


# --- postal codes and departments -----------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "department"),
    [
        ("75011", "75"),
        ("93200", "93"),
        ("01000", "01"),
        ("20000", "2A"),
        ("20100", "2A"),
        ("20200", "2B"),
        ("20600", "2B"),
        ("97100", "971"),
        ("97411", "974"),
        ("97600", "976"),
    ],
)
def test_a_postal_code_gives_its_department(code: str, department: str) -> None:
    assert accepted(validators.postal_code(code, {})) == code
    assert department_of(code) == department


@pytest.mark.parametrize("code", ["98000", "00000", "97900", "9320", "932000", "9320a", "abcde"])
def test_codes_that_are_not_french_postal_codes_are_refused(code: str) -> None:
    refused(validators.postal_code(code, {}))
    assert department_of(code) is None


def test_a_postal_code_typed_with_a_space_is_stored_without_it() -> None:
    assert accepted(validators.postal_code("93 200", {})) == "93200"


def test_overseas_departments_are_told_apart_from_mainland_ones() -> None:
    assert is_overseas("974")
    assert not is_overseas("93")


@pytest.mark.parametrize("code", ["96000", "99000"])
def test_postal_codes_of_departments_that_do_not_exist_are_refused(code: str) -> None:
    refused(validators.postal_code(code, {}))


@pytest.mark.parametrize("code", ["9" * 5000, "⑳" * 2151, "٩٣²٠٠", "9320²", "93 200" + " " * 4000])
def test_postal_codes_of_thousands_of_digits_or_superscripts_are_refused(code: str) -> None:
    refused(validators.postal_code(code, {}))


@pytest.mark.parametrize("code", ["٩٣٢٠٠", "９３２００"])
def test_postal_codes_in_other_digit_scripts_are_stored_in_ascii_or_refused(code: str) -> None:
    result = validators.postal_code(code, {})
    assert isinstance(result, Invalid) or result.value == "93200"


# --- phone ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("06 12 34 56 78", "+33612345678"),
        ("0612345678", "+33612345678"),
        ("06.12.34.56.78", "+33612345678"),
        ("+33 6 12 34 56 78", "+33612345678"),
        ("0033 6 12 34 56 78", "+33612345678"),
        # Telegram shares a contact's number without the "+".
        ("33612345678", "+33612345678"),
        ("+44 20 7946 0958", "+442079460958"),
        ("+262 692 12 34 56", "+262692123456"),
    ],
)
def test_phone_numbers_are_stored_in_international_form(typed: str, stored: str) -> None:
    assert accepted(validators.phone(typed, {})) == stored


@pytest.mark.parametrize("typed", ["abc", "", "0612", "06 12 34 56 78 9", "1" * 40, "06" * 20])
def test_phone_numbers_that_cannot_be_dialled_are_refused(typed: str) -> None:
    refused(validators.phone(typed, {}))


@pytest.mark.parametrize(
    "typed", ["0" * 5000, "+" + "3" * 4095, "06 12 34 56 7²", "⑳" * 2151, "٠٦" * 2048]
)
def test_phone_numbers_of_thousands_of_digits_or_superscripts_are_refused(typed: str) -> None:
    refused(validators.phone(typed, {}))


def test_a_phone_number_typed_in_arabic_indic_digits_is_stored_in_ascii() -> None:
    assert accepted(validators.phone("٠٦١٢٣٤٥٦٧٨", {})) == "+33612345678"


@pytest.mark.parametrize(
    ("postal_code", "typed", "stored"),
    [("97411", "0692 12 34 56", "+262692123456"), ("97100", "0690 12 34 56", "+590690123456")],
)
def test_an_overseas_number_typed_the_local_way_is_accepted(
    postal_code: str, typed: str, stored: str
) -> None:
    assert accepted(validators.phone(typed, {"postal_code": postal_code})) == stored


# --- e-mail ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("nadia.benali@exemple.fr", "nadia.benali@exemple.fr"),
        ("  nadia@exemple.fr \n", "nadia@exemple.fr"),
        ("Nadia@Exemple.FR", "Nadia@exemple.fr"),
    ],
)
def test_email_addresses_are_stored_normalised(typed: str, stored: str) -> None:
    assert accepted(validators.email(typed, {})) == stored


def test_email_of_a_domain_that_does_not_resolve_is_accepted_without_a_lookup() -> None:
    # No DNS: the domain below does not exist, and the test must pass offline.
    assert accepted(validators.email("a@domaine-inexistant-mentorat.fr", {}))


@pytest.mark.parametrize(
    "typed", ["pas-un-email", "a@", "@exemple.fr", "a@b", "a b@exemple.fr", ""]
)
def test_malformed_email_addresses_are_refused(typed: str) -> None:
    refused(validators.email(typed, {}))


# --- anything at all ------------------------------------------------------------------------

# What a person can type: any Unicode (lone surrogates aside, which Telegram cannot carry), up to
# Telegram's 4096 characters, with long runs of digits of every script.
typed_text = st.text(max_size=4096) | st.builds(
    lambda digit, count, around: around + digit * count + around,
    st.sampled_from(["1", "9", "٣", "３", "²", "⑳", "𝟗", "½"]),
    st.integers(min_value=1, max_value=4096),
    st.text(max_size=8),
)
VALIDATORS: list[Callable[[str, Answers], Validation]] = [
    validators.first_name,
    validators.full_name,
    validators.age,
    validators.postal_code,
    validators.phone,
    validators.email,
]


@settings(max_examples=150, deadline=None)
@given(typed_text, st.sampled_from(VALIDATORS))
def test_no_typed_text_makes_a_validator_raise(
    typed: str, validate: Callable[[str, Answers], Validation]
) -> None:
    result = validate(typed, {"postal_code": "97411"})
    assert isinstance(result, Valid | Invalid)


@settings(max_examples=150, deadline=None)
@given(typed_text)
def test_an_accepted_age_is_a_plausible_number_of_years(typed: str) -> None:
    result = validators.age(typed, {})
    if isinstance(result, Valid):
        assert isinstance(result.value, int)
        assert 0 < result.value < 120


@settings(max_examples=150, deadline=None)
@given(typed_text)
def test_an_accepted_postal_code_or_phone_is_stored_in_ascii(typed: str) -> None:
    for result in (validators.postal_code(typed, {}), validators.phone(typed, {})):
        if isinstance(result, Valid):
            assert isinstance(result.value, str)
            assert result.value.isascii()


# --- a typed number at a button question ----------------------------------------------------

BUTTONS = (Choice("a", _("Lycée général")), Choice("b", _("Lycée professionnel")))


@pytest.mark.parametrize(("typed", "value"), [("2", "b"), ("02", "b"), ("１", "a")])
def test_an_options_number_typed_in_ascii_picks_it(typed: str, value: str) -> None:
    found = match_choice(typed, BUTTONS, localize)
    assert found is not None
    assert found.value == value


@pytest.mark.parametrize("typed", ["⑳" * 2151, "1" * 4301, "²" * 4301, "٢", "0002", "3"])
def test_a_huge_or_exotic_number_at_a_button_question_picks_nothing(typed: str) -> None:
    assert match_choice(typed, BUTTONS, localize) is None
