"""The gettext catalogues: every text of the code is extracted, translated in French and English,
and keeps its placeholders and markup; the translator renders a text in English and escapes params.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from bot.i18n import Translator
from conversations.text import LANGUAGES, _

ROOT = Path(__file__).resolve().parents[2]
LOCALES = ROOT / "locales"
POT = LOCALES / "messages.pot"

PLACEHOLDER = re.compile(r"%\(([^)]+)\)")
TAG = re.compile(r"</?[a-zA-Z][^>]*>")

MsgId = str | tuple[str, ...]


def _read(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle, locale=locale)


def _po(language: str) -> Catalog:
    return _read(LOCALES / language / "LC_MESSAGES" / "messages.po", language)


def _key(message_id: str | tuple[str, ...] | list[str]) -> MsgId:
    return message_id if isinstance(message_id, str) else tuple(message_id)


def _shown(message_id: str | tuple[str, ...] | list[str]) -> str:
    return repr(message_id if isinstance(message_id, str) else message_id[0])


def _messages(catalog: Catalog) -> Iterator[Message]:
    return (message for message in catalog if message.id)


def _pairs(message: Message) -> Iterator[tuple[str, str]]:
    """(source, translation) for each form: the singular for form 0, the plural for the others."""
    if isinstance(message.id, str):
        yield message.id, message.string if isinstance(message.string, str) else ""
        return
    singular, plural = message.id[0], message.id[1]
    forms = message.string if isinstance(message.string, (tuple, list)) else (message.string,)
    for index, form in enumerate(forms):
        yield (singular if index == 0 else plural), form or ""


def _extracted_msgids() -> set[MsgId]:
    with (ROOT / "babel.cfg").open() as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    found: set[MsgId] = set()
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map
    ):
        key = _key(message)
        if key and key[0]:
            found.add(key)
    return found


@pytest.fixture(scope="module")
def template() -> Catalog:
    return _read(POT)


@pytest.fixture(scope="module", params=LANGUAGES)
def catalog(request: pytest.FixtureRequest) -> Catalog:
    return _po(request.param)


def test_the_template_holds_exactly_the_texts_of_the_code(template: Catalog) -> None:
    in_code = _extracted_msgids()
    in_template = {_key(message.id) for message in _messages(template)}
    new = sorted(_shown(msgid) for msgid in in_code - in_template)
    gone = sorted(_shown(msgid) for msgid in in_template - in_code)
    assert in_code == in_template, (
        "locales/messages.pot is out of date with the code: run `make extract` and translate the "
        f"new texts.\nNew in the code: {new}\nNo longer in the code: {gone}"
    )


def _untranslated(template: Catalog, language: str) -> list[str]:
    """The template's texts missing from a catalogue, or with an empty translation (a form too)."""
    translated = {_key(message.id): message for message in _messages(_po(language))}
    problems = []
    for source in _messages(template):
        message = translated.get(_key(source.id))
        if message is None:
            problems.append(f"missing: {_shown(source.id)}")
        elif any(not form for _source, form in _pairs(message)):
            problems.append(f"empty: {_shown(source.id)}")
    return problems


def test_every_text_has_a_french_translation(template: Catalog) -> None:
    problems = _untranslated(template, "fr")
    assert not problems, "fr catalogue: run `make extract`, then translate:\n" + "\n".join(problems)


def test_every_text_has_an_english_translation(template: Catalog) -> None:
    problems = _untranslated(template, "en")
    assert not problems, "en catalogue: run `make extract`, then translate:\n" + "\n".join(problems)


def test_no_translation_is_left_fuzzy(catalog: Catalog) -> None:
    fuzzy = [_shown(message.id) for message in _messages(catalog) if message.fuzzy]
    assert not fuzzy, (
        f"{catalog.locale} has fuzzy entries: review them, then drop the flag: {fuzzy}"
    )


def test_translations_keep_the_placeholders_of_the_reference_text(catalog: Catalog) -> None:
    problems = []
    for message in _messages(catalog):
        for source, form in _pairs(message):
            if form and set(PLACEHOLDER.findall(source)) != set(PLACEHOLDER.findall(form)):
                problems.append(f"{source!r} -> {form!r}")
    assert not problems, f"{catalog.locale}: placeholders differ:\n" + "\n".join(problems)


def test_translations_keep_the_html_tags_of_the_reference_text(catalog: Catalog) -> None:
    problems = []
    for message in _messages(catalog):
        for source, form in _pairs(message):
            if form and Counter(TAG.findall(source)) != Counter(TAG.findall(form)):
                problems.append(f"{source!r} -> {form!r}")
    assert not problems, f"{catalog.locale}: HTML tags differ:\n" + "\n".join(problems)


def test_the_translator_renders_a_text_in_english() -> None:
    assert Translator().html("en", _("Prénom")) == "First name"


def test_the_translator_keeps_french_as_the_reference() -> None:
    assert Translator().html("fr", _("Prénom")) == "Prénom"


def test_the_translator_translates_text_params_and_escapes_what_a_person_typed() -> None:
    line = _("<b>%(title)s</b> : %(value)s").fmt(
        title=_("Prénom"), value="<script>alert(1)</script>"
    )
    rendered = Translator().html("en", line)
    assert rendered == "<b>First name</b>: &lt;script&gt;alert(1)&lt;/script&gt;"
    assert "<script>" not in rendered
