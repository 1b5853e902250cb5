"""The staff's numbers: where people give up, and how fast associations take their contacts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from conversations.handoff import HandoffStatus, HandoffVerb
from conversations.model import TextInput
from conversations.services import stats
from conversations.services.stats import Period
from tests.unit.fakes import Scene, a_catalog, an_association, only

CAMILLE = 501


def flow(report: stats.Report, name: str) -> stats.FlowReport:
    return only(f for f in report.flows if f.flow == name)


def step(funnel: stats.FlowReport, key: str) -> stats.StepCount:
    return only(s for s in funnel.steps if s.step == key)


async def test_the_report_shows_how_far_people_get_in_each_flow() -> None:
    scene = Scene()
    await scene.import_catalog(a_catalog(an_association("alpha")))
    await scene.person(101).fill()
    ines = scene.person(102)
    await ines.choose("mentee")
    await ines.answer(TextInput("Inès"))

    report = await stats.report(scene.unit_of_work)

    mentee = flow(report, "mentee")
    assert mentee.outcomes["started"] == 2
    assert mentee.outcomes["completed"] == 1
    assert mentee.outcomes["no_match"] == 0
    assert (step(mentee, "first_name").answered, step(mentee, "first_name").share) == (2, 1.0)
    assert (step(mentee, "age").answered, step(mentee, "age").share) == (1, 0.5)
    assert step(mentee, "first_name").position == 1
    # Nobody started the mentor flow: no share to speak of.
    assert {s.share for s in flow(report, "mentor").steps} == {None}


async def test_the_report_shows_each_association_s_contacts_and_how_fast_it_takes_them() -> None:
    scene = Scene()
    await scene.import_catalog(a_catalog(an_association("alpha")))
    camille = await scene.coordinator("alpha", CAMILLE, "Camille")
    for telegram_id in (101, 102, 103):
        await scene.person(telegram_id).fill()
    first, second, _third = scene.handoffs()
    scene.later(timedelta(hours=3))
    await camille.press(first, HandoffVerb.TAKE)
    scene.later(timedelta(hours=2))
    await camille.press(second, HandoffVerb.TAKE)
    await camille.press(second, HandoffVerb.CONTACTED)

    report = await stats.report(scene.unit_of_work)

    alpha = only(report.associations)
    assert alpha.slug == "alpha"
    assert alpha.by_status == {
        HandoffStatus.PROPOSED: 1,
        HandoffStatus.TAKEN: 1,
        HandoffStatus.CONTACTED: 1,
    }
    assert alpha.median_hours_to_take == 4.0


async def test_an_empty_database_gives_a_report_of_zeros() -> None:
    report = await stats.report(Scene().unit_of_work)

    assert report.associations == ()
    assert {count for f in report.flows for count in f.outcomes.values()} == {0}


def at(day: int, hour: int, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


# Monday 2 November 2026, 00:00 in Paris (UTC+1), to the next Monday.
WEEK = Period(at(1, 23), at(8, 23))


def test_a_week_runs_from_monday_midnight_in_paris() -> None:
    assert stats.week_of(at(6, 12)) == WEEK
    assert stats.week_of(WEEK.start) == WEEK
    assert stats.week_of(WEEK.end - timedelta(microseconds=1)) == WEEK
    assert stats.week_of(WEEK.start - timedelta(microseconds=1)).end == WEEK.start
    # Clocks went back on Sunday 25 October: that week lasted 169 hours.
    before = stats.week_of(at(20, 12, month=10))
    assert before == Period(at(18, 22, month=10), at(25, 23, month=10))
    assert stats.previous(WEEK) == Period(at(25, 23, month=10), WEEK.start)


def test_percentiles_interpolate_between_the_closest_ranks() -> None:
    assert stats.percentile([], 0.5) is None
    assert stats.percentile([7.0], 0.9) == 7.0
    assert stats.percentile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.5
    assert stats.percentile([1.0, 2.0, 3.0, 4.0, 5.0], 0.9) == pytest.approx(4.6)
    assert stats.percentile([10.0, 20.0], 1.0) == 20.0
    assert stats.percentile([10.0, 20.0], 0.0) == 10.0
