"""Rendering domain `Text`s in a person's language with the gettext catalogues of `locales/`.

Translated strings are trusted HTML (they come from our catalogues); every parameter is escaped, so
nothing a person typed can break Telegram's HTML parser or inject markup.
"""

from __future__ import annotations

import gettext
import html
import io
import re
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

import locales
from conversations.text import DEFAULT_LANGUAGE, LANGUAGES, Lines, Param, Text, When

FRENCH_TIME = ZoneInfo("Europe/Paris")
DOMAIN = "messages"


def _load(language: str, directory: Path) -> gettext.NullTranslations:
    mo_path = directory / language / "LC_MESSAGES" / f"{DOMAIN}.mo"
    po_path = mo_path.with_suffix(".po")
    if mo_path.exists() and (
        not po_path.exists() or mo_path.stat().st_mtime >= po_path.stat().st_mtime
    ):
        with mo_path.open("rb") as handle:
            return gettext.GNUTranslations(handle)
    # Not compiled yet (a fresh clone run without make): compile in memory rather than show msgids.
    with po_path.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


class Translator:
    def __init__(self, directory: Path = locales.DIRECTORY) -> None:
        self._catalogs = {language: _load(language, directory) for language in LANGUAGES}

    def plain(self, language: str, text: Text) -> str:
        """For button labels and toasts, which Telegram does not parse as HTML."""
        return self._render(language, text, escape=False)

    def html(self, language: str, text: Text) -> str:
        return self._render(language, text, escape=True)

    def template(self, language: str, msgid: str, plural: str | None = None, count: int = 1) -> str:
        """The translated reference text, placeholders untouched: for the dashboard's templates,
        which fill them in with escaping of their own."""
        catalog = self._catalogs.get(language, self._catalogs[DEFAULT_LANGUAGE])
        if plural is not None:
            return catalog.ngettext(msgid, plural, count)
        return catalog.gettext(msgid)

    def value(self, language: str, value: Param, escape: bool = True) -> str:
        if isinstance(value, Text):
            return self._render(language, value, escape)
        if isinstance(value, When):
            # The people and associations are in France: a date is French time, not UTC.
            local = value.moment.astimezone(FRENCH_TIME)
            return format_date(local, format="medium", locale=language)
        if isinstance(value, Lines):
            return "\n".join(self.value(language, item, escape) for item in value.items)
        if isinstance(value, tuple):
            # Labels may hold commas ("Orientation, choix d'études"): a middle dot keeps items apart.
            return " · ".join(self.value(language, item, escape) for item in value)
        shown = str(value)
        return html.escape(shown, quote=False) if escape else shown

    def _render(self, language: str, text: Text, escape: bool) -> str:
        catalog = self._catalogs.get(language, self._catalogs[DEFAULT_LANGUAGE])
        if text.plural is not None and text.count is not None:
            template = catalog.ngettext(text.msgid, text.plural, text.count)
        else:
            template = catalog.gettext(text.msgid)
        if not escape:
            template = _strip_tags(template)
        if not text.params:
            return template
        return template % {
            key: self.value(language, value, escape) for key, value in text.params.items()
        }


def _strip_tags(template: str) -> str:
    # Plain contexts (buttons, toasts) show text as is: drop our own markup, decode its entities.
    return html.unescape(re.sub(r"</?[a-z][^>]*>", "", template))
