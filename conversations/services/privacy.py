"""What a person can know and erase about themselves (GDPR, CNIL), and retention: personal data is
kept no longer than needed, then erased exactly as a /delete would.

Unfinished questionnaires go after `Policy.abandoned_after` (30 days); a person's profiles and
contacts go `Policy.retention` (3 years, the CNIL reference for prospects) after their last
message. Anonymous funnel counts stay.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from conversations import engine
from conversations.entities import Consent, Conversation, Handoff, Person, Profile
from conversations.flows import CONSENT_VERSION, FLOWS
from conversations.handoff import HandoffStatus
from conversations.ports import UnitOfWork, UnitOfWorkFactory
from conversations.services import coordinators, handoffs
from conversations.services.policy import Policy
from conversations.services.replies import Document, Notice, Reply, address_of
from conversations.text import Lines, Text, When, _

log = logging.getLogger(__name__)

NO_DATA = {
    "tu": _("Je n'ai aucune donnée sur toi, à part ton identifiant Telegram."),
    "vous": _("Je n'ai aucune donnée sur vous, à part votre identifiant Telegram."),
}
MY_DATA = {
    "tu": _(
        "<b>Tes données</b>\n\n%(details)s\n\nLe fichier ci-dessous contient tout ce qui est "
        "gardé. Pour tout effacer : /delete"
    ),
    "vous": _(
        "<b>Vos données</b>\n\n%(details)s\n\nLe fichier ci-dessous contient tout ce qui est "
        "gardé. Pour tout effacer : /delete"
    ),
}
MY_DATA_PROFILE = _("Questionnaire envoyé le %(date)s :\n%(answers)s")
MY_DATA_IN_PROGRESS = _("Questionnaire en cours :\n%(answers)s")
MY_DATA_CONSENT = _("Accord « %(kind)s » donné le %(date)s (texte %(version)s), %(method)s")
MY_DATA_ANSWER = _("• %(title)s : %(value)s")
CONSENT_KINDS = {"contact": _("être contacté·e"), "parental": _("parental")}
OTHER_CONSENT = _("autre")
CONSENT_METHODS = {
    "in_chat": _("dans cette conversation"),
    "parent_account": _("confirmé par le parent depuis son propre compte Telegram"),
    "attested": _("attesté par le ou la professionnel·le, à confirmer avec le parent"),
}
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
ASK_ERASE = {
    "tu": _(
        "Veux-tu effacer toutes tes données (réponses, contacts, questionnaires) ? C'est définitif."
    ),
    "vous": _(
        "Voulez-vous effacer toutes vos données (réponses, contacts, questionnaires) ? C'est "
        "définitif."
    ),
}
ERASE_YES = _("Oui, tout effacer")
ERASE_NO = _("Non, garder")
ERASED = {
    "tu": _("C'est fait : toutes tes données ont été effacées. Au revoir, et merci !"),
    "vous": _("C'est fait : toutes vos données ont été effacées. Au revoir, et merci !"),
}
KEPT = {
    "tu": _("D'accord, rien n'a été effacé."),
    "vous": _("D'accord, rien n'a été effacé."),
}
EXPORT_NAME = "mentorat-data.json"
EXPORT_CAPTION = {
    "tu": _("Toutes tes données, dans un fichier (JSON)."),
    "vous": _("Toutes vos données, dans un fichier (JSON)."),
}
# /privacy, in plain words (GDPR art. 12-13): who, what, why, how long, who receives it, rights.
PRIVACY = {
    "tu": _(
        "<b>Tes données, en clair</b>\n\n"
        "<b>Qui les garde ?</b> Le Collectif Mentorat, qui fait fonctionner ce bot.\n"
        "<b>Quoi ?</b> Tes réponses au questionnaire, ton identifiant Telegram, tes accords, et "
        "la date de tes messages. Jamais tes autres conversations.\n"
        "<b>Pourquoi ?</b> Pour te proposer <u>une</u> association du Collectif et lui "
        "transmettre ta demande, si tu es d'accord.\n"
        "<b>Qui les reçoit ?</b> Seulement l'association choisie (et, si elle ne peut pas, la "
        "suivante : tu en es prévenu·e).\n"
        "<b>Combien de temps ?</b> Un questionnaire pas fini : %(abandoned)s jours. Une demande "
        "envoyée : %(years)s ans après ton dernier message, puis tout est effacé.\n"
        "<b>Avant 15 ans</b>, ton parent doit aussi être d'accord.\n"
        "<b>Tes droits :</b> voir tes données (/mydata), tout effacer (/delete), corriger tes "
        "réponses (/restart), et te plaindre à la CNIL (cnil.fr).\n\n"
        "Texte de l'accord : version %(version)s."
    ),
    "vous": _(
        "<b>Vos données, en clair</b>\n\n"
        "<b>Qui les garde ?</b> Le Collectif Mentorat, qui fait fonctionner ce bot.\n"
        "<b>Quoi ?</b> Les réponses au questionnaire, votre identifiant Telegram, les accords "
        "donnés, et la date de vos messages. Jamais vos autres conversations.\n"
        "<b>Pourquoi ?</b> Pour proposer <u>une</u> association du Collectif et lui transmettre "
        "la demande, avec votre accord.\n"
        "<b>Qui les reçoit ?</b> Seulement l'association choisie (et, si elle ne peut pas, la "
        "suivante : vous en êtes prévenu·e).\n"
        "<b>Combien de temps ?</b> Un questionnaire pas fini : %(abandoned)s jours. Une demande "
        "envoyée : %(years)s ans après votre dernier message, puis tout est effacé.\n"
        "<b>Pour un ou une jeune de moins de 15 ans</b>, l'accord d'un parent est nécessaire.\n"
        "<b>Vos droits :</b> voir vos données (/mydata), tout effacer (/delete), corriger les "
        "réponses (/restart), et vous plaindre à la CNIL (cnil.fr).\n\n"
        "Texte de l'accord : version %(version)s."
    ),
}

# People erased per retention query; each in its own transaction.
RETENTION_BATCH = 500


async def my_data(
    uow: UnitOfWork, person: Person, conversation: Conversation | None, now: datetime
) -> tuple[Notice | Document, ...]:
    """Everything stored about a person, and who received it (GDPR: access, recipients), read
    once: in words, then as a JSON file (art. 20, portability)."""
    you = address_of(person)
    profiles = await uow.profiles.for_person(person)
    consents = await uow.profiles.consents_for(person)
    recipients = await uow.handoffs.recipients([p.id for p in profiles])
    parts: list[Text] = []
    for profile in profiles:
        parts.append(
            MY_DATA_PROFILE.fmt(
                date=When(profile.submitted_at),
                answers=Lines(answers_text(profile.flow, profile.answers)),
            )
        )
    for consent in consents:
        parts.append(
            MY_DATA_CONSENT.fmt(
                kind=CONSENT_KINDS.get(consent.kind, OTHER_CONSENT),
                date=When(consent.given_at),
                version=consent.text_version,
                method=CONSENT_METHODS.get(consent.method, CONSENT_METHODS["in_chat"]),
            )
        )
    for handoff, name in recipients:
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
        return (Notice(NO_DATA[you]),)
    export = _export(person, profiles, consents, recipients, conversation, now)
    return (
        Notice(MY_DATA[you].fmt(details=Lines(tuple(parts)))),
        Document(EXPORT_NAME, export, EXPORT_CAPTION[you]),
    )


def _export(
    person: Person,
    profiles: list[Profile],
    consents: list[Consent],
    recipients: list[tuple[Handoff, str]],
    conversation: Conversation | None,
    now: datetime,
) -> bytes:
    """The raw values as stored, with the questions' keys: what the bot keeps, not a rendering."""
    data: dict[str, Any] = {
        "exported_at": now.isoformat(),
        "telegram_id": person.telegram_id,
        "first_contact_at": person.created_at.isoformat(),
        "last_seen_at": person.last_seen_at.isoformat(),
        "language": person.language,
        "telegram_language": person.telegram_language,
        "source": person.source,
        "questionnaires_sent": [
            {
                "id": p.id,
                "questionnaire": p.flow,
                "submitted_at": p.submitted_at.isoformat(),
                "answers": p.answers,
                "status": p.status,
                "department": p.department,
                "source": p.source,
            }
            for p in profiles
        ],
        "consents": [
            {
                "kind": c.kind,
                "given_at": c.given_at.isoformat(),
                "text_version": c.text_version,
                "method": c.method,
                "profile_id": c.profile_id,
            }
            for c in consents
        ],
        "sent_to": [
            {
                "profile_id": h.profile_id,
                "association": name,
                "at": h.created_at.isoformat(),
                "status": h.status,
            }
            for h, name in recipients
        ],
        "questionnaire_in_progress": (
            None
            if conversation is None
            else {
                "questionnaire": conversation.flow,
                "started_at": conversation.started_at.isoformat(),
                "answers": conversation.answers,
                "current_question": conversation.step,
            }
        ),
    }
    return json.dumps(data, ensure_ascii=False, indent=2).encode()


def privacy_notice(person: Person, language: str, policy: Policy) -> Reply:
    abandoned = policy.abandoned_after.days
    years = policy.retention.days // 365
    text = PRIVACY[address_of(person)].fmt(
        abandoned=abandoned, years=years, version=CONSENT_VERSION
    )
    return Reply(language, screens=(Notice(text),))


def answers_text(
    flow_name: str, answers: object, hidden: frozenset[str] = frozenset()
) -> tuple[Text, ...]:
    flow = FLOWS.get(flow_name)
    if flow is None or not isinstance(answers, dict):
        return ()
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in answers.items()}
    lines = []
    for step in flow.steps:
        if step.key in values and step.key not in hidden:
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
