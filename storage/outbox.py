"""The outbox: typed messages queued in the caller's transaction, claimed by the relay, results recorded.

With PostgreSQL several relays share the work: a claim takes rows `FOR UPDATE SKIP LOCKED` and
leases them for a while, so a relay that dies mid-send leaves them to another after the lease.
The outbox has no entity in the core: these are Core statements on `storage.tables.outbox`, and
each message is stored through `storage.codec`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from conversations.ports import (
    AssociationWebhook,
    Claimed,
    ContactCard,
    OutboxMessage,
    OutboxStatus,
    SentCard,
)
from storage import codec
from storage.db import insert_for
from storage.tables import outbox

log = logging.getLogger(__name__)

PENDING, SENT, DEAD = OutboxStatus.PENDING, OutboxStatus.SENT, OutboxStatus.DEAD
# last_error of a message whose person erased their data: `mark_sent` tells it apart.
ERASED = "erased"
SUPERSEDED = "superseded"
RECIPIENT_LEFT = "recipient left"
BLOCKED = "blocked by the person"
UNDECODABLE = "undecodable payload"
ERROR_LENGTH = 200  # outbox.last_error is a String(200)


@dataclass(frozen=True)
class OutboxRow:
    """One outbox row as stored, for storage's tests and operators: not part of the ports."""

    id: int
    dedup_key: str
    channel: str
    chat_id: int | None
    url: str | None
    payload: dict[str, Any]
    person_id: int | None
    status: str
    attempts: int
    next_attempt_at: datetime
    claimed_until: datetime | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    sent_message_id: int | None


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        # How many messages this unit of work queued: the caller wakes the relay when any.
        self.enqueued = 0

    async def enqueue(
        self, key: str, message: OutboxMessage, now: datetime, person_id: int | None = None
    ) -> None:
        """Queue one delivery; a second enqueue with the same key does nothing.

        `person_id` marks a message that holds that person's data, for erasure.
        """
        if isinstance(message, AssociationWebhook):
            channel, chat_id, url = "webhook", None, message.url
        else:
            channel, chat_id, url = "telegram", message.chat_id, None
        values = {
            "dedup_key": key,
            "channel": channel,
            "chat_id": chat_id,
            "url": url,
            "payload": codec.encode(message),
            "person_id": person_id,
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        await self._session.execute(
            insert_for(self._session, outbox)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["dedup_key"])
        )
        self.enqueued += 1

    async def cards_of(self, handoff_id: int) -> list[SentCard]:
        """The first card each coordinator got for a handoff (not the later edits of it)."""
        rows = await self._session.execute(
            select(
                outbox.c.id,
                outbox.c.payload,
                outbox.c.status,
                outbox.c.sent_message_id,
                outbox.c.person_id,
            )
            .where(outbox.c.dedup_key.startswith(f"handoff:{handoff_id}:", autoescape=True))
            .order_by(outbox.c.id)
        )
        cards = []
        for outbox_id, payload, status, sent_message_id, person_id in rows:
            try:
                card = codec.decode(payload)
            except codec.UndecodablePayload:
                continue  # scrubbed by an erasure: nothing left to show or to keep current
            if isinstance(card, ContactCard):
                cards.append(
                    SentCard(
                        outbox_id=outbox_id,
                        card=card,
                        sent=status == SENT,
                        message_id=sent_message_id,
                        person_id=person_id,
                    )
                )
        return cards

    async def replace_pending(self, outbox_id: int, message: OutboxMessage) -> None:
        """A message not sent yet goes out as `message` instead (the card as it is now).
        Only a pending one: a dead message never goes, and an erased one must stay scrubbed."""
        await self._session.execute(
            update(outbox)
            .where(outbox.c.id == outbox_id, outbox.c.status == PENDING)
            .values(payload=codec.encode(message))
        )

    async def supersede(self, key_prefix: str, keep: str) -> None:
        """Older pending edits of one message lose to the newer one (`keep`): only the latest
        state shows."""
        await self._session.execute(
            update(outbox)
            .where(
                outbox.c.dedup_key.startswith(key_prefix, autoescape=True),
                outbox.c.dedup_key != keep,
                outbox.c.status == PENDING,
            )
            .values(status=DEAD, last_error=SUPERSEDED)
        )

    async def drop_pending_for_chat(self, chat_id: int) -> None:
        """Nothing more goes to a coordinator who left, not even what was already queued."""
        await self._session.execute(
            update(outbox)
            .where(outbox.c.chat_id == chat_id, outbox.c.status == PENDING)
            .values(status=DEAD, last_error=RECIPIENT_LEFT)
        )

    async def drop_pending_notices(self, chat_id: int) -> None:
        """A person blocked the bot: their queued notices die rather than meet a 403 (and alert
        the admins for nothing). Told apart by the payload's type: a coordinator on the same
        account still gets their cards."""
        rows = await self._session.execute(
            select(outbox.c.id, outbox.c.payload).where(
                outbox.c.chat_id == chat_id, outbox.c.status == PENDING
            )
        )
        notices = [
            outbox_id
            for outbox_id, payload in rows
            if isinstance(payload, dict) and payload.get("type") == codec.PERSON_NOTICE
        ]
        if notices:
            await self._session.execute(
                update(outbox)
                .where(outbox.c.id.in_(notices), outbox.c.status == PENDING)
                .values(status=DEAD, last_error=BLOCKED)
            )

    async def forget_person(self, person_id: int) -> None:
        """Erasure: queued or sent messages about a person lose their content (it holds their
        data); queued ones will not go."""
        await self._session.execute(
            update(outbox)
            .where(outbox.c.person_id == person_id, outbox.c.status == PENDING)
            .values(status=DEAD, last_error=ERASED)
        )
        rows = await self._session.execute(
            select(outbox.c.id, outbox.c.payload).where(outbox.c.person_id == person_id)
        )
        for outbox_id, payload in list(rows):
            # Ids only: enough to know which card was being sent at that very moment.
            await self._session.execute(
                update(outbox)
                .where(outbox.c.id == outbox_id)
                .values(person_id=None, payload=codec.scrubbed(payload))
            )

    # --- what the relay does ---------------------------------------------------------------

    async def claim_due(self, now: datetime, lease: timedelta, limit: int) -> list[Claimed]:
        """Lease up to `limit` pending messages that are due; another relay skips them until
        `now + lease`. A payload that no longer decodes is dead-lettered, not claimed."""
        rows = list(
            await self._session.execute(
                select(outbox.c.id, outbox.c.dedup_key, outbox.c.payload, outbox.c.attempts)
                .where(
                    outbox.c.status == PENDING,
                    outbox.c.next_attempt_at <= now,
                    or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until <= now),
                )
                .order_by(outbox.c.next_attempt_at, outbox.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        claimed, undecodable = [], []
        for outbox_id, key, payload, attempts in rows:
            try:
                message = codec.decode(payload)
            except codec.UndecodablePayload as error:
                log.error("outbox %s cannot be read, dead-lettered: %s", outbox_id, error)
                undecodable.append(outbox_id)
                continue
            claimed.append(Claimed(id=outbox_id, key=key, message=message, attempts=attempts))
        if claimed:
            await self._session.execute(
                update(outbox)
                .where(outbox.c.id.in_([c.id for c in claimed]))
                .values(claimed_until=now + lease)
            )
        if undecodable:
            await self._session.execute(
                update(outbox)
                .where(outbox.c.id.in_(undecodable))
                .values(status=DEAD, last_error=UNDECODABLE)
            )
        return claimed

    async def release(self, outbox_ids: list[int]) -> None:
        """Give claimed messages back before their lease ends (this relay ran out of time)."""
        if not outbox_ids:
            return
        await self._session.execute(
            update(outbox).where(outbox.c.id.in_(outbox_ids)).values(claimed_until=None)
        )

    async def mark_sent(
        self, outbox_id: int, attempts: int, sent_message_id: int | None, now: datetime
    ) -> bool:
        """Marks it sent; True when its person erased their data while it was on its way (it
        stays dead, and the message that went out must be scrubbed). `attempts` is stored as
        given: the count including this one."""
        # FOR UPDATE: an erasure committing meanwhile is seen, not overwritten.
        found = (
            await self._session.execute(
                select(outbox.c.status, outbox.c.last_error)
                .where(outbox.c.id == outbox_id)
                .with_for_update()
            )
        ).one_or_none()
        if found is None:
            return False
        erased_meanwhile = bool(found.status == DEAD and found.last_error == ERASED)
        values: dict[str, Any] = {
            "sent_at": now,
            "sent_message_id": sent_message_id,
            "claimed_until": None,
            "attempts": attempts,
        }
        if not erased_meanwhile:
            values["status"] = SENT
        await self._session.execute(update(outbox).where(outbox.c.id == outbox_id).values(values))
        return erased_meanwhile

    async def retry_later(
        self, outbox_id: int, attempts: int, next_attempt_at: datetime, reason: str
    ) -> None:
        await self._session.execute(
            update(outbox)
            .where(outbox.c.id == outbox_id)
            .values(
                attempts=attempts,
                next_attempt_at=next_attempt_at,
                claimed_until=None,
                last_error=reason[:ERROR_LENGTH],
            )
        )

    async def mark_dead(self, outbox_id: int, attempts: int, reason: str) -> None:
        await self._session.execute(
            update(outbox)
            .where(outbox.c.id == outbox_id)
            .values(
                status=DEAD,
                attempts=attempts,
                claimed_until=None,
                last_error=reason[:ERROR_LENGTH],
            )
        )

    async def counts_by_status(self) -> dict[str, int]:
        """How many messages are pending, sent and dead (for /metrics)."""
        rows = await self._session.execute(
            select(outbox.c.status, func.count()).group_by(outbox.c.status)
        )
        return {str(status): int(count) for status, count in rows}

    # --- not in the ports: storage's tests and operators -----------------------------------

    async def by_key(self, dedup_key: str) -> OutboxRow | None:
        found = (
            await self._session.execute(select(outbox).where(outbox.c.dedup_key == dedup_key))
        ).one_or_none()
        return None if found is None else OutboxRow(**found._asdict())
