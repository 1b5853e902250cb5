"""Handoff rules: which transitions exist, who may make them, and when silence calls for action.

proposed → delivered → taken → contacted → closed; declined(reason) and expired (silence) end a
handoff and send the profile on to the next association. Pure: the clock is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from conversations.model import Choice
from conversations.text import _


class HandoffStatus(StrEnum):
    PROPOSED = "proposed"
    DELIVERED = "delivered"
    TAKEN = "taken"
    CONTACTED = "contacted"
    CLOSED = "closed"
    DECLINED = "declined"
    EXPIRED = "expired"
    # The person erased their data: nothing more happens to this handoff.
    ERASED = "erased"
    # The person replaced this request with a new one: the association drops it.
    WITHDRAWN = "withdrawn"


class HandoffAction(StrEnum):
    DELIVER = "deliver"
    TAKE = "take"
    DECLINE = "decline"
    CONTACTED = "contacted"
    CLOSE = "close"
    EXPIRE = "expire"
    ERASE = "erase"
    # The taker left the association: the contact is open to its other coordinators again.
    RELEASE = "release"
    # The person signed up again and chose to replace this request.
    WITHDRAW = "withdraw"


class HandoffVerb(StrEnum):
    """What a coordinator's button on a contact card asks for."""

    TAKE = "take"
    DECLINE = "decline"
    CONTACTED = "contacted"
    CLOSE = "close"
    # "Annuler" under the decline reasons: the card's own buttons come back, nothing changes.
    KEEP = "keep"


S = HandoffStatus
# Nobody has taken these yet: every coordinator of the association may.
OPEN = frozenset({S.PROPOSED, S.DELIVERED})
# What an association's /queue lists: not taken yet, or taken but not contacted.
IN_QUEUE = OPEN | {S.TAKEN}
_TRANSITIONS: dict[HandoffAction, tuple[frozenset[HandoffStatus], HandoffStatus]] = {
    HandoffAction.DELIVER: (frozenset({S.PROPOSED}), S.DELIVERED),
    HandoffAction.TAKE: (OPEN, S.TAKEN),
    HandoffAction.DECLINE: (IN_QUEUE, S.DECLINED),
    HandoffAction.CONTACTED: (frozenset({S.TAKEN}), S.CONTACTED),
    HandoffAction.CLOSE: (frozenset({S.TAKEN, S.CONTACTED}), S.CLOSED),
    HandoffAction.EXPIRE: (OPEN, S.EXPIRED),
    # Whatever happened to it, an erased person's contact is scrubbed everywhere.
    HandoffAction.ERASE: (frozenset(S) - {S.ERASED}, S.ERASED),
    HandoffAction.RELEASE: (frozenset({S.TAKEN, S.CONTACTED}), S.DELIVERED),
    HandoffAction.WITHDRAW: (IN_QUEUE | {S.CONTACTED}, S.WITHDRAWN),
}
# A request still in an association's hands: a second sign-up asks to replace it or keep it.
OPEN_REQUEST = IN_QUEUE | {S.CONTACTED}
# After these the profile needs another association.
REROUTING = frozenset({S.DECLINED, S.EXPIRED})
# A coordinator may press these; the others happen by themselves.
BY_COORDINATOR = frozenset(
    {HandoffAction.TAKE, HandoffAction.DECLINE, HandoffAction.CONTACTED, HandoffAction.CLOSE}
)

DECLINE_REASONS = (
    Choice("full", _("Complet")),
    Choice("scope", _("Hors de notre champ")),
    Choice("unreachable", _("Injoignable")),
)


def next_status(current: str, action: HandoffAction) -> HandoffStatus | None:
    """The status after `action`, or None when the action makes no sense now (a double tap)."""
    allowed, target = _TRANSITIONS[action]
    try:
        status = HandoffStatus(current)
    except ValueError:
        return None
    return target if status in allowed else None


def may_act(
    action: HandoffAction,
    status: str,
    presser_is_coordinator: bool,
    presser_took_it: bool,
) -> bool:
    """Coordinators of the handoff's association only; once taken, only the one who took it."""
    if action not in BY_COORDINATOR or not presser_is_coordinator:
        return False
    return presser_took_it or status not in (S.TAKEN, S.CONTACTED)


@dataclass(frozen=True)
class SilenceRules:
    remind_after: timedelta = timedelta(hours=48)
    reroute_after: timedelta = timedelta(days=7)

    def due(self, status: str, since: datetime, reminded: bool, now: datetime) -> str | None:
        """What silence calls for ("reroute", "remind" or None) on a handoff nobody took, silent
        `since` then: its delivery, or its release by a coordinator who left."""
        if status not in OPEN:
            return None
        waited = now - since
        if waited >= self.reroute_after:
            return "reroute"
        if waited >= self.remind_after and not reminded:
            return "remind"
        return None
