"""Retention: personal data is kept no longer than needed (CNIL), then erased like a /delete.

Unfinished questionnaires go after `abandoned_after` (30 days); a person's profiles and contacts go
`retention` (3 years, the CNIL reference for prospects) after their last message. Anonymous funnel
counts stay.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.handoffs import HandoffService
from storage.models import Person
from storage.uow import UnitOfWork

log = logging.getLogger(__name__)

PURGE_EVERY = timedelta(hours=1)
BATCH = 500


@dataclass(frozen=True)
class Purged:
    conversations: int
    people: int


class Retention:
    def __init__(
        self,
        unit_of_work: Callable[[], UnitOfWork],
        handoffs: HandoffService,
        abandoned_after: timedelta,
        retention: timedelta,
    ) -> None:
        self._uow = unit_of_work
        self._handoffs = handoffs
        self._abandoned_after = abandoned_after
        self._retention = retention
        self._last_run: datetime | None = None

    async def purge_if_due(self, now: datetime) -> Purged | None:
        """At most once an hour: retention is about months, not minutes."""
        if self._last_run is not None and now - self._last_run < PURGE_EVERY:
            return None
        self._last_run = now
        return await self.purge(now)

    async def purge(self, now: datetime) -> Purged:
        async with self._uow() as uow:
            conversations = await uow.conversations.purge_unfinished_before(
                now - self._abandoned_after
            )
            await uow.commit()
        people = 0
        after = 0
        while True:
            async with self._uow() as uow:
                due = await uow.people.due_for_erasure(
                    now - self._abandoned_after, now - self._retention, BATCH, after
                )
            for person_id in due:
                after = person_id
                # One transaction per person: one failure must not keep everyone else's data.
                try:
                    people += await self._erase(person_id, now)
                except Exception:
                    log.exception("retention: person %s could not be erased", person_id)
            if len(due) < BATCH:
                break
        if conversations or people:
            log.info(
                "retention: %s unfinished conversations, %s people erased", conversations, people
            )
        return Purged(conversations, people)

    async def _erase(self, person_id: int, now: datetime) -> int:
        async with self._uow() as uow:
            person = await uow.session.get(Person, person_id)
            if person is None:
                return 0
            await self._handoffs.forget(uow, person, now)
            await uow.people.erase(person)
            await uow.commit()
            return 1
