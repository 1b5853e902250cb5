"""A parent or a professional signing a young person up (DESIGN §3.1): it says "vous", and asks
about the young person by their first name ("Quel âge a Nina ?").

The answers share the young person's own questionnaire's keys, so matching reads one profile
whoever filled it in; the referrer's role, name and contact come on top, and the young person's
own number is asked (optionally) from 15.
"""

from __future__ import annotations

from collections.abc import Callable

from conversations import validators
from conversations.flows.mentee import (
    AGE_SAMPLES,
    MAX_AGE,
    MIN_AGE,
    PARENTAL_CONSENT_BELOW,
    asks_diploma,
    is_student,
    needs,
    needs_parent,
    situations,
)
from conversations.flows.options import (
    CONTACT_METHODS,
    DIPLOMAS,
    FORMATS,
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

PARENT, PROFESSIONAL = "parent", "professional"
REFERRERS = (
    Choice(PARENT, _("Son parent (ou responsable légal)")),
    Choice(
        PROFESSIONAL, _("Un·e professionnel·le (enseignant·e, éducateur·rice, conseiller·ère…)")
    ),
)
ABROAD = Choice("abroad", _("Ne vit pas en France"))
GRANT = (Choice("yes", _("Oui, boursier·e")), Choice("no", _("Non")))
# From this age the young person may be reached directly too (their own number, optional).
OWN_CONTACT_FROM = PARENTAL_CONSENT_BELOW
NOT_THE_PARENTS_NUMBER = _(
    "C'est votre propre numéro : il me faut celui du parent, que l'association appellera."
)


def is_professional(answers: Answers) -> bool:
    return answers.get("referrer_role") == PROFESSIONAL


def _name(answers: Answers) -> str:
    name = answers.get("first_name")
    return name if isinstance(name, str) else "?"


def _about(text: Text) -> Callable[[Answers], Text]:
    """A question about the young person, naming them: "Quel âge a Nina ?"."""

    def prompt(answers: Answers) -> Text:
        return text.fmt(name=_name(answers))

    return prompt


def _age_exit(value: Answer, answers: Answers) -> Exit | None:
    if not isinstance(value, int):
        return None
    if value < MIN_AGE:
        return Exit(
            _(
                "Le mentorat du Collectif accompagne les jeunes de 5 à 30 ans. Pour un plus jeune "
                "enfant, le centre social ou la PMI de votre ville pourra vous conseiller. Une "
                "faute de frappe ? Appuyez sur « Retour »."
            )
        )
    if value > MAX_AGE:
        return Exit(
            _(
                "Le mentorat du Collectif accompagne les jeunes jusqu'à 30 ans. Une faute de "
                "frappe ? Appuyez sur « Retour »."
            )
        )
    return None


def _own_contact(answers: Answers) -> bool:
    age = answers.get("age")
    return isinstance(age, int) and age >= OWN_CONTACT_FROM


def _pro_needs_parent(answers: Answers) -> bool:
    """A professional cannot consent for a parent: the parent is named, and called first."""
    return is_professional(answers) and needs_parent(answers)


def _parent_phone(raw: str, answers: Answers) -> Valid | Invalid:
    result = validators.phone(raw, answers)
    if isinstance(result, Valid) and result.value == answers.get("phone"):
        return Invalid(NOT_THE_PARENTS_NUMBER)
    return result


def _consent_prompt(answers: Answers) -> Text:
    if is_professional(answers):
        return _(
            "Dernière question : %(name)s et vous êtes-vous d'accord pour que ces réponses soient "
            "transmises à <u>une seule</u> association du Collectif Mentorat, qui vous contactera "
            "pour proposer un·e mentor·e à %(name)s ?"
        ).fmt(name=_name(answers))
    return _(
        "Dernière question : êtes-vous d'accord, comme parent, pour que ces réponses soient "
        "transmises à <u>une seule</u> association du Collectif Mentorat, qui vous contactera "
        "pour proposer un·e mentor·e à %(name)s ?"
    ).fmt(name=_name(answers))


REFERRAL = Flow(
    name="referral",
    address="vous",
    steps=(
        Step(
            key="referrer_role",
            title=_("Inscrit·e par"),
            prompt=_("Merci ! Pour commencer, vous êtes…"),
            kind=StepKind.CHOICE,
            choices=REFERRERS,
        ),
        Step(
            key="first_name",
            title=_("Prénom du ou de la jeune"),
            prompt=_("Quel est le prénom du ou de la jeune que vous inscrivez ?"),
            kind=StepKind.TEXT,
            validate=validators.first_name,
        ),
        Step(
            key="age",
            title=_("Âge"),
            prompt=_about(_("Quel âge a %(name)s ?")),
            hint=_("En chiffres, par exemple 12."),
            kind=StepKind.NUMBER,
            validate=validators.age,
            exit_if=_age_exit,
            samples=AGE_SAMPLES,
        ),
        Step(
            key="postal_code",
            title=_("Code postal"),
            prompt=_about(_("Quel est le code postal de %(name)s ?")),
            hint=_("5 chiffres, par exemple 93200."),
            kind=StepKind.POSTAL_CODE,
            validate=validators.postal_code,
            shortcuts=(ABROAD,),
            exit_if=exit_on(
                ABROAD.value,
                _(
                    "Les associations du Collectif accompagnent des jeunes qui vivent en France. "
                    "Merci de votre intérêt, et bonne continuation !"
                ),
            ),
        ),
        Step(
            key="situation",
            title=_("Situation"),
            prompt=_about(_("Où en est %(name)s aujourd'hui ?")),
            kind=StepKind.CHOICE,
            choices=situations,
        ),
        Step(
            key="diploma",
            title=_("Diplôme"),
            prompt=_about(_("Quel est le diplôme le plus élevé de %(name)s ?")),
            hint=_("Certains programmes accompagnent surtout les jeunes diplômé·es."),
            kind=StepKind.CHOICE,
            choices=DIPLOMAS,
            ask_if=asks_diploma,
        ),
        Step(
            key="grant",
            title=_("Bourse"),
            prompt=_about(_("%(name)s a-t-il ou elle une bourse sur critères sociaux ?")),
            hint=_("Facultatif : certaines associations donnent la priorité aux boursier·es."),
            kind=StepKind.CHOICE,
            choices=GRANT,
            ask_if=is_student,
            optional=True,
        ),
        Step(
            key="needs",
            title=_("Besoins"),
            prompt=_about(_("Sur quoi aimeriez-vous que %(name)s soit accompagné·e ?")),
            hint=_("Choisissez une ou plusieurs réponses, puis appuyez sur « Valider »."),
            kind=StepKind.MULTI,
            choices=needs,
        ),
        Step(
            key="format",
            title=_("Rencontres"),
            prompt=_about(_("Quelles rencontres conviendraient le mieux à %(name)s ?")),
            kind=StepKind.CHOICE,
            choices=FORMATS,
        ),
        Step(
            key="area",
            title=_("Quartier"),
            prompt=_about(
                _(
                    "%(name)s habite-t-il ou elle dans un quartier prioritaire (QPV) ou en zone rurale ?"
                )
            ),
            hint=_("Facultatif : certaines associations donnent la priorité à ces jeunes."),
            kind=StepKind.CHOICE,
            choices=YES_NO_UNKNOWN_AREA,
            optional=True,
        ),
        Step(
            key="referrer_name",
            title=_("Nom de la personne qui inscrit"),
            prompt=_("Quels sont votre prénom et votre nom ?"),
            kind=StepKind.TEXT,
            validate=validators.full_name,
        ),
        Step(
            key="referrer_organisation",
            title=_("Structure"),
            prompt=_("Dans quelle structure travaillez-vous ?"),
            hint=_("Par exemple : collège Jean-Moulin, Saint-Denis ; Mission locale de Lille."),
            kind=StepKind.TEXT,
            validate=validators.organisation,
            ask_if=is_professional,
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
            title=_("Téléphone de la personne qui inscrit"),
            prompt=_("Quel est votre numéro de téléphone ?"),
            hint=_("Écrivez-le, ou appuyez sur « Partager mon numéro »."),
            kind=StepKind.PHONE,
            validate=validators.phone,
            ask_if=wants_phone,
            own_number=True,
        ),
        Step(
            key="email",
            title=_("E-mail de la personne qui inscrit"),
            prompt=_("Quelle est votre adresse e-mail ?"),
            kind=StepKind.EMAIL,
            validate=validators.email,
            ask_if=wants_email,
        ),
        Step(
            key="young_phone",
            title=_("Téléphone du ou de la jeune"),
            prompt=_about(
                _("L'association peut-elle aussi joindre %(name)s directement ? Son numéro :")
            ),
            hint=_("Facultatif : « Passer » si l'association doit passer par vous."),
            kind=StepKind.PHONE,
            validate=validators.phone,
            ask_if=_own_contact,
            optional=True,
        ),
        Step(
            key="parent_name",
            title=_("Parent"),
            prompt=_about(
                _("Quels sont le prénom et le nom du parent (ou responsable légal) de %(name)s ?")
            ),
            kind=StepKind.TEXT,
            validate=validators.full_name,
            ask_if=_pro_needs_parent,
        ),
        Step(
            key="parent_phone",
            title=_("Téléphone du parent"),
            prompt=_("Quel est le numéro de téléphone de ce parent ?"),
            kind=StepKind.PHONE,
            validate=_parent_phone,
            ask_if=_pro_needs_parent,
        ),
        Step(
            key="parent_consent",
            title=_("Accord du parent"),
            prompt=_about(
                _(
                    "%(name)s a moins de 15 ans : son parent est-il d'accord pour que ces réponses "
                    "soient transmises à une association ? L'association l'appellera d'abord pour "
                    "le confirmer."
                )
            ),
            kind=StepKind.CONSENT,
            choices=(Choice("yes", _("Oui, il ou elle est d'accord")), Choice("no", _("Non"))),
            ask_if=_pro_needs_parent,
            exit_if=exit_on(
                False,
                _(
                    "Avant 15 ans, l'accord d'un parent est nécessaire. Rien n'a été envoyé : "
                    "revenez quand le parent est d'accord, avec /start."
                ),
            ),
        ),
        Step(
            key="consent",
            title=_("Votre accord"),
            prompt=_consent_prompt,
            hint=_(
                "Qui garde quoi, et pourquoi : /privacy. Vous pourrez voir ou effacer ces données "
                "à tout moment avec /mydata et /delete."
            ),
            kind=StepKind.CONSENT,
            choices=(Choice("yes", _("Oui, d'accord")), Choice("no", _("Non"))),
            exit_if=exit_on(
                False,
                _(
                    "C'est noté : sans votre accord, je ne transmets ces réponses à aucune "
                    "association. Rien n'a été envoyé. Vous pouvez recommencer avec /start."
                ),
            ),
        ),
    ),
)
