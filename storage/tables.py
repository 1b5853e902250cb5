"""Tables, and the imperative mapping of the core's entities onto them (cosmicpython).

`conversations.entities` are plain dataclasses: they know no SQLAlchemy. `map_entities()` teaches
the ORM where each one lives, once per process, when `storage.uow` is imported. One row per
conversation holds its state, so a restart or another instance resumes it.

The Alembic migrations in `storage/migrations/versions` describe this schema; autogenerate must
find no difference (tests/integration/test_schema.py checks it on SQLite and PostgreSQL).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import registry
from sqlalchemy.types import TypeDecorator

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
    ProfileStatus,
    SignInLink,
)
from conversations.ports import OutboxStatus

# Stable constraint names, so Alembic migrations read the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend: SQLite would otherwise hand back naive ones."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware UTC time")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


metadata = MetaData(naming_convention=NAMING)


def _moment(name: str, nullable: bool = False, index: bool | None = None) -> Column[datetime]:
    return Column(name, UtcDateTime(), nullable=nullable, index=index)


people = Table(
    "people",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("telegram_id", BigInteger, nullable=False, unique=True),
    # Chosen with /language; NULL means "follow Telegram's language_code".
    Column("language", String(8)),
    Column("telegram_language", String(16)),
    # The last /start payload (a campaign, a school, a partner site), copied onto the next flow.
    Column("source", String(64)),
    _moment("created_at"),
    _moment("last_seen_at"),
    # "tu" (a young person) or "vous" (a parent, a professional, a mentor): set by the flow
    # chosen, so help, errors and /mydata speak to them as their questionnaire did.
    Column("address", String(4)),
    # Set when the person blocked the bot (my_chat_member): nothing is sent to them until then.
    _moment("blocked_at", nullable=True),
)

conversations = Table(
    "conversations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("person_id", ForeignKey("people.id", ondelete="CASCADE"), nullable=False),
    Column("chat_id", BigInteger, nullable=False),
    Column("flow", String(32), nullable=False),
    Column("step", String(64)),
    Column("answers", JSON, nullable=False),
    Column("draft", JSON, nullable=False),
    Column("editing", Boolean, nullable=False, default=False),
    Column("status", String(16), nullable=False),
    # Where the person came from (/start payload: a campaign, a school, a partner site).
    Column("source", String(64)),
    # An anonymous token copied onto this conversation's funnel events, which outlive it.
    Column("journey", String(32)),
    _moment("started_at"),
    _moment("updated_at"),
    # The one reminder sent to a person who stopped mid-questionnaire.
    _moment("nudged_at", nullable=True),
    # Optimistic concurrency: two instances handling one chat cannot both advance a step.
    Column("version", Integer, nullable=False, default=1),
    Index("ix_conversations_person_status", "person_id", "status"),
    # The nudge's every-few-minutes search: active conversations idle for a day.
    Index("ix_conversations_status_updated", "status", "updated_at"),
)

profiles = Table(
    "profiles",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("person_id", ForeignKey("people.id", ondelete="CASCADE"), nullable=False, index=True),
    Column(
        "conversation_id",
        ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    Column("role", String(16), nullable=False),
    # The questionnaire it came from: a young person's own ("mentee"), a parent's or a
    # professional's ("referral"), both of role "mentee"; or a mentor's.
    Column("flow", String(32), nullable=False),
    Column("answers", JSON, nullable=False),
    Column("language", String(8), nullable=False),
    Column("source", String(64)),
    Column("department", String(3)),
    _moment("submitted_at"),
    # The ranked associations and their reasons, kept as they were explained to the person.
    # None is SQL NULL (as an unset attribute was), not the JSON value `null`.
    Column("match", JSON(none_as_null=True)),
    # The association the profile went to; NULL while it waits for one (no association fits).
    Column("association_slug", String(40), index=True),
    Column("status", String(16), nullable=False, default=ProfileStatus.MATCHED),
)

consents = Table(
    "consents",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("person_id", ForeignKey("people.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("profile_id", ForeignKey("profiles.id", ondelete="CASCADE")),
    # "contact" (the person) or "parental" (a parent of an under-15).
    Column("kind", String(16), nullable=False),
    Column("text_version", String(32), nullable=False),
    _moment("given_at"),
    # How it was given: "in_chat" (the person, or a parent filling in), "parent_account" (a
    # parent confirmed through their own Telegram account), "attested" (a professional said
    # the parent agrees; the association checks with the parent).
    Column("method", String(24)),
)

# The link a young person under 15 forwards to a parent, who confirms in their own chat.
# Only the token's hash is kept; nothing is handed off before the parent agrees.
parental_links = Table(
    "parental_links",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("profile_id", ForeignKey("profiles.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    _moment("created_at"),
    _moment("expires_at"),
    _moment("reminded_at", nullable=True),
    _moment("answered_at", nullable=True),
    Column("agreed", Boolean),
    # Two accounts answering one link at once (two processes): the second commit is a Conflict,
    # read again, and finds the link answered; the profile is never handed off twice.
    Column("version", Integer, nullable=False, default=1),
)

# Telegram update ids already handled: a redelivered update changes nothing.
processed_updates = Table(
    "processed_updates",
    metadata,
    Column("update_id", BigInteger, primary_key=True, autoincrement=False),
    _moment("processed_at"),
)

# Updates received and not yet done (handled and answered): stored before Telegram is told they
# arrived, replayed after a crash. A row that keeps failing is given up: its body goes.
inbox = Table(
    "inbox",
    metadata,
    Column("update_id", BigInteger, primary_key=True, autoincrement=False),
    Column("body", JSON),
    _moment("received_at"),
    # Who holds it: refreshed when a process (re)takes a stale row, so two do not replay it.
    _moment("claimed_at", index=True),
    Column("attempts", Integer, nullable=False, default=0),
    _moment("failed_at", nullable=True),
)

# Where people go and give up. No person id: these counts outlive an erasure.
funnel_events = Table(
    "funnel_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("flow", String(32), nullable=False),
    Column("step", String(64)),
    Column("event", String(32), nullable=False),
    Column("detail", Text),
    _moment("at", index=True),
    # One conversation's events share a random token (never a person's id): the funnel counts
    # people who reached a step, not events, and finds where each one stopped.
    Column("journey", String(32), index=True),
    Column("language", String(8)),
    Column("source", String(64)),
)

associations = Table(
    "associations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("slug", String(40), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("entry", JSON, nullable=False),
    # Also settable by coordinators (/pause) without a catalogue import.
    Column("paused", Boolean, nullable=False, default=False),
    # Set by the Collectif from the dashboard: wins over the catalogue's capacity until cleared.
    Column("weekly_capacity", Integer),
    _moment("created_at"),
    _moment("updated_at"),
)

# A message for someone other than the person in front of the chat, written in the same
# transaction as the change that causes it and delivered later by the relay, with retries.
outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True),
    # The same key is never delivered twice, whoever enqueues it again.
    Column("dedup_key", String(160), nullable=False, unique=True),
    Column("channel", String(16), nullable=False),  # "telegram" or "webhook"
    Column("chat_id", BigInteger),
    Column("url", Text),
    # The typed message, as `storage.codec` writes it.
    Column("payload", JSON, nullable=False),
    # Set when the payload holds a person's data: erasure finds and scrubs it.
    Column("person_id", Integer, index=True),
    Column("status", String(16), nullable=False, default=OutboxStatus.PENDING),
    Column("attempts", Integer, nullable=False, default=0),
    _moment("next_attempt_at"),
    # A relay holds a message until this time; after it, another may try (it crashed).
    _moment("claimed_until", nullable=True),
    Column("last_error", String(200)),
    _moment("created_at"),
    _moment("sent_at", nullable=True),
    # Telegram's id of the delivered message, so that it can be edited later.
    Column("sent_message_id", BigInteger),
    Index("ix_outbox_due", "status", "next_attempt_at"),
)

coordinators = Table(
    "coordinators",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("association_id", ForeignKey("associations.id", ondelete="CASCADE"), nullable=False),
    Column("telegram_id", BigInteger, nullable=False, index=True),
    # Shown to the other coordinators ("Camille took it") and to the person ("Camille, from Afev").
    Column("first_name", String(64), nullable=False),
    Column("language", String(8), nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    _moment("joined_at"),
    _moment("removed_at", nullable=True),
    UniqueConstraint("association_id", "telegram_id", name="uq_coordinators_association_person"),
)

# A single-use, expiring invitation to coordinate an association. Only its hash is stored.
invites = Table(
    "invites",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("association_id", ForeignKey("associations.id", ondelete="CASCADE"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    _moment("created_at"),
    _moment("expires_at"),
    _moment("used_at", nullable=True),
    Column("used_by", BigInteger),
)

# A single-use, short-lived link to the staff dashboard, asked for with /dashboard. Hash only.
sign_in_links = Table(
    "sign_in_links",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("telegram_id", BigInteger, nullable=False),
    _moment("created_at"),
    _moment("expires_at", index=True),
    _moment("used_at", nullable=True),
    # Once used, the row is the session it opened: signing out ends it here, for every copy of
    # the cookie, and the rights are read again at each page.
    _moment("session_ends_at", nullable=True),
)

# Who did what on the dashboard, and when: staff ids and association slugs, never a young
# person's data (a contact is named by its handoff id).
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True),
    _moment("at", index=True),
    Column("actor", BigInteger, nullable=False),
    Column("role", String(16), nullable=False),
    Column("action", String(40), nullable=False),
    Column("target", String(120)),
    Column("detail", String(200)),
)

# A profile proposed to one association: proposed → delivered → taken → contacted → closed,
# or declined / expired, after which the profile goes to the next association.
handoffs = Table(
    "handoffs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("profile_id", ForeignKey("profiles.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("association_id", ForeignKey("associations.id"), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("taken_by", ForeignKey("coordinators.id", ondelete="SET NULL")),
    Column("decline_reason", String(16)),
    _moment("created_at"),
    _moment("delivered_at", nullable=True),
    _moment("taken_at", nullable=True),
    _moment("contacted_at", nullable=True),
    _moment("closed_at", nullable=True),
    _moment("reminded_at", nullable=True),
    # Two coordinators pressing "take" at once: the second commit fails and reads the winner.
    Column("version", Integer, nullable=False, default=1),
    Index("ix_handoffs_status_created", "status", "created_at"),
)

# Every transition of a handoff, with who did it and when.
handoff_events = Table(
    "handoff_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("handoff_id", ForeignKey("handoffs.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("event", String(32), nullable=False),
    Column("coordinator_id", ForeignKey("coordinators.id", ondelete="SET NULL")),
    Column("detail", String(64)),
    _moment("at"),
)


# --- storage's own rows: the core never sees them ------------------------------------------
# Mapped (rather than written with Core statements) because `UpdateLog.record` and
# `FunnelRepository.record` are synchronous: the row joins the session and goes out at flush.


@dataclass(eq=False, kw_only=True)
class ProcessedUpdate:
    update_id: int
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
    id: int = field(default=None)  # type: ignore[assignment]  # set on insert


mapper_registry = registry(metadata=metadata)


def map_entities() -> None:
    """Map every entity onto its table; the second call (and any after it) does nothing."""
    if mapper_registry.mappers:
        return
    mapper_registry.map_imperatively(Person, people)
    mapper_registry.map_imperatively(
        Conversation, conversations, version_id_col=conversations.c.version
    )
    mapper_registry.map_imperatively(Profile, profiles)
    mapper_registry.map_imperatively(Consent, consents)
    mapper_registry.map_imperatively(
        ParentalLink, parental_links, version_id_col=parental_links.c.version
    )
    mapper_registry.map_imperatively(AssociationRecord, associations)
    mapper_registry.map_imperatively(Coordinator, coordinators)
    mapper_registry.map_imperatively(Invite, invites)
    mapper_registry.map_imperatively(Handoff, handoffs, version_id_col=handoffs.c.version)
    mapper_registry.map_imperatively(HandoffEvent, handoff_events)
    mapper_registry.map_imperatively(SignInLink, sign_in_links)
    mapper_registry.map_imperatively(AuditEntry, audit_log)
    mapper_registry.map_imperatively(ProcessedUpdate, processed_updates)
    mapper_registry.map_imperatively(FunnelEvent, funnel_events)
