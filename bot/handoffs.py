"""Handoffs: route a profile to an association, reach its coordinators, act on their buttons.

Every message to someone other than the presser goes through the outbox, in the transaction that
changes the handoff, so that a crash or a Telegram outage loses nothing and sends nothing twice.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm.exc import StaleDataError

from bot.actions import ActOnHandoff
from bot.cards import ROLE_LINES, STATUS_ERASED, Cards
from bot.catalog import associations_of
from bot.i18n import Translator
from conversations.flows import CONSENT_VERSION
from conversations.handoff import (
    REROUTING,
    HandoffAction,
    HandoffStatus,
    SilenceRules,
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
from conversations.text import Lines, Text, When, _
from storage.models import AssociationRecord, Coordinator, Handoff, Invite, Person, Profile
from storage.repositories import answers_from_json
from storage.uow import UnitOfWork

log = logging.getLogger(__name__)

ADMIN_LANGUAGE = "fr"
# Waiting profiles retried per pass; the oldest first.
WAITING_BATCH = 200
WAITING_EVERY = timedelta(minutes=15)
INVITE_PREFIX = "join-"
ASK_REASON = _("Pourquoi refuser ce contact ?")
REMINDER = _(
    "⏰ Le contact n° %(id)s attend depuis plus de %(hours)s h. Qui s'en occupe ? "
    "(/queue pour tout voir)"
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
    "mentor": _(
        "Bonne nouvelle ! %(coordinator)s, de %(association)s, s'occupe de votre inscription et "
        "va vous contacter très vite."
    ),
}
PERSON_REROUTED = {
    "mentee": _(
        "Du nouveau : %(old)s ne peut pas donner suite, alors j'ai transmis ta demande à "
        "<b>%(association)s</b>, qui va te contacter."
    ),
    "mentor": _(
        "Du nouveau : %(old)s ne peut pas donner suite, alors j'ai transmis votre inscription à "
        "<b>%(association)s</b>, qui va vous contacter."
    ),
}
PERSON_FOUND = {
    "mentee": _(
        "Bonne nouvelle : une place s'est ouverte ! Ta demande est transmise à "
        "<b>%(association)s</b>, qui va te contacter."
    ),
    "mentor": _(
        "Bonne nouvelle : une association peut maintenant vous accueillir ! Votre inscription "
        "est transmise à <b>%(association)s</b>, qui va vous contacter."
    ),
}
PERSON_WAITING = {
    "mentee": _(
        "Du nouveau : %(old)s ne peut pas donner suite, et aucune autre association ne convient "
        "pour l'instant. Ta demande reste sur la liste d'attente ; l'équipe du Collectif est "
        "prévenue."
    ),
    "mentor": _(
        "Du nouveau : %(old)s ne peut pas donner suite, et aucune autre association ne convient "
        "pour l'instant. Votre inscription reste sur la liste d'attente ; l'équipe du Collectif "
        "est prévenue."
    ),
}

INVITE_INVALID = _(
    "Ce lien d'invitation n'est plus valable (déjà utilisé ou expiré). Demandez-en un nouveau à "
    "l'équipe du Collectif."
)
JOIN_CONFIRM = _(
    "Vous êtes invité·e à recevoir ici les contacts de <b>%(association)s</b>, comme "
    "coordinateur·rice. Vous verrez les coordonnées des personnes qui lui sont confiées."
)
JOIN_YES = _("Oui, je rejoins %(association)s")
JOINED = _(
    "Bienvenue ! Vous recevrez ici les contacts de <b>%(association)s</b>.\n\n"
    "/queue – les contacts qui attendent\n/pause – ne plus recevoir de nouveaux contacts\n"
    "/resume – en recevoir de nouveau"
)
JOIN_DECLINED = _("D'accord, vous n'avez rien rejoint.")
NOT_A_COORDINATOR = _(
    "Cette commande est réservée aux coordinateurs et coordinatrices des associations."
)
QUEUE_EMPTY = _("Rien n'attend pour %(association)s. 🎉")
QUEUE_TITLE = _("<b>%(association)s</b> – %(count)s contact(s) en attente, du plus ancien :")
QUEUE_LINE = _(
    "n° %(id)s · %(name)s · %(role)s · dép. %(department)s · depuis le %(date)s · %(status)s"
)
QUEUE_STATUS = {
    "proposed": _("à prendre"),
    "delivered": _("à prendre"),
    "taken": _("pris par %(coordinator)s"),
}
PAUSED = _(
    "%(association)s est en pause : plus aucun nouveau contact ne lui sera proposé. /resume pour "
    "reprendre."
)
RESUMED = _("%(association)s reçoit de nouveau des contacts.")


@dataclass(frozen=True)
class ActResult:
    toast: Text
    # A decline was asked: show the reasons in place of the buttons.
    reasons_for: int | None = None
    # "Annuler" under the reasons: the card's own buttons come back.
    card_markup: dict[str, Any] | None = None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_invite_token() -> str:
    # 128 random bits; with the prefix it stays within Telegram's 64-character start payload.
    return INVITE_PREFIX + secrets.token_urlsafe(16)


class HandoffService:
    def __init__(
        self, translator: Translator, admins: tuple[int, ...], rules: SilenceRules
    ) -> None:
        self._t = translator
        self._admins = admins
        self._rules = rules
        self._cards = Cards(translator, rules.reroute_after.days)
        self._waiting_checked: datetime | None = None

    # --- routing -------------------------------------------------------------------------

    async def route(self, uow: UnitOfWork, profile: Profile, now: datetime) -> MatchResult:
        """Match the profile among the associations it was not yet proposed to, and propose it."""
        records = await uow.catalog.records()
        by_slug = {record.slug: record for record in records}
        tried = {h.association_id for h in await uow.handoffs.of_profile(profile.id)}
        candidates = [a for a in associations_of(records) if by_slug[a.slug].id not in tried]
        this_week = await uow.handoffs.created_counts(*week_window(now))
        waiting = await uow.handoffs.waiting_counts()
        loads = {
            record.slug: AssociationLoad(
                handed_off_this_week=this_week.get(record.id, 0), waiting=waiting.get(record.id, 0)
            )
            for record in records
        }
        answers = answers_from_json(profile.answers)
        result = match(facts_from_answers(profile.role, answers), candidates, loads)
        best = result.best
        if best is None:
            profile.association_slug = None
            profile.status = "waiting"
            await self.alert_admins(
                uow, f"gap:{profile.id}:{len(tried)}", NO_MATCH_ALERT.fmt(gap=result.gap or ""), now
            )
            return result
        record = by_slug[best.association.slug]
        profile.association_slug = record.slug
        profile.status = "matched"
        handoff = uow.handoffs.add(
            Handoff(
                profile_id=profile.id,
                association_id=record.id,
                status=HandoffStatus.PROPOSED,
                created_at=now,
            )
        )
        await uow.flush()
        uow.handoffs.record(handoff, "proposed", now)
        await self._send_to_association(uow, handoff, record, profile, now)
        log.info("handoff %s proposed to %s", handoff.id, record.slug)
        return result

    async def _send_to_association(
        self,
        uow: UnitOfWork,
        handoff: Handoff,
        record: AssociationRecord,
        profile: Profile,
        now: datetime,
    ) -> None:
        coordinators = await uow.coordinators.of_association(record.id)
        for coordinator in coordinators:
            await uow.outbox.enqueue(
                f"handoff:{handoff.id}:{coordinator.id}",
                now,
                chat_id=coordinator.telegram_id,
                person_id=profile.person_id,
                payload={
                    "kind": "handoff",
                    "handoff_id": handoff.id,
                    "coordinator_id": coordinator.id,
                    "text": self._cards.card(coordinator.language, handoff, record, profile),
                    "reply_markup": self._cards.markup(
                        coordinator.language, handoff, coordinator, None
                    ),
                },
            )
        webhook = record.entry.get("handoff", {}).get("webhook_url")
        if webhook:
            await uow.outbox.enqueue(
                f"webhook:{handoff.id}",
                now,
                url=webhook,
                person_id=profile.person_id,
                payload={
                    "kind": "handoff_webhook",
                    "handoff_id": handoff.id,
                    "body": webhook_body(handoff, record, profile),
                },
            )
        if not coordinators and not webhook:
            await self.alert_admins(
                uow,
                f"nobody:{handoff.id}",
                NO_COORDINATOR.fmt(association=record.name, id=handoff.id, slug=record.slug),
                now,
            )

    # --- the coordinators' buttons -------------------------------------------------------

    async def act(
        self,
        uow: UnitOfWork,
        telegram_id: int,
        pressed: ActOnHandoff,
        now: datetime,
    ) -> ActResult:
        handoff = await uow.handoffs.get(pressed.handoff_id)
        if handoff is None:
            return ActResult(TOAST_TOO_LATE)
        record = await uow.session.get(AssociationRecord, handoff.association_id)
        coordinator = await uow.coordinators.find(handoff.association_id, telegram_id)
        if coordinator is not None and not coordinator.active:
            coordinator = None
        # "keep" (cancel a decline) changes nothing: authorised like a decline, then shown.
        action = HandoffAction("decline" if pressed.action == "keep" else pressed.action)
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
                return ActResult(TOAST_NOT_ALLOWED)
            taker = await uow.coordinators.get(handoff.taken_by) if handoff.taken_by else None
            if taker is not None:
                return ActResult(TOAST_ALREADY_TAKEN.fmt(coordinator=taker.first_name))
            return ActResult(TOAST_TOO_LATE)
        if pressed.action == "keep":
            taker = await uow.coordinators.get(handoff.taken_by) if handoff.taken_by else None
            markup = self._cards.markup(coordinator.language, handoff, coordinator, taker)
            return ActResult(TOAST_KEPT, card_markup=markup)
        if action is HandoffAction.DECLINE and pressed.reason is None:
            return ActResult(ASK_REASON, reasons_for=handoff.id)
        target = next_status(handoff.status, action)
        if target is None:
            taker = await uow.coordinators.get(handoff.taken_by) if handoff.taken_by else None
            if taker is not None and taker.id != coordinator.id:
                return ActResult(TOAST_ALREADY_TAKEN.fmt(coordinator=taker.first_name))
            return ActResult(TOAST_TOO_LATE)
        profile = await uow.session.get(Profile, handoff.profile_id)
        assert profile is not None
        self._move(uow, handoff, target, now, coordinator, pressed.reason)
        await self._after_move(uow, handoff, record, profile, now, coordinator)
        log.info("handoff %s %s by coordinator %s", handoff.id, target, coordinator.id)
        if target is HandoffStatus.TAKEN:
            return ActResult(TOAST_TAKEN)
        if target is HandoffStatus.DECLINED:
            return ActResult(TOAST_DECLINED)
        return ActResult(TOAST_DONE)

    def _move(
        self,
        uow: UnitOfWork,
        handoff: Handoff,
        target: HandoffStatus,
        now: datetime,
        coordinator: Coordinator | None = None,
        reason: str | None = None,
        event: str | None = None,
    ) -> None:
        handoff.status = target
        if target is HandoffStatus.DELIVERED and handoff.taken_by is not None:
            # Released: open to every coordinator again, and silence is counted from now.
            handoff.taken_by = None
            handoff.delivered_at = now
            handoff.reminded_at = None
        elif target is HandoffStatus.DELIVERED:
            handoff.delivered_at = now
        elif target is HandoffStatus.TAKEN and coordinator is not None:
            handoff.taken_by = coordinator.id
            handoff.taken_at = now
        elif target is HandoffStatus.CONTACTED:
            handoff.contacted_at = now
        elif target in (HandoffStatus.CLOSED, HandoffStatus.DECLINED, HandoffStatus.EXPIRED):
            handoff.closed_at = now
            if target is HandoffStatus.DECLINED:
                handoff.decline_reason = reason
        uow.handoffs.record(
            handoff, event or str(target), now, coordinator.id if coordinator else None, reason
        )

    async def _after_move(
        self,
        uow: UnitOfWork,
        handoff: Handoff,
        record: AssociationRecord,
        profile: Profile,
        now: datetime,
        actor: Coordinator | None = None,
    ) -> None:
        await self._refresh_copies(uow, handoff, now, actor)
        person = await uow.session.get(Person, profile.person_id)
        if handoff.status == HandoffStatus.TAKEN and person is not None:
            taker = await uow.coordinators.get(handoff.taken_by) if handoff.taken_by else None
            text = PERSON_TAKEN[profile.role].fmt(
                coordinator=taker.first_name if taker else record.name, association=record.name
            )
            key = f"taken:{handoff.id}:{handoff.version}"
            await self._tell_person(uow, key, person, profile, text, now)
        if handoff.status in REROUTING:
            result = await self.route(uow, profile, now)
            if person is None:
                return
            best = result.best
            if best is None:
                text = PERSON_WAITING[profile.role].fmt(old=record.name)
            else:
                text = PERSON_REROUTED[profile.role].fmt(
                    old=record.name, association=best.association.name
                )
            await self._tell_person(uow, f"rerouted:{handoff.id}", person, profile, text, now)

    async def _tell_person(
        self,
        uow: UnitOfWork,
        key: str,
        person: Person,
        profile: Profile,
        text: Text,
        now: datetime,
    ) -> None:
        await uow.outbox.enqueue(
            key,
            now,
            chat_id=person.telegram_id,
            person_id=person.id,
            payload={
                "kind": "person_notice",
                "text": self._t.html(profile.language, text),
            },
        )

    async def _refresh_copies(
        self, uow: UnitOfWork, handoff: Handoff, now: datetime, actor: Coordinator | None = None
    ) -> None:
        """Bring every coordinator's copy of the card up to date with the handoff's status."""
        taker = await uow.coordinators.get(handoff.taken_by) if handoff.taken_by else None
        copies = await uow.handoffs.copies(handoff.id)
        for copy in copies:
            payload = dict(copy.payload)
            coordinator_id = int(payload["coordinator_id"])
            language = str(payload.get("language") or ADMIN_LANGUAGE)
            coordinator = await uow.coordinators.get(coordinator_id)
            if coordinator is not None:
                language = coordinator.language
            text = self._cards.with_status(
                language, str(payload.get("text", "")), handoff, taker, actor, coordinator_id
            )
            markup = self._cards.markup(language, handoff, coordinator, taker)
            if copy.status != "sent":
                # Not delivered yet: deliver the up-to-date card instead of the first one.
                copy.payload = {**payload, "text": text, "reply_markup": markup}
                continue
            # The version tells apart two passes through one status (taken, released, taken).
            key = f"edit:{handoff.id}:{coordinator_id}:{handoff.status}:{handoff.version}"
            await uow.outbox.supersede(f"edit:{handoff.id}:{coordinator_id}:", keep=key)
            erased = handoff.status == HandoffStatus.ERASED
            await uow.outbox.enqueue(
                key,
                now,
                chat_id=copy.chat_id,
                person_id=None if erased else copy.person_id,
                payload={
                    "kind": "handoff_edit",
                    "method": "edit",
                    "handoff_id": handoff.id,
                    "message_id": copy.sent_message_id,
                    "text": text,
                    "reply_markup": markup,
                },
            )

    # --- silence -------------------------------------------------------------------------

    async def run_timers(self, unit_of_work: Callable[[], UnitOfWork], now: datetime) -> int:
        """Remind after 48 h, re-route after 7 days: driven by the database, so restarts lose nothing."""
        handled = 0
        async with unit_of_work() as uow:
            to_check = [
                h.id
                for h in await uow.handoffs.silent_since(
                    now - self._rules.remind_after, reminded=True
                )
            ]
        for handoff_id in to_check:
            for _attempt in range(3):
                try:
                    handled += await self._silence(unit_of_work, handoff_id, now)
                    break
                except StaleDataError:
                    # A coordinator acted at that very moment: read the handoff again.
                    continue
        return handled

    async def _silence(
        self, unit_of_work: Callable[[], UnitOfWork], handoff_id: int, now: datetime
    ) -> int:
        async with unit_of_work() as uow:
            handoff = await uow.handoffs.get(handoff_id)
            if handoff is None:
                return 0
            due = self._rules.due(
                handoff.status,
                handoff.delivered_at or handoff.created_at,
                handoff.reminded_at is not None,
                now,
            )
            if due is None:
                return 0
            record = await uow.session.get(AssociationRecord, handoff.association_id)
            profile = await uow.session.get(Profile, handoff.profile_id)
            assert record is not None
            assert profile is not None
            if due == "remind":
                handoff.reminded_at = now
                uow.handoffs.record(handoff, "reminded", now)
                hours = int(self._rules.remind_after.total_seconds() // 3600)
                reminder = REMINDER.fmt(id=handoff.id, hours=hours)
                await self._tell_coordinators(uow, record.id, f"remind:{handoff.id}", reminder, now)
            else:
                self._move(uow, handoff, HandoffStatus.EXPIRED, now)
                await self._after_move(uow, handoff, record, profile, now)
            log.info("handoff %s: %s", handoff.id, due)
            await uow.commit()
            return 1

    async def _tell_coordinators(
        self, uow: UnitOfWork, association_id: int, key: str, text: Text, now: datetime
    ) -> None:
        """One message to each active coordinator of an association, in their language."""
        for coordinator in await uow.coordinators.of_association(association_id):
            await uow.outbox.enqueue(
                f"{key}:{coordinator.id}",
                now,
                chat_id=coordinator.telegram_id,
                payload={
                    "kind": key.split(":")[0],
                    "text": self._t.html(coordinator.language, text),
                },
            )

    async def on_delivered(self, uow: UnitOfWork, payload: dict[str, Any], now: datetime) -> None:
        """The dispatcher delivered a card or a webhook: the handoff is now delivered."""
        if payload.get("kind") == "erased_card" and payload.get("message_id"):
            # Its person erased their data while it was being sent: scrub it at once.
            await uow.outbox.enqueue(
                f"scrub:{payload['chat_id']}:{payload['message_id']}",
                now,
                chat_id=int(payload["chat_id"]),
                payload={
                    "kind": "handoff_edit",
                    "method": "edit",
                    "message_id": payload["message_id"],
                    "text": self._t.html(
                        ADMIN_LANGUAGE, STATUS_ERASED.fmt(id=payload.get("handoff_id") or "?")
                    ),
                },
            )
            return
        if payload.get("kind") not in ("handoff", "handoff_webhook"):
            return
        handoff = await uow.handoffs.get(int(payload["handoff_id"]))
        if handoff is None:
            return
        if handoff.status not in (HandoffStatus.PROPOSED, HandoffStatus.DELIVERED):
            # The card left while the handoff moved on (taken, declined, erased): it went out
            # with old buttons or with data since erased, so bring it up to date at once.
            await self._refresh_copies(uow, handoff, now)
        if handoff.delivered_at is not None:
            return
        if next_status(handoff.status, HandoffAction.DELIVER):
            self._move(uow, handoff, HandoffStatus.DELIVERED, now)
        else:
            # Taken before the dispatcher recorded the delivery: keep the time, not the status.
            handoff.delivered_at = now
            uow.handoffs.record(handoff, "delivered", now)

    # --- erasure -------------------------------------------------------------------------

    async def forget(self, uow: UnitOfWork, person: Person, now: datetime) -> None:
        """Before a person's data goes: scrub every card that showed it, tell each association
        (by Telegram and by webhook), drop queued messages; a coordinator's own role goes too."""
        profiles = await uow.profiles.for_person(person)
        for handoff in await uow.handoffs.of_profiles([p.id for p in profiles]):
            record = await uow.session.get(AssociationRecord, handoff.association_id)
            if record is None or next_status(handoff.status, HandoffAction.ERASE) is None:
                continue
            self._move(uow, handoff, HandoffStatus.ERASED, now)
            await self._refresh_copies(uow, handoff, now)
            notice = ERASED_NOTICE.fmt(id=handoff.id)
            await self._tell_coordinators(uow, record.id, f"erased:{handoff.id}", notice, now)
            webhook = record.entry.get("handoff", {}).get("webhook_url")
            if webhook:
                await uow.outbox.enqueue(
                    f"webhook-erased:{handoff.id}",
                    now,
                    url=webhook,
                    payload={
                        "kind": "erasure_webhook",
                        "handoff_id": handoff.id,
                        "body": {
                            "event": "handoff.erased",
                            "handoff_id": handoff.id,
                            "association": record.slug,
                        },
                    },
                )
        await uow.outbox.forget_person(person.id)
        for coordinator in await uow.coordinators.of_person(person.telegram_id, active_only=False):
            await self.leave(uow, coordinator, now)
            await uow.coordinators.delete(coordinator)
        await uow.invites.forget_user(person.telegram_id)

    async def leave(self, uow: UnitOfWork, coordinator: Coordinator, now: datetime) -> int:
        """A coordinator stops: no more cards or reminders, and what they took goes back to
        their colleagues. Returns how many contacts were given back."""
        coordinator.active = False
        coordinator.removed_at = now
        await uow.outbox.drop_pending_for_chat(coordinator.telegram_id)
        return await self._release_taken(uow, coordinator, now)

    async def _release_taken(self, uow: UnitOfWork, coordinator: Coordinator, now: datetime) -> int:
        released = 0
        for handoff in await uow.handoffs.taken_by(coordinator.id):
            if next_status(handoff.status, HandoffAction.RELEASE) is None:
                continue
            self._move(uow, handoff, HandoffStatus.DELIVERED, now, coordinator, event="released")
            await self._refresh_copies(uow, handoff, now)
            released += 1
        return released

    # --- coordinators --------------------------------------------------------------------

    async def invite(
        self, uow: UnitOfWork, record: AssociationRecord, now: datetime, valid_for: timedelta
    ) -> str:
        token = new_invite_token()
        uow.invites.add(
            Invite(
                association_id=record.id,
                token_hash=hash_token(token),
                created_at=now,
                expires_at=now + valid_for,
            )
        )
        return token

    async def usable_invite(
        self, uow: UnitOfWork, token: str, now: datetime
    ) -> tuple[Invite, AssociationRecord] | None:
        invite = await uow.invites.by_hash(hash_token(token))
        if invite is None or invite.used_at is not None or invite.expires_at <= now:
            return None
        record = await uow.session.get(AssociationRecord, invite.association_id)
        return (invite, record) if record is not None else None

    async def join(
        self,
        uow: UnitOfWork,
        token: str,
        telegram_id: int,
        first_name: str,
        language: str,
        now: datetime,
    ) -> AssociationRecord | None:
        found = await self.usable_invite(uow, token, now)
        if found is None:
            return None
        invite, record = found
        invite.used_at = now
        invite.used_by = telegram_id
        coordinator = await uow.coordinators.find(record.id, telegram_id)
        if coordinator is None:
            uow.coordinators.add(
                Coordinator(
                    association_id=record.id,
                    telegram_id=telegram_id,
                    first_name=first_name[:64] or "?",
                    language=language,
                    active=True,
                    joined_at=now,
                )
            )
        else:
            coordinator.active = True
            coordinator.removed_at = None
            coordinator.first_name = first_name[:64] or coordinator.first_name
        log.info("a coordinator joined %s", record.slug)
        return record

    async def queue(self, uow: UnitOfWork, telegram_id: int, language: str) -> list[Text] | None:
        roles = await uow.coordinators.of_person(telegram_id)
        if not roles:
            return None
        texts: list[Text] = []
        for role in roles:
            record = await uow.session.get(AssociationRecord, role.association_id)
            if record is None:
                continue
            waiting = await uow.handoffs.queue(record.id)
            if not waiting:
                texts.append(QUEUE_EMPTY.fmt(association=record.name))
                continue
            lines: list[Text | str] = []
            for handoff, profile in waiting:
                taker = await uow.coordinators.get(handoff.taken_by) if handoff.taken_by else None
                status = QUEUE_STATUS[handoff.status]
                if taker is not None:
                    status = status.fmt(coordinator=taker.first_name)
                lines.append(
                    QUEUE_LINE.fmt(
                        id=handoff.id,
                        name=str(profile.answers.get("first_name", "?")),
                        role=ROLE_LINES[profile.role],
                        department=profile.department or "?",
                        date=When(handoff.created_at),
                        status=status,
                    )
                )
            title = QUEUE_TITLE.fmt(association=record.name, count=len(waiting))
            texts.append(Text("%(title)s\n%(lines)s").fmt(title=title, lines=Lines(tuple(lines))))
        return texts

    async def set_paused(
        self, uow: UnitOfWork, telegram_id: int, paused: bool
    ) -> list[Text] | None:
        roles = await uow.coordinators.of_person(telegram_id)
        if not roles:
            return None
        texts = []
        for role in roles:
            record = await uow.session.get(AssociationRecord, role.association_id)
            if record is None:
                continue
            record.paused = paused
            log.info("%s %s by a coordinator", record.slug, "paused" if paused else "resumed")
            texts.append((PAUSED if paused else RESUMED).fmt(association=record.name))
        return texts

    async def retry_waiting_if_due(
        self, unit_of_work: Callable[[], UnitOfWork], now: datetime
    ) -> int:
        """Every quarter of an hour at most: places do not open by the minute."""
        if self._waiting_checked is not None and now - self._waiting_checked < WAITING_EVERY:
            return 0
        self._waiting_checked = now
        return await self.retry_waiting(unit_of_work, now)

    async def retry_waiting(self, unit_of_work: Callable[[], UnitOfWork], now: datetime) -> int:
        """The waiting list: profiles no association could take get another chance, now that
        capacity may have freed up, an association resumed or the catalogue grew."""
        async with unit_of_work() as uow:
            waiting = await uow.profiles.waiting_ids(WAITING_BATCH)
        found = 0
        for profile_id in waiting:
            async with unit_of_work() as uow:
                profile = await uow.session.get(Profile, profile_id)
                if profile is None or profile.status != "waiting":
                    continue
                best = (await self.route(uow, profile, now)).best
                person = await uow.session.get(Person, profile.person_id)
                if best is None or person is None:
                    continue  # still nothing: leave without committing
                text = PERSON_FOUND[profile.role].fmt(association=best.association.name)
                key = f"found:{profile.id}:{best.association.slug}"
                await self._tell_person(uow, key, person, profile, text, now)
                await uow.commit()
                found += 1
        if found:
            log.info("waiting list: %s profiles found an association", found)
        return found

    async def alert_admins(self, uow: UnitOfWork, key: str, text: Text, now: datetime) -> None:
        rendered = self._t.html(ADMIN_LANGUAGE, text)
        for admin in self._admins:
            await uow.outbox.enqueue(
                f"{key}:{admin}",
                now,
                chat_id=admin,
                payload={"kind": "admin_alert", "text": rendered},
            )


def webhook_body(handoff: Handoff, record: AssociationRecord, profile: Profile) -> dict[str, Any]:
    """The JSON an association's CRM receives (documented in the README)."""
    answers = profile.answers
    body: dict[str, Any] = {
        "event": "handoff.proposed",
        "handoff_id": handoff.id,
        "association": record.slug,
        "created_at": handoff.created_at.isoformat(),
        "profile": {
            "role": profile.role,
            "language": profile.language,
            "department": profile.department,
            "source": profile.source,
            "submitted_at": profile.submitted_at.isoformat(),
            "consent": {
                "text_version": CONSENT_VERSION,
                "given_at": profile.submitted_at.isoformat(),
            },
            "answers": {k: v for k, v in answers.items() if k not in ("consent", "parent_consent")},
            "parental_consent": answers.get("parent_consent") is True,
        },
    }
    return body
