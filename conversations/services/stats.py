"""Numbers for the Collectif's staff: where people give up, and how fast associations answer.

Built from the anonymous funnel events and the handoffs table: no personal data is read. What the
dashboard, the CSV exports and /stats show comes from here; `report` is the CLI's summary.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from statistics import median
from typing import TypeVar
from zoneinfo import ZoneInfo

from conversations.entities import Milestone
from conversations.flows import FLOWS
from conversations.handoff import HandoffStatus
from conversations.matching import week_window
from conversations.ports import Figures, FunnelLine, HandoffLine, OutboxStatus, UnitOfWorkFactory
from conversations.text import _

OUTCOMES = (
    Milestone.STARTED,
    Milestone.COMPLETED,
    Milestone.EXITED,
    Milestone.CANCELLED,
    Milestone.RESTARTED,
    Milestone.NO_MATCH,
)
# After these a journey is over: its last step is no drop-off.
ENDINGS = (
    Milestone.COMPLETED,
    Milestone.NO_MATCH,
    Milestone.EXITED,
    Milestone.CANCELLED,
    Milestone.RESTARTED,
)
# A journey silent this long at a step gave up there (it may still come back).
ABANDONED_AFTER = timedelta(hours=24)
# The staff's week starts on Monday in France, whatever the server's clock says.
PARIS = ZoneInfo("Europe/Paris")
# The exports read this many rows per query, by id: a big export never sits in memory whole.
PAGE = 1000

_Keyed = TypeVar("_Keyed", HandoffLine, FunnelLine)


# --- the CLI's report ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StepCount:
    position: int
    step: str
    answered: int
    # Share of the people who started the flow; None before anyone started it.
    share: float | None


@dataclass(frozen=True)
class FlowReport:
    flow: str
    outcomes: dict[str, int]
    steps: tuple[StepCount, ...]


@dataclass(frozen=True)
class AssociationDelays:
    slug: str
    by_status: dict[str, int]
    median_hours_to_take: float | None


@dataclass(frozen=True)
class Report:
    flows: tuple[FlowReport, ...]
    associations: tuple[AssociationDelays, ...]


async def report(unit_of_work: UnitOfWorkFactory) -> Report:
    async with unit_of_work() as uow:
        outcomes = await uow.funnel.counts()
        answered = await uow.funnel.answered_by_step()
        handoffs = await uow.handoffs.summary()
        delays = await uow.handoffs.take_delays()
    flows = []
    for flow in FLOWS.values():
        started = outcomes.get((flow.name, Milestone.STARTED), 0)
        steps = tuple(
            StepCount(
                position,
                step.key,
                answered.get((flow.name, step.key), 0),
                answered.get((flow.name, step.key), 0) / started if started else None,
            )
            for position, step in enumerate(flow.steps, start=1)
        )
        counts = {str(event): outcomes.get((flow.name, event), 0) for event in OUTCOMES}
        flows.append(FlowReport(flow.name, counts, steps))
    by_association: dict[str, dict[str, int]] = defaultdict(dict)
    for slug, status, count in handoffs:
        by_association[slug][status] = count
    hours: dict[str, list[float]] = defaultdict(list)
    for slug, created, taken in delays:
        hours[slug].append((taken - created).total_seconds() / 3600)
    associations_ = tuple(
        AssociationDelays(
            slug,
            {str(s): by_association[slug][s] for s in HandoffStatus if by_association[slug].get(s)},
            median(hours[slug]) if hours[slug] else None,
        )
        for slug in sorted(by_association)
    )
    return Report(tuple(flows), associations_)


# --- periods ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    start: datetime  # inclusive, aware UTC
    end: datetime  # exclusive


def week_of(now: datetime) -> Period:
    """The week holding `now`, Monday 00:00 to the next Monday in Paris, as UTC times (a week
    with a change of clocks lasts 167 or 169 hours)."""
    local = now.astimezone(PARIS).date()
    monday = local - timedelta(days=local.weekday())
    start = datetime.combine(monday, time(0), tzinfo=PARIS)
    end = datetime.combine(monday + timedelta(days=7), time(0), tzinfo=PARIS)
    return Period(start.astimezone(UTC), end.astimezone(UTC))


def previous(period: Period) -> Period:
    """The period of the same length just before."""
    return Period(period.start - (period.end - period.start), period.start)


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Linear interpolation between the closest ranks (numpy's default, Excel's PERCENTILE.INC):
    the 0.5 one is the usual median. None without values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _hours(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() / 3600


# --- the overview -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignUps:
    """One flow in one language: sign-ups started and completed, this period and the one before."""

    flow: str
    # "" for events recorded before the language was (migration 0005).
    language: str
    started: int
    completed: int
    started_before: int
    completed_before: int


@dataclass(frozen=True)
class Overview:
    period: Period
    # Every (flow, language) seen in either period, sorted.
    sign_ups: tuple[SignUps, ...]
    # Handoffs proposed or delivered now.
    waiting: int
    # Handoffs taken or contacted now.
    taken: int
    # Declined handoffs created in the period.
    declined: int
    # Profiles that went on to another association: a second or later handoff created in the period.
    rerouted: int
    # Proposed to taken, over the handoffs taken in the period.
    median_hours_to_take: float | None
    # Outbox messages given up (dead) now.
    dead_letters: int


async def overview(unit_of_work: UnitOfWorkFactory, period: Period) -> Overview:
    """The week at a glance: sign-ups against the period before, and where the handoffs stand."""
    before = previous(period)
    kinds = (Milestone.STARTED, Milestone.COMPLETED)
    async with unit_of_work() as uow:
        this = await uow.figures.milestones(period.start, period.end, kinds)
        last = await uow.figures.milestones(before.start, before.end, kinds)
        statuses = await uow.handoffs.counts_by_status()
        declines = await uow.figures.declines(period.start, period.end)
        rerouted = await uow.figures.rerouted(period.start, period.end)
        delays = await uow.figures.take_delays(period.start, period.end)
        outbox = await uow.outbox.counts_by_status()

    seen = sorted({(flow, language or "") for flow, language, _event in (*this, *last)})
    sign_ups = tuple(
        SignUps(
            flow,
            language,
            this.get((flow, language or None, Milestone.STARTED), 0),
            this.get((flow, language or None, Milestone.COMPLETED), 0),
            last.get((flow, language or None, Milestone.STARTED), 0),
            last.get((flow, language or None, Milestone.COMPLETED), 0),
        )
        for flow, language in seen
    )
    return Overview(
        period=period,
        sign_ups=sign_ups,
        waiting=statuses.get(HandoffStatus.PROPOSED, 0) + statuses.get(HandoffStatus.DELIVERED, 0),
        taken=statuses.get(HandoffStatus.TAKEN, 0) + statuses.get(HandoffStatus.CONTACTED, 0),
        declined=sum(declines.values()),
        rerouted=rerouted,
        median_hours_to_take=percentile([_hours(d.created_at, d.taken_at) for d in delays], 0.5),
        dead_letters=outbox.get(OutboxStatus.DEAD, 0),
    )


# --- the funnel ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FunnelQuery:
    period: Period
    flow: str | None = None
    language: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class StepFigures:
    position: int
    step: str
    # Journeys this step was shown to: a conditional step counts only those who were asked it.
    reached: int
    # Journeys that answered it.
    answered: int
    # Answers refused (events: one journey may be refused twice).
    invalid: int
    # "Retour" pressed at this step (events).
    back: int
    # Journeys whose last event is at this step, not ended, silent for ABANDONED_AFTER at `now`.
    abandoned: int


@dataclass(frozen=True)
class FlowFunnel:
    flow: str
    started: int
    completed: int
    exited: int
    cancelled: int
    # In the flow's order; a step nobody reached is listed with zeros.
    steps: tuple[StepFigures, ...]


async def funnel(
    unit_of_work: UnitOfWorkFactory, query: FunnelQuery, now: datetime
) -> tuple[FlowFunnel, ...]:
    """Each flow's funnel over the period (or only `query.flow`'s), narrowed by the filters."""
    period = query.period
    narrow = {"flow": query.flow, "language": query.language, "source": query.source}
    async with unit_of_work() as uow:
        tallies = await uow.figures.step_tallies(period.start, period.end, **narrow)
        abandoned = await uow.figures.abandoned(
            period.start, period.end, now - ABANDONED_AFTER, ENDINGS, **narrow
        )
    events: dict[tuple[str, str | None, str], int] = {}
    journeys: dict[tuple[str, str | None, str], int] = {}
    outcomes: dict[tuple[str, str], int] = defaultdict(int)
    for tally in tallies:
        events[(tally.flow, tally.step, tally.event)] = tally.events
        journeys[(tally.flow, tally.step, tally.event)] = tally.journeys
        outcomes[(tally.flow, tally.event)] += tally.events
    flows = [f for f in FLOWS.values() if query.flow is None or f.name == query.flow]
    return tuple(
        FlowFunnel(
            flow=flow.name,
            started=outcomes[(flow.name, Milestone.STARTED)],
            completed=outcomes[(flow.name, Milestone.COMPLETED)],
            exited=outcomes[(flow.name, Milestone.EXITED)],
            cancelled=outcomes[(flow.name, Milestone.CANCELLED)],
            steps=tuple(
                StepFigures(
                    position=position,
                    step=step.key,
                    reached=journeys.get((flow.name, step.key, Milestone.REACHED), 0),
                    answered=journeys.get((flow.name, step.key, Milestone.ANSWERED), 0),
                    invalid=events.get((flow.name, step.key, Milestone.INVALID), 0),
                    back=events.get((flow.name, step.key, Milestone.BACK), 0),
                    abandoned=abandoned.get((flow.name, step.key), 0),
                )
                for position, step in enumerate(flow.steps, start=1)
            ),
        )
        for flow in flows
    )


async def sources(unit_of_work: UnitOfWorkFactory) -> list[str]:
    """Every source (/start payload) the funnel has seen, for the filter's drop-down."""
    async with unit_of_work() as uow:
        return await uow.figures.sources()


# --- associations -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AssociationFigures:
    id: int
    slug: str
    name: str
    paused: bool
    # What matching uses: the dashboard's override when set, else the catalogue entry's.
    weekly_capacity: int
    capacity_overridden: bool
    # Handoffs created this week (matching's window: conversations.matching.week_window).
    used_this_week: int
    # Handoffs proposed or delivered now.
    waiting: int
    # Proposed to taken, over the handoffs taken in the period.
    median_hours_to_take: float | None
    p90_hours_to_take: float | None
    # decline_reason -> declined handoffs created in the period ("" for a decline without one).
    declines: dict[str, int]


async def associations(
    unit_of_work: UnitOfWorkFactory,
    period: Period,
    now: datetime,
    only: frozenset[int] | None = None,
) -> tuple[AssociationFigures, ...]:
    """Each association's load and speed, sorted by name; `only` keeps the ids a coordinator
    may see. Percentiles interpolate linearly (see `percentile`)."""
    async with unit_of_work() as uow:
        records = await uow.catalog.records()
        used = await uow.handoffs.created_counts(*week_window(now))
        waiting = await uow.handoffs.waiting_counts()
        delays = await uow.figures.take_delays(period.start, period.end)
        declines = await uow.figures.declines(period.start, period.end)
    hours: dict[int, list[float]] = defaultdict(list)
    for delay in delays:
        hours[delay.association_id].append(_hours(delay.created_at, delay.taken_at))
    reasons: dict[int, dict[str, int]] = defaultdict(dict)
    for (association_id, reason), count in sorted(declines.items(), key=lambda i: str(i[0][1])):
        reasons[association_id][reason or ""] = count
    shown = [r for r in records if only is None or r.id in only]
    return tuple(
        AssociationFigures(
            id=record.id,
            slug=record.slug,
            name=record.name,
            paused=record.paused,
            weekly_capacity=(
                record.weekly_capacity
                if record.weekly_capacity is not None
                else int(record.entry["weekly_capacity"])
            ),
            capacity_overridden=record.weekly_capacity is not None,
            used_this_week=used.get(record.id, 0),
            waiting=waiting.get(record.id, 0),
            median_hours_to_take=percentile(hours[record.id], 0.5),
            p90_hours_to_take=percentile(hours[record.id], 0.9),
            declines=reasons[record.id],
        )
        for record in sorted(shown, key=lambda r: (r.name.casefold(), r.slug))
    )


# --- gaps ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gap:
    flow: str
    department: str | None
    count: int


async def gaps(unit_of_work: UnitOfWorkFactory, period: Period) -> tuple[Gap, ...]:
    """Where no association fitted: profiles of the period by flow and department, most first."""
    async with unit_of_work() as uow:
        rows = await uow.figures.gaps(period.start, period.end)
    found = [Gap(flow, department, count) for flow, department, count in rows]
    return tuple(sorted(found, key=lambda g: (-g.count, g.flow, g.department or "")))


# --- the exports --------------------------------------------------------------------------------
# Pseudonymised: handoff ids, association slugs, statuses and times; journeys are random tokens.
# Never a name, a phone, an e-mail or a typed answer.

HANDOFF_COLUMNS: tuple[str, ...] = (
    "handoff",
    "association",
    "role",
    "department",
    "status",
    "decline_reason",
    "created_at",
    "delivered_at",
    "taken_at",
    "contacted_at",
    "closed_at",
    "hours_to_take",
)
FUNNEL_COLUMNS: tuple[str, ...] = ("journey", "flow", "step", "event", "language", "source", "at")


def _moment(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds") if value is not None else ""


async def _paged(
    unit_of_work: UnitOfWorkFactory,
    read: Callable[[Figures, int], Awaitable[Sequence[_Keyed]]],
) -> AsyncIterator[_Keyed]:
    """Rows by id, one page per unit of work: a slow download holds no transaction open."""
    after = 0
    while True:
        async with unit_of_work() as uow:
            page = await read(uow.figures, after)
        for row in page:
            yield row
        if len(page) < PAGE:
            return
        after = page[-1].id


async def handoff_rows(
    unit_of_work: UnitOfWorkFactory, period: Period
) -> AsyncIterator[tuple[str, ...]]:
    """The handoffs created in the period, header first."""
    yield HANDOFF_COLUMNS

    def read(figures: Figures, after: int) -> Awaitable[Sequence[HandoffLine]]:
        return figures.handoff_page(period.start, period.end, after, PAGE)

    async for line in _paged(unit_of_work, read):
        taken = line.taken_at
        yield (
            str(line.id),
            line.association,
            line.role or "",
            line.department or "",
            line.status,
            line.decline_reason or "",
            _moment(line.created_at),
            _moment(line.delivered_at),
            _moment(taken),
            _moment(line.contacted_at),
            _moment(line.closed_at),
            f"{_hours(line.created_at, taken):.2f}" if taken is not None else "",
        )


async def funnel_rows(
    unit_of_work: UnitOfWorkFactory, period: Period
) -> AsyncIterator[tuple[str, ...]]:
    """The funnel events of the period, header first."""
    yield FUNNEL_COLUMNS

    def read(figures: Figures, after: int) -> Awaitable[Sequence[FunnelLine]]:
        return figures.funnel_page(period.start, period.end, after, PAGE)

    async for line in _paged(unit_of_work, read):
        yield (
            line.journey or "",
            line.flow,
            line.step or "",
            line.event,
            line.language or "",
            line.source or "",
            _moment(line.at),
        )


# How the staff's pages, /stats and the digest name the flows and their steps.
FLOW_NAMES = {
    "mentee": _("Jeunes"),
    "referral": _("Jeunes inscrits par un parent ou un·e pro"),
    "mentor": _("Mentors"),
}
STEP_TITLES = {name: {step.key: step.title for step in flow.steps} for name, flow in FLOWS.items()}
