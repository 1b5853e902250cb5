"""Queries of coordinators, invites and handoffs. Transitions are decided in `conversations`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from conversations import handoff as handoff_rules
from conversations.entities import (
    Coordinator,
    Handoff,
    HandoffEvent,
    Invite,
    Profile,
)
from storage.tables import associations, coordinators, handoff_events, handoffs, invites, profiles

OPEN = sorted(handoff_rules.OPEN)
IN_QUEUE = sorted(handoff_rules.IN_QUEUE)


class CoordinatorRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def add(self, coordinator: Coordinator) -> None:
        self._session.add(coordinator)

    async def get(self, coordinator_id: int) -> Coordinator | None:
        return await self._session.get(Coordinator, coordinator_id)

    async def find(self, association_id: int, telegram_id: int) -> Coordinator | None:
        return await self._session.scalar(
            select(Coordinator).where(
                coordinators.c.association_id == association_id,
                coordinators.c.telegram_id == telegram_id,
            )
        )

    async def of_association(self, association_id: int) -> list[Coordinator]:
        result = await self._session.scalars(
            select(Coordinator)
            .where(
                coordinators.c.association_id == association_id,
                coordinators.c.active.is_(True),
            )
            .order_by(coordinators.c.id)
        )
        return list(result)

    async def of_person(self, telegram_id: int, active_only: bool = True) -> list[Coordinator]:
        """The coordinator roles of a Telegram account (one per association)."""
        query = select(Coordinator).where(coordinators.c.telegram_id == telegram_id)
        if active_only:
            query = query.where(coordinators.c.active.is_(True))
        result = await self._session.scalars(query.order_by(coordinators.c.id))
        return list(result)

    async def listing(self) -> list[tuple[Coordinator, str]]:
        rows = await self._session.execute(
            select(Coordinator, associations.c.slug)
            .join(associations, associations.c.id == coordinators.c.association_id)
            .order_by(associations.c.slug, coordinators.c.id)
        )
        return [(coordinator, str(slug)) for coordinator, slug in rows]

    async def delete(self, coordinator: Coordinator) -> None:
        await self._session.delete(coordinator)


class InviteRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def add(self, invite: Invite) -> None:
        self._session.add(invite)

    async def by_hash(self, token_hash: str) -> Invite | None:
        return await self._session.scalar(select(Invite).where(invites.c.token_hash == token_hash))

    async def forget_user(self, telegram_id: int) -> None:
        await self._session.execute(
            update(Invite).where(invites.c.used_by == telegram_id).values(used_by=None)
        )


class HandoffRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def add(self, handoff: Handoff) -> Handoff:
        self._session.add(handoff)
        return handoff

    async def get(self, handoff_id: int) -> Handoff | None:
        return await self._session.get(Handoff, handoff_id)

    def record(
        self,
        handoff: Handoff,
        event: str,
        at: datetime,
        coordinator_id: int | None = None,
        detail: str | None = None,
    ) -> None:
        self._session.add(
            HandoffEvent(
                handoff_id=handoff.id,
                event=event,
                coordinator_id=coordinator_id,
                detail=detail,
                at=at,
            )
        )

    async def events(self, handoff_id: int) -> list[HandoffEvent]:
        result = await self._session.scalars(
            select(HandoffEvent)
            .where(handoff_events.c.handoff_id == handoff_id)
            .order_by(handoff_events.c.id)
        )
        return list(result)

    async def of_profile(self, profile_id: int) -> list[Handoff]:
        result = await self._session.scalars(
            select(Handoff).where(handoffs.c.profile_id == profile_id).order_by(handoffs.c.id)
        )
        return list(result)

    async def of_profiles(self, profile_ids: list[int]) -> list[Handoff]:
        if not profile_ids:
            return []
        result = await self._session.scalars(
            select(Handoff).where(handoffs.c.profile_id.in_(profile_ids)).order_by(handoffs.c.id)
        )
        return list(result)

    async def taken_by(self, coordinator_id: int) -> list[Handoff]:
        result = await self._session.scalars(
            select(Handoff).where(handoffs.c.taken_by == coordinator_id).order_by(handoffs.c.id)
        )
        return list(result)

    async def recipients(self, profile_ids: list[int]) -> list[tuple[Handoff, str]]:
        """Each association a person's profiles went to, with the handoff: what /mydata lists."""
        if not profile_ids:
            return []
        rows = await self._session.execute(
            select(Handoff, associations.c.name)
            .join(associations, associations.c.id == handoffs.c.association_id)
            .where(handoffs.c.profile_id.in_(profile_ids))
            .order_by(handoffs.c.id)
        )
        return [(handoff, str(name)) for handoff, name in rows]

    async def queue(self, association_id: int) -> list[tuple[Handoff, Profile]]:
        """What waits for an association, oldest first: not taken yet, or taken but not contacted."""
        rows = await self._session.execute(
            select(Handoff, Profile)
            .join(Profile, profiles.c.id == handoffs.c.profile_id)
            .where(handoffs.c.association_id == association_id, handoffs.c.status.in_(IN_QUEUE))
            .order_by(handoffs.c.created_at, handoffs.c.id)
        )
        return [(handoff, profile) for handoff, profile in rows]

    async def open_for(
        self, association_ids: Sequence[int] | None, statuses: Sequence[str]
    ) -> list[tuple[Handoff, Profile]]:
        """The handoffs of these associations (every one's when None) in these statuses, oldest
        first, with their profiles: the dashboard's queue."""
        query = (
            select(Handoff, Profile)
            .join(Profile, profiles.c.id == handoffs.c.profile_id)
            .where(handoffs.c.status.in_(list(statuses)))
            .order_by(handoffs.c.created_at, handoffs.c.id)
        )
        if association_ids is not None:
            query = query.where(handoffs.c.association_id.in_(list(association_ids)))
        rows = await self._session.execute(query)
        return [(handoff, profile) for handoff, profile in rows]

    async def created_counts(self, start: datetime, end: datetime) -> dict[int, int]:
        """Handoffs proposed to each association in [start, end): what weekly capacity counts."""
        rows = await self._session.execute(
            select(handoffs.c.association_id, func.count())
            .where(handoffs.c.created_at >= start, handoffs.c.created_at < end)
            .group_by(handoffs.c.association_id)
        )
        return {int(association_id): int(count) for association_id, count in rows}

    async def waiting_counts(self) -> dict[int, int]:
        rows = await self._session.execute(
            select(handoffs.c.association_id, func.count())
            .where(handoffs.c.status.in_(OPEN))
            .group_by(handoffs.c.association_id)
        )
        return {int(association_id): int(count) for association_id, count in rows}

    async def silent_since(self, moment: datetime, reminded: bool) -> list[Handoff]:
        """Handoffs nobody took since `moment`: to remind (not reminded yet) or to re-route."""
        since = func.coalesce(handoffs.c.delivered_at, handoffs.c.created_at)
        query = select(Handoff).where(handoffs.c.status.in_(OPEN), since <= moment)
        if not reminded:
            query = query.where(handoffs.c.reminded_at.is_(None))
        result = await self._session.scalars(query.order_by(handoffs.c.id))
        return list(result)

    async def summary(self) -> list[tuple[str, str, int]]:
        """(association slug, status, count) of every handoff, for the admins' statistics."""
        rows = await self._session.execute(
            select(associations.c.slug, handoffs.c.status, func.count())
            .join(associations, associations.c.id == handoffs.c.association_id)
            .group_by(associations.c.slug, handoffs.c.status)
        )
        return [(str(slug), str(status), int(count)) for slug, status, count in rows]

    async def take_delays(self) -> list[tuple[str, datetime, datetime]]:
        """(slug, proposed at, taken at) of every taken handoff: how fast associations answer."""
        rows = await self._session.execute(
            select(associations.c.slug, handoffs.c.created_at, handoffs.c.taken_at)
            .join(associations, associations.c.id == handoffs.c.association_id)
            .where(handoffs.c.taken_at.is_not(None))
        )
        return [(str(slug), created, taken) for slug, created, taken in rows if taken is not None]

    async def counts_by_status(self) -> dict[str, int]:
        """How many handoffs are in each status (for /metrics)."""
        rows = await self._session.execute(
            select(handoffs.c.status, func.count()).group_by(handoffs.c.status)
        )
        return {str(status): int(count) for status, count in rows}
