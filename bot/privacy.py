"""What a person can know and erase about themselves: /mydata and /delete (GDPR, CNIL)."""

from __future__ import annotations

from conversations import engine
from conversations.flows import FLOWS
from conversations.text import Lines, Text, When, _
from storage.models import Conversation, Person
from storage.uow import UnitOfWork

NO_DATA = _("Je n'ai aucune donnée sur vous, à part votre identifiant Telegram.")
MY_DATA = _("<b>Vos données</b>\n\n%(details)s\n\nPour tout effacer : /delete")
MY_DATA_PROFILE = _("Questionnaire envoyé le %(date)s :\n%(answers)s")
MY_DATA_IN_PROGRESS = _("Questionnaire en cours :\n%(answers)s")
MY_DATA_CONSENT = _("Accord « %(kind)s » donné le %(date)s (texte %(version)s)")
CONSENT_KINDS = {"contact": _("être contacté·e"), "parental": _("parental")}
# Who received the data (GDPR: the recipients), and what became of it.
MY_DATA_RECIPIENT = _("Transmis à %(association)s le %(date)s : %(status)s")
HANDOFF_STATES = {
    "proposed": _("en attente de réponse"),
    "delivered": _("en attente de réponse"),
    "taken": _("pris en charge"),
    "contacted": _("contact établi"),
    "closed": _("clos"),
    "declined": _("refusé, transmis à une autre association"),
    "expired": _("sans réponse, transmis à une autre association"),
    "erased": _("effacé"),
}
ASK_ERASE = _(
    "Voulez-vous effacer toutes vos données (réponses, contacts, questionnaires) ? C'est définitif."
)
ERASE_YES = _("Oui, tout effacer")
ERASE_NO = _("Non, garder")
ERASED = _("C'est fait : toutes vos données ont été effacées. Au revoir, et merci !")
KEPT = _("D'accord, rien n'a été effacé.")


async def my_data(uow: UnitOfWork, person: Person, conversation: Conversation | None) -> Text:
    """Everything stored about a person, and who received it (GDPR: access, recipients)."""
    parts: list[Text] = []
    profiles = await uow.profiles.for_person(person)
    for profile in profiles:
        parts.append(
            MY_DATA_PROFILE.fmt(
                date=When(profile.submitted_at),
                answers=Lines(answers_text(profile.role, profile.answers)),
            )
        )
    for consent in await uow.profiles.consents_for(person):
        parts.append(
            MY_DATA_CONSENT.fmt(
                kind=CONSENT_KINDS.get(consent.kind, _("autre")),
                date=When(consent.given_at),
                version=consent.text_version,
            )
        )
    for handoff, name in await uow.handoffs.recipients([p.id for p in profiles]):
        status = HANDOFF_STATES.get(handoff.status, HANDOFF_STATES["proposed"])
        parts.append(
            MY_DATA_RECIPIENT.fmt(association=name, date=When(handoff.created_at), status=status)
        )
    if conversation is not None:
        state = uow.conversations.state_of(conversation)
        answers = Lines(answers_text(state.flow, state.answers))
        parts.append(MY_DATA_IN_PROGRESS.fmt(answers=answers))
    if not parts:
        return NO_DATA
    return MY_DATA.fmt(details=Lines(tuple(parts)))


def answers_text(flow_name: str, answers: object) -> tuple[Text, ...]:
    flow = FLOWS.get(flow_name)
    if flow is None or not isinstance(answers, dict):
        return ()
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in answers.items()}
    lines = []
    for step in flow.steps:
        if step.key in values:
            shown = engine.display(step, values[step.key], values)
            lines.append(_("• %(title)s : %(value)s").fmt(title=step.title, value=shown))
    return tuple(lines)
