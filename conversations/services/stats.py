"""Numbers for the Collectif's staff: where people give up, and how fast associations answer.

Built from the anonymous funnel events and the handoffs table: no personal data is read.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from statistics import median

from conversations.entities import Milestone
from conversations.flows import FLOWS
from conversations.handoff import HandoffStatus
from conversations.ports import UnitOfWorkFactory

OUTCOMES = (
    Milestone.STARTED,
    Milestone.COMPLETED,
    Milestone.EXITED,
    Milestone.CANCELLED,
    Milestone.RESTARTED,
    Milestone.NO_MATCH,
)


@dataclass(frozen=True)
class StepCount:
    position: int
    step: str
    answered: int
    # Share of the people who started the flow; None before anyone started it.
    share: float | None


@dataclass(frozen=True)
class FlowFunnel:
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
    flows: tuple[FlowFunnel, ...]
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
        flows.append(FlowFunnel(flow.name, counts, steps))
    by_association: dict[str, dict[str, int]] = defaultdict(dict)
    for slug, status, count in handoffs:
        by_association[slug][status] = count
    hours: dict[str, list[float]] = defaultdict(list)
    for slug, created, taken in delays:
        hours[slug].append((taken - created).total_seconds() / 3600)
    associations = tuple(
        AssociationDelays(
            slug,
            {str(s): by_association[slug][s] for s in HandoffStatus if by_association[slug].get(s)},
            median(hours[slug]) if hours[slug] else None,
        )
        for slug in sorted(by_association)
    )
    return Report(tuple(flows), associations)
