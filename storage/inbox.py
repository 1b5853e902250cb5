"""The inbox's queries: store what Telegram sent before confirming it, take back what a crashed
process left, count failures, forget what is done."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import bindparam, delete, exists, literal, null, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession

from conversations.ports import InboxEntry
from storage.db import dialect_of, insert_of
from storage.repositories import rowcount
from storage.tables import inbox, processed_updates


class InboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def store(
        self, updates: Sequence[tuple[int, dict[str, Any]]], now: datetime
    ) -> tuple[dict[int, InboxEntry], set[int]]:
        """Keep each update; returns the rows already there (a redelivery), and the updates
        handled and answered before (not kept again: a new row would outlive any reply).

        One statement when every update is new (the hot path): an INSERT of those not handled
        before, that says which it kept. Only a redelivery costs a second, for what it found."""
        if not updates:
            return {}, set()
        kept: set[int] = set()
        for chunk in _chunks(updates, ROWS_PER_INSERT):
            kept.update(await self._insert_new(chunk, now))
        others = [update_id for update_id, _body in updates if update_id not in kept]
        if not others:
            return {}, set()
        known, answered = await self._found(others)
        # Neither stored nor handled any more (a row done, or given up and forgotten, since the
        # INSERT): not new either. Like the answered ones, it is acknowledged and not handled.
        return known, answered | (set(others) - set(known))

    async def _insert_new(
        self, updates: Sequence[tuple[int, dict[str, Any]]], now: datetime
    ) -> set[int]:
        # The batch padded to one of a few sizes (its last update repeated: ON CONFLICT DO
        # NOTHING skips the copies), so that SQLAlchemy builds and compiles each shape once.
        # A statement per batch size was compiled again and again, and the compiled cache kept
        # thousands of clauses for the garbage collector to scan.
        size = next(s for s in INSERT_SIZES if s >= len(updates))
        padded = list(updates) + [updates[-1]] * (size - len(updates))
        params: dict[str, Any] = {"now": now}
        for i, (update_id, body) in enumerate(padded):
            params[f"id_{i}"] = update_id
            params[f"body_{i}"] = body
        statement = _insert_statement(dialect_of(self._session), size)
        result = await self._session.execute(statement, params)
        return set(result.scalars())

    async def _found(self, ids: Sequence[int]) -> tuple[dict[int, InboxEntry], set[int]]:
        """In one statement (one snapshot, one round trip on the hot path): the rows already
        there, and the ids handled whose row is gone. A row lives from before its update is
        handled until its reply went, so those were handled and answered."""
        stored = select(
            inbox.c.update_id,
            inbox.c.body,
            inbox.c.attempts,
            inbox.c.failed_at,
            inbox.c.claimed_at,
            literal(True).label("stored"),
        ).where(inbox.c.update_id.in_(ids))
        answered = select(
            processed_updates.c.update_id,
            # Labelled: one select would otherwise fold repeated NULLs into one column.
            null().label("body"),
            null().label("attempts"),
            null().label("failed_at"),
            null().label("claimed_at"),
            literal(False),
        ).where(
            processed_updates.c.update_id.in_(ids),
            ~exists().where(inbox.c.update_id == processed_updates.c.update_id),
        )
        known: dict[int, InboxEntry] = {}
        handled: set[int] = set()
        rows = await self._session.execute(union_all(stored, answered))
        for update_id, body, attempts, failed_at, claimed_at, is_stored in rows:
            if not is_stored:
                handled.add(update_id)
            else:
                known[update_id] = InboxEntry(
                    update_id, body, attempts, failed_at is not None, claimed_at
                )
        return known, handled

    async def take_over(self, update_id: int, before: datetime, now: datetime) -> bool:
        """Claim one row nobody touched since `before`; False when another process just did."""
        result = await self._session.execute(
            update(inbox)
            .where(
                inbox.c.update_id == update_id,
                inbox.c.claimed_at < before,
                inbox.c.failed_at.is_(None),
            )
            .values(claimed_at=now)
        )
        return rowcount(result) == 1

    async def claim_stale(self, before: datetime, now: datetime, limit: int) -> list[InboxEntry]:
        """Rows nobody finished since `before` (their process died): this one takes them over."""
        rows = await self._session.execute(
            select(inbox.c.update_id, inbox.c.body, inbox.c.attempts)
            .where(inbox.c.failed_at.is_(None), inbox.c.claimed_at < before)
            .order_by(inbox.c.update_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        entries = [InboxEntry(u, body, attempts, False, now) for u, body, attempts in rows]
        if entries:
            await self._session.execute(
                update(inbox)
                .where(inbox.c.update_id.in_([e.update_id for e in entries]))
                .values(claimed_at=now)
            )
        return entries

    async def touch(self, update_ids: Sequence[int], now: datetime) -> None:
        """This process still holds these: nobody else may take them over yet."""
        for chunk in _chunks(update_ids):
            await self._session.execute(
                update(inbox).where(inbox.c.update_id.in_(chunk)).values(claimed_at=now)
            )

    async def attempt_failed(self, update_id: int, now: datetime) -> int:
        """One more failed try at this update; returns how many there were."""
        await self._session.execute(
            update(inbox)
            .where(inbox.c.update_id == update_id)
            .values(attempts=inbox.c.attempts + 1, claimed_at=now)
        )
        attempts = await self._session.scalar(
            select(inbox.c.attempts).where(inbox.c.update_id == update_id)
        )
        return int(attempts or 0)

    async def give_up(self, update_id: int, now: datetime) -> None:
        """It keeps failing: stop trying, and keep no personal data of it."""
        await self._session.execute(
            update(inbox).where(inbox.c.update_id == update_id).values(failed_at=now, body=None)
        )

    async def done(self, update_ids: Sequence[int]) -> None:
        for chunk in _chunks(update_ids):
            await self._session.execute(
                delete(inbox).where(inbox.c.update_id.in_(chunk), inbox.c.failed_at.is_(None))
            )

    async def forget_before(self, moment: datetime) -> int:
        """Given-up updates are kept a while so a redelivery is recognised, then go."""
        result = await self._session.execute(
            delete(inbox).where(inbox.c.failed_at.is_not(None), inbox.c.failed_at < moment)
        )
        return rowcount(result)


# A backlog can hold more ids than a statement takes parameters (32,767 for asyncpg and SQLite).
CHUNK = 1000
# SQLite joins at most 500 SELECTs in one compound; getUpdates returns at most 100 updates.
ROWS_PER_INSERT = 100
INSERT_SIZES = (1, 2, 4, 8, 16, 32, 64, ROWS_PER_INSERT)


@functools.cache
def _insert_statement(dialect: str, size: int) -> Any:
    """INSERT … SELECT of `size` updates, each only if not handled before, that says which
    it kept: one round trip for a whole getUpdates batch."""
    now = bindparam("now", type_=inbox.c.received_at.type)
    rows = [
        select(
            bindparam(f"id_{i}", type_=inbox.c.update_id.type).label("update_id"),
            bindparam(f"body_{i}", type_=inbox.c.body.type).label("body"),
            now.label("received_at"),
            now.label("claimed_at"),
            literal(0, inbox.c.attempts.type).label("attempts"),
        ).where(~exists().where(processed_updates.c.update_id == bindparam(f"id_{i}")))
        for i in range(size)
    ]
    columns = ["update_id", "body", "received_at", "claimed_at", "attempts"]
    return (
        insert_of(dialect, inbox)
        .from_select(columns, rows[0] if size == 1 else union_all(*rows))
        .on_conflict_do_nothing(index_elements=["update_id"])
        .returning(inbox.c.update_id)
    )


T = TypeVar("T")


def _chunks(items: Sequence[T], size: int = CHUNK) -> list[Sequence[T]]:
    return [items[start : start + size] for start in range(0, len(items), size)]
