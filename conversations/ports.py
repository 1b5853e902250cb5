"""What the service layer needs from the outside world, declared here and implemented in `storage`.

The use-cases take a `UnitOfWork` (one transaction; leaving it without `commit()` rolls back) and
reach every table through its repositories. Messages for someone other than the person in front of
the chat are typed values written to the outbox in that same transaction; the edge renders them
into Bot API calls (or HTTP POSTs) when it sends them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from types import TracebackType
from typing import Any, Protocol, Self, TypeAlias

from conversations.entities import (
    AssociationRecord,
    AuditEntry,
    Consent,
    Conversation,
    Coordinator,
    Handoff,
    HandoffEvent,
    Invite,
    ParentalLink,
    Person,
    Profile,
    SignInLink,
)
from conversations.handoff import HandoffVerb
from conversations.model import ConversationState
from conversations.text import Text


class Conflict(Exception):
    """Another process (or a redelivery) changed the same rows first: read again, decide again."""


# (language, text) -> the text in that language, without markup: matching typed answers to
# button labels, and the reasons kept with a profile, need words, not message ids.
Localize: TypeAlias = Callable[[str, Text], str]


# --- typed outbox messages ---------------------------------------------------------------------


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"


@dataclass(frozen=True)
class CardButton:
    """A button under a contact card: a handoff verb (take, decline…) and its label."""

    verb: HandoffVerb
    label: Text
    reason: str | None = None


@dataclass(frozen=True)
class ContactCard:
    """A contact as one coordinator reads it; with `message_id`, an edit of the card they have."""

    chat_id: int
    language: str
    handoff_id: int
    coordinator_id: int
    body: Text
    status: Text | None = None
    buttons: tuple[CardButton, ...] = ()
    message_id: int | None = None


@dataclass(frozen=True)
class PersonNotice:
    """News for a person about their request (taken, re-routed, found an association), or the
    one nudge of a questionnaire left half-way."""

    chat_id: int
    language: str
    text: Text
    # The label of a button that shows the person the question they stopped at; None: no button.
    resume: Text | None = None


@dataclass(frozen=True)
class CoordinatorNotice:
    """A reminder or an erasure notice for one coordinator."""

    chat_id: int
    language: str
    text: Text


@dataclass(frozen=True)
class AdminAlert:
    """For the Collectif's admins, who read French."""

    chat_id: int
    text: Text
    language: str = "fr"


@dataclass(frozen=True)
class AssociationWebhook:
    """A signed POST to an association's CRM: `handoff.proposed`, `.taken`, `.declined`… (README)."""

    url: str
    handoff_id: int
    association: str
    body: Mapping[str, Any]

    @property
    def event(self) -> str:
        return str(self.body.get("event", ""))


ChatMessage: TypeAlias = ContactCard | PersonNotice | CoordinatorNotice | AdminAlert
OutboxMessage: TypeAlias = ChatMessage | AssociationWebhook


@dataclass(frozen=True)
class Claimed:
    """One outbox message a relay holds (leased) while it sends it."""

    id: int
    key: str
    message: OutboxMessage
    attempts: int


@dataclass(frozen=True)
class SentCard:
    """A coordinator's copy of a contact card, as queued or delivered, so it can be kept current."""

    outbox_id: int
    card: ContactCard
    sent: bool
    message_id: int | None
    person_id: int | None


# --- repositories ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogChanges:
    added: tuple[str, ...]
    changed: tuple[str, ...]
    unchanged: tuple[str, ...]
    # In the database but not in the file: kept, since profiles and handoffs refer to them.
    not_in_file: tuple[str, ...]


class PeopleRepository(Protocol):
    async def get(self, person_id: int) -> Person | None: ...
    async def by_telegram_id(self, telegram_id: int) -> Person | None: ...
    async def arrived(
        self, telegram_id: int, telegram_language: str | None, now: datetime
    ) -> tuple[Person, Conversation | None]:
        """The person behind a Telegram account (created on first contact, its last visit and
        language kept), with their active conversation, in one read: what every update needs."""
        ...

    async def due_for_erasure(
        self,
        without_profile_before: datetime,
        with_profile_before: datetime,
        limit: int,
        after: int = 0,
    ) -> list[int]: ...
    async def erase(self, person: Person) -> None: ...


class ConversationRepository(Protocol):
    async def active_for(self, person: Person) -> Conversation | None: ...
    async def latest_for(self, person: Person) -> Conversation | None:
        """The person's most recent conversation, whatever its status (an early end to undo)."""
        ...

    async def stalled(self, idle_before: datetime, limit: int) -> list[int]:
        """People whose questionnaire is still active, has not moved since `idle_before` and was
        never nudged; not those who blocked the bot (person ids, longest idle first)."""
        ...

    def start(
        self,
        person: Person,
        chat_id: int,
        state: ConversationState,
        source: str | None,
        now: datetime,
    ) -> Conversation: ...
    async def purge_unfinished_before(self, moment: datetime) -> int: ...


class ProfileRepository(Protocol):
    def add(self, profile: Profile) -> Profile: ...
    def add_consent(self, consent: Consent) -> None: ...
    async def get(self, profile_id: int) -> Profile | None: ...
    async def for_person(self, person: Person) -> list[Profile]: ...
    async def consents_for(self, person: Person) -> list[Consent]: ...
    async def consents_of(self, profile_id: int) -> list[Consent]: ...
    async def waiting_ids(self, limit: int) -> list[int]: ...


class ParentalLinkRepository(Protocol):
    def add(self, link: ParentalLink) -> None: ...
    async def by_hash(self, token_hash: str) -> ParentalLink | None: ...
    async def of_profile(self, profile_id: int) -> ParentalLink | None: ...
    async def due(self, now: datetime, remind_before: datetime, limit: int) -> list[int]:
        """Links still unanswered that have expired, or were sent before `remind_before` and
        not yet reminded of (ids, oldest first)."""
        ...

    async def get(self, link_id: int) -> ParentalLink | None: ...


@dataclass(frozen=True)
class InboxEntry:
    """An update received and not yet done, as stored (its body is Telegram's JSON)."""

    update_id: int
    body: dict[str, Any] | None
    attempts: int
    failed: bool
    claimed_at: datetime


class InboxRepository(Protocol):
    async def store(
        self, updates: Sequence[tuple[int, dict[str, Any]]], now: datetime
    ) -> tuple[dict[int, InboxEntry], set[int]]: ...
    async def take_over(self, update_id: int, before: datetime, now: datetime) -> bool: ...
    async def claim_stale(
        self, before: datetime, now: datetime, limit: int
    ) -> list[InboxEntry]: ...
    async def touch(self, update_ids: Sequence[int], now: datetime) -> None: ...
    async def attempt_failed(self, update_id: int, now: datetime) -> int: ...
    async def give_up(self, update_id: int, now: datetime) -> None: ...
    async def done(self, update_ids: Sequence[int]) -> None: ...
    async def forget_before(self, moment: datetime) -> int: ...


class UpdateLog(Protocol):
    async def claim(self, update_id: int, now: datetime) -> bool:
        """Record the update as handled by this transaction, at once; False when it was before
        (a redelivery). A concurrent transaction claiming the same id waits for this one."""
        ...

    async def newest(self) -> int: ...
    async def forget_before(self, moment: datetime) -> int: ...


class FunnelRepository(Protocol):
    def record(
        self,
        flow: str,
        step: str | None,
        event: str,
        at: datetime,
        detail: str | None = None,
        *,
        journey: str | None = None,
        language: str | None = None,
        source: str | None = None,
    ) -> None:
        """One anonymous event; `journey` is the conversation's random token, never a person id."""
        ...

    async def counts(self) -> dict[tuple[str, str], int]: ...
    async def answered_by_step(self) -> dict[tuple[str, str], int]: ...


class CatalogRepository(Protocol):
    async def records(self) -> list[AssociationRecord]: ...
    async def get(self, association_id: int) -> AssociationRecord | None: ...
    async def by_slug(self, slug: str) -> AssociationRecord | None: ...
    async def is_empty(self) -> bool: ...
    async def upsert(
        self, entries: Mapping[str, tuple[str, dict[str, Any]]], now: datetime
    ) -> CatalogChanges: ...


class CoordinatorRepository(Protocol):
    def add(self, coordinator: Coordinator) -> None: ...
    async def get(self, coordinator_id: int) -> Coordinator | None: ...
    async def find(self, association_id: int, telegram_id: int) -> Coordinator | None: ...
    async def of_association(self, association_id: int) -> list[Coordinator]: ...
    async def of_person(self, telegram_id: int, active_only: bool = True) -> list[Coordinator]: ...
    async def listing(self) -> list[tuple[Coordinator, str]]: ...
    async def delete(self, coordinator: Coordinator) -> None: ...


class InviteRepository(Protocol):
    def add(self, invite: Invite) -> None: ...
    async def by_hash(self, token_hash: str) -> Invite | None: ...
    async def forget_user(self, telegram_id: int) -> None: ...


class SignInRepository(Protocol):
    def add(self, link: SignInLink) -> None: ...
    async def use(
        self, token_hash: str, now: datetime, session_ends_at: datetime
    ) -> SignInLink | None: ...
    async def session(self, link_id: int, now: datetime) -> SignInLink | None: ...
    async def forget_before(self, moment: datetime) -> int: ...


class AuditRepository(Protocol):
    def record(self, entry: AuditEntry) -> None: ...
    async def recent(self, limit: int) -> list[AuditEntry]: ...


class HandoffRepository(Protocol):
    def add(self, handoff: Handoff) -> Handoff: ...
    async def get(self, handoff_id: int) -> Handoff | None: ...
    def record(
        self,
        handoff: Handoff,
        event: str,
        at: datetime,
        coordinator_id: int | None = None,
        detail: str | None = None,
    ) -> None: ...
    async def events(self, handoff_id: int) -> list[HandoffEvent]: ...
    async def of_profile(self, profile_id: int) -> list[Handoff]: ...
    async def of_profiles(self, profile_ids: list[int]) -> list[Handoff]: ...
    async def taken_by(self, coordinator_id: int) -> list[Handoff]: ...
    async def recipients(self, profile_ids: list[int]) -> list[tuple[Handoff, str]]: ...
    async def queue(self, association_id: int) -> list[tuple[Handoff, Profile]]: ...
    async def open_for(
        self, association_ids: Sequence[int] | None, statuses: Sequence[str]
    ) -> list[tuple[Handoff, Profile]]: ...
    async def created_counts(self, start: datetime, end: datetime) -> dict[int, int]: ...
    async def waiting_counts(self) -> dict[int, int]: ...
    async def silent_since(self, moment: datetime, reminded: bool) -> list[Handoff]: ...
    async def summary(self) -> list[tuple[str, str, int]]: ...
    async def take_delays(self) -> list[tuple[str, datetime, datetime]]: ...
    async def counts_by_status(self) -> dict[str, int]: ...


# --- the staff's figures: read-only views (cosmicpython's "views") ------------------------------


@dataclass(frozen=True)
class StepTally:
    """How many funnel events of one kind a step had, and how many journeys they came from."""

    flow: str
    step: str | None
    event: str
    events: int
    journeys: int


@dataclass(frozen=True)
class TakeDelay:
    association_id: int
    created_at: datetime
    taken_at: datetime


@dataclass(frozen=True)
class HandoffLine:
    """One handoff as the exports show it: ids, statuses and times, nothing about the person."""

    id: int
    association: str
    role: str | None
    department: str | None
    status: str
    decline_reason: str | None
    created_at: datetime
    delivered_at: datetime | None
    taken_at: datetime | None
    contacted_at: datetime | None
    closed_at: datetime | None


@dataclass(frozen=True)
class FunnelLine:
    id: int
    journey: str | None
    flow: str
    step: str | None
    event: str
    language: str | None
    source: str | None
    at: datetime


class Figures(Protocol):
    """Queries that only read, for the dashboard, the exports and /stats. Windows are [start, end).

    `flow`, `language` and `source` narrow funnel queries when given (None: all)."""

    async def milestones(
        self, start: datetime, end: datetime, kinds: Sequence[str]
    ) -> dict[tuple[str, str | None, str], int]:
        """(flow, language, event) -> events of those kinds in the window."""
        ...

    async def step_tallies(
        self,
        start: datetime,
        end: datetime,
        flow: str | None = None,
        language: str | None = None,
        source: str | None = None,
    ) -> list[StepTally]: ...

    async def abandoned(
        self,
        start: datetime,
        end: datetime,
        idle_before: datetime,
        ended_by: Sequence[str],
        flow: str | None = None,
        language: str | None = None,
        source: str | None = None,
    ) -> dict[tuple[str, str], int]:
        """(flow, step) -> journeys whose last event, in the window and before `idle_before`,
        is at that step and is none of `ended_by`."""
        ...

    async def sources(self) -> list[str]: ...

    async def declines(self, start: datetime, end: datetime) -> dict[tuple[int, str | None], int]:
        """(association id, reason) -> declined handoffs created in the window."""
        ...

    async def rerouted(self, start: datetime, end: datetime) -> int:
        """Profiles with a second (or later) handoff created in the window."""
        ...

    async def take_delays(self, start: datetime, end: datetime) -> list[TakeDelay]:
        """Handoffs taken in the window."""
        ...

    async def gaps(self, start: datetime, end: datetime) -> list[tuple[str, str | None, int]]:
        """(flow, department, count) of the no-match events in the window."""
        ...

    async def handoff_page(
        self, start: datetime, end: datetime, after: int, limit: int
    ) -> list[HandoffLine]:
        """Handoffs created in the window with an id above `after`, by id."""
        ...

    async def funnel_page(
        self, start: datetime, end: datetime, after: int, limit: int
    ) -> list[FunnelLine]: ...


class Outbox(Protocol):
    # How many messages this unit of work queued: the caller wakes the relay when any.
    enqueued: int

    async def enqueue(
        self, key: str, message: OutboxMessage, now: datetime, person_id: int | None = None
    ) -> None:
        """Queue one delivery; a second enqueue with the same key does nothing. `person_id`
        marks a message that holds that person's data, for erasure."""
        ...

    async def cards_of(self, handoff_id: int) -> list[SentCard]: ...
    async def replace_pending(self, outbox_id: int, message: OutboxMessage) -> None: ...
    async def supersede(self, key_prefix: str, keep: str) -> None: ...
    async def drop_pending_for_chat(self, chat_id: int) -> None: ...
    async def drop_pending_notices(self, chat_id: int) -> None:
        """A person blocked the bot: the PersonNotices queued for that chat will not go (what
        else goes there, the cards of a coordinator on the same account, still does)."""
        ...

    async def forget_person(self, person_id: int) -> None: ...
    # What the relay does.
    async def claim_due(self, now: datetime, lease: timedelta, limit: int) -> list[Claimed]: ...
    async def release(self, outbox_ids: list[int]) -> None: ...
    async def mark_sent(
        self, outbox_id: int, attempts: int, sent_message_id: int | None, now: datetime
    ) -> bool:
        """Marks it sent; True when its person erased their data while it was on its way."""
        ...

    async def retry_later(
        self, outbox_id: int, attempts: int, next_attempt_at: datetime, reason: str
    ) -> None: ...
    async def mark_dead(self, outbox_id: int, attempts: int, reason: str) -> None: ...
    async def counts_by_status(self) -> dict[str, int]: ...


class UnitOfWork(Protocol):
    people: PeopleRepository
    conversations: ConversationRepository
    profiles: ProfileRepository
    parental_links: ParentalLinkRepository
    updates: UpdateLog
    funnel: FunnelRepository
    catalog: CatalogRepository
    coordinators: CoordinatorRepository
    invites: InviteRepository
    handoffs: HandoffRepository
    outbox: Outbox
    inbox: InboxRepository
    sign_ins: SignInRepository
    audit: AuditRepository
    figures: Figures

    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    async def commit(self) -> None:
        """Raises Conflict when another transaction changed the same rows first."""
        ...

    async def flush(self) -> None:
        """Sends pending changes, so that new rows get their ids."""
        ...

    async def ping(self) -> None:
        """Raises when the database does not answer (readiness probes)."""
        ...


UnitOfWorkFactory: TypeAlias = Callable[[], UnitOfWork]
