"""The outbox table's queries: enqueue in the caller's transaction, claim what is due, record results.

With PostgreSQL several dispatchers share the work: a claim takes rows `FOR UPDATE SKIP LOCKED` and
leases them for a while, so a dispatcher that dies mid-send leaves them to another after the lease.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import OutboxMessage

PENDING, SENT, DEAD = "pending", "sent", "dead"


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        # How many deliveries this unit of work queued: the caller wakes the dispatcher if any.
        self.enqueued = 0

    async def enqueue(
        self,
        dedup_key: str,
        now: datetime,
        *,
        chat_id: int | None = None,
        url: str | None = None,
        payload: dict[str, Any],
        person_id: int | None = None,
    ) -> None:
        """Queue one delivery; a second enqueue with the same key does nothing.

        `person_id` marks a message that holds that person's data, for erasure.
        """
        values = {
            "dedup_key": dedup_key,
            "channel": "telegram" if chat_id is not None else "webhook",
            "chat_id": chat_id,
            "url": url,
            "payload": payload,
            "person_id": person_id,
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        dialect = self._session.bind.dialect.name if self._session.bind else "sqlite"
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        await self._session.execute(
            insert(OutboxMessage)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["dedup_key"])
        )
        self.enqueued += 1

    async def claim_due(self, now: datetime, lease: timedelta, limit: int) -> list[OutboxMessage]:
        query = (
            select(OutboxMessage)
            .where(
                OutboxMessage.status == PENDING,
                OutboxMessage.next_attempt_at <= now,
                or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until <= now),
            )
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows = list(await self._session.scalars(query))
        for row in rows:
            row.claimed_until = now + lease
        return rows

    async def supersede(self, key_prefix: str, keep: str) -> None:
        """Older pending edits of one message lose to the newer one (`keep`): only the latest
        state shows."""
        rows = await self._session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.dedup_key.startswith(key_prefix, autoescape=True),
                OutboxMessage.dedup_key != keep,
                OutboxMessage.status == PENDING,
            )
        )
        for row in rows:
            row.status = DEAD
            row.last_error = "superseded"

    async def drop_pending_for_chat(self, chat_id: int) -> None:
        """Nothing more goes to a coordinator who left, not even what was already queued."""
        await self._session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.chat_id == chat_id, OutboxMessage.status == PENDING)
            .values(status=DEAD, last_error="recipient left")
        )

    async def forget_person(self, person_id: int) -> None:
        """Erasure: queued or sent messages about a person lose their text (it holds their data)."""
        rows = await self._session.scalars(
            select(OutboxMessage).where(OutboxMessage.person_id == person_id)
        )
        for row in rows:
            row.person_id = None
            if row.status == PENDING:
                row.status = DEAD
                row.last_error = "erased"
            # Ids only: enough to scrub a card that was being sent at that very moment.
            kept = ("kind", "handoff_id", "coordinator_id")
            row.payload = {key: row.payload[key] for key in kept if key in row.payload}

    async def get(self, message_id: int) -> OutboxMessage | None:
        return await self._session.get(OutboxMessage, message_id)

    async def by_key(self, dedup_key: str) -> OutboxMessage | None:
        return await self._session.scalar(
            select(OutboxMessage).where(OutboxMessage.dedup_key == dedup_key)
        )
