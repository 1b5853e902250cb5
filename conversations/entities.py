"""What the bot keeps between two updates: plain classes that `storage` maps onto its tables.

The service layer reads and changes these objects inside a unit of work; storage persists the
changes at commit (cosmicpython's imperative mapping), so no SQLAlchemy type leaks into the core.
`eq=False`: two loaded rows are the same entity when they are the same object, as the ORM expects.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from conversations.model import Answer, ConversationState, Status


class ProfileStatus(StrEnum):
    # Handed off to an association (whatever became of the handoff since).
    MATCHED = "matched"
    # No association fits yet: on the waiting list, matched again every quarter of an hour.
    WAITING = "waiting"
    # Replaced by a newer sign-up of the same person and role.
    WITHDRAWN = "withdrawn"
    # A young person under 15 filled it in alone: it waits for a parent's confirmation.
    AWAITING_PARENT = "awaiting_parent"
    # The parent refused, or never answered the link: it went nowhere.
    NOT_CONFIRMED = "not_confirmed"


class ConsentKind(StrEnum):
    CONTACT = "contact"
    # A parent's agreement for an under-15 (Loi Informatique et Libertés, art. 45).
    PARENTAL = "parental"


class ConsentMethod(StrEnum):
    """How a consent was given: a child cannot give a parent's by pressing a button."""

    # The person in the chat, for themselves (or a parent filling in for their child).
    IN_CHAT = "in_chat"
    # A parent, from their own Telegram account, through the link their child forwarded.
    PARENT_ACCOUNT = "parent_account"
    # A professional says the parent agrees: the association checks with the parent first.
    ATTESTED = "attested"


class Milestone(StrEnum):
    """Anonymous funnel events: where people go and where they give up."""

    STARTED = "started"
    # A step was shown to a journey: the first one at the start, then each new step asked
    # (after an answer, Back or an edit); not the summary, not a step asked again.
    REACHED = "reached"
    # Counted once, when a step gets its first answer.
    ANSWERED = "answered"
    # An answer refused, and the same step asked again with the reason.
    INVALID = "invalid"
    # "Retour" pressed, recorded with the step the person went back from.
    BACK = "back"
    EXITED = "exited"
    COMPLETED = "completed"
    NO_MATCH = "no_match"
    RESTARTED = "restarted"
    CANCELLED = "cancelled"


def answers_to_json(answers: Mapping[str, Answer]) -> dict[str, Any]:
    return {
        key: list(value) if isinstance(value, tuple) else value for key, value in answers.items()
    }


def answers_from_json(stored: Mapping[str, Any]) -> dict[str, Answer]:
    return {
        key: tuple(value) if isinstance(value, list) else value for key, value in stored.items()
    }


# When a person was last seen is kept to the hour: retention counts in days, and a write on every
# answer would cost the hot path an UPDATE for nothing.
LAST_SEEN_PRECISION = timedelta(hours=1)


@dataclass(eq=False, kw_only=True)
class Person:
    """A Telegram account that talked to the bot; personal answers live in its conversations."""

    telegram_id: int
    created_at: datetime
    last_seen_at: datetime
    # Chosen with /language; None means "follow Telegram's language_code".
    language: str | None = None
    telegram_language: str | None = None
    # The last /start payload (a campaign, a school, a partner site), copied onto the next flow.
    source: str | None = None
    # "tu" or "vous", from the questionnaire chosen; None before any (then "vous").
    address: str | None = None
    # The person blocked the bot: nothing is sent to them until they unblock it.
    blocked_at: datetime | None = None
    id: int = field(default=None)  # type: ignore[assignment]  # set by storage on insert


@dataclass(eq=False, kw_only=True)
class Conversation:
    """A person's progress through one flow; its `version` stops two processes advancing it twice."""

    person_id: int
    chat_id: int
    flow: str
    started_at: datetime
    updated_at: datetime
    status: str = Status.ACTIVE
    step: str | None = None
    answers: dict[str, Any] = field(default_factory=dict)
    draft: dict[str, Any] = field(default_factory=dict)
    editing: bool = False
    source: str | None = None
    # Random, copied onto the funnel events: they outlive the conversation and name no person.
    # (Loaded rows keep what is stored: the ORM does not call __init__.)
    journey: str | None = field(default_factory=lambda: secrets.token_hex(8))
    # The one reminder of a questionnaire left half-way, sent then.
    nudged_at: datetime | None = None
    id: int = field(default=None)  # type: ignore[assignment]
    version: int | None = None

    def state(self) -> ConversationState:
        return ConversationState(
            flow=self.flow,
            step=self.step,
            answers=answers_from_json(self.answers),
            status=Status(self.status),
            draft=tuple(self.draft.get("selected", ())),
            editing=self.editing,
        )

    def save(self, state: ConversationState, now: datetime) -> None:
        self.flow = state.flow
        self.step = state.step
        self.answers = answers_to_json(state.answers)
        self.draft = {"selected": list(state.draft)}
        self.editing = state.editing
        self.status = state.status
        self.updated_at = now


@dataclass(eq=False, kw_only=True)
class Profile:
    """The answers a person confirmed at the end of a flow."""

    person_id: int
    conversation_id: int
    role: str
    answers: dict[str, Any]
    # The questionnaire it came from (a role has one or two: "mentee" and "referral").
    flow: str
    language: str
    submitted_at: datetime
    source: str | None = None
    department: str | None = None
    # The ranked associations and their reasons, kept as they were explained to the person.
    match: dict[str, Any] | None = None
    # The association the profile went to; None while it waits for one.
    association_slug: str | None = None
    status: str = ProfileStatus.MATCHED
    id: int = field(default=None)  # type: ignore[assignment]


@dataclass(eq=False, kw_only=True)
class Consent:
    person_id: int
    profile_id: int | None
    kind: str
    text_version: str
    given_at: datetime
    method: str = ConsentMethod.IN_CHAT
    id: int = field(default=None)  # type: ignore[assignment]


@dataclass(eq=False, kw_only=True)
class ParentalLink:
    """The single-use link an under-15 forwards to a parent. Only its hash is kept."""

    profile_id: int
    token_hash: str
    created_at: datetime
    expires_at: datetime
    reminded_at: datetime | None = None
    answered_at: datetime | None = None
    agreed: bool | None = None
    id: int = field(default=None)  # type: ignore[assignment]
    version: int | None = None


@dataclass(eq=False, kw_only=True)
class AssociationRecord:
    """One association of the catalogue: its validated entry (JSON) plus what is queried."""

    slug: str
    name: str
    entry: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    # Also set by coordinators (/pause) without a catalogue import.
    paused: bool = False
    # Set from the dashboard; wins over the catalogue entry's capacity while it is not None.
    weekly_capacity: int | None = None
    id: int = field(default=None)  # type: ignore[assignment]

    @property
    def webhook_url(self) -> str | None:
        url = self.entry.get("handoff", {}).get("webhook_url")
        return str(url) if url else None


@dataclass(eq=False, kw_only=True)
class Coordinator:
    """A Telegram account that receives an association's contacts, joined through an invite."""

    association_id: int
    telegram_id: int
    # Shown to colleagues ("Camille took it") and to the person ("Camille, from Afev").
    first_name: str
    language: str
    joined_at: datetime
    active: bool = True
    removed_at: datetime | None = None
    id: int = field(default=None)  # type: ignore[assignment]


@dataclass(eq=False, kw_only=True)
class Invite:
    """A single-use, expiring invitation to coordinate an association. Only its hash is kept."""

    association_id: int
    token_hash: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    used_by: int | None = None
    id: int = field(default=None)  # type: ignore[assignment]


@dataclass(eq=False, kw_only=True)
class Handoff:
    """A profile proposed to one association (see `conversations.handoff` for its lifecycle)."""

    profile_id: int
    association_id: int
    status: str
    created_at: datetime
    taken_by: int | None = None
    decline_reason: str | None = None
    delivered_at: datetime | None = None
    taken_at: datetime | None = None
    contacted_at: datetime | None = None
    closed_at: datetime | None = None
    reminded_at: datetime | None = None
    id: int = field(default=None)  # type: ignore[assignment]
    # Two coordinators pressing "take" at once: the second commit is a Conflict.
    version: int | None = None


@dataclass(eq=False, kw_only=True)
class HandoffEvent:
    """Every transition of a handoff, with who did it and when."""

    handoff_id: int
    event: str
    at: datetime
    coordinator_id: int | None = None
    detail: str | None = None
    id: int = field(default=None)  # type: ignore[assignment]


@dataclass(eq=False, kw_only=True)
class SignInLink:
    """A single-use, short-lived sign-in to the dashboard, sent in the chat. Only its hash is kept."""

    token_hash: str
    telegram_id: int
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    # The session the link opened ends then (sign-out sets it to the moment of signing out).
    session_ends_at: datetime | None = None
    id: int = field(default=None)  # type: ignore[assignment]


@dataclass(eq=False, kw_only=True)
class AuditEntry:
    """One sign-in or change made on the dashboard: who (a staff account), what, when."""

    at: datetime
    actor: int
    role: str
    action: str
    target: str | None = None
    detail: str | None = None
    id: int = field(default=None)  # type: ignore[assignment]
