"""The staff's figures: read-only queries on the unit of work's session (cosmicpython's "views").

They read the anonymous funnel events and the handoffs, never a name, phone, e-mail or answer,
and change no row. Every query is one statement; windows are [start, end). The same SQL runs on
SQLite and PostgreSQL (window functions included).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, distinct, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from conversations.entities import Milestone
from conversations.handoff import HandoffStatus
from conversations.ports import FunnelLine, HandoffLine, StepTally, TakeDelay
from storage.tables import associations, funnel_events, handoffs, profiles

events = funnel_events.c


def _narrowed(
    query: Select[Any], flow: str | None, language: str | None, source: str | None
) -> Select[Any]:
    if flow is not None:
        query = query.where(events.flow == flow)
    if language is not None:
        query = query.where(events.language == language)
    if source is not None:
        query = query.where(events.source == source)
    return query


class Figures:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def milestones(
        self, start: datetime, end: datetime, kinds: Sequence[str]
    ) -> dict[tuple[str, str | None, str], int]:
        rows = await self._session.execute(
            select(events.flow, events.language, events.event, func.count())
            .where(events.at >= start, events.at < end, events.event.in_(list(kinds)))
            .group_by(events.flow, events.language, events.event)
        )
        return {(flow, language, event): int(n) for flow, language, event, n in rows}

    async def step_tallies(
        self,
        start: datetime,
        end: datetime,
        flow: str | None = None,
        language: str | None = None,
        source: str | None = None,
    ) -> list[StepTally]:
        query = (
            select(
                events.flow,
                events.step,
                events.event,
                func.count(),
                func.count(distinct(events.journey)),
            )
            .where(events.at >= start, events.at < end)
            .group_by(events.flow, events.step, events.event)
        )
        rows = await self._session.execute(_narrowed(query, flow, language, source))
        return [
            StepTally(flow_, step, event, int(count), int(journeys))
            for flow_, step, event, count, journeys in rows
        ]

    async def abandoned(
        self,
        start: datetime,
        end: datetime,
        idle_before: datetime,
        ended_by: Sequence[str],
        flow: str | None = None,
        language: str | None = None,
        source: str | None = None,
    ) -> dict[tuple[str, str], int]:
        # A journey's last event is in the window only if nothing came after it, so the events
        # before `start` never matter: only those from `start` on are ranked.
        ranked = (
            select(
                events.flow,
                events.step,
                events.event,
                events.at,
                events.language,
                events.source,
                func.row_number()
                .over(partition_by=events.journey, order_by=(events.at.desc(), events.id.desc()))
                .label("rank"),
            )
            .where(events.journey.is_not(None), events.at >= start)
            .subquery()
        )
        last = ranked.c
        query = select(last.flow, last.step, func.count()).where(
            last.rank == 1,
            last.at < end,
            last.at < idle_before,
            last.step.is_not(None),
            last.event.not_in(list(ended_by)),
        )
        if flow is not None:
            query = query.where(last.flow == flow)
        if language is not None:
            query = query.where(last.language == language)
        if source is not None:
            query = query.where(last.source == source)
        rows = await self._session.execute(query.group_by(last.flow, last.step))
        return {(flow_, step): int(n) for flow_, step, n in rows}

    async def sources(self) -> list[str]:
        rows = await self._session.scalars(
            select(events.source)
            .distinct()
            .where(events.source.is_not(None))
            .order_by(events.source)
        )
        return [str(source) for source in rows]

    async def declines(self, start: datetime, end: datetime) -> dict[tuple[int, str | None], int]:
        rows = await self._session.execute(
            select(handoffs.c.association_id, handoffs.c.decline_reason, func.count())
            .where(
                handoffs.c.status == HandoffStatus.DECLINED,
                handoffs.c.created_at >= start,
                handoffs.c.created_at < end,
            )
            .group_by(handoffs.c.association_id, handoffs.c.decline_reason)
        )
        return {(int(association), reason): int(n) for association, reason, n in rows}

    async def rerouted(self, start: datetime, end: datetime) -> int:
        earlier = handoffs.alias("earlier")
        before = exists().where(
            earlier.c.profile_id == handoffs.c.profile_id, earlier.c.id < handoffs.c.id
        )
        count = await self._session.scalar(
            select(func.count(distinct(handoffs.c.profile_id))).where(
                handoffs.c.created_at >= start, handoffs.c.created_at < end, before
            )
        )
        return int(count or 0)

    async def take_delays(self, start: datetime, end: datetime) -> list[TakeDelay]:
        rows = await self._session.execute(
            select(handoffs.c.association_id, handoffs.c.created_at, handoffs.c.taken_at)
            .where(handoffs.c.taken_at >= start, handoffs.c.taken_at < end)
            .order_by(handoffs.c.id)
        )
        return [TakeDelay(int(association), created, taken) for association, created, taken in rows]

    async def gaps(self, start: datetime, end: datetime) -> list[tuple[str, str | None, int]]:
        rows = await self._session.execute(
            select(events.flow, events.detail, func.count())
            .where(events.event == Milestone.NO_MATCH, events.at >= start, events.at < end)
            .group_by(events.flow, events.detail)
        )
        return [(flow, department, int(n)) for flow, department, n in rows]

    async def handoff_page(
        self, start: datetime, end: datetime, after: int, limit: int
    ) -> list[HandoffLine]:
        h = handoffs.c
        rows = await self._session.execute(
            select(
                h.id,
                associations.c.slug,
                profiles.c.role,
                profiles.c.department,
                h.status,
                h.decline_reason,
                h.created_at,
                h.delivered_at,
                h.taken_at,
                h.contacted_at,
                h.closed_at,
            )
            .join(associations, associations.c.id == h.association_id)
            .outerjoin(profiles, profiles.c.id == h.profile_id)
            .where(and_(h.created_at >= start, h.created_at < end, h.id > after))
            .order_by(h.id)
            .limit(limit)
        )
        return [HandoffLine(*row) for row in rows]

    async def funnel_page(
        self, start: datetime, end: datetime, after: int, limit: int
    ) -> list[FunnelLine]:
        rows = await self._session.execute(
            select(
                events.id,
                events.journey,
                events.flow,
                events.step,
                events.event,
                events.language,
                events.source,
                events.at,
            )
            .where(events.at >= start, events.at < end, events.id > after)
            .order_by(events.id)
            .limit(limit)
        )
        return [FunnelLine(*row) for row in rows]
