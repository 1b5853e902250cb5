"""Handoffs: route a profile to an association, act on its coordinators' buttons, chase silence.

Every message to someone other than the presser goes through the outbox, in the transaction that
changes the handoff, so that a crash or a Telegram outage loses nothing and sends nothing twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from conversations.entities import (
    AssociationRecord,
    Consent,
    ConsentKind,
    Coordinator,
    Handoff,
    Person,
    Profile,
    ProfileStatus,
    answers_from_json,
)
from conversations.flows import CONSENT_VERSION
from conversations.handoff import (
    OPEN,
    REROUTING,
    HandoffAction,
    HandoffStatus,
    HandoffVerb,
    may_act,
    next_status,
)
from conversations.matching import (
    AssociationLoad,
    MatchResult,
    facts_from_answers,
    match,
    week_window,
)
from conversations.ports import (
    AssociationWebhook,
    CardButton,
    Conflict,
    ContactCard,
    CoordinatorNotice,
    OutboxMessage,
    PersonNotice,
    UnitOfWork,
    UnitOfWorkFactory,
)
from conversations.services import cards, reach
from conversations.services.actions import ActOnHandoff
from conversations.services.alerts import alert_admins
from conversations.services.catalogue import index_of, response_hours
from conversations.services.policy import Policy
from conversations.text import Text, _

log = logging.getLogger(__name__)

ASK_REASON = _("Pourquoi refuser ce contact ?")
REMINDER = _(
    "⏰ Le contact n° %(id)s attend depuis plus de %(hours)s h. Qui s'en occupe ? "
    "(/queue pour tout voir)"
)
WITHDRAWN_NOTICE = _(
    "↩️ La personne du contact n° %(id)s a fait une nouvelle demande, qui remplace celle-ci : "
    "vous n'avez plus à la contacter."
)
ERASED_NOTICE = _(
    "🗑 La personne du contact n° %(id)s a effacé ses données. Merci de supprimer aussi ce que "
    "vous en avez gardé."
)
NO_COORDINATOR = _(
    "📭 %(association)s n'a aucun coordinateur ni webhook : le contact n° %(id)s attend. "
    "Invitez quelqu'un : mentorat-bot coordinator invite %(slug)s"
)
NO_MATCH_ALERT = _("🔎 Profil sans association : %(gap)s")

TOAST_TAKEN = _("C'est à vous ! La personne est prévenue.")
TOAST_TAKEN_BLOCKED = _(
    "C'est à vous ! La personne a bloqué le bot : joignez-la par téléphone ou par e-mail (sur "
    "la fiche)."
)
TOAST_ALREADY_TAKEN = _("Déjà pris par %(coordinator)s.")
TOAST_DONE = _("C'est noté.")
TOAST_KEPT = _("D'accord, rien n'a changé.")
TOAST_DECLINED = _("Refusé : le contact part vers une autre association.")
TOAST_NOT_ALLOWED = _("Ce bouton n'est pas pour vous.")
TOAST_TOO_LATE = _("Ce contact a déjà changé d'étape.")

PERSON_TAKEN = {
    "mentee": _(
        "Bonne nouvelle ! %(coordinator)s, de %(association)s, s'occupe de ta demande et va te "
        "contacter très vite."
    ),
    "referral": _(
        "Bonne nouvelle ! %(coordinator)s, de %(association)s, s'occupe de votre demande pour "
        "%(name)s et va vous contacter très vite."
    ),
    "mentor": _(
        "Bonne nouvelle ! %(coordinator)s, de %(association)s, s'occupe de votre inscription et "
        "va vous contacter très vite."
    ),
}
# Taken by the association's CRM: no coordinator's name to give.
PERSON_TAKEN_BY_ASSOCIATION = {
    "mentee": _(
        "Bonne nouvelle ! %(association)s s'occupe de ta demande et va te contacter très vite."
    ),
    "referral": _(
        "Bonne nouvelle ! %(association)s s'occupe de votre demande pour %(name)s et va vous "
        "contacter très vite."
    ),
    "mentor": _(
        "Bonne nouvelle ! %(association)s s'occupe de votre inscription et va vous contacter "
        "très vite."
    ),
}
# What became of a request an association did not keep: each cause has its own words (a
# decline is an answer, silence is none), and so has each outcome (another association, or
# none for now: the waiting list).
PERSON_REROUTED = {
    ("mentee", "declined"): _(
        "Du nouveau : %(old)s ne peut pas t'accompagner, alors j'ai transmis ta demande à "
        "<b>%(association)s</b>, qui va te contacter."
    ),
    ("mentee", "silence"): _(
        "Du nouveau : %(old)s n'a pas répondu à temps, alors j'ai transmis ta demande à "
        "<b>%(association)s</b>, qui va te contacter."
    ),
    ("referral", "declined"): _(
        "Du nouveau : %(old)s ne peut pas accompagner %(name)s, alors j'ai transmis votre "
        "demande à <b>%(association)s</b>, qui va vous contacter."
    ),
    ("referral", "silence"): _(
        "Du nouveau : %(old)s n'a pas répondu à temps, alors j'ai transmis votre demande pour "
        "%(name)s à <b>%(association)s</b>, qui va vous contacter."
    ),
    ("mentor", "declined"): _(
        "Du nouveau : %(old)s ne peut pas donner suite, alors j'ai transmis votre inscription à "
        "<b>%(association)s</b>, qui va vous contacter."
    ),
    ("mentor", "silence"): _(
        "Du nouveau : %(old)s n'a pas répondu à temps, alors j'ai transmis votre inscription à "
        "<b>%(association)s</b>, qui va vous contacter."
    ),
}
PERSON_WAITING = {
    ("mentee", "declined"): _(
        "Du nouveau : %(old)s ne peut pas t'accompagner, et aucune autre association ne "
        "convient pour l'instant. Ta demande reste sur la liste d'attente ; l'équipe du "
        "Collectif est prévenue et te tiendra au courant."
    ),
    ("mentee", "silence"): _(
        "Du nouveau : %(old)s n'a pas répondu à temps, et aucune autre association ne convient "
        "pour l'instant. Ta demande reste sur la liste d'attente ; l'équipe du Collectif est "
        "prévenue et te tiendra au courant."
    ),
    ("referral", "declined"): _(
        "Du nouveau : %(old)s ne peut pas accompagner %(name)s, et aucune autre association ne "
        "convient pour l'instant. La demande reste sur la liste d'attente ; l'équipe du "
        "Collectif est prévenue et vous tiendra au courant."
    ),
    ("referral", "silence"): _(
        "Du nouveau : %(old)s n'a pas répondu à temps, et aucune autre association ne convient "
        "pour l'instant. La demande pour %(name)s reste sur la liste d'attente ; l'équipe du "
        "Collectif est prévenue et vous tiendra au courant."
    ),
    ("mentor", "declined"): _(
        "Du nouveau : %(old)s ne peut pas donner suite, et aucune autre association ne convient "
        "pour l'instant. Votre inscription reste sur la liste d'attente ; l'équipe du Collectif "
        "est prévenue et vous tiendra au courant."
    ),
    ("mentor", "silence"): _(
        "Du nouveau : %(old)s n'a pas répondu à temps, et aucune autre association ne convient "
        "pour l'instant. Votre inscription reste sur la liste d'attente ; l'équipe du Collectif "
        "est prévenue et vous tiendra au courant."
    ),
}


@dataclass(frozen=True)
class Pressed:
    """What a coordinator's press comes to: a toast, and maybe new buttons on the pressed card."""

    toast: Text
    buttons: tuple[CardButton, ...] | None = None


# --- routing -------------------------------------------------------------------------------


async def ranking(uow: UnitOfWork, profile: Profile, now: datetime) -> MatchResult:
    """The associations the profile would go to now, best first (nothing is proposed)."""
    result, _records, _tried = await _ranking(uow, profile, now)
    return result


async def _ranking(
    uow: UnitOfWork, profile: Profile, now: datetime
) -> tuple[MatchResult, list[AssociationRecord], set[int]]:
    records = await uow.catalog.records()
    tried = {h.association_id for h in await uow.handoffs.of_profile(profile.id)}
    excluded = [record.slug for record in records if record.id in tried]
    this_week = await uow.handoffs.created_counts(*week_window(now))
    waiting = await uow.handoffs.waiting_counts()
    speed = await response_hours(uow, now)
    loads = {
        record.slug: AssociationLoad(
            handed_off_this_week=this_week.get(record.id, 0),
            waiting=waiting.get(record.id, 0),
            median_response_hours=speed.get(record.slug),
        )
        for record in records
    }
    answers = answers_from_json(profile.answers)
    facts = facts_from_answers(profile.flow, answers)
    return match(facts, index_of(records), loads, excluded), records, tried


async def route(uow: UnitOfWork, profile: Profile, now: datetime, policy: Policy) -> MatchResult:
    """Match the profile among the associations it was not yet proposed to, and propose it."""
    result, records, tried = await _ranking(uow, profile, now)
    by_slug = {record.slug: record for record in records}
    best = result.best
    if best is None:
        profile.association_slug = None
        profile.status = ProfileStatus.WAITING
        alert = NO_MATCH_ALERT.fmt(gap=result.gap or "")
        await alert_admins(uow, policy.admins, f"gap:{profile.id}:{len(tried)}", alert, now)
        return result
    record = by_slug[best.association.slug]
    profile.association_slug = record.slug
    profile.status = ProfileStatus.MATCHED
    handoff = uow.handoffs.add(
        Handoff(
            profile_id=profile.id,
            association_id=record.id,
            status=HandoffStatus.PROPOSED,
            created_at=now,
        )
    )
    await uow.flush()
    uow.handoffs.record(handoff, HandoffStatus.PROPOSED, now)
    await _send_to_association(uow, handoff, record, profile, now, policy)
    log.info("handoff %s proposed to %s", handoff.id, record.slug)
    return result


async def _send_to_association(
    uow: UnitOfWork,
    handoff: Handoff,
    record: AssociationRecord,
    profile: Profile,
    now: datetime,
    policy: Policy,
) -> None:
    coordinators = await uow.coordinators.of_association(record.id)
    consents = await uow.profiles.consents_of(profile.id)
    body = cards.body(handoff, record, profile, consents)
    for coordinator in coordinators:
        card = ContactCard(
            chat_id=coordinator.telegram_id,
            language=coordinator.language,
            handoff_id=handoff.id,
            coordinator_id=coordinator.id,
            body=body,
            buttons=cards.buttons(handoff, coordinator, None),
        )
        await uow.outbox.enqueue(
            f"handoff:{handoff.id}:{coordinator.id}", card, now, person_id=profile.person_id
        )
    webhook = record.webhook_url
    if webhook:
        message = AssociationWebhook(
            webhook, handoff.id, record.slug, webhook_body(handoff, record, profile, consents)
        )
        await uow.outbox.enqueue(f"webhook:{handoff.id}", message, now, person_id=profile.person_id)
    if not coordinators and not webhook:
        alert = NO_COORDINATOR.fmt(association=record.name, id=handoff.id, slug=record.slug)
        await alert_admins(uow, policy.admins, f"nobody:{handoff.id}", alert, now)


def webhook_body(
    handoff: Handoff, record: AssociationRecord, profile: Profile, consents: list[Consent]
) -> dict[str, Any]:
    """The JSON an association's CRM receives (documented in the README)."""
    answers = profile.answers
    contact = next((c for c in consents if c.kind == ConsentKind.CONTACT), None)
    parental = next((c for c in consents if c.kind == ConsentKind.PARENTAL), None)
    return {
        "event": "handoff.proposed",
        "handoff_id": handoff.id,
        "association": record.slug,
        "created_at": handoff.created_at.isoformat(),
        "profile": {
            "role": profile.role,
            "questionnaire": profile.flow,
            "language": profile.language,
            "department": profile.department,
            "source": profile.source,
            "submitted_at": profile.submitted_at.isoformat(),
            "consent": {
                "text_version": contact.text_version if contact else CONSENT_VERSION,
                "given_at": (contact.given_at if contact else profile.submitted_at).isoformat(),
            },
            "answers": {k: v for k, v in answers.items() if k not in ("consent", "parent_consent")},
            "parental_consent": parental is not None,
            # "in_chat" (the parent filled in), "parent_account" (confirmed from the parent's
            # own Telegram account) or "attested" (by a professional: check with the parent).
            "parental_consent_method": parental.method if parental else None,
        },
    }


# --- the coordinators' buttons -----------------------------------------------------------------


async def act(
    uow: UnitOfWork, telegram_id: int, pressed: ActOnHandoff, now: datetime, policy: Policy
) -> Pressed:
    """A coordinator pressed a card's button: authorised here, whatever the callback data says."""
    handoff = await uow.handoffs.get(pressed.handoff_id)
    if handoff is None:
        return Pressed(TOAST_TOO_LATE)
    record = await uow.catalog.get(handoff.association_id)
    coordinator = await uow.coordinators.find(handoff.association_id, telegram_id)
    if coordinator is not None and not coordinator.active:
        coordinator = None
    # "keep" (cancel a decline) changes nothing: authorised like a decline, then shown.
    verb = HandoffVerb.DECLINE if pressed.verb is HandoffVerb.KEEP else pressed.verb
    action = HandoffAction(verb.value)
    allowed = may_act(
        action,
        handoff.status,
        presser_is_coordinator=coordinator is not None,
        presser_took_it=coordinator is not None and handoff.taken_by == coordinator.id,
    )
    if record is None or coordinator is None or not allowed:
        if coordinator is None:
            # Logged without personal data: who pressed is a Telegram id, not a name.
            log.warning("refused %s on handoff %s: not its coordinator", action, handoff.id)
            return Pressed(TOAST_NOT_ALLOWED)
        return await _too_late(uow, handoff)
    if pressed.verb is HandoffVerb.KEEP:
        taker = await _taker(uow, handoff)
        return Pressed(TOAST_KEPT, cards.buttons(handoff, coordinator, taker))
    if action is HandoffAction.DECLINE and pressed.reason is None:
        return Pressed(ASK_REASON, cards.decline_reasons())
    target = next_status(handoff.status, action)
    if target is None:
        taker = await _taker(uow, handoff)
        if taker is not None and taker.id != coordinator.id:
            return Pressed(TOAST_ALREADY_TAKEN.fmt(coordinator=taker.first_name))
        return Pressed(TOAST_TOO_LATE)
    profile = await uow.profiles.get(handoff.profile_id)
    assert profile is not None
    _move(uow, handoff, target, now, coordinator, pressed.reason)
    await _after_move(uow, handoff, record, profile, now, policy, coordinator)
    log.info("handoff %s %s by coordinator %s", handoff.id, target, coordinator.id)
    if target is HandoffStatus.TAKEN:
        person = await uow.people.get(profile.person_id)
        if person is not None and not reach.reachable(person):
            # Nobody told them (see `tell_person`): the coordinator must know it.
            return Pressed(TOAST_TAKEN_BLOCKED)
        return Pressed(TOAST_TAKEN)
    if target is HandoffStatus.DECLINED:
        return Pressed(TOAST_DECLINED)
    return Pressed(TOAST_DONE)


async def _too_late(uow: UnitOfWork, handoff: Handoff) -> Pressed:
    taker = await _taker(uow, handoff)
    if taker is not None:
        return Pressed(TOAST_ALREADY_TAKEN.fmt(coordinator=taker.first_name))
    return Pressed(TOAST_TOO_LATE)


async def _taker(uow: UnitOfWork, handoff: Handoff) -> Coordinator | None:
    return await uow.coordinators.get(handoff.taken_by) if handoff.taken_by else None


def _move(
    uow: UnitOfWork,
    handoff: Handoff,
    target: HandoffStatus,
    now: datetime,
    coordinator: Coordinator | None = None,
    reason: str | None = None,
    event: str | None = None,
    detail: str | None = None,
) -> None:
    """The one place a handoff changes status, with the times that go with it and its event
    (whose detail is the decline reason unless `detail` says otherwise)."""
    handoff.status = target
    if target is HandoffStatus.DELIVERED and handoff.taken_by is not None:
        # Released: open to every coordinator again, and silence is counted from now.
        handoff.taken_by = None
        handoff.delivered_at = now
        handoff.reminded_at = None
    elif target is HandoffStatus.DELIVERED:
        handoff.delivered_at = now
    elif target is HandoffStatus.TAKEN:
        # Taken by the association's CRM: nobody in `taken_by`, but the delay counts all the same.
        handoff.taken_by = coordinator.id if coordinator is not None else None
        handoff.taken_at = now
    elif target is HandoffStatus.CONTACTED:
        handoff.contacted_at = now
    elif target in (
        HandoffStatus.CLOSED,
        HandoffStatus.DECLINED,
        HandoffStatus.EXPIRED,
        HandoffStatus.WITHDRAWN,
    ):
        handoff.closed_at = now
        if target is HandoffStatus.DECLINED:
            handoff.decline_reason = reason
    uow.handoffs.record(
        handoff,
        event or str(target),
        now,
        coordinator.id if coordinator else None,
        detail if detail is not None else reason,
    )


async def move(
    uow: UnitOfWork,
    handoff: Handoff,
    record: AssociationRecord,
    profile: Profile,
    target: HandoffStatus,
    now: datetime,
    policy: Policy,
    reason: str | None = None,
    *,
    by: str,
    detail: str | None = None,
) -> None:
    """A move made by no coordinator (an association's CRM), with all that follows a press."""
    _move(uow, handoff, target, now, None, reason, detail=detail)
    await _after_move(uow, handoff, record, profile, now, policy, by=by)


async def _after_move(
    uow: UnitOfWork,
    handoff: Handoff,
    record: AssociationRecord,
    profile: Profile,
    now: datetime,
    policy: Policy,
    actor: Coordinator | None = None,
    by: str = "coordinator",
) -> None:
    """The cards catch up, the CRM and the person hear the news, and a declined contact moves
    on. `by` says who moved it: "coordinator", "crm" or "silence"."""
    await refresh_cards(uow, handoff, now, policy, actor)
    if by != "crm":
        # The CRM's own move is acknowledged in the answer to its request, not echoed back.
        await tell_crm(uow, handoff, record, now, by)
    person = await uow.people.get(profile.person_id)
    if handoff.status == HandoffStatus.TAKEN and person is not None:
        taker = await _taker(uow, handoff)
        name = str(profile.answers.get("first_name") or "")
        if taker is None:
            text = PERSON_TAKEN_BY_ASSOCIATION[profile.flow].fmt(association=record.name, name=name)
        else:
            text = PERSON_TAKEN[profile.flow].fmt(
                coordinator=taker.first_name, association=record.name, name=name
            )
        await tell_person(uow, f"taken:{handoff.id}:{handoff.version}", person, profile, text, now)
    if handoff.status in REROUTING:
        result = await route(uow, profile, now, policy)
        if person is None:
            return
        best = result.best
        cause = "silence" if handoff.status == HandoffStatus.EXPIRED else "declined"
        name = str(profile.answers.get("first_name") or "")
        if best is None:
            text = PERSON_WAITING[profile.flow, cause].fmt(old=record.name, name=name)
        else:
            text = PERSON_REROUTED[profile.flow, cause].fmt(
                old=record.name, association=best.association.name, name=name
            )
        await tell_person(uow, f"rerouted:{handoff.id}", person, profile, text, now)


# What the association's CRM hears when its handoff moves (documented in the README).
CRM_EVENTS = {
    HandoffStatus.TAKEN: "handoff.taken",
    HandoffStatus.CONTACTED: "handoff.contacted",
    HandoffStatus.DECLINED: "handoff.declined",
    HandoffStatus.CLOSED: "handoff.closed",
    HandoffStatus.EXPIRED: "handoff.expired",
}


async def tell_crm(
    uow: UnitOfWork, handoff: Handoff, record: AssociationRecord, now: datetime, by: str
) -> None:
    """A signed `handoff.<status>` POST to the association's webhook, if it has one. Nothing
    about the person: the handoff id ties it to the `handoff.proposed` the CRM already has."""
    webhook = record.webhook_url
    event = CRM_EVENTS.get(HandoffStatus(handoff.status))
    if not webhook or event is None:
        return
    body: dict[str, Any] = {
        "event": event,
        "handoff_id": handoff.id,
        "association": record.slug,
        "status": handoff.status,
        "at": now.isoformat(),
        "by": by,
    }
    if handoff.status == HandoffStatus.DECLINED:
        body["reason"] = handoff.decline_reason
    message = AssociationWebhook(webhook, handoff.id, record.slug, body)
    # The version tells apart two passes through one status (taken, released, taken).
    await uow.outbox.enqueue(
        f"webhook-{handoff.status}:{handoff.id}:{handoff.version}", message, now
    )


async def tell_person(
    uow: UnitOfWork, key: str, person: Person, profile: Profile, text: Text, now: datetime
) -> None:
    """News for the person about their request; none for a person who blocked the bot."""
    if not reach.reachable(person):
        return
    notice = PersonNotice(person.telegram_id, profile.language, text)
    await uow.outbox.enqueue(key, notice, now, person_id=person.id)


async def tell_coordinators(
    uow: UnitOfWork, association_id: int, key: str, text: Text, now: datetime
) -> None:
    """One message to each active coordinator of an association, in their language."""
    for coordinator in await uow.coordinators.of_association(association_id):
        notice = CoordinatorNotice(coordinator.telegram_id, coordinator.language, text)
        await uow.outbox.enqueue(f"{key}:{coordinator.id}", notice, now)


async def refresh_cards(
    uow: UnitOfWork,
    handoff: Handoff,
    now: datetime,
    policy: Policy,
    actor: Coordinator | None = None,
) -> None:
    """Bring every coordinator's copy of the card up to date with the handoff's status."""
    taker = await _taker(uow, handoff)
    erased = handoff.status == HandoffStatus.ERASED
    for copy in await uow.outbox.cards_of(handoff.id):
        coordinator = await uow.coordinators.get(copy.card.coordinator_id)
        language = coordinator.language if coordinator is not None else copy.card.language
        if erased:
            card = replace(
                copy.card, language=language, body=cards.erased(handoff.id), status=None, buttons=()
            )
        else:
            status = cards.status_line(
                handoff, taker, actor, copy.card.coordinator_id, policy.reroute_days
            )
            buttons = cards.buttons(handoff, coordinator, taker)
            card = replace(copy.card, language=language, status=status, buttons=buttons)
        if not copy.sent:
            # Not delivered yet: deliver the up-to-date card instead of the first one.
            await uow.outbox.replace_pending(copy.outbox_id, card)
            continue
        # The version tells apart two passes through one status (taken, released, taken).
        prefix = f"edit:{handoff.id}:{copy.card.coordinator_id}:"
        key = f"{prefix}{handoff.status}:{handoff.version}"
        await uow.outbox.supersede(prefix, keep=key)
        edit = replace(card, message_id=copy.message_id)
        await uow.outbox.enqueue(key, edit, now, person_id=None if erased else copy.person_id)


# --- what the relay reports --------------------------------------------------------------------


async def delivered(
    uow: UnitOfWork,
    message: OutboxMessage,
    sent_message_id: int | None,
    erased_meanwhile: bool,
    now: datetime,
    policy: Policy,
) -> None:
    """The relay delivered a message: a card or a proposal webhook makes its handoff delivered."""
    if erased_meanwhile:
        if isinstance(message, ContactCard) and sent_message_id is not None:
            # Its person erased their data while it was being sent: scrub it at once.
            scrub = replace(
                message,
                body=cards.erased(message.handoff_id),
                status=None,
                buttons=(),
                message_id=sent_message_id,
            )
            await uow.outbox.enqueue(f"scrub:{message.chat_id}:{sent_message_id}", scrub, now)
        return
    if (isinstance(message, ContactCard) and message.message_id is None) or (
        isinstance(message, AssociationWebhook) and message.event == "handoff.proposed"
    ):
        handoff_id = message.handoff_id
    else:
        return
    handoff = await uow.handoffs.get(handoff_id)
    if handoff is None:
        return
    if handoff.status not in OPEN:
        # The card left while the handoff moved on (taken, declined, erased): it went out with
        # old buttons or with data since erased, so bring it up to date at once.
        await refresh_cards(uow, handoff, now, policy)
    if handoff.delivered_at is not None:
        return
    if next_status(handoff.status, HandoffAction.DELIVER):
        _move(uow, handoff, HandoffStatus.DELIVERED, now)
    else:
        # Taken before the relay recorded the delivery: keep the time, not the status.
        handoff.delivered_at = now
        uow.handoffs.record(handoff, HandoffStatus.DELIVERED, now)


# --- silence ---------------------------------------------------------------------------------


async def chase_silence(unit_of_work: UnitOfWorkFactory, now: datetime, policy: Policy) -> int:
    """Remind after 48 h, re-route after 7 days: driven by the database, so restarts lose nothing."""
    async with unit_of_work() as uow:
        silent = await uow.handoffs.silent_since(now - policy.silence.remind_after, reminded=True)
        to_check = [h.id for h in silent]
    handled = 0
    for handoff_id in to_check:
        for _attempt in range(3):
            try:
                handled += await _silence(unit_of_work, handoff_id, now, policy)
                break
            except Conflict:
                # A coordinator acted at that very moment: read the handoff again.
                continue
    return handled


async def _silence(
    unit_of_work: UnitOfWorkFactory, handoff_id: int, now: datetime, policy: Policy
) -> int:
    async with unit_of_work() as uow:
        handoff = await uow.handoffs.get(handoff_id)
        if handoff is None:
            return 0
        since = handoff.delivered_at or handoff.created_at
        due = policy.silence.due(handoff.status, since, handoff.reminded_at is not None, now)
        if due is None:
            return 0
        record = await uow.catalog.get(handoff.association_id)
        profile = await uow.profiles.get(handoff.profile_id)
        assert record is not None
        assert profile is not None
        if due == "remind":
            handoff.reminded_at = now
            uow.handoffs.record(handoff, "reminded", now)
            hours = int(policy.silence.remind_after.total_seconds() // 3600)
            reminder = REMINDER.fmt(id=handoff.id, hours=hours)
            await tell_coordinators(
                uow, record.id, f"remind:{handoff.id}:{handoff.version}", reminder, now
            )
        else:
            _move(uow, handoff, HandoffStatus.EXPIRED, now)
            await _after_move(uow, handoff, record, profile, now, policy, by="silence")
        log.info("handoff %s: %s", handoff.id, due)
        await uow.commit()
        return 1


# --- erasure and departures --------------------------------------------------------------------


async def erase_for(uow: UnitOfWork, person: Person, now: datetime, policy: Policy) -> None:
    """Before a person's data goes: scrub every card that showed it and tell each association
    (by Telegram and by webhook)."""
    profiles = await uow.profiles.for_person(person)
    for handoff in await uow.handoffs.of_profiles([p.id for p in profiles]):
        record = await uow.catalog.get(handoff.association_id)
        if record is None or next_status(handoff.status, HandoffAction.ERASE) is None:
            continue
        _move(uow, handoff, HandoffStatus.ERASED, now)
        await refresh_cards(uow, handoff, now, policy)
        notice = ERASED_NOTICE.fmt(id=handoff.id)
        await tell_coordinators(uow, record.id, f"erased:{handoff.id}", notice, now)
        webhook = record.webhook_url
        if webhook:
            body = {"event": "handoff.erased", "handoff_id": handoff.id, "association": record.slug}
            message = AssociationWebhook(webhook, handoff.id, record.slug, body)
            await uow.outbox.enqueue(f"webhook-erased:{handoff.id}", message, now)


async def withdraw(uow: UnitOfWork, profile: Profile, now: datetime, policy: Policy) -> int:
    """The person replaces this request with a new one: each association that has it drops it
    (its cards say so, its coordinators and its CRM are told), and it leaves the waiting list.
    Returns how many associations were told."""
    told = 0
    for handoff in await uow.handoffs.of_profile(profile.id):
        record = await uow.catalog.get(handoff.association_id)
        if record is None or next_status(handoff.status, HandoffAction.WITHDRAW) is None:
            continue
        _move(uow, handoff, HandoffStatus.WITHDRAWN, now)
        await refresh_cards(uow, handoff, now, policy)
        notice = WITHDRAWN_NOTICE.fmt(id=handoff.id)
        await tell_coordinators(uow, record.id, f"withdrawn:{handoff.id}", notice, now)
        if record.webhook_url:
            body = {
                "event": "handoff.withdrawn",
                "handoff_id": handoff.id,
                "association": record.slug,
                "at": now.isoformat(),
            }
            message = AssociationWebhook(record.webhook_url, handoff.id, record.slug, body)
            await uow.outbox.enqueue(f"webhook-withdrawn:{handoff.id}", message, now)
        told += 1
    profile.status = ProfileStatus.WITHDRAWN
    log.info("profile %s withdrawn: %s association(s) told", profile.id, told)
    return told


async def release_taken(
    uow: UnitOfWork, coordinator: Coordinator, now: datetime, policy: Policy
) -> int:
    """What a departing coordinator took goes back to their colleagues; returns how many."""
    released = 0
    for handoff in await uow.handoffs.taken_by(coordinator.id):
        if next_status(handoff.status, HandoffAction.RELEASE) is None:
            continue
        _move(uow, handoff, HandoffStatus.DELIVERED, now, coordinator, event="released")
        await refresh_cards(uow, handoff, now, policy)
        released += 1
    return released
