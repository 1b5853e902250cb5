"""gettext catalogues (French reference, English) compiled with Babel; this package locates them."""

from pathlib import Path

DIRECTORY = Path(__file__).parent
