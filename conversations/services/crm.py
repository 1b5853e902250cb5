"""An association's CRM acts on its handoffs over signed HTTP requests: taken, contacted,
declined(reason), closed, under the same rules as the coordinators' buttons.

The HTTP edge (bot/webhooks.py) only reads the request and writes the answer; checking the
signature, the replay window and the body, and moving the handoff, happen here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from conversations.handoff import (
    DECLINE_REASONS,
    HandoffAction,
    HandoffStatus,
    may_act,
    next_status,
)
from conversations.ports import Conflict, UnitOfWork, UnitOfWorkFactory
from conversations.services import handoffs
from conversations.services.policy import Policy

log = logging.getLogger(__name__)

# A signed request older (or further ahead) than this is refused: a captured request cannot be
# replayed later, and a retry within the window changes nothing twice anyway.
REPLAY_WINDOW = timedelta(minutes=5)
# {"handoff_id": …, "verb": "declined", "reason": "unreachable"} is well under 100 bytes.
MAX_BODY = 4096
# Recorded in handoff_events.detail: who moved the handoff, since no coordinator did.
BY_CRM = "crm"


class CrmVerb(StrEnum):
    TAKEN = "taken"
    CONTACTED = "contacted"
    DECLINED = "declined"
    CLOSED = "closed"


_ACTIONS = {
    CrmVerb.TAKEN: HandoffAction.TAKE,
    CrmVerb.CONTACTED: HandoffAction.CONTACTED,
    CrmVerb.DECLINED: HandoffAction.DECLINE,
    CrmVerb.CLOSED: HandoffAction.CLOSE,
}
_REACHED = {
    CrmVerb.TAKEN: HandoffStatus.TAKEN,
    CrmVerb.CONTACTED: HandoffStatus.CONTACTED,
    CrmVerb.DECLINED: HandoffStatus.DECLINED,
    CrmVerb.CLOSED: HandoffStatus.CLOSED,
}
REASONS = tuple(choice.value for choice in DECLINE_REASONS)


class Outcome(StrEnum):
    DONE = "done"
    # Already so (a retried request): nothing changed.
    UNCHANGED = "unchanged"
    # Unsigned, wrongly signed, or for an association without a webhook secret.
    UNSIGNED = "unsigned"
    # Signed, but outside the replay window.
    STALE = "stale"
    MALFORMED = "malformed"
    # No such handoff, or another association's: the same answer, so ids cannot be probed.
    NOT_FOUND = "not_found"
    # The handoff has moved on: this verb makes no sense from where it stands.
    TOO_LATE = "too_late"
    # A coordinator moved it at that very moment, three times over: the CRM may retry.
    BUSY = "busy"


@dataclass(frozen=True)
class CrmRequest:
    """A request as it came in: the URL's association and handoff, two headers, the raw body."""

    association: str
    handoff_id: int
    timestamp: str
    signature: str
    body: bytes


@dataclass(frozen=True)
class CrmAnswer:
    outcome: Outcome
    # Where the handoff stands now, when the request was signed and about one of its handoffs.
    status: str | None = None
    error: str | None = None
    # Messages queued for the relay: the edge wakes it when any.
    queued: int = 0


@dataclass(frozen=True)
class _Command:
    verb: CrmVerb
    reason: str | None


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=` and the hex HMAC-SHA256, with the association's secret, of "<timestamp>.<body>":
    the timestamp is signed too, or the replay window could be moved by anyone."""
    signed = timestamp.encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


async def receive(
    unit_of_work: UnitOfWorkFactory, request: CrmRequest, now: datetime, policy: Policy
) -> CrmAnswer:
    """Check the request and apply it in one transaction; read again when a coordinator's press
    changed the handoff at the same moment."""
    for _attempt in range(3):
        try:
            async with unit_of_work() as uow:
                answer = await _receive(uow, request, now, policy)
                if answer.outcome is Outcome.DONE:
                    await uow.commit()
                    return CrmAnswer(answer.outcome, answer.status, queued=uow.outbox.enqueued)
                return answer
        except Conflict:
            continue
    return CrmAnswer(Outcome.BUSY, error="the handoff changed meanwhile; retry")


async def _receive(
    uow: UnitOfWork, request: CrmRequest, now: datetime, policy: Policy
) -> CrmAnswer:
    record = await uow.catalog.by_slug(request.association)
    secret = record.entry.get("handoff", {}).get("webhook_secret") if record else None
    if record is None or not secret or not _signed(str(secret), request):
        # A known slug only (the URL's is anyone's text), never the body, which may name the person.
        log.warning("CRM request for %s refused: bad signature", record.slug if record else "?")
        return CrmAnswer(Outcome.UNSIGNED, error="bad or missing signature")
    if not _fresh(request.timestamp, now):
        log.warning("CRM request for %s refused: outside the replay window", record.slug)
        return CrmAnswer(Outcome.STALE, error="timestamp outside the 5-minute window")
    command = _command(request)
    if isinstance(command, str):
        return CrmAnswer(Outcome.MALFORMED, error=command)
    handoff = await uow.handoffs.get(request.handoff_id)
    if handoff is None or handoff.association_id != record.id:
        log.warning("CRM of %s refused: handoff %s is not its own", record.slug, request.handoff_id)
        return CrmAnswer(Outcome.NOT_FOUND, error="no such handoff for this association")
    action = _ACTIONS[command.verb]
    # The CRM speaks for the whole association: it may act on what one of its coordinators took.
    allowed = may_act(action, handoff.status, presser_is_coordinator=True, presser_took_it=True)
    target = next_status(handoff.status, action) if allowed else None
    if target is None:
        if handoff.status == _REACHED[command.verb]:
            return CrmAnswer(Outcome.UNCHANGED, handoff.status)
        return CrmAnswer(Outcome.TOO_LATE, handoff.status, error=f"the handoff is {handoff.status}")
    profile = await uow.profiles.get(handoff.profile_id)
    assert profile is not None
    detail = f"{BY_CRM}:{command.reason}" if command.reason else BY_CRM
    await handoffs.move(
        uow, handoff, record, profile, target, now, policy, command.reason, by=BY_CRM, detail=detail
    )
    log.info("handoff %s %s by the CRM of %s", handoff.id, target, record.slug)
    return CrmAnswer(Outcome.DONE, str(target))


def _signed(secret: str, request: CrmRequest) -> bool:
    expected = signature(secret, request.timestamp, request.body)
    given = request.signature.encode("utf-8", "surrogateescape")
    return hmac.compare_digest(given, expected.encode())


def _fresh(timestamp: str, now: datetime) -> bool:
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        return False
    return abs(now.timestamp() - int(timestamp)) <= REPLAY_WINDOW.total_seconds()


def _command(request: CrmRequest) -> _Command | str:
    """The verb and reason of a signed body, or why it is refused (never its content)."""
    if len(request.body) > MAX_BODY:
        return f"body over {MAX_BODY} bytes"
    try:
        data: Any = json.loads(request.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return "body is not JSON"
    if not isinstance(data, dict):
        return "body is not a JSON object"
    handoff_id = data.get("handoff_id")
    # In the signed body as in the URL: a request signed for one handoff is good for no other.
    if type(handoff_id) is not int or handoff_id != request.handoff_id:
        return "handoff_id missing or not the URL's"
    verb = data.get("verb")
    if not isinstance(verb, str) or verb not in {v.value for v in CrmVerb}:
        return f"verb must be one of {', '.join(CrmVerb)}"
    reason = data.get("reason")
    if verb == CrmVerb.DECLINED:
        if not isinstance(reason, str) or reason not in REASONS:
            return f"declined needs a reason among {', '.join(REASONS)}"
    elif reason is not None:
        return f"only declined takes a reason, not {verb}"
    return _Command(CrmVerb(verb), reason)
