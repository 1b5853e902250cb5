"""Repositories: the queries of each table, in domain words. They never commit: the unit of work does."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from conversations.model import Answer, ConversationState, Status
from storage.models import (
    AssociationRecord,
    Consent,
    Conversation,
    Coordinator,
    FunnelEvent,
    Person,
    ProcessedUpdate,
    Profile,
)


def answers_to_json(answers: Mapping[str, Answer]) -> dict[str, Any]:
    return {
        key: list(value) if isinstance(value, tuple) else value for key, value in answers.items()
    }


def answers_from_json(stored: Mapping[str, Any]) -> dict[str, Answer]:
    return {
        key: tuple(value) if isinstance(value, list) else value for key, value in stored.items()
    }


class PeopleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def by_telegram_id(self, telegram_id: int) -> Person | None:
        return await self._session.scalar(select(Person).where(Person.telegram_id == telegram_id))

    async def seen(self, telegram_id: int, telegram_language: str | None, now: datetime) -> Person:
        """The person behind a Telegram account, created on first contact."""
        person = await self.by_telegram_id(telegram_id)
        if person is None:
            person = Person(
                telegram_id=telegram_id,
                telegram_language=telegram_language,
                created_at=now,
                last_seen_at=now,
            )
            self._session.add(person)
            await self._session.flush()
        else:
            person.last_seen_at = now
            if telegram_language:
                person.telegram_language = telegram_language
        return person

    async def due_for_erasure(
        self,
        without_profile_before: datetime,
        with_profile_before: datetime,
        limit: int,
        after: int = 0,
    ) -> list[int]:
        """People silent too long: since `without_profile_before` if they never submitted a
        profile, since `with_profile_before` otherwise. One query, however many people."""
        has_profile = select(Profile.id).where(Profile.person_id == Person.id).exists()
        # Coordinators talk to the bot when contacts come, not every month: their role stays.
        coordinates = (
            select(Coordinator.id)
            .where(Coordinator.telegram_id == Person.telegram_id, Coordinator.active.is_(True))
            .exists()
        )
        result = await self._session.scalars(
            select(Person.id)
            .where(
                Person.id > after,
                or_(
                    Person.last_seen_at < with_profile_before,
                    and_(Person.last_seen_at < without_profile_before, ~has_profile, ~coordinates),
                ),
            )
            .order_by(Person.id)
            .limit(limit)
        )
        return list(result)

    async def erase(self, person: Person) -> None:
        """Everything about a person goes; their anonymous funnel counts stay."""
        await self._session.execute(delete(Consent).where(Consent.person_id == person.id))
        await self._session.execute(delete(Profile).where(Profile.person_id == person.id))
        await self._session.execute(delete(Conversation).where(Conversation.person_id == person.id))
        await self._session.delete(person)


class ConversationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def active_for(self, person: Person) -> Conversation | None:
        return await self._session.scalar(
            select(Conversation)
            .where(Conversation.person_id == person.id, Conversation.status == Status.ACTIVE)
            .order_by(Conversation.id.desc())
            .limit(1)
        )

    async def purge_unfinished_before(self, moment: datetime) -> int:
        """Questionnaires left unfinished (abandoned, cancelled, ended early) go after a while;
        completed ones stay with their profile."""
        result = await self._session.execute(
            delete(Conversation).where(
                Conversation.status != Status.COMPLETED, Conversation.updated_at < moment
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)

    def start(
        self,
        person: Person,
        chat_id: int,
        state: ConversationState,
        source: str | None,
        now: datetime,
    ) -> Conversation:
        row = Conversation(
            person_id=person.id,
            chat_id=chat_id,
            flow=state.flow,
            source=source,
            started_at=now,
            answers={},
            draft={},
            status=Status.ACTIVE,
        )
        self.save(row, state, now)
        self._session.add(row)
        return row

    @staticmethod
    def state_of(row: Conversation) -> ConversationState:
        return ConversationState(
            flow=row.flow,
            step=row.step,
            answers=answers_from_json(row.answers),
            status=Status(row.status),
            draft=tuple(row.draft.get("selected", ())),
            editing=row.editing,
        )

    @staticmethod
    def save(row: Conversation, state: ConversationState, now: datetime) -> None:
        row.flow = state.flow
        row.step = state.step
        row.answers = answers_to_json(state.answers)
        row.draft = {"selected": list(state.draft)}
        row.editing = state.editing
        row.status = state.status
        row.updated_at = now


class ProfileRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def add(self, profile: Profile) -> Profile:
        self._session.add(profile)
        return profile

    def add_consent(self, consent: Consent) -> None:
        self._session.add(consent)

    async def for_person(self, person: Person) -> list[Profile]:
        result = await self._session.scalars(
            select(Profile).where(Profile.person_id == person.id).order_by(Profile.id)
        )
        return list(result)

    async def waiting_ids(self, limit: int) -> list[int]:
        result = await self._session.scalars(
            select(Profile.id).where(Profile.status == "waiting").order_by(Profile.id).limit(limit)
        )
        return list(result)

    async def consents_for(self, person: Person) -> list[Consent]:
        result = await self._session.scalars(
            select(Consent).where(Consent.person_id == person.id).order_by(Consent.id)
        )
        return list(result)


class UpdateLog:
    """Update ids handled, recorded in the transaction that handles them."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def seen(self, update_id: int) -> bool:
        found = await self._session.get(ProcessedUpdate, update_id)
        return found is not None

    def record(self, update_id: int, now: datetime) -> None:
        self._session.add(ProcessedUpdate(update_id=update_id, processed_at=now))

    async def forget_before(self, moment: datetime) -> int:
        """Telegram never redelivers an update older than a day; older ids are dead weight."""
        result = await self._session.execute(
            delete(ProcessedUpdate).where(ProcessedUpdate.processed_at < moment)
        )
        return int(getattr(result, "rowcount", 0) or 0)


class FunnelRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def record(
        self, flow: str, step: str | None, event: str, at: datetime, detail: str | None = None
    ) -> None:
        self._session.add(FunnelEvent(flow=flow, step=step, event=event, at=at, detail=detail))

    async def answered_by_step(self) -> dict[tuple[str, str], int]:
        rows = await self._session.execute(
            select(FunnelEvent.flow, FunnelEvent.step, func.count())
            .where(FunnelEvent.event == "answered")
            .group_by(FunnelEvent.flow, FunnelEvent.step)
        )
        return {(flow, str(step)): int(count) for flow, step, count in rows}

    async def counts(self) -> dict[tuple[str, str], int]:
        rows = await self._session.execute(
            select(FunnelEvent.flow, FunnelEvent.event, func.count()).group_by(
                FunnelEvent.flow, FunnelEvent.event
            )
        )
        return {(flow, event): int(count) for flow, event, count in rows}


@dataclass(frozen=True)
class CatalogChanges:
    added: tuple[str, ...]
    changed: tuple[str, ...]
    unchanged: tuple[str, ...]
    # In the database but not in the file: kept, since profiles and handoffs refer to them.
    not_in_file: tuple[str, ...]


class CatalogRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def records(self) -> list[AssociationRecord]:
        result = await self._session.scalars(
            select(AssociationRecord).order_by(AssociationRecord.slug)
        )
        return list(result)

    async def by_slug(self, slug: str) -> AssociationRecord | None:
        return await self._session.scalar(
            select(AssociationRecord).where(AssociationRecord.slug == slug)
        )

    async def is_empty(self) -> bool:
        count = await self._session.scalar(select(func.count()).select_from(AssociationRecord))
        return not count

    async def upsert(
        self, entries: Mapping[str, tuple[str, dict[str, Any]]], now: datetime
    ) -> CatalogChanges:
        """Add or update each association (slug -> (name, entry)); the same import twice is a no-op."""
        existing = {record.slug: record for record in await self.records()}
        added, changed, unchanged = [], [], []
        for slug, (name, entry) in sorted(entries.items()):
            record = existing.get(slug)
            if record is None:
                self._session.add(
                    AssociationRecord(
                        slug=slug,
                        name=name,
                        entry=entry,
                        paused=bool(entry.get("paused", False)),
                        created_at=now,
                        updated_at=now,
                    )
                )
                added.append(slug)
            elif record.entry != entry or record.name != name:
                # A coordinator's /pause stands unless the file itself changes `paused`.
                if bool(record.entry.get("paused", False)) != bool(entry.get("paused", False)):
                    record.paused = bool(entry.get("paused", False))
                record.entry = entry
                record.name = name
                record.updated_at = now
                changed.append(slug)
            else:
                unchanged.append(slug)
        not_in_file = sorted(set(existing) - set(entries))
        return CatalogChanges(tuple(added), tuple(changed), tuple(unchanged), tuple(not_in_file))
