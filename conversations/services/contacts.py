"""The dashboard's contacts page: a coordinator's queue with the card's own buttons, and the
admins' view of every association's queue, pseudonymised (no name, no contact, no answer).

A press on the page goes through `handoffs.act`, the use-case behind the Telegram buttons, with
the signed-in account's Telegram id: the same rules authorise it, and the same messages follow
(the person told, the other coordinators' cards edited).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from conversations.entities import Coordinator
from conversations.handoff import DECLINE_REASONS, IN_QUEUE, HandoffStatus, HandoffVerb
from conversations.ports import CardButton, UnitOfWork
from conversations.services import access, cards, handoffs
from conversations.services.access import Staff
from conversations.services.actions import ActOnHandoff
from conversations.services.policy import Policy
from conversations.text import Text

# What the page lists: the queue, plus the contacts made but not closed yet (to close them).
SHOWN = tuple(sorted({*IN_QUEUE, HandoffStatus.CONTACTED}))


@dataclass(frozen=True)
class ContactRow:
    handoff_id: int
    association: str
    role: str
    department: str | None
    status: str
    created_at: datetime
    taker: str | None
    # For the association's coordinators only: the card as they read it in Telegram, and the
    # buttons they may press now. None and () on an admin's pseudonymised row.
    card: Text | None = None
    buttons: tuple[CardButton, ...] = ()


async def queue(uow: UnitOfWork, who: Staff) -> list[ContactRow]:
    """The coordinator's own associations' contacts, in full; everything, pseudonymised, for an
    admin who coordinates nothing."""
    mine = sorted(who.associations)
    found = await uow.handoffs.open_for(mine if mine or not who.admin else None, SHOWN)
    records = {record.id: record for record in await uow.catalog.records()}
    roles = {
        role.association_id: role for role in await uow.coordinators.of_person(who.telegram_id)
    }
    takers: dict[int, Coordinator] = {}
    for association_id in {h.association_id for h, _ in found}:
        for coordinator in await uow.coordinators.of_association(association_id):
            takers[coordinator.id] = coordinator
    rows = []
    for handoff, profile in found:
        record = records.get(handoff.association_id)
        if record is None:
            continue
        taker = takers.get(handoff.taken_by) if handoff.taken_by else None
        mine_row = handoff.association_id in roles
        consents = await uow.profiles.consents_of(profile.id) if mine_row else []
        rows.append(
            ContactRow(
                handoff_id=handoff.id,
                association=record.name,
                role=profile.role,
                department=profile.department,
                status=handoff.status,
                created_at=handoff.created_at,
                taker=taker.first_name if taker else None,
                card=cards.body(handoff, record, profile, consents) if mine_row else None,
                buttons=(
                    cards.buttons(handoff, roles[handoff.association_id], taker) if mine_row else ()
                ),
            )
        )
    return rows


async def act(
    uow: UnitOfWork,
    who: Staff,
    handoff_id: int,
    verb: HandoffVerb,
    reason: str | None,
    now: datetime,
    policy: Policy,
) -> Text:
    """A press on the page: what the Telegram button would do, then the line of the audit log.
    Returns the toast the Telegram button would have shown."""
    reasons = {choice.value for choice in DECLINE_REASONS}
    declining = verb is HandoffVerb.DECLINE
    if (
        verb is HandoffVerb.KEEP
        or (declining and reason not in reasons)
        or (reason and not declining)
    ):
        # The page always sends a decline with its reason; anything else is a forged form.
        return handoffs.TOAST_NOT_ALLOWED
    pressed = await handoffs.act(
        uow, who.telegram_id, ActOnHandoff(handoff_id, verb, reason), now, policy
    )
    if pressed.toast in (handoffs.TOAST_TAKEN, handoffs.TOAST_DONE, handoffs.TOAST_DECLINED):
        access.record(uow, who, f"handoff_{verb}", f"handoff {handoff_id}", now, reason)
    return pressed.toast
