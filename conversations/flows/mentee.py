"""The young person's own questionnaire (DESIGN §3.1): it says "tu". A parent or a professional
signing a young person up has a questionnaire of their own (`referral`), which says "vous".

Read it top to bottom: each step is one question, in the order the person sees them.
"""

from __future__ import annotations

from conversations import validators
from conversations.flows.options import (
    ABROAD,
    CONTACT_METHODS,
    DIPLOMAS,
    FORMATS,
    GRANT,
    THEMES,
    WORK_THEMES,
    YES_NO_UNKNOWN_AREA,
    wants_email,
    wants_phone,
)
from conversations.model import (
    Answer,
    Answers,
    Choice,
    Exit,
    Flow,
    Invalid,
    Step,
    StepKind,
    Valid,
    exit_on,
)
from conversations.text import Text, _

MIN_AGE, MAX_AGE = 5, 30
# Under 15, a parent consents with the young person (Loi Informatique et Libertés, art. 45):
# alone, the young person forwards a link and the parent confirms from their own account.
PARENTAL_CONSENT_BELOW = 15


def _age(answers: Answers) -> int | None:
    value = answers.get("age")
    return value if isinstance(value, int) else None


def needs_parent(answers: Answers) -> bool:
    age = _age(answers)
    return age is not None and age < PARENTAL_CONSENT_BELOW


# (value, label, youngest, oldest): a 9-year-old is not offered "études supérieures".
_SITUATIONS = (
    ("primary_school", _("École primaire"), 5, 11),
    ("middle_school", _("Collège"), 10, 16),
    ("high_school", _("Lycée général ou technologique"), 14, 20),
    ("vocational_high_school", _("Lycée professionnel"), 14, 21),
    ("apprenticeship", _("Apprentissage (CFA)"), 15, 30),
    ("higher_education", _("Études supérieures"), 16, 30),
    ("job_seeker", _("En recherche d'emploi"), 16, 30),
    ("employed", _("En emploi"), 16, 30),
    ("neet", _("Ni en études ni en emploi"), 16, 30),
)


def situations(answers: Answers) -> tuple[Choice, ...]:
    age = _age(answers)
    return tuple(
        Choice(value, label)
        for value, label, youngest, oldest in _SITUATIONS
        if age is None or youngest <= age <= oldest
    )


# Only there does a programme's diploma requirement decide anything (NQT takes graduates).
ASK_DIPLOMA_IN = frozenset({"higher_education", "job_seeker", "employed"})


def asks_diploma(answers: Answers) -> bool:
    return answers.get("situation") in ASK_DIPLOMA_IN


def is_student(answers: Answers) -> bool:
    return answers.get("situation") == "higher_education"


def needs(answers: Answers) -> tuple[Choice, ...]:
    age = _age(answers)
    if age is not None and age < 14:
        return tuple(c for c in THEMES if c.value not in WORK_THEMES)
    return THEMES


# Every age a flow can branch on, for counting its questions (engine.question_range).
AGE_SAMPLES = tuple(range(MIN_AGE, MAX_AGE + 1))


def age_exit(value: Answer, _answers: Answers) -> Exit | None:
    if not isinstance(value, int):
        return None
    if value < MIN_AGE:
        return Exit(
            _(
                "Le mentorat du Collectif accompagne les jeunes de 5 à 30 ans. Une faute de "
                "frappe ? Appuie sur « Retour » pour corriger ton âge."
            )
        )
    if value > MAX_AGE:
        return Exit(
            _(
                "Le mentorat du Collectif accompagne les jeunes jusqu'à 30 ans. Et si tu devenais "
                "mentor·e à ton tour ? L'inscription se fait en un clic."
            ),
            offer_flow="mentor",
        )
    return None


def _parent_phone(raw: str, answers: Answers) -> Valid | Invalid:
    """The parent is called to confirm: the young person's own number would defeat that."""
    result = validators.phone(raw, answers)
    if isinstance(result, Valid) and result.value == answers.get("phone"):
        return Invalid(validators.NOT_YOUR_NUMBER)
    return result


def _consent_prompt(answers: Answers) -> Text:
    if needs_parent(answers):
        return _(
            "Dernière question : es-tu d'accord pour que tes réponses soient transmises à "
            "<u>une seule</u> association du Collectif Mentorat, qui te proposera un·e mentor·e ? "
            "Comme tu as moins de 15 ans, ton parent devra aussi le confirmer, depuis son propre "
            "compte Telegram : je te donnerai un lien à lui envoyer."
        )
    return _(
        "Dernière question : es-tu d'accord pour que tes réponses soient transmises à "
        "<u>une seule</u> association du Collectif Mentorat, qui te contactera pour te "
        "proposer un·e mentor·e ?"
    )


MENTEE = Flow(
    name="mentee",
    address="tu",
    steps=(
        Step(
            key="first_name",
            title=_("Prénom"),
            prompt=_("Pour commencer, quel est ton prénom ?"),
            kind=StepKind.TEXT,
            validate=validators.first_name,
        ),
        Step(
            key="age",
            title=_("Âge"),
            prompt=_("Quel âge as-tu ?"),
            hint=_("En chiffres, par exemple 16."),
            kind=StepKind.NUMBER,
            validate=validators.age,
            exit_if=age_exit,
            samples=AGE_SAMPLES,
        ),
        Step(
            key="postal_code",
            title=_("Code postal"),
            prompt=_("Quel est ton code postal ?"),
            hint=_("5 chiffres, par exemple 93200."),
            kind=StepKind.POSTAL_CODE,
            validate=validators.postal_code,
            shortcuts=(ABROAD,),
            exit_if=exit_on(
                ABROAD.value,
                _(
                    "Les associations du Collectif accompagnent des jeunes qui vivent en France. "
                    "Merci de ton intérêt, et bonne continuation !"
                ),
            ),
        ),
        Step(
            key="situation",
            title=_("Situation"),
            prompt=_("Où en es-tu aujourd'hui ?"),
            kind=StepKind.CHOICE,
            choices=situations,
        ),
        Step(
            key="diploma",
            title=_("Diplôme"),
            prompt=_("Quel est ton diplôme le plus élevé ?"),
            hint=_("Certains programmes accompagnent surtout les jeunes diplômé·es."),
            kind=StepKind.CHOICE,
            choices=DIPLOMAS,
            ask_if=asks_diploma,
        ),
        Step(
            key="grant",
            title=_("Bourse"),
            prompt=_("Es-tu boursier·e (bourse sur critères sociaux) ?"),
            hint=_("Facultatif : certaines associations donnent la priorité aux boursier·es."),
            kind=StepKind.CHOICE,
            choices=GRANT,
            ask_if=is_student,
            optional=True,
        ),
        Step(
            key="needs",
            title=_("Besoins"),
            prompt=_("Sur quoi aimerais-tu être accompagné·e ?"),
            hint=_("Choisis une ou plusieurs réponses, puis appuie sur « Valider »."),
            kind=StepKind.MULTI,
            choices=needs,
        ),
        Step(
            key="format",
            title=_("Rencontres"),
            prompt=_("Comment préfères-tu rencontrer ton ou ta mentor·e ?"),
            kind=StepKind.CHOICE,
            choices=FORMATS,
        ),
        Step(
            key="area",
            title=_("Quartier"),
            prompt=_("Habites-tu dans un quartier prioritaire (QPV) ou en zone rurale ?"),
            hint=_("Facultatif : certaines associations donnent la priorité à ces jeunes."),
            kind=StepKind.CHOICE,
            choices=YES_NO_UNKNOWN_AREA,
            optional=True,
        ),
        Step(
            key="contact_method",
            title=_("Contact"),
            prompt=_("Comment l'association peut-elle te joindre ?"),
            kind=StepKind.CHOICE,
            choices=CONTACT_METHODS,
        ),
        Step(
            key="phone",
            title=_("Téléphone"),
            prompt=_("Quel est ton numéro de téléphone ?"),
            hint=_("Écris-le, ou appuie sur « Partager mon numéro »."),
            kind=StepKind.PHONE,
            validate=validators.phone,
            ask_if=wants_phone,
            own_number=True,
        ),
        Step(
            key="email",
            title=_("E-mail"),
            prompt=_("Quelle est ton adresse e-mail ?"),
            kind=StepKind.EMAIL,
            validate=validators.email,
            ask_if=wants_email,
        ),
        Step(
            key="parent_name",
            title=_("Parent"),
            prompt=_("Quels sont le prénom et le nom de ton parent (ou responsable légal) ?"),
            kind=StepKind.TEXT,
            validate=validators.full_name,
            ask_if=needs_parent,
        ),
        Step(
            key="parent_phone",
            title=_("Téléphone du parent"),
            prompt=_("Quel est le numéro de téléphone de ton parent ?"),
            kind=StepKind.PHONE,
            validate=_parent_phone,
            ask_if=needs_parent,
        ),
        Step(
            key="consent",
            title=_("Ton accord"),
            prompt=_consent_prompt,
            hint=_(
                "Qui garde quoi, et pourquoi : /privacy. Tu pourras voir ou effacer tes données "
                "à tout moment avec /mydata et /delete."
            ),
            kind=StepKind.CONSENT,
            choices=(Choice("yes", _("Oui, je suis d'accord")), Choice("no", _("Non"))),
            exit_if=exit_on(
                False,
                _(
                    "C'est noté : sans ton accord, je ne transmets tes réponses à aucune association. "
                    "Rien n'a été envoyé. Tu peux recommencer quand tu veux avec /start."
                ),
            ),
        ),
    ),
)
