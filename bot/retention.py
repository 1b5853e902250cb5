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

    async def purge(self, now: datetime) -> Purged:
        async with self._uow() as uow:
            conversations = await uow.conversations.purge_unfinished_before(
                now - self._abandoned_after
            )
            await uow.commit()
        people = 0
        async with self._uow() as uow:
            candidates = [
                p.id for p in await uow.people.inactive_since(now - self._abandoned_after)
            ]
        for person_id in candidates:
            # One transaction per person: one failure must not keep everyone else's data.
            async with self._uow() as uow:
                person = await uow.session.get(Person, person_id)
                if person is None:
                    continue
                keeps_profile = await uow.people.has_profile(person)
                if keeps_profile and person.last_seen_at >= now - self._retention:
                    continue
                await self._handoffs.forget(uow, person, now)
                await uow.people.erase(person)
                await uow.commit()
                people += 1
        if conversations or people:
            log.info(
                "retention: %s unfinished conversations, %s people erased", conversations, people
            )
        return Purged(conversations, people)
