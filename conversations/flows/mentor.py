"""The prospective mentor's questionnaire (DESIGN §3.2). It says "vous".

Read it top to bottom: each step is one question, in the order the person sees them.
"""

from __future__ import annotations

from conversations import validators
from conversations.flows.options import (
    ABROAD,
    CONTACT_METHODS,
    FORMATS,
    THEMES,
    wants_email,
    wants_phone,
)
from conversations.model import (
    Answers,
    Choice,
    Flow,
    Invalid,
    Step,
    StepKind,
    Valid,
    exit_on,
)
from conversations.text import _

AGE_BRACKETS = (
    Choice("15_17", _("15 à 17 ans")),
    Choice("18_25", _("18 à 25 ans")),
    Choice("26_40", _("26 à 40 ans")),
    Choice("41_60", _("41 à 60 ans")),
    Choice("60_plus", _("Plus de 60 ans")),
)

# (value, label, age brackets it is offered to)
_SITUATIONS = (
    ("high_school_student", _("Lycéen·ne"), {"15_17", "18_25"}),
    ("university_student", _("Étudiant·e"), {"15_17", "18_25", "26_40"}),
    ("private_employee", _("Salarié·e du privé"), {"18_25", "26_40", "41_60", "60_plus"}),
    ("public_servant", _("Agent·e public·que"), {"18_25", "26_40", "41_60", "60_plus"}),
    ("self_employed", _("Indépendant·e"), {"18_25", "26_40", "41_60", "60_plus"}),
    ("retiree", _("Retraité·e"), {"41_60", "60_plus"}),
    ("job_seeker", _("En recherche d'emploi"), {"18_25", "26_40", "41_60", "60_plus"}),
    ("other", _("Autre"), {"15_17", "18_25", "26_40", "41_60", "60_plus"}),
)
WORKING = frozenset({"private_employee", "public_servant", "self_employed"})

MENTEE_GROUPS = (
    Choice("children", _("Des enfants (école primaire)")),
    Choice("middle_schoolers", _("Des collégien·nes")),
    Choice("high_schoolers", _("Des lycéen·nes")),
    Choice("students", _("Des étudiant·es")),
    Choice("young_job_seekers", _("Des jeunes en recherche d'emploi")),
)


def _situations(answers: Answers) -> tuple[Choice, ...]:
    bracket = answers.get("age_bracket")
    return tuple(
        Choice(value, label)
        for value, label, brackets in _SITUATIONS
        if bracket is None or bracket in brackets
    )


def _employer(raw: str, _answers: Answers) -> Valid | Invalid:
    name = " ".join(raw.split())
    if not name or len(name) > 100:
        return Invalid(_("Le nom de l'employeur tient en 100 caractères au plus."))
    return Valid(name)


MENTOR = Flow(
    name="mentor",
    address="vous",
    steps=(
        Step(
            key="first_name",
            title=_("Prénom"),
            prompt=_("Pour commencer, quel est votre prénom ?"),
            kind=StepKind.TEXT,
            validate=validators.first_name,
        ),
        Step(
            key="age_bracket",
            title=_("Âge"),
            prompt=_("Quelle est votre tranche d'âge ?"),
            kind=StepKind.CHOICE,
            choices=AGE_BRACKETS,
        ),
        Step(
            key="postal_code",
            title=_("Code postal"),
            prompt=_("Quel est votre code postal ?"),
            hint=_("5 chiffres, par exemple 69003."),
            kind=StepKind.POSTAL_CODE,
            validate=validators.postal_code,
            shortcuts=(ABROAD,),
            exit_if=exit_on(
                ABROAD.value,
                _(
                    "Les associations du Collectif accompagnent des jeunes en France et recrutent "
                    "leurs mentors sur place. Merci beaucoup de votre intérêt !"
                ),
            ),
        ),
        Step(
            key="situation",
            title=_("Situation"),
            prompt=_("Quelle est votre situation ?"),
            kind=StepKind.CHOICE,
            choices=_situations,
        ),
        Step(
            key="employer",
            title=_("Employeur"),
            prompt=_("Pour quelle entreprise ou administration travaillez-vous ?"),
            hint=_(
                "Facultatif : certaines entreprises soutiennent le mentorat de leurs salarié·es."
            ),
            kind=StepKind.TEXT,
            validate=_employer,
            ask_if=lambda answers: answers.get("situation") in WORKING,
            optional=True,
        ),
        Step(
            key="mentee_groups",
            title=_("Public"),
            prompt=_("Qui aimeriez-vous accompagner ?"),
            hint=_("Choisissez une ou plusieurs réponses, puis appuyez sur « Valider »."),
            kind=StepKind.MULTI,
            choices=MENTEE_GROUPS,
        ),
        Step(
            key="themes",
            title=_("Sujets"),
            prompt=_("Sur quels sujets aimeriez-vous les aider ?"),
            hint=_("Choisissez une ou plusieurs réponses, puis appuyez sur « Valider »."),
            kind=StepKind.MULTI,
            choices=THEMES,
        ),
        Step(
            key="availability",
            title=_("Disponibilité"),
            prompt=_("Combien de temps pourriez-vous y consacrer ?"),
            kind=StepKind.CHOICE,
            choices=(
                Choice("1h_week", _("1 h par semaine")),
                Choice("2h_month", _("2 h par mois")),
                Choice("1h_month", _("1 h par mois")),
            ),
        ),
        Step(
            key="commitment",
            title=_("Engagement"),
            prompt=_(
                "Un mentorat dure au moins 6 mois. Pouvez-vous vous engager sur cette durée ?"
            ),
            kind=StepKind.CHOICE,
            choices=(
                Choice("yes", _("Oui")),
                Choice("unsure", _("Je ne suis pas encore sûr·e")),
            ),
        ),
        Step(
            key="format",
            title=_("Rencontres"),
            prompt=_("Comment préférez-vous rencontrer la personne que vous accompagnerez ?"),
            kind=StepKind.CHOICE,
            choices=FORMATS,
        ),
        Step(
            key="contact_method",
            title=_("Contact"),
            prompt=_("Comment l'association peut-elle vous joindre ?"),
            kind=StepKind.CHOICE,
            choices=CONTACT_METHODS,
        ),
        Step(
            key="phone",
            title=_("Téléphone"),
            prompt=_("Quel est votre numéro de téléphone ?"),
            hint=_("Écrivez-le, ou appuyez sur « Partager mon numéro »."),
            kind=StepKind.PHONE,
            validate=validators.phone,
            ask_if=wants_phone,
            own_number=True,
        ),
        Step(
            key="email",
            title=_("E-mail"),
            prompt=_("Quelle est votre adresse e-mail ?"),
            kind=StepKind.EMAIL,
            validate=validators.email,
            ask_if=wants_email,
        ),
        Step(
            key="consent",
            title=_("Votre accord"),
            prompt=_(
                "Dernière question : acceptez-vous que vos réponses soient transmises à "
                "<u>une seule</u> association du Collectif Mentorat, qui vous contactera ?"
            ),
            hint=_(
                "Vous pourrez voir ou effacer vos données à tout moment avec /mydata et /delete."
            ),
            kind=StepKind.CONSENT,
            choices=(Choice("yes", _("Oui, j'accepte")), Choice("no", _("Non"))),
            exit_if=exit_on(
                False,
                _(
                    "C'est noté : sans votre accord, je ne transmets vos réponses à aucune "
                    "association. Rien n'a été envoyé. Vous pouvez recommencer avec /start."
                ),
            ),
        ),
    ),
)
