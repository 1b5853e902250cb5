"""Tables. One row per conversation holds its state, so a restart or another instance resumes it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

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


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, datetime: UtcDateTime()}  # noqa: RUF012


class Person(Base):
    """A Telegram account that talked to the bot; personal answers live in its conversations."""

    __tablename__ = "people"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    telegram_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    # Chosen with /language; None means "follow Telegram's language_code".
    language: Mapped[str | None] = mapped_column(String(8))
    telegram_language: Mapped[str | None] = mapped_column(String(16))
    # The last /start payload (a campaign, a school, a partner site), copied onto the next conversation.
    source: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_person_status", "person_id", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    chat_id: Mapped[int] = mapped_column(BigInteger)
    flow: Mapped[str] = mapped_column(String(32))
    step: Mapped[str | None] = mapped_column(String(64))
    answers: Mapped[dict[str, Any]]
    draft: Mapped[dict[str, Any]]
    editing: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16))
    # Where the person came from (/start payload: a campaign, a school, a partner site).
    source: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # Optimistic concurrency: two instances handling one chat cannot both advance a step.
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class Profile(Base):
    """The answers a person confirmed at the end of a flow."""

    __tablename__ = "profiles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), unique=True
    )
    role: Mapped[str] = mapped_column(String(16))
    answers: Mapped[dict[str, Any]]
    language: Mapped[str] = mapped_column(String(8))
    source: Mapped[str | None] = mapped_column(String(64))
    department: Mapped[str | None] = mapped_column(String(3))
    submitted_at: Mapped[datetime]
    # The ranked associations and their reasons, kept as they were explained to the person.
    match: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The association the profile went to; None while it waits for one (no association fits).
    association_slug: Mapped[str | None] = mapped_column(String(40), index=True)
    status: Mapped[str] = mapped_column(String(16), default="matched")


class Consent(Base):
    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    profile_id: Mapped[int | None] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"))
    # "contact" (the person) or "parental" (a parent of an under-15).
    kind: Mapped[str] = mapped_column(String(16))
    text_version: Mapped[str] = mapped_column(String(32))
    given_at: Mapped[datetime]


class ProcessedUpdate(Base):
    """Telegram update ids already handled: a redelivered update changes nothing."""

    __tablename__ = "processed_updates"

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    processed_at: Mapped[datetime]


class FunnelEvent(Base):
    """Where people go and give up. No person id: these counts outlive an erasure."""

    __tablename__ = "funnel_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    flow: Mapped[str] = mapped_column(String(32))
    step: Mapped[str | None] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(index=True)


class AssociationRecord(Base):
    """One association of the catalogue, as its validated catalogue entry (JSON) plus what we query."""

    __tablename__ = "associations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    entry: Mapped[dict[str, Any]]
    # Also settable by coordinators (/pause) without a catalogue import.
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class OutboxMessage(Base):
    """A message for someone other than the person in front of the chat, written in the same
    transaction as the change that causes it and delivered later by the dispatcher, with retries."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The same key is never delivered twice, whoever enqueues it again.
    dedup_key: Mapped[str] = mapped_column(String(160), unique=True)
    channel: Mapped[str] = mapped_column(String(16))  # "telegram" or "webhook"
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    url: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]]
    # Set when the payload holds a person's data: erasure finds and scrubs it.
    person_id: Mapped[int | None] = mapped_column(Integer, index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending, sent, dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    # A dispatcher holds a message until this time; after it, another may try (it crashed).
    claimed_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    # Telegram's id of the delivered message, so that it can be edited later.
    sent_message_id: Mapped[int | None] = mapped_column(BigInteger)


class Coordinator(Base):
    """A Telegram account that receives an association's contacts, joined through an invite."""

    __tablename__ = "coordinators"
    __table_args__ = (
        UniqueConstraint(
            "association_id", "telegram_id", name="uq_coordinators_association_person"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    association_id: Mapped[int] = mapped_column(ForeignKey("associations.id", ondelete="CASCADE"))
    telegram_id: Mapped[int] = mapped_column(BigInteger, index=True)
    # Shown to the other coordinators ("Camille took it") and to the person ("Camille, from Afev").
    first_name: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    joined_at: Mapped[datetime]
    removed_at: Mapped[datetime | None]


class Invite(Base):
    """A single-use, expiring invitation to coordinate an association. Only its hash is stored."""

    __tablename__ = "invites"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    association_id: Mapped[int] = mapped_column(ForeignKey("associations.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    used_by: Mapped[int | None] = mapped_column(BigInteger)


class Handoff(Base):
    """A profile proposed to one association: proposed → delivered → taken → contacted → closed,
    or declined / expired, after which the profile goes to the next association."""

    __tablename__ = "handoffs"
    __table_args__ = (Index("ix_handoffs_status_created", "status", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    profile_id: Mapped[int] = mapped_column(
        ForeignKey("profiles.id", ondelete="CASCADE"), index=True
    )
    association_id: Mapped[int] = mapped_column(ForeignKey("associations.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    taken_by: Mapped[int | None] = mapped_column(ForeignKey("coordinators.id", ondelete="SET NULL"))
    decline_reason: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    taken_at: Mapped[datetime | None]
    contacted_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    reminded_at: Mapped[datetime | None]
    # Two coordinators pressing "take" at once: the second commit fails and reads the winner.
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class HandoffEvent(Base):
    """Every transition of a handoff, with who did it and when."""

    __tablename__ = "handoff_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    handoff_id: Mapped[int] = mapped_column(
        ForeignKey("handoffs.id", ondelete="CASCADE"), index=True
    )
    event: Mapped[str] = mapped_column(String(32))
    coordinator_id: Mapped[int | None] = mapped_column(
        ForeignKey("coordinators.id", ondelete="SET NULL")
    )
    detail: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime]
