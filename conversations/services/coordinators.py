"""Coordinators: invited by the Collectif, they join in the chat, see their queue, pause, or leave.

An invite is single-use and expiring, and only its SHA-256 is stored: a leaked database gives
nobody a way in.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from conversations.entities import AssociationRecord, Coordinator, Invite
from conversations.handoff import HandoffStatus
from conversations.ports import UnitOfWork
from conversations.services import access
from conversations.services.access import Staff, hash_token
from conversations.services.cards import ROLE_LINES
from conversations.services.handoffs import release_taken
from conversations.services.policy import Policy
from conversations.text import Lines, Text, When, _

log = logging.getLogger(__name__)

INVITE_PREFIX = "join-"
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
    HandoffStatus.PROPOSED: _("à prendre"),
    HandoffStatus.DELIVERED: _("à prendre"),
    HandoffStatus.TAKEN: _("pris par %(coordinator)s"),
}
PAUSED = _(
    "%(association)s est en pause : plus aucun nouveau contact ne lui sera proposé. /resume pour "
    "reprendre."
)
RESUMED = _("%(association)s reçoit de nouveau des contacts.")


class UnknownAssociation(LookupError):
    """No association has this slug."""


class NotACoordinator(LookupError):
    """This account is not an active coordinator of that association."""


@dataclass(frozen=True)
class Invitation:
    token: str
    association: str
    expires_at: datetime


def new_invite_token() -> str:
    # 128 random bits; with the prefix it stays within Telegram's 64-character start payload.
    return INVITE_PREFIX + secrets.token_urlsafe(16)


async def invite(uow: UnitOfWork, slug: str, now: datetime, valid_for: timedelta) -> Invitation:
    """A new single-use invite to coordinate the association `slug`; raises UnknownAssociation."""
    record = await uow.catalog.by_slug(slug)
    if record is None:
        raise UnknownAssociation(slug)
    token = new_invite_token()
    uow.invites.add(
        Invite(
            association_id=record.id,
            token_hash=hash_token(token),
            created_at=now,
            expires_at=now + valid_for,
        )
    )
    return Invitation(token, record.name, now + valid_for)


async def usable_invite(
    uow: UnitOfWork, token: str, now: datetime
) -> tuple[Invite, AssociationRecord] | None:
    invite = await uow.invites.by_hash(hash_token(token))
    if invite is None or invite.used_at is not None or invite.expires_at <= now:
        return None
    record = await uow.catalog.get(invite.association_id)
    return (invite, record) if record is not None else None


async def join(
    uow: UnitOfWork,
    token: str,
    telegram_id: int,
    first_name: str,
    language: str,
    now: datetime,
) -> AssociationRecord | None:
    """The invite is used up and its holder coordinates the association; None if it is not valid."""
    found = await usable_invite(uow, token, now)
    if found is None:
        return None
    invitation, record = found
    invitation.used_at = now
    invitation.used_by = telegram_id
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


async def leave(uow: UnitOfWork, coordinator: Coordinator, now: datetime, policy: Policy) -> int:
    """A coordinator stops: no more cards or reminders, and what they took goes back to their
    colleagues. Returns how many contacts were given back."""
    coordinator.active = False
    coordinator.removed_at = now
    await uow.outbox.drop_pending_for_chat(coordinator.telegram_id)
    return await release_taken(uow, coordinator, now, policy)


async def remove(
    uow: UnitOfWork, slug: str, telegram_id: int, now: datetime, policy: Policy
) -> int:
    """The Collectif removes a coordinator; raises NotACoordinator. Returns the contacts released."""
    record = await uow.catalog.by_slug(slug)
    coordinator = await uow.coordinators.find(record.id, telegram_id) if record else None
    if coordinator is None or not coordinator.active:
        raise NotACoordinator(telegram_id)
    return await leave(uow, coordinator, now, policy)


async def queue(uow: UnitOfWork, telegram_id: int) -> list[Text] | None:
    """What waits for each association of this coordinator, oldest first; None if not one."""
    roles = await uow.coordinators.of_person(telegram_id)
    if not roles:
        return None
    texts: list[Text] = []
    for role in roles:
        record = await uow.catalog.get(role.association_id)
        if record is None:
            continue
        waiting = await uow.handoffs.queue(record.id)
        if not waiting:
            texts.append(QUEUE_EMPTY.fmt(association=record.name))
            continue
        lines: list[Text | str] = []
        for handoff, profile in waiting:
            taker = await uow.coordinators.get(handoff.taken_by) if handoff.taken_by else None
            status = QUEUE_STATUS[HandoffStatus(handoff.status)]
            if taker is not None:
                status = status.fmt(coordinator=taker.first_name)
            lines.append(
                QUEUE_LINE.fmt(
                    id=handoff.id,
                    name=str(profile.answers.get("first_name", "?")),
                    role=ROLE_LINES[profile.flow],
                    department=profile.department or "?",
                    date=When(handoff.created_at),
                    status=status,
                )
            )
        title = QUEUE_TITLE.fmt(association=record.name, count=len(waiting))
        texts.append(Text("%(title)s\n%(lines)s").fmt(title=title, lines=Lines(tuple(lines))))
    return texts


async def set_paused(uow: UnitOfWork, telegram_id: int, paused: bool) -> list[Text] | None:
    """/pause and /resume: every association of this coordinator; None if not one."""
    roles = await uow.coordinators.of_person(telegram_id)
    if not roles:
        return None
    texts = []
    for role in roles:
        record = await uow.catalog.get(role.association_id)
        if record is None:
            continue
        record.paused = paused
        log.info("%s %s by a coordinator", record.slug, "paused" if paused else "resumed")
        texts.append((PAUSED if paused else RESUMED).fmt(association=record.name))
    return texts


# --- from the staff dashboard --------------------------------------------------------------------

# An invite made on the dashboard is printed or forwarded: it works for a week, once.
DASHBOARD_INVITE_VALID_FOR = timedelta(days=7)


async def listing_for(uow: UnitOfWork, who: Staff) -> list[tuple[Coordinator, AssociationRecord]]:
    """The coordinators (active or not) of the associations this account may see."""
    records = {record.id: record for record in await uow.catalog.records()}
    return [
        (coordinator, records[coordinator.association_id])
        for coordinator, _slug in await uow.coordinators.listing()
        if coordinator.association_id in records and who.sees(coordinator.association_id)
    ]


async def invite_for(
    uow: UnitOfWork, who: Staff, association_id: int, now: datetime
) -> Invitation | None:
    """A new invite to an association this account may see; None when it may not."""
    record = await uow.catalog.get(association_id)
    if record is None or not who.sees(association_id):
        return None
    invitation = await invite(uow, record.slug, now, DASHBOARD_INVITE_VALID_FOR)
    access.record(uow, who, "invite", record.slug, now)
    return invitation


async def remove_by_admin(
    uow: UnitOfWork, who: Staff, coordinator_id: int, now: datetime, policy: Policy
) -> AssociationRecord | None:
    """An admin removes a coordinator: no more cards, their contacts go back to colleagues."""
    coordinator = await uow.coordinators.get(coordinator_id)
    if not who.admin or coordinator is None or not coordinator.active:
        return None
    record = await uow.catalog.get(coordinator.association_id)
    if record is None:
        return None
    await leave(uow, coordinator, now, policy)
    access.record(uow, who, "remove_coordinator", f"{record.slug} #{coordinator.id}", now)
    return record
