"""Hand-written fakes of `conversations.ports` (cosmicpython's FakeUnitOfWork), and the small scenes
the service tests play in.

`FakeDatabase` holds committed state. Each unit of work works on a deep copy of it and, at
`commit()`, writes back the rows it inserted, changed or deleted (changed columns only, like an
UPDATE); leaving without a commit discards them. The SQL behaviours the services rely on are
kept: ids given at flush, reads autoflush, `version` counters bumped at flush and checked at commit
(a stale write is a `Conflict`, as with SQLAlchemy's version_id_col), unique keys (a duplicate is a
`Conflict`, a duplicate outbox key does nothing) and the schema's ON DELETE rules.
"""

from __future__ import annotations

import copy
import itertools
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

from conversations.catalog import Catalog, load_catalog
from conversations.entities import (
    LAST_SEEN_PRECISION,
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
    ProfileStatus,
    SignInLink,
)
from conversations.handoff import HandoffStatus, HandoffVerb
from conversations.matching import (
    FORMATS,
    MENTEE_GROUPS,
    MENTEE_SITUATIONS,
    MENTOR_SITUATIONS,
    THEMES,
)
from conversations.model import Ask as AskScreen
from conversations.model import ConfirmInput, ConversationState, Input, Status, Summary
from conversations.ports import (
    AssociationWebhook,
    AuditRepository,
    CatalogChanges,
    CatalogRepository,
    Claimed,
    Conflict,
    ContactCard,
    ConversationRepository,
    CoordinatorRepository,
    FunnelRepository,
    HandoffRepository,
    InboxEntry,
    InboxRepository,
    InviteRepository,
    Outbox,
    OutboxMessage,
    OutboxStatus,
    ParentalLinkRepository,
    PeopleRepository,
    PersonNotice,
    ProfileRepository,
    SentCard,
    SignInRepository,
    UnitOfWork,
    UpdateLog,
)
from conversations.services import catalogue, handoffs, updates
from conversations.services.actions import Action, ActOnHandoff, Answer, ChooseFlow, Start
from conversations.services.policy import Policy
from conversations.services.replies import Reply, Sender
from conversations.text import Text
from tests.unit.helpers import DEFAULT_REPLIES, inputs_of
from tests.unit.helpers import Reply as Typed

T = TypeVar("T")
M = TypeVar("M")

# What storage.outbox writes in last_error; not imported, these tests run without SQLAlchemy.
ERASED = "erased"
SUPERSEDED = "superseded"
RECIPIENT_LEFT = "recipient left"
BLOCKED = "blocked by the person"
UNDECODABLE = "undecodable payload"
ERROR_LENGTH = 200
PENDING, SENT, DEAD = OutboxStatus.PENDING, OutboxStatus.SENT, OutboxStatus.DEAD
OPEN = (HandoffStatus.PROPOSED, HandoffStatus.DELIVERED)
WAITING = (*OPEN, HandoffStatus.TAKEN)


# --- rows that are storage's own (no entity in the core) -----------------------------------------


@dataclass(eq=False, kw_only=True)
class ProcessedUpdate:
    id: int  # the update id itself: its primary key
    processed_at: datetime


@dataclass(eq=False, kw_only=True)
class FunnelEvent:
    flow: str
    step: str | None
    event: str
    at: datetime
    detail: str | None = None
    journey: str | None = None
    language: str | None = None
    source: str | None = None
    id: int = field(default=None)  # type: ignore[assignment]


@dataclass(eq=False, kw_only=True)
class OutboxRow:
    key: str
    # None once an erasure scrubbed it: like a scrubbed payload, it no longer decodes.
    message: OutboxMessage | None
    chat_id: int | None
    person_id: int | None
    created_at: datetime
    next_attempt_at: datetime
    status: str = PENDING
    attempts: int = 0
    claimed_until: datetime | None = None
    last_error: str | None = None
    sent_at: datetime | None = None
    sent_message_id: int | None = None
    id: int = 0


@dataclass(eq=False, kw_only=True)
class InboxRow:
    id: int  # the update id itself: its primary key
    body: dict[str, Any] | None
    received_at: datetime
    claimed_at: datetime
    attempts: int = 0
    failed_at: datetime | None = None


@dataclass
class Tables:
    people: dict[int, Person] = field(default_factory=dict)
    conversations: dict[int, Conversation] = field(default_factory=dict)
    profiles: dict[int, Profile] = field(default_factory=dict)
    consents: dict[int, Consent] = field(default_factory=dict)
    parental_links: dict[int, ParentalLink] = field(default_factory=dict)
    updates: dict[int, ProcessedUpdate] = field(default_factory=dict)
    funnel: dict[int, FunnelEvent] = field(default_factory=dict)
    associations: dict[int, AssociationRecord] = field(default_factory=dict)
    coordinators: dict[int, Coordinator] = field(default_factory=dict)
    invites: dict[int, Invite] = field(default_factory=dict)
    handoffs: dict[int, Handoff] = field(default_factory=dict)
    events: dict[int, HandoffEvent] = field(default_factory=dict)
    outbox: dict[int, OutboxRow] = field(default_factory=dict)
    inbox: dict[int, InboxRow] = field(default_factory=dict)
    sign_ins: dict[int, SignInLink] = field(default_factory=dict)
    audit: dict[int, AuditEntry] = field(default_factory=dict)

    def table(self, name: str) -> dict[int, Any]:
        rows: dict[int, Any] = getattr(self, name)
        return rows


TABLES = tuple(f.name for f in fields(Tables))
_TABLE_OF: dict[type, str] = {
    Person: "people",
    Conversation: "conversations",
    Profile: "profiles",
    Consent: "consents",
    ParentalLink: "parental_links",
    ProcessedUpdate: "updates",
    FunnelEvent: "funnel",
    AssociationRecord: "associations",
    Coordinator: "coordinators",
    Invite: "invites",
    Handoff: "handoffs",
    HandoffEvent: "events",
    OutboxRow: "outbox",
    InboxRow: "inbox",
    SignInLink: "sign_ins",
    AuditEntry: "audit",
}
# Written with Core statements, not the ORM: a duplicate INSERT does nothing (ON CONFLICT DO
# NOTHING) and an UPDATE that matches no row does nothing either. Their WHERE clauses are
# evaluated against this transaction's snapshot only: unlike PostgreSQL, which re-checks them
# once a concurrent writer commits, two concurrent conditional UPDATEs (inbox.take_over) both
# succeed here. No service of `conversations` relies on that race; the bot's inbox does.
_CORE = frozenset({"outbox", "inbox"})
_VERSIONED = frozenset({"conversations", "handoffs", "parental_links"})
_UNIQUE: dict[str, Callable[[Any], object]] = {
    "people": lambda row: row.telegram_id,
    "profiles": lambda row: row.conversation_id,
    "associations": lambda row: row.slug,
    "coordinators": lambda row: (row.association_id, row.telegram_id),
    "invites": lambda row: row.token_hash,
    "sign_ins": lambda row: row.token_hash,
    "parental_links": lambda row: row.token_hash,
    "outbox": lambda row: row.key,
}
# The schema's ON DELETE (storage/tables.py): (child table, its column, True for CASCADE or
# False for SET NULL).
_ON_DELETE: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "people": (
        ("conversations", "person_id", True),
        ("profiles", "person_id", True),
        ("consents", "person_id", True),
    ),
    "conversations": (("profiles", "conversation_id", True),),
    "profiles": (
        ("consents", "profile_id", True),
        ("handoffs", "profile_id", True),
        ("parental_links", "profile_id", True),
    ),
    "handoffs": (("events", "handoff_id", True),),
    "associations": (("coordinators", "association_id", True), ("invites", "association_id", True)),
    "coordinators": (("handoffs", "taken_by", False), ("events", "coordinator_id", False)),
}


def _columns(row: Any) -> dict[str, Any]:
    return dict(vars(row))


class FakeDatabase:
    """Committed state, shared by the units of work made by `unit_of_work()`."""

    def __init__(self) -> None:
        self.tables = Tables()
        # One sequence for every table: an id of the wrong kind never finds a row by chance.
        self._ids = itertools.count(1)
        self._interleaved: list[Callable[[], Awaitable[object]]] = []
        self._interleaving = False

    def unit_of_work(self) -> UnitOfWork:
        return FakeUnitOfWork(self)

    def next_id(self) -> int:
        return next(self._ids)

    def interleave(self, other: Callable[[], Awaitable[object]]) -> None:
        """`other` runs, and commits, just before the next commit: another process won the race."""
        self._interleaved.append(other)

    async def commit(self, base: Tables, work: Tables) -> None:
        if self._interleaved and not self._interleaving:
            # The other process commits undisturbed: the next race is for the next commit.
            self._interleaving = True
            try:
                await self._interleaved.pop(0)()
            finally:
                self._interleaving = False
        self._write(base, work)

    def _write(self, base: Tables, work: Tables) -> None:
        """Write what `work` changed since `base`, or nothing at all when any of it conflicts."""
        writes: list[Callable[[], None]] = []
        for name in TABLES:
            before, after, shared = base.table(name), work.table(name), self.tables.table(name)
            for row_id, row in after.items():
                old = before.get(row_id)
                if old is None:
                    writes.extend(self._insert(name, shared, row))
                    continue
                changed = {k: v for k, v in _columns(row).items() if _columns(old)[k] != v}
                current = shared.get(row_id)
                if not changed:
                    continue
                if current is None:
                    if name in _CORE:
                        continue  # an UPDATE statement that matches no row does nothing
                    raise Conflict(f"{name} {row_id} was deleted meanwhile")
                if name in _VERSIONED and current.version != old.version:
                    raise Conflict(f"{name} {row_id} was changed meanwhile")
                writes.append(_updater(current, changed))
            for row_id in before.keys() - after.keys():
                writes.append(_deleter(shared, row_id))
        for write in writes:
            write()

    @staticmethod
    def _insert(name: str, shared: dict[int, Any], row: Any) -> list[Callable[[], None]]:
        unique = _UNIQUE.get(name)
        duplicate = unique is not None and any(unique(o) == unique(row) for o in shared.values())
        if name in _CORE and (duplicate or row.id in shared):
            return []  # ON CONFLICT DO NOTHING
        if duplicate or row.id in shared:
            raise Conflict(f"{name}: another transaction inserted the same key")
        return [_inserter(shared, row)]


def _inserter(shared: dict[int, Any], row: Any) -> Callable[[], None]:
    return lambda: shared.__setitem__(row.id, copy.deepcopy(row))


def _updater(current: Any, changed: Mapping[str, Any]) -> Callable[[], None]:
    def write() -> None:
        for column, value in changed.items():
            setattr(current, column, copy.deepcopy(value))

    return write


def _deleter(shared: dict[int, Any], row_id: int) -> Callable[[], None]:
    def write() -> None:
        shared.pop(row_id, None)

    return write


class FakeUnitOfWork:
    # Typed as the ports (a protocol's attributes are invariant): assigning the fakes to them in
    # __aenter__ is what proves, under mypy, that they implement the ports.
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

    def __init__(self, db: FakeDatabase) -> None:
        self._db = db
        self._base = Tables()
        self._work: Tables | None = None
        self._pending: list[Any] = []
        # Versioned rows as last flushed: a row that differs has changed since, and its version
        # goes up at the next flush, as SQLAlchemy's UPDATE … SET version = version + 1.
        self._flushed: dict[tuple[str, int], dict[str, Any]] = {}

    async def __aenter__(self) -> Self:
        self._base = copy.deepcopy(self._db.tables)
        self._work = copy.deepcopy(self._base)
        self._pending = []
        self._flushed = self._versioned_columns()
        self.people = FakePeople(self)
        self.conversations = FakeConversations(self)
        self.profiles = FakeProfiles(self)
        self.parental_links = FakeParentalLinks(self)
        self.updates = FakeUpdateLog(self)
        self.funnel = FakeFunnel(self)
        self.catalog = FakeCatalog(self)
        self.coordinators = FakeCoordinators(self)
        self.invites = FakeInvites(self)
        self.handoffs = FakeHandoffs(self)
        self.outbox = FakeOutbox(self)
        self.inbox = FakeInbox(self)
        self.sign_ins = FakeSignIns(self)
        self.audit = FakeAudit(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Whatever was not committed is dropped; the objects read stay readable (detached).
        self._work = None
        self._pending = []

    async def commit(self) -> None:
        self.flush_now()
        await self._db.commit(self._base, self.work)
        self._base = copy.deepcopy(self.work)

    async def flush(self) -> None:
        self.flush_now()

    async def ping(self) -> None:
        assert self._work is not None, "use the unit of work inside `async with`"

    # --- what the fake repositories share ------------------------------------------------------

    @property
    def work(self) -> Tables:
        assert self._work is not None, "use the unit of work inside `async with`"
        return self._work

    def add(self, row: Any) -> None:
        assert self._work is not None, "use the unit of work inside `async with`"
        self._pending.append(row)

    def read(self) -> Tables:
        """The tables as this transaction sees them; like SQLAlchemy, a query flushes first."""
        self.flush_now()
        return self.work

    def flush_now(self) -> None:
        work = self.work
        for (name, row_id), columns in self._flushed.items():
            row = work.table(name).get(row_id)
            if row is not None and _columns(row) != columns:
                row.version += 1
        pending, self._pending = self._pending, []
        for row in pending:
            name = _TABLE_OF[type(row)]
            table = work.table(name)
            if row.id is None:
                row.id = self._db.next_id()
            unique = _UNIQUE.get(name)
            if row.id in table or (
                unique is not None and any(unique(o) == unique(row) for o in table.values())
            ):
                raise Conflict(f"{name}: duplicate key")
            if name in _VERSIONED:
                row.version = 1
            table[row.id] = row
        self._flushed = self._versioned_columns()

    def insert_now(self, row: OutboxRow | InboxRow) -> None:
        """A Core INSERT: the row exists (and has its id) at once."""
        if isinstance(row, OutboxRow):
            row.id = self._db.next_id()
        self.work.table(_TABLE_OF[type(row)])[row.id] = row

    def delete(self, name: str, row_id: int) -> None:
        """A DELETE, with the schema's ON DELETE CASCADE and SET NULL."""
        work = self.read()
        if work.table(name).pop(row_id, None) is None:
            return
        for child, column, cascade in _ON_DELETE.get(name, ()):
            for child_id, row in list(work.table(child).items()):
                if getattr(row, column) != row_id:
                    continue
                if cascade:
                    self.delete(child, child_id)
                else:
                    setattr(row, column, None)

    def _versioned_columns(self) -> dict[tuple[str, int], dict[str, Any]]:
        if self._work is None:
            return {}
        return {
            (name, row_id): copy.deepcopy(_columns(row))
            for name in _VERSIONED
            for row_id, row in self._work.table(name).items()
        }


# mypy proves here that the fake is what the core asks for.
_check: type[UnitOfWork] = FakeUnitOfWork


class _Row(Protocol):
    @property
    def id(self) -> int: ...


R = TypeVar("R", bound=_Row)


def _by_id(rows: Iterable[R]) -> list[R]:
    return sorted(rows, key=lambda row: row.id)


class _Repository:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow


class FakePeople(_Repository):
    async def get(self, person_id: int) -> Person | None:
        return self._uow.read().people.get(person_id)

    async def by_telegram_id(self, telegram_id: int) -> Person | None:
        people = self._uow.read().people.values()
        return next((p for p in people if p.telegram_id == telegram_id), None)

    async def _seen(self, telegram_id: int, telegram_language: str | None, now: datetime) -> Person:
        person = await self.by_telegram_id(telegram_id)
        if person is None:
            person = Person(
                telegram_id=telegram_id,
                telegram_language=telegram_language,
                created_at=now,
                last_seen_at=now,
            )
            self._uow.add(person)
            self._uow.flush_now()
        else:
            if now - person.last_seen_at >= LAST_SEEN_PRECISION:
                person.last_seen_at = now
            if telegram_language and telegram_language != person.telegram_language:
                person.telegram_language = telegram_language
        return person

    async def arrived(
        self, telegram_id: int, telegram_language: str | None, now: datetime
    ) -> tuple[Person, Conversation | None]:
        person = await self._seen(telegram_id, telegram_language, now)
        return person, await FakeConversations(self._uow).active_for(person)

    async def due_for_erasure(
        self,
        without_profile_before: datetime,
        with_profile_before: datetime,
        limit: int,
        after: int = 0,
    ) -> list[int]:
        work = self._uow.read()
        with_profile = {p.person_id for p in work.profiles.values()}
        coordinating = {c.telegram_id for c in work.coordinators.values() if c.active}
        due = [
            person.id
            for person in _by_id(work.people.values())
            if person.id > after
            and (
                person.last_seen_at < with_profile_before
                or (
                    person.last_seen_at < without_profile_before
                    and person.id not in with_profile
                    and person.telegram_id not in coordinating
                )
            )
        ]
        return due[:limit]

    async def erase(self, person: Person) -> None:
        self._uow.delete("people", person.id)


class FakeConversations(_Repository):
    async def active_for(self, person: Person) -> Conversation | None:
        rows = self._uow.read().conversations.values()
        active = [c for c in rows if c.person_id == person.id and c.status == Status.ACTIVE]
        return max(active, key=lambda c: c.id, default=None)

    async def latest_for(self, person: Person) -> Conversation | None:
        rows = self._uow.read().conversations.values()
        return max((c for c in rows if c.person_id == person.id), key=lambda c: c.id, default=None)

    async def stalled(self, idle_before: datetime, limit: int) -> list[int]:
        work = self._uow.read()
        idle: dict[int, datetime] = {}
        for c in work.conversations.values():
            person = work.people.get(c.person_id)
            if (
                c.status == Status.ACTIVE
                and c.updated_at <= idle_before
                and c.nudged_at is None
                and person is not None
                and person.blocked_at is None
            ):
                idle[c.person_id] = min(c.updated_at, idle.get(c.person_id, c.updated_at))
        return sorted(idle, key=lambda person_id: (idle[person_id], person_id))[:limit]

    def start(
        self,
        person: Person,
        chat_id: int,
        state: ConversationState,
        source: str | None,
        now: datetime,
    ) -> Conversation:
        conversation = Conversation(
            person_id=person.id,
            chat_id=chat_id,
            flow=state.flow,
            source=source,
            started_at=now,
            updated_at=now,
        )
        conversation.save(state, now)
        self._uow.add(conversation)
        return conversation

    async def purge_unfinished_before(self, moment: datetime) -> int:
        rows = list(self._uow.read().conversations.values())
        gone = [c.id for c in rows if c.status != Status.COMPLETED and c.updated_at < moment]
        for conversation_id in gone:
            self._uow.delete("conversations", conversation_id)
        return len(gone)


class FakeProfiles(_Repository):
    def add(self, profile: Profile) -> Profile:
        self._uow.add(profile)
        return profile

    def add_consent(self, consent: Consent) -> None:
        self._uow.add(consent)

    async def get(self, profile_id: int) -> Profile | None:
        return self._uow.read().profiles.get(profile_id)

    async def for_person(self, person: Person) -> list[Profile]:
        return _by_id(p for p in self._uow.read().profiles.values() if p.person_id == person.id)

    async def consents_for(self, person: Person) -> list[Consent]:
        return _by_id(c for c in self._uow.read().consents.values() if c.person_id == person.id)

    async def consents_of(self, profile_id: int) -> list[Consent]:
        rows = self._uow.read().consents.values()
        return _by_id(c for c in rows if c.profile_id == profile_id)

    async def waiting_ids(self, limit: int) -> list[int]:
        profiles = _by_id(self._uow.read().profiles.values())
        return [p.id for p in profiles if p.status == ProfileStatus.WAITING][:limit]


class FakeParentalLinks(_Repository):
    def add(self, link: ParentalLink) -> None:
        self._uow.add(link)

    async def get(self, link_id: int) -> ParentalLink | None:
        return self._uow.read().parental_links.get(link_id)

    async def by_hash(self, token_hash: str) -> ParentalLink | None:
        rows = self._uow.read().parental_links.values()
        return next((r for r in rows if r.token_hash == token_hash), None)

    async def of_profile(self, profile_id: int) -> ParentalLink | None:
        rows = self._uow.read().parental_links.values()
        return max(
            (r for r in rows if r.profile_id == profile_id), key=lambda r: r.id, default=None
        )

    async def due(self, now: datetime, remind_before: datetime, limit: int) -> list[int]:
        rows = self._uow.read().parental_links.values()
        due = [
            r.id
            for r in rows
            if r.answered_at is None
            and (r.expires_at <= now or (r.reminded_at is None and r.created_at <= remind_before))
        ]
        return sorted(due)[:limit]


class FakeUpdateLog(_Repository):
    async def claim(self, update_id: int, now: datetime) -> bool:
        # INSERT … ON CONFLICT DO NOTHING: nothing when the id is there. One committed by a
        # concurrent transaction meanwhile makes this one's commit a Conflict (its retry then
        # finds the id): PostgreSQL would have made this INSERT wait, then insert nothing.
        if update_id in self._uow.read().updates:
            return False
        self._uow.add(ProcessedUpdate(id=update_id, processed_at=now))
        self._uow.flush_now()
        return True

    async def newest(self) -> int:
        return max(self._uow.read().updates, default=0)

    async def forget_before(self, moment: datetime) -> int:
        rows = self._uow.read().updates
        old = [update_id for update_id, row in rows.items() if row.processed_at < moment]
        for update_id in old:
            self._uow.delete("updates", update_id)
        return len(old)


class FakeFunnel(_Repository):
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
        self._uow.add(
            FunnelEvent(
                flow=flow,
                step=step,
                event=event,
                at=at,
                detail=detail,
                journey=journey,
                language=language,
                source=source,
            )
        )

    async def counts(self) -> dict[tuple[str, str], int]:
        return dict(Counter((e.flow, e.event) for e in self._uow.read().funnel.values()))

    async def answered_by_step(self) -> dict[tuple[str, str], int]:
        events = self._uow.read().funnel.values()
        people = {(e.flow, str(e.step), e.journey or e.id) for e in events if e.event == "answered"}
        return dict(Counter((flow, step) for flow, step, _who in people))


class FakeCatalog(_Repository):
    async def records(self) -> list[AssociationRecord]:
        return sorted(self._uow.read().associations.values(), key=lambda r: r.slug)

    async def get(self, association_id: int) -> AssociationRecord | None:
        return self._uow.read().associations.get(association_id)

    async def by_slug(self, slug: str) -> AssociationRecord | None:
        return next((r for r in await self.records() if r.slug == slug), None)

    async def is_empty(self) -> bool:
        return not self._uow.read().associations

    async def upsert(
        self, entries: Mapping[str, tuple[str, dict[str, Any]]], now: datetime
    ) -> CatalogChanges:
        existing = {record.slug: record for record in await self.records()}
        added, changed, unchanged = [], [], []
        for slug, (name, entry) in sorted(entries.items()):
            record = existing.get(slug)
            paused = bool(entry.get("paused", False))
            if record is None:
                self._uow.add(
                    AssociationRecord(
                        slug=slug,
                        name=name,
                        entry=entry,
                        paused=paused,
                        created_at=now,
                        updated_at=now,
                    )
                )
                added.append(slug)
            elif record.entry != entry or record.name != name:
                # A coordinator's /pause stands unless the file itself changes `paused`.
                if bool(record.entry.get("paused", False)) != paused:
                    record.paused = paused
                record.entry = entry
                record.name = name
                record.updated_at = now
                changed.append(slug)
            else:
                unchanged.append(slug)
        not_in_file = sorted(set(existing) - set(entries))
        return CatalogChanges(tuple(added), tuple(changed), tuple(unchanged), tuple(not_in_file))


class FakeCoordinators(_Repository):
    def add(self, coordinator: Coordinator) -> None:
        self._uow.add(coordinator)

    async def get(self, coordinator_id: int) -> Coordinator | None:
        return self._uow.read().coordinators.get(coordinator_id)

    async def find(self, association_id: int, telegram_id: int) -> Coordinator | None:
        rows = self._uow.read().coordinators.values()
        return next(
            (
                c
                for c in rows
                if c.association_id == association_id and c.telegram_id == telegram_id
            ),
            None,
        )

    async def of_association(self, association_id: int) -> list[Coordinator]:
        rows = self._uow.read().coordinators.values()
        return _by_id(c for c in rows if c.association_id == association_id and c.active)

    async def of_person(self, telegram_id: int, active_only: bool = True) -> list[Coordinator]:
        rows = self._uow.read().coordinators.values()
        return _by_id(
            c for c in rows if c.telegram_id == telegram_id and (c.active or not active_only)
        )

    async def listing(self) -> list[tuple[Coordinator, str]]:
        work = self._uow.read()
        rows = [(c, work.associations[c.association_id].slug) for c in work.coordinators.values()]
        return sorted(rows, key=lambda row: (row[1], row[0].id))

    async def delete(self, coordinator: Coordinator) -> None:
        self._uow.delete("coordinators", coordinator.id)


class FakeInvites(_Repository):
    def add(self, invite: Invite) -> None:
        self._uow.add(invite)

    async def by_hash(self, token_hash: str) -> Invite | None:
        rows = self._uow.read().invites.values()
        return next((i for i in rows if i.token_hash == token_hash), None)

    async def forget_user(self, telegram_id: int) -> None:
        for invite in self._uow.read().invites.values():
            if invite.used_by == telegram_id:
                invite.used_by = None


class FakeSignIns(_Repository):
    def add(self, link: SignInLink) -> None:
        self._uow.add(link)

    async def use(
        self, token_hash: str, now: datetime, session_ends_at: datetime
    ) -> SignInLink | None:
        rows = self._uow.read().sign_ins.values()
        link = next((r for r in rows if r.token_hash == token_hash), None)
        if link is None or link.used_at is not None or link.expires_at <= now:
            return None
        link.used_at = now
        link.session_ends_at = session_ends_at
        return link

    async def session(self, link_id: int, now: datetime) -> SignInLink | None:
        link = self._uow.read().sign_ins.get(link_id)
        ends = link.session_ends_at if link is not None else None
        return link if link is not None and ends is not None and ends > now else None

    async def forget_before(self, moment: datetime) -> int:
        rows = self._uow.read().sign_ins.values()
        gone = [r.id for r in rows if (r.session_ends_at or r.expires_at) < moment]
        for row_id in gone:
            self._uow.delete("sign_ins", row_id)
        return len(gone)


class FakeAudit(_Repository):
    def record(self, entry: AuditEntry) -> None:
        self._uow.add(entry)

    async def recent(self, limit: int) -> list[AuditEntry]:
        rows = sorted(self._uow.read().audit.values(), key=lambda r: (r.at, r.id), reverse=True)
        return rows[:limit]


class FakeHandoffs(_Repository):
    def add(self, handoff: Handoff) -> Handoff:
        self._uow.add(handoff)
        return handoff

    async def get(self, handoff_id: int) -> Handoff | None:
        return self._uow.read().handoffs.get(handoff_id)

    def record(
        self,
        handoff: Handoff,
        event: str,
        at: datetime,
        coordinator_id: int | None = None,
        detail: str | None = None,
    ) -> None:
        self._uow.add(
            HandoffEvent(
                handoff_id=handoff.id,
                event=event,
                coordinator_id=coordinator_id,
                detail=detail,
                at=at,
            )
        )

    async def events(self, handoff_id: int) -> list[HandoffEvent]:
        rows = self._uow.read().events.values()
        return _by_id(e for e in rows if e.handoff_id == handoff_id)

    def _all(self) -> list[Handoff]:
        return _by_id(self._uow.read().handoffs.values())

    async def of_profile(self, profile_id: int) -> list[Handoff]:
        return [h for h in self._all() if h.profile_id == profile_id]

    async def of_profiles(self, profile_ids: list[int]) -> list[Handoff]:
        return [h for h in self._all() if h.profile_id in profile_ids]

    async def taken_by(self, coordinator_id: int) -> list[Handoff]:
        return [h for h in self._all() if h.taken_by == coordinator_id]

    async def recipients(self, profile_ids: list[int]) -> list[tuple[Handoff, str]]:
        associations = self._uow.read().associations
        return [
            (h, associations[h.association_id].name)
            for h in self._all()
            if h.profile_id in profile_ids
        ]

    async def queue(self, association_id: int) -> list[tuple[Handoff, Profile]]:
        profiles = self._uow.read().profiles
        waiting = [
            h for h in self._all() if h.association_id == association_id and h.status in WAITING
        ]
        waiting.sort(key=lambda h: (h.created_at, h.id))
        return [(h, profiles[h.profile_id]) for h in waiting]

    async def open_for(
        self, association_ids: Sequence[int] | None, statuses: Sequence[str]
    ) -> list[tuple[Handoff, Profile]]:
        profiles = self._uow.read().profiles
        found = [
            h
            for h in self._all()
            if h.status in statuses
            and (association_ids is None or h.association_id in association_ids)
        ]
        found.sort(key=lambda h: (h.created_at, h.id))
        return [(h, profiles[h.profile_id]) for h in found]

    async def created_counts(self, start: datetime, end: datetime) -> dict[int, int]:
        return dict(Counter(h.association_id for h in self._all() if start <= h.created_at < end))

    async def waiting_counts(self) -> dict[int, int]:
        return dict(Counter(h.association_id for h in self._all() if h.status in OPEN))

    async def silent_since(self, moment: datetime, reminded: bool) -> list[Handoff]:
        return [
            h
            for h in self._all()
            if h.status in OPEN
            and (h.delivered_at or h.created_at) <= moment
            and (reminded or h.reminded_at is None)
        ]

    async def summary(self) -> list[tuple[str, str, int]]:
        associations = self._uow.read().associations
        counts = Counter((associations[h.association_id].slug, h.status) for h in self._all())
        return [(slug, status, count) for (slug, status), count in counts.items()]

    async def take_delays(self) -> list[tuple[str, datetime, datetime]]:
        associations = self._uow.read().associations
        return [
            (associations[h.association_id].slug, h.created_at, h.taken_at)
            for h in self._all()
            if h.taken_at is not None
        ]

    async def counts_by_status(self) -> dict[str, int]:
        return dict(Counter(str(h.status) for h in self._all()))


class FakeOutbox(_Repository):
    enqueued: int

    def __init__(self, uow: FakeUnitOfWork) -> None:
        super().__init__(uow)
        self.enqueued = 0

    def _rows(self) -> list[OutboxRow]:
        return _by_id(self._uow.read().outbox.values())

    async def enqueue(
        self, key: str, message: OutboxMessage, now: datetime, person_id: int | None = None
    ) -> None:
        if not any(row.key == key for row in self._rows()):
            chat_id = None if isinstance(message, AssociationWebhook) else message.chat_id
            self._uow.insert_now(
                OutboxRow(
                    key=key,
                    message=message,
                    chat_id=chat_id,
                    person_id=person_id,
                    created_at=now,
                    next_attempt_at=now,
                )
            )
        self.enqueued += 1

    async def cards_of(self, handoff_id: int) -> list[SentCard]:
        prefix = f"handoff:{handoff_id}:"
        return [
            SentCard(row.id, row.message, row.status == SENT, row.sent_message_id, row.person_id)
            for row in self._rows()
            if row.key.startswith(prefix) and isinstance(row.message, ContactCard)
        ]

    async def replace_pending(self, outbox_id: int, message: OutboxMessage) -> None:
        row = self._uow.read().outbox.get(outbox_id)
        if row is not None and row.status == PENDING:
            row.message = message

    async def supersede(self, key_prefix: str, keep: str) -> None:
        for row in self._rows():
            if row.key.startswith(key_prefix) and row.key != keep and row.status == PENDING:
                row.status, row.last_error = DEAD, SUPERSEDED

    async def drop_pending_for_chat(self, chat_id: int) -> None:
        for row in self._rows():
            if row.chat_id == chat_id and row.status == PENDING:
                row.status, row.last_error = DEAD, RECIPIENT_LEFT

    async def drop_pending_notices(self, chat_id: int) -> None:
        for row in self._rows():
            notice = isinstance(row.message, PersonNotice)
            if notice and row.chat_id == chat_id and row.status == PENDING:
                row.status, row.last_error = DEAD, BLOCKED

    async def forget_person(self, person_id: int) -> None:
        for row in self._rows():
            if row.person_id != person_id:
                continue
            if row.status == PENDING:
                row.status, row.last_error = DEAD, ERASED
            row.person_id, row.message = None, None

    async def claim_due(self, now: datetime, lease: timedelta, limit: int) -> list[Claimed]:
        due = [
            row
            for row in self._rows()
            if row.status == PENDING
            and row.next_attempt_at <= now
            and (row.claimed_until is None or row.claimed_until <= now)
        ]
        due.sort(key=lambda row: (row.next_attempt_at, row.id))
        claimed = []
        for row in due[:limit]:
            if row.message is None:
                row.status, row.last_error = DEAD, UNDECODABLE
                continue
            row.claimed_until = now + lease
            claimed.append(Claimed(row.id, row.key, row.message, row.attempts))
        return claimed

    async def release(self, outbox_ids: list[int]) -> None:
        for row in self._rows():
            if row.id in outbox_ids:
                row.claimed_until = None

    async def mark_sent(
        self, outbox_id: int, attempts: int, sent_message_id: int | None, now: datetime
    ) -> bool:
        row = self._uow.read().outbox.get(outbox_id)
        if row is None:
            return False
        erased_meanwhile = row.status == DEAD and row.last_error == ERASED
        row.sent_at, row.sent_message_id, row.claimed_until = now, sent_message_id, None
        row.attempts = attempts
        if not erased_meanwhile:
            row.status = SENT
        return erased_meanwhile

    async def retry_later(
        self, outbox_id: int, attempts: int, next_attempt_at: datetime, reason: str
    ) -> None:
        row = self._uow.read().outbox.get(outbox_id)
        if row is not None:
            row.attempts, row.next_attempt_at, row.claimed_until = attempts, next_attempt_at, None
            row.last_error = reason[:ERROR_LENGTH]

    async def mark_dead(self, outbox_id: int, attempts: int, reason: str) -> None:
        row = self._uow.read().outbox.get(outbox_id)
        if row is not None:
            row.status, row.attempts, row.claimed_until = DEAD, attempts, None
            row.last_error = reason[:ERROR_LENGTH]

    async def counts_by_status(self) -> dict[str, int]:
        return dict(Counter(str(row.status) for row in self._rows()))


class FakeInbox(_Repository):
    def _rows(self) -> dict[int, InboxRow]:
        return self._uow.read().inbox

    @staticmethod
    def _entry(row: InboxRow) -> InboxEntry:
        body = copy.deepcopy(row.body)
        return InboxEntry(row.id, body, row.attempts, row.failed_at is not None, row.claimed_at)

    async def store(
        self, updates: Sequence[tuple[int, dict[str, Any]]], now: datetime
    ) -> tuple[dict[int, InboxEntry], set[int]]:
        rows = self._rows()
        known = {u: self._entry(rows[u]) for u, _body in updates if u in rows}
        handled = self._uow.read().updates
        answered = {u for u, _body in updates if u not in rows and u in handled}
        for update_id, body in updates:
            if update_id not in rows and update_id not in answered:
                # The first of two equal ids wins, as ON CONFLICT does.
                row = InboxRow(id=update_id, body=body, received_at=now, claimed_at=now)
                self._uow.insert_now(row)
        return known, answered

    async def take_over(self, update_id: int, before: datetime, now: datetime) -> bool:
        row = self._rows().get(update_id)
        if row is None or row.claimed_at >= before or row.failed_at is not None:
            return False
        row.claimed_at = now
        return True

    async def claim_stale(self, before: datetime, now: datetime, limit: int) -> list[InboxEntry]:
        stale = [
            row
            for _id, row in sorted(self._rows().items())
            if row.failed_at is None and row.claimed_at < before
        ][:limit]
        for row in stale:
            row.claimed_at = now
        return [self._entry(row) for row in stale]

    async def touch(self, update_ids: Sequence[int], now: datetime) -> None:
        for update_id in update_ids:
            row = self._rows().get(update_id)
            if row is not None:
                row.claimed_at = now

    async def attempt_failed(self, update_id: int, now: datetime) -> int:
        row = self._rows().get(update_id)
        if row is None:
            return 0
        row.attempts += 1
        row.claimed_at = now
        return row.attempts

    async def give_up(self, update_id: int, now: datetime) -> None:
        row = self._rows().get(update_id)
        if row is not None:
            row.failed_at, row.body = now, None

    async def done(self, update_ids: Sequence[int]) -> None:
        for update_id in update_ids:
            row = self._rows().get(update_id)
            if row is not None and row.failed_at is None:
                self._uow.delete("inbox", update_id)

    async def forget_before(self, moment: datetime) -> int:
        rows = self._rows()
        old = [u for u, row in rows.items() if row.failed_at is not None and row.failed_at < moment]
        for update_id in old:
            self._uow.delete("inbox", update_id)
        return len(old)


# --- the scenes the service tests play in ------------------------------------------------------

# A Monday morning, in UTC as the bot stores it.
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
ADMINS = (9001, 9002)
SAMPLE_CATALOG = Path(__file__).resolve().parents[2] / "bot" / "data" / "catalog.sample.yaml"


def localize(language: str, text: Text) -> str:
    """Texts as their French msgid: enough to match typed answers to button labels."""
    return text.msgid


def only(items: Iterable[T]) -> T:
    """The one item there must be."""
    found = list(items)
    assert len(found) == 1, f"expected exactly one, got {found!r}"
    return found[0]


def an_association(slug: str, **changes: Any) -> dict[str, Any]:
    """A catalogue entry that takes every mentee and every mentor in France, unless `changes` say
    otherwise."""
    entry: dict[str, Any] = {
        "slug": slug,
        "name": slug.capitalize(),
        "description": {"fr": f"{slug} accompagne les jeunes.", "en": f"{slug} mentors."},
        "website": f"https://{slug}.example.org",
        "national": True,
        "remote": True,
        "mentee_ages": {"min": 5, "max": 30},
        "mentee_situations": sorted(MENTEE_SITUATIONS),
        "themes": sorted(THEMES),
        "mentor_profiles": sorted(MENTOR_SITUATIONS),
        "mentor_groups": sorted(MENTEE_GROUPS),
        "roles": ["mentee", "mentor"],
        "formats": sorted(FORMATS),
        "weekly_capacity": 100,
    }
    return {**entry, **changes}


def a_catalog(*entries: dict[str, Any]) -> Catalog:
    return Catalog.model_validate({"associations": list(entries)})


def sample_catalog() -> Catalog:
    return load_catalog(SAMPLE_CATALOG)


class Scene:
    """A database, the Collectif's policy and a clock: what one service test plays in."""

    def __init__(self, policy: Policy | None = None) -> None:
        self.db = FakeDatabase()
        self.policy = policy if policy is not None else Policy(admins=ADMINS)
        self.now = T0
        self.relay_woken = 0
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(5000)

    @property
    def unit_of_work(self) -> Callable[[], UnitOfWork]:
        return self.db.unit_of_work

    def later(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now

    def next_update_id(self) -> int:
        return next(self._update_ids)

    async def handle(
        self,
        telegram_id: int,
        action: Action,
        update_id: int | None = None,
        first_name: str = "",
        language: str | None = "fr",
    ) -> Reply:
        sender = Sender(
            update_id=update_id if update_id is not None else self.next_update_id(),
            telegram_id=telegram_id,
            chat_id=telegram_id,
            telegram_language=language,
            now=self.now,
            first_name=first_name,
            bot_username="mentorat_bot",
        )
        return await updates.handle(
            self.unit_of_work, sender, action, self.policy, localize, self._wake
        )

    def _wake(self) -> None:
        self.relay_woken += 1

    def person(self, telegram_id: int, first_name: str = "") -> Chat:
        return Chat(self, telegram_id, first_name)

    async def import_catalog(self, catalog: Catalog) -> CatalogChanges:
        return await catalogue.import_catalog(self.unit_of_work, catalog, self.now)

    async def coordinator(
        self, slug: str, telegram_id: int, first_name: str, language: str = "fr"
    ) -> Chat:
        """Someone who already joined `slug` as its coordinator."""
        async with self.unit_of_work() as uow:
            record = await uow.catalog.by_slug(slug)
            assert record is not None, slug
            uow.coordinators.add(
                Coordinator(
                    association_id=record.id,
                    telegram_id=telegram_id,
                    first_name=first_name,
                    language=language,
                    joined_at=self.now,
                )
            )
            await uow.commit()
        return Chat(self, telegram_id, first_name)

    # --- committed state, as the next unit of work would read it -------------------------------

    def association(self, slug: str) -> AssociationRecord:
        return only(r for r in self.db.tables.associations.values() if r.slug == slug)

    def slug_of(self, handoff: Handoff) -> str:
        return self.db.tables.associations[handoff.association_id].slug

    def handoffs(self) -> list[Handoff]:
        return _by_id(self.db.tables.handoffs.values())

    def coordinator_row(self, telegram_id: int) -> Coordinator:
        rows = self.db.tables.coordinators.values()
        return only(c for c in rows if c.telegram_id == telegram_id)

    def rows(self, kind: type[M], status: str | None = PENDING) -> list[tuple[OutboxRow, M]]:
        """Outbox rows holding a message of that kind (any status when `status` is None)."""
        found = []
        for row in _by_id(self.db.tables.outbox.values()):
            message = row.message
            if isinstance(message, kind) and (status is None or row.status == status):
                found.append((row, message))
        return found

    def pending(self, kind: type[M]) -> list[M]:
        """Messages of that kind waiting for the relay, in the order they were queued."""
        return [message for _row, message in self.rows(kind)]

    def funnel(self, event: str, step: str | None = None) -> int:
        events = self.db.tables.funnel.values()
        return sum(1 for e in events if e.event == event and (step is None or e.step == step))

    # --- the relay ---------------------------------------------------------------------------

    async def claim(self) -> list[Claimed]:
        async with self.unit_of_work() as uow:
            claimed = await uow.outbox.claim_due(self.now, timedelta(minutes=1), 100)
            await uow.commit()
        return claimed

    async def mark_sent(self, claimed: Claimed) -> tuple[int | None, bool]:
        """Telegram (or the CRM) accepted the message: its message id, and whether its person
        erased their data meanwhile."""
        message = claimed.message
        if isinstance(message, AssociationWebhook):
            sent_id = None
        elif isinstance(message, ContactCard) and message.message_id is not None:
            sent_id = message.message_id
        else:
            sent_id = next(self._message_ids)
        async with self.unit_of_work() as uow:
            erased = await uow.outbox.mark_sent(claimed.id, claimed.attempts + 1, sent_id, self.now)
            await uow.commit()
        return sent_id, erased

    async def report_delivered(
        self, message: OutboxMessage, sent_id: int | None, erased: bool
    ) -> None:
        async with self.unit_of_work() as uow:
            await handoffs.delivered(uow, message, sent_id, erased, self.now, self.policy)
            await uow.commit()

    async def sent(self, claimed: Claimed) -> None:
        """What the relay does once a message went through (in two transactions, as it does)."""
        sent_id, erased = await self.mark_sent(claimed)
        await self.report_delivered(claimed.message, sent_id, erased)

    async def deliver(self) -> list[OutboxMessage]:
        """One relay pass in which every due message goes through."""
        claimed = await self.claim()
        for message in claimed:
            await self.sent(message)
        return [c.message for c in claimed]


@dataclass
class Chat:
    """One Telegram account talking to the bot: each call is one update through `updates.handle`."""

    scene: Scene
    telegram_id: int
    first_name: str = ""
    language: str | None = "fr"

    async def send(self, action: Action, update_id: int | None = None) -> Reply:
        return await self.scene.handle(
            self.telegram_id, action, update_id, self.first_name, self.language
        )

    async def start(self, payload: str | None = None) -> Reply:
        return await self.send(Start(payload))

    async def choose(self, flow: str) -> Reply:
        return await self.send(ChooseFlow(flow))

    async def answer(self, given: Input) -> Reply:
        return await self.send(Answer(given))

    async def answer_until(self, flow: str, stop: str, **replies: Typed) -> Reply:
        """Choose `flow`, then answer with the default replies (or those given) until `stop` is
        asked ("_summary" for the summary)."""
        chosen = {**DEFAULT_REPLIES[flow], **replies}
        reply = await self.choose(flow)
        for _turn in range(40):
            screen = reply.screens[-1] if reply.screens else None
            if isinstance(screen, Summary) and stop == "_summary":
                return reply
            assert isinstance(screen, AskScreen), f"stopped on {reply!r}"
            if screen.step.key == stop:
                return reply
            for given in inputs_of(chosen[screen.step.key]):
                reply = await self.answer(given)
            after = reply.screens[-1] if reply.screens else None
            if isinstance(after, AskScreen) and after.step.key == screen.step.key:
                raise AssertionError(f"{screen.step.key} was refused: {after.problem!r}")
        raise AssertionError(f"{stop} never asked")

    async def fill(self, flow: str = "mentee", **replies: Typed) -> Reply:
        """Choose `flow`, answer every question with the default reply (or the one given), and
        confirm the summary: what a person who signs up does."""
        await self.answer_until(flow, "_summary", **replies)
        return await self.answer(ConfirmInput())

    async def press(
        self, handoff: Handoff | int, verb: HandoffVerb, reason: str | None = None
    ) -> Reply:
        handoff_id = handoff if isinstance(handoff, int) else handoff.id
        return await self.send(ActOnHandoff(handoff_id, verb, reason))
