"""What a person can know and erase about themselves (GDPR, CNIL), and retention: personal data is
kept no longer than needed, then erased exactly as a /delete would.

Unfinished questionnaires go after `Policy.abandoned_after` (30 days); a person's profiles and
contacts go `Policy.retention` (3 years, the CNIL reference for prospects) after their last
message. Anonymous funnel counts stay.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from conversations import engine
from conversations.entities import Conversation, Person
from conversations.flows import FLOWS
from conversations.handoff import HandoffStatus
from conversations.ports import UnitOfWork, UnitOfWorkFactory
from conversations.services import coordinators, handoffs
from conversations.services.policy import Policy
from conversations.text import Lines, Text, When, _

log = logging.getLogger(__name__)

NO_DATA = _("Je n'ai aucune donnée sur vous, à part votre identifiant Telegram.")
MY_DATA = _("<b>Vos données</b>\n\n%(details)s\n\nPour tout effacer : /delete")
MY_DATA_PROFILE = _("Questionnaire envoyé le %(date)s :\n%(answers)s")
MY_DATA_IN_PROGRESS = _("Questionnaire en cours :\n%(answers)s")
MY_DATA_CONSENT = _("Accord « %(kind)s » donné le %(date)s (texte %(version)s)")
MY_DATA_ANSWER = _("• %(title)s : %(value)s")
CONSENT_KINDS = {"contact": _("être contacté·e"), "parental": _("parental")}
OTHER_CONSENT = _("autre")
# Who received the data (GDPR: the recipients), and what became of it.
MY_DATA_RECIPIENT = _("Transmis à %(association)s le %(date)s : %(status)s")
HANDOFF_STATES = {
    HandoffStatus.PROPOSED: _("en attente de réponse"),
    HandoffStatus.DELIVERED: _("en attente de réponse"),
    HandoffStatus.TAKEN: _("pris en charge"),
    HandoffStatus.CONTACTED: _("contact établi"),
    HandoffStatus.CLOSED: _("clos"),
    HandoffStatus.DECLINED: _("refusé, transmis à une autre association"),
    HandoffStatus.EXPIRED: _("sans réponse, transmis à une autre association"),
    HandoffStatus.ERASED: _("effacé"),
    HandoffStatus.WITHDRAWN: _("retiré, remplacé par une nouvelle demande"),
}
ASK_ERASE = _(
    "Voulez-vous effacer toutes vos données (réponses, contacts, questionnaires) ? C'est définitif."
)
ERASE_YES = _("Oui, tout effacer")
ERASE_NO = _("Non, garder")
ERASED = _("C'est fait : toutes vos données ont été effacées. Au revoir, et merci !")
KEPT = _("D'accord, rien n'a été effacé.")

# People erased per retention query; each in its own transaction.
RETENTION_BATCH = 500


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
                kind=CONSENT_KINDS.get(consent.kind, OTHER_CONSENT),
                date=When(consent.given_at),
                version=consent.text_version,
            )
        )
    for handoff, name in await uow.handoffs.recipients([p.id for p in profiles]):
        status = HANDOFF_STATES.get(
            HandoffStatus(handoff.status), HANDOFF_STATES[HandoffStatus.PROPOSED]
        )
        parts.append(
            MY_DATA_RECIPIENT.fmt(association=name, date=When(handoff.created_at), status=status)
        )
    if conversation is not None:
        state = conversation.state()
        parts.append(
            MY_DATA_IN_PROGRESS.fmt(answers=Lines(answers_text(state.flow, state.answers)))
        )
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
            lines.append(MY_DATA_ANSWER.fmt(title=step.title, value=shown))
    return tuple(lines)


async def erase(uow: UnitOfWork, person: Person, now: datetime, policy: Policy) -> None:
    """Everything about a person goes: the associations' cards are scrubbed and the associations
    told, queued messages lose their data, a coordinator's own role goes too."""
    await handoffs.erase_for(uow, person, now, policy)
    await uow.outbox.forget_person(person.id)
    for role in await uow.coordinators.of_person(person.telegram_id, active_only=False):
        await coordinators.leave(uow, role, now, policy)
        await uow.coordinators.delete(role)
    await uow.invites.forget_user(person.telegram_id)
    await uow.people.erase(person)
    log.info("person %s erased", person.id)


@dataclass(frozen=True)
class Purged:
    conversations: int
    people: int


async def purge(unit_of_work: UnitOfWorkFactory, now: datetime, policy: Policy) -> Purged:
    """Retention: unfinished questionnaires, then the people silent for too long."""
    async with unit_of_work() as uow:
        conversations = await uow.conversations.purge_unfinished_before(
            now - policy.abandoned_after
        )
        await uow.commit()
    people = 0
    after = 0
    while True:
        async with unit_of_work() as uow:
            due = await uow.people.due_for_erasure(
                now - policy.abandoned_after, now - policy.retention, RETENTION_BATCH, after
            )
        for person_id in due:
            after = person_id
            # One transaction per person: one failure must not keep everyone else's data.
            try:
                people += await _erase_one(unit_of_work, person_id, now, policy)
            except Exception:
                log.exception("retention: person %s could not be erased", person_id)
        if len(due) < RETENTION_BATCH:
            break
    if conversations or people:
        log.info("retention: %s unfinished conversations, %s people erased", conversations, people)
    return Purged(conversations, people)


async def _erase_one(
    unit_of_work: UnitOfWorkFactory, person_id: int, now: datetime, policy: Policy
) -> int:
    async with unit_of_work() as uow:
        person = await uow.people.get(person_id)
        if person is None:
            return 0
        await erase(uow, person, now, policy)
        await uow.commit()
        return 1
