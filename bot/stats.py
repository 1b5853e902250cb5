"""Numbers for the Collectif's staff: where people give up, and how fast associations answer.

Built from the anonymous funnel events and the handoffs table: no personal data is read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from statistics import median

from conversations.flows import FLOWS
from storage.uow import UnitOfWork

OUTCOMES = ("started", "completed", "exited", "cancelled", "restarted", "no_match")
STATUSES = (
    "proposed",
    "delivered",
    "taken",
    "contacted",
    "closed",
    "declined",
    "expired",
    "erased",
)


async def report(unit_of_work: Callable[[], UnitOfWork]) -> str:
    async with unit_of_work() as uow:
        outcomes = await uow.funnel.counts()
        answered = await uow.funnel.answered_by_step()
        handoffs = await uow.handoffs.summary()
        delays = await uow.handoffs.take_delays()
    lines: list[str] = []
    for flow in FLOWS.values():
        started = outcomes.get((flow.name, "started"), 0)
        lines.append(f"== {flow.name} questionnaire")
        lines.append(
            "   "
            + "  ".join(f"{event}: {outcomes.get((flow.name, event), 0)}" for event in OUTCOMES)
        )
        lines.append("   answers per question (where people stop):")
        for position, step in enumerate(flow.steps, start=1):
            count = answered.get((flow.name, step.key), 0)
            share = f"{100 * count / started:5.1f} %" if started else "    - "
            lines.append(f"   {position:>2}. {step.key:<16} {count:>6}  {share}")
    by_association: dict[str, dict[str, int]] = defaultdict(dict)
    for slug, status, count in handoffs:
        by_association[slug][status] = count
    hours: dict[str, list[float]] = defaultdict(list)
    for slug, created, taken in delays:
        hours[slug].append((taken - created).total_seconds() / 3600)
    lines.append("== handoffs by association (median time to take)")
    if not by_association:
        lines.append("   none yet")
    for slug in sorted(by_association):
        counts = by_association[slug]
        spread = "  ".join(f"{s}: {counts[s]}" for s in STATUSES if counts.get(s))
        median_take = f"{median(hours[slug]):.1f} h" if hours[slug] else "-"
        lines.append(f"   {slug:<26} {median_take:>8}  {spread}")
    return "\n".join(lines)
