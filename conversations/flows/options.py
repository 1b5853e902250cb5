"""Answer options shared by the flows; their values are the codes matching and the catalogue use."""

from __future__ import annotations

from conversations.model import Answers, Choice, Meaning
from conversations.text import _

THEMES = (
    Choice("school_support", _("Soutien scolaire")),
    Choice("orientation", _("Orientation, choix d'études")),
    Choice("internship", _("Trouver un stage ou une alternance")),
    Choice("job", _("Trouver un emploi")),
    Choice("confidence", _("Confiance en soi")),
    Choice("culture", _("Ouverture culturelle")),
    Choice("entrepreneurship", _("Créer son entreprise")),
    Choice("daily_life", _("Vie quotidienne, démarches")),
)
# Themes that make no sense for a child: nobody offers a 9-year-old help to find a job.
WORK_THEMES = frozenset({"internship", "job", "entrepreneurship"})

FORMATS = (
    Choice("in_person", _("En présentiel")),
    Choice("remote", _("À distance (visio, téléphone)")),
    Choice("either", _("Les deux me vont")),
)

YES_NO_UNKNOWN_AREA = (
    Choice("qpv", _("Quartier prioritaire (QPV)")),
    Choice("rural", _("Zone rurale")),
    Choice("neither", _("Ni l'un ni l'autre"), Meaning.NONE),
    Choice("unknown", _("Je ne sais pas"), Meaning.DONT_KNOW),
)

# The highest diploma, lowest first: some programmes require one (NQT: bac+3 or more).
DIPLOMAS = (
    Choice("none", _("Aucun diplôme ou le brevet"), Meaning.NONE),
    Choice("cap_bep", _("CAP ou BEP")),
    Choice("bac", _("Bac")),
    Choice("bac_2", _("Bac+2 (BTS, BUT, DEUST…)")),
    Choice("bac_3", _("Bac+3 (licence, bachelor…)")),
    Choice("bac_5", _("Bac+4 ou plus (master, école…)")),
)

# A social-criteria grant (Crous): not special-category data, and programmes favour holders.
GRANT = (
    Choice("yes", _("Oui, je suis boursier·e")),
    Choice("no", _("Non")),
)

CONTACT_METHODS = (
    Choice("phone", _("Par téléphone")),
    Choice("email", _("Par e-mail")),
    Choice("both", _("Les deux")),
)

ABROAD = Choice("abroad", _("Je n'habite pas en France"))


def wants_phone(answers: Answers) -> bool:
    return answers.get("contact_method") in ("phone", "both")


def wants_email(answers: Answers) -> bool:
    return answers.get("contact_method") in ("email", "both")
