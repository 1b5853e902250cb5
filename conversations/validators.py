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
_NUMBER = re.compile(r"\d+")


def first_name(raw: str, _answers: Answers) -> Validation:
    name = " ".join(unicodedata.normalize("NFC", raw).split())
    if not name:
        return Invalid(_("Il me faut un prénom, écrit en lettres."))
    if len(name) > NAME_MAX:
        return Invalid(_("C'est un peu long : 50 caractères au plus pour un prénom."))
    if not _NAME.match(name):
        return Invalid(
            _("Un prénom s'écrit avec des lettres (les tirets et apostrophes vont bien).")
        )
    return Valid(name[0].upper() + name[1:])


def full_name(raw: str, answers: Answers) -> Validation:
    """A parent's first and last name: same rules as a first name, a little longer."""
    name = " ".join(unicodedata.normalize("NFC", raw).split())
    if not name or len(name) > 2 * NAME_MAX or not _NAME.match(name):
        return Invalid(
            _("Le prénom et le nom s'écrivent en lettres, par exemple « Nadia Benali ».")
        )
    return Valid(name)


def age(raw: str, _answers: Answers) -> Validation:
    """An age in years, typed as "17" or "j'ai 17 ans"; bounds are the flow's business (exit_if)."""
    numbers = _NUMBER.findall(_ascii_digits(raw))
    if len(numbers) != 1 or not 0 < int(numbers[0]) < 120 or "-" + numbers[0] in raw:
        return Invalid(_("L'âge s'écrit en chiffres, par exemple 16."))
    return Valid(int(numbers[0]))


def _ascii_digits(raw: str) -> str:
    # A phone keyboard may type full-width or Arabic-Indic digits: read them as 0–9.
    return "".join(str(unicodedata.digit(ch)) if ch.isdigit() else ch for ch in raw)


def postal_code(raw: str, _answers: Answers) -> Validation:
    code = re.sub(r"\s", "", _ascii_digits(raw))
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
    cleaned = _ascii_digits(raw.strip())
    if len(cleaned) > 32:
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
