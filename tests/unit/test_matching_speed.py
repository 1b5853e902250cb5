"""What matching learns from the running bot: measured take delays, and one index per catalogue."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from conversations.entities import AssociationRecord
from conversations.matching import AssociationLoad, facts_from_answers, match
from conversations.ports import UnitOfWork
from conversations.services import catalogue
from tests.unit.fakes import an_association

NOW = datetime(2026, 12, 10, 12, tzinfo=UTC)


class TakenHandoffs:
    """The stored (slug, proposed at, taken at) rows, as storage returns them."""

    def __init__(self, *rows: tuple[str, datetime, datetime]) -> None:
        self.rows = list(rows)

    async def take_delays(self) -> list[tuple[str, datetime, datetime]]:
        return self.rows


class Uow:
    def __init__(self, handoffs: TakenHandoffs) -> None:
        self.handoffs = handoffs


def taken(slug: str, hours: float, days_ago: float = 1) -> tuple[str, datetime, datetime]:
    at = NOW - timedelta(days=days_ago)
    return (slug, at - timedelta(hours=hours), at)


async def test_an_association_s_speed_is_the_median_of_its_recent_take_delays() -> None:
    uow = Uow(
        TakenHandoffs(
            taken("alpha", 2),
            taken("alpha", 10),
            taken("alpha", 30),
            taken("beta", 100),
            taken("beta", 1, days_ago=200),  # too old to say how it answers now
        )
    )

    hours = await catalogue.response_hours(cast(UnitOfWork, uow), NOW)

    assert hours == {"alpha": 10.0, "beta": 100.0}


def record(slug: str, **entry: Any) -> AssociationRecord:
    return AssociationRecord(
        slug=slug, name=slug, entry=an_association(slug, **entry), created_at=NOW, updated_at=NOW
    )


def test_one_index_serves_every_profile_of_a_catalogue_version() -> None:
    records = [record("alpha"), record("beta")]

    first = catalogue.index_of(records)

    assert catalogue.index_of([*reversed(records)]) is first
    paused = [replace(records[0], paused=True), records[1]]
    assert catalogue.index_of(paused) is not first
    assert [a.paused for a in catalogue.index_of(paused).associations] == [True, False]
    changed = [records[0], replace(records[1], entry=an_association("beta", weekly_capacity=1))]
    assert catalogue.index_of(changed) is not first


def test_a_measured_fast_association_wins_over_an_equal_slow_one() -> None:
    index = catalogue.index_of([record("alpha"), record("beta")])
    facts = facts_from_answers("mentee", {"age": 17, "postal_code": "75011"})
    measured = {
        "alpha": AssociationLoad(median_response_hours=150.0),
        "beta": AssociationLoad(median_response_hours=4.0),
    }

    assert match(facts, index, {}).ranked[0].association.slug == "alpha"  # by slug
    assert match(facts, index, measured).ranked[0].association.slug == "beta"
