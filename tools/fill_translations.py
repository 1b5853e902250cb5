"""Fill the catalogues after `make extract`: French msgstr = msgid, English from a JSON file.

Usage: python tools/fill_translations.py en.json   (a {"msgid": "translation"} object)
French is the reference: its catalogue starts as the msgids, for the Collectif to tune wording.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

LOCALES = Path(__file__).resolve().parent.parent / "locales"


def fill(language: str, translations: dict[str, str]) -> list[str]:
    path = LOCALES / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    missing = []
    for message in catalog:
        if not message.id:
            continue
        if isinstance(message.id, tuple):
            if all(message.string):
                continue
            singular, plural = message.id
            if language == "fr":
                message.string = (singular, *[plural] * (catalog.num_plurals - 1))
            elif singular in translations:
                forms = translations[singular]
                message.string = tuple(forms) if isinstance(forms, list) else (forms, forms)
            else:
                missing.append(singular)
            continue
        if message.string:
            continue
        if language == "fr":
            message.string = message.id
        elif message.id in translations:
            message.string = translations[message.id]
        else:
            missing.append(message.id)
        message.flags.discard("fuzzy")
    catalog.obsolete.clear()
    with path.open("wb") as handle:
        write_po(handle, catalog, width=100, omit_header=False, sort_output=True)
    return missing


if __name__ == "__main__":
    english = json.loads(Path(sys.argv[1]).read_text()) if len(sys.argv) > 1 else {}
    fill("fr", {})
    left = fill("en", english)
    for msgid in left:
        print(f"untranslated (en): {msgid!r}")
    sys.exit(1 if left else 0)
