"""Translatable texts of the domain: marked for Babel here, rendered in the person's language at the edge.

`_` only records the French reference msgid; the edge looks it up in the gettext catalogues. Params are
plain values (escaped when rendered as HTML) or other `Text`s (translated, then inserted).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeAlias

Param: TypeAlias = "str | int | Text | Lines | When | tuple[Text | str, ...]"


@dataclass(frozen=True)
class Text:
    msgid: str
    params: Mapping[str, Param] = field(default_factory=dict)
    plural: str | None = None
    count: int | None = None

    def fmt(self, **params: Param) -> Text:
        """A copy with the placeholders' values, keeping the msgid Babel extracted."""
        return Text(self.msgid, {**self.params, **params}, self.plural, self.count)


@dataclass(frozen=True)
class Lines:
    """Texts shown one per line (a tuple param is shown inline, items separated by a middle dot)."""

    items: tuple[Text | str, ...]


@dataclass(frozen=True)
class When:
    """A moment, shown as a date in the person's language and in French time."""

    moment: datetime


def _(msgid: str) -> Text:
    return Text(msgid)


def ngettext(singular: str, plural: str, count: int) -> Text:
    return Text(singular, {"count": count}, plural, count)


LANGUAGES = ("fr", "en")
DEFAULT_LANGUAGE = "fr"


def pick_language(chosen: str | None, telegram_language: str | None) -> str:
    """The person's choice, else their app's language (e.g. Telegram's language_code), else French."""
    if chosen in LANGUAGES:
        return chosen
    if telegram_language:
        base = telegram_language.split("-")[0].lower()
        if base in LANGUAGES:
            return base
    return DEFAULT_LANGUAGE
