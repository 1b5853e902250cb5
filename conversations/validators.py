"""Validators of typed answers: each returns the clean value, or a short, kind reason to ask again."""

from __future__ import annotations

import re
import unicodedata

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from conversations.geography import department_of, phone_region
from conversations.model import Answers, Invalid, Valid, Validation
from conversations.text import _

NAME_MAX = 50
# Only the young flow asks for someone else's number (a parent's), hence "tu".
NOT_YOUR_NUMBER = _("C'est ton propre numéro : il me faut celui de ton parent.")
_NAME = re.compile(r"^[^\W\d_]+(?:[ '’.-][^\W\d_]+)*\.?$")
# ASCII digits only, and at most three: int() never sees anything long or exotic.
_NUMBER = re.compile(r"[0-9]+", re.ASCII)
AGE_DIGITS_MAX = 3
# Telegram caps a message at 4096 characters; no valid age or postal code comes near this.
TYPED_NUMBER_MAX = 64


def first_name(raw: str, _answers: Answers) -> Validation:
    name = " ".join(unicodedata.normalize("NFC", raw).split())
    if not name:
        return Invalid(_("Il me faut un prénom, écrit en lettres."))
    if len(name) > NAME_MAX:
        return Invalid(_("C'est un peu long : 50 caractères au plus pour un prénom."))
    # re's \w takes "²" or "⑳" for letters: numerals of any kind are refused explicitly.
    if not _NAME.match(name) or any(ch.isnumeric() for ch in name):
        return Invalid(
            _("Un prénom s'écrit avec des lettres (les tirets et apostrophes vont bien).")
        )
    return Valid(name[0].upper() + name[1:])


def full_name(raw: str, answers: Answers) -> Validation:
    """A parent's first and last name: same rules as a first name, a little longer."""
    name = " ".join(unicodedata.normalize("NFC", raw).split())
    if (
        not name
        or len(name) > 2 * NAME_MAX
        or not _NAME.match(name)
        or any(ch.isnumeric() for ch in name)
    ):
        return Invalid(
            _("Le prénom et le nom s'écrivent en lettres, par exemple « Nadia Benali ».")
        )
    return Valid(name)


ORGANISATION_MAX = 120


def organisation(raw: str, _answers: Answers) -> Validation:
    """A professional's school, service or association: free text, one line, not too long."""
    name = " ".join(unicodedata.normalize("NFC", raw).split())
    if len(name) < 2 or not any(ch.isalpha() for ch in name):
        return Invalid(_("Écrivez le nom de votre structure, par exemple « Collège Jean-Moulin »."))
    if len(name) > ORGANISATION_MAX:
        return Invalid(_("C'est un peu long : 120 caractères au plus."))
    return Valid(name)


def age(raw: str, _answers: Answers) -> Validation:
    """An age in years, typed as "17" or "j'ai 17 ans"; bounds are the flow's business (exit_if)."""
    typed = _ascii_digits(raw) if len(raw) <= TYPED_NUMBER_MAX else None
    numbers = _NUMBER.findall(typed) if typed is not None else []
    if (
        typed is None
        or len(numbers) != 1
        or len(numbers[0]) > AGE_DIGITS_MAX
        or not 0 < int(numbers[0]) < 120
        or "-" + numbers[0] in typed
    ):
        return Invalid(_("L'âge s'écrit en chiffres, par exemple 16."))
    return Valid(int(numbers[0]))


def _ascii_digits(raw: str) -> str | None:
    """`raw` with the decimal digits of any script as 0–9; None when it has other numerals.

    A phone keyboard may type full-width or Arabic-Indic digits: those are read as 0–9.
    Superscripts, circled numbers, fractions or Roman numerals ("²", "⑳", "½", "Ⅻ") are
    refused rather than guessed, so that "3²" is never read as 32 or 3.
    """
    out = []
    for ch in raw:
        if "0" <= ch <= "9" or not ch.isnumeric():
            out.append(ch)
        elif ch.isdecimal():
            out.append(str(unicodedata.decimal(ch)))
        else:
            return None
    return "".join(out)


def postal_code(raw: str, _answers: Answers) -> Validation:
    typed = _ascii_digits(raw) if len(raw) <= TYPED_NUMBER_MAX else None
    code = re.sub(r"\s", "", typed) if typed is not None else ""
    if not re.fullmatch(r"[0-9]{5}", code):
        return Invalid(_("Un code postal français a 5 chiffres, par exemple 93200."))
    if department_of(code) is None:
        return Invalid(
            _("Ce code postal est introuvable en France : merci de vérifier les 5 chiffres.")
        )
    return Valid(code)


def phone(raw: str, answers: Answers) -> Validation:
    """A phone number, French by default ("06 12 34 56 78"), international with its "+" prefix.

    A local number is read in the numbering plan of where the person lives ("0692…" in Réunion).
    """
    cleaned = _ascii_digits(raw.strip()) if len(raw) <= TYPED_NUMBER_MAX else None
    if cleaned is None or len(cleaned) > 32:
        return Invalid(_("Ce numéro ne semble pas valide. Exemple : 06 12 34 56 78."))
    if cleaned.startswith("00"):
        cleaned = "+" + cleaned[2:]
    elif cleaned.isdigit() and not cleaned.startswith("0") and len(cleaned) > 10:
        # Telegram shares contacts as "33612345678", without the "+".
        cleaned = "+" + cleaned
    try:
        code = answers.get("postal_code")
        region = phone_region(department_of(code) if isinstance(code, str) else None)
        number = phonenumbers.parse(cleaned, region)
    except phonenumbers.NumberParseException:
        return Invalid(_("Ce numéro ne semble pas valide. Exemple : 06 12 34 56 78."))
    if not phonenumbers.is_valid_number(number):
        return Invalid(_("Ce numéro ne semble pas valide. Exemple : 06 12 34 56 78."))
    return Valid(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def email(raw: str, _answers: Answers) -> Validation:
    """Syntax only: a DNS look-up would leak the address and fail offline."""
    try:
        result = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError:
        return Invalid(_("Cette adresse e-mail ne semble pas valide. Exemple : prenom@exemple.fr."))
    return Valid(result.normalized)
