"""The staff's figures on SQLite and PostgreSQL, over a known fortnight of sign-ups and handoffs
played through the real use-cases: every number the dashboard, the exports and /stats show."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from conversations.handoff import HandoffVerb
from conversations.model import BackInput, ConfirmInput, SkipInput
from conversations.ports import AdminAlert, UnitOfWorkFactory
from conversations.services import stats
from conversations.services.actions import Cancel
from conversations.services.stats import FunnelQuery, Gap, Period, SignUps
from storage.tables import conversations, funnel_events, handoffs, people, profiles
from storage.uow import UnitOfWork
from tests.unit.fakes import Chat, Scene, a_catalog, an_association
from tests.unit.helpers import Reply, inputs_of, pick, tick

# A Friday noon; its week (Paris) began on Monday 2 November, 00:00 in Paris, 23:00 UTC the day
# before. The week before it holds the "before" figures.
NOW = datetime(2026, 11, 6, 12, 0, tzinfo=UTC)
WEEK = Period(datetime(2026, 11, 1, 23, 0, tzinfo=UTC), datetime(2026, 11, 8, 23, 0, tzinfo=UTC))


def at(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


class StoredScene(Scene):
    """The unit tests' scene, on a real database."""

    def __init__(self, factory: UnitOfWorkFactory) -> None:
        super().__init__()
        self._factory = factory

    @property
    def unit_of_work(self) -> Callable[[], UnitOfWork]:
        return self._factory  # type: ignore[return-value]


async def say(chat: Chat, *replies: Reply) -> None:
    for reply in replies:
        for given in inputs_of(reply):
            await chat.answer(given)


@dataclass(frozen=True)
class Known:
    """Ids the database gave: journeys by person, handoffs by person and association."""

    journeys: dict[int, str]
    handoffs: dict[tuple[int, str], int]
    alpha: int
    beta: int


# The people, by Telegram id. Mentees: Amel (salon, a refused age and a step back), Ben
# (English, ecole, 15: the only one asked who fills the questionnaire in), Clara (salon, gave up
# at the postal code on Tuesday), Dina (still answering, an hour ago), Hugo (28, Marseille:
# nothing fits), Inès, Jade, Karim (45: sent off kindly), Léa (cancelled at the needs). Mentors
# Eliot (English, ecole) and Fanny: nothing takes mentors. P1 (radio), P2 and the mentor P3
# signed up the week before.
AMEL, BEN, CLARA, DINA, HUGO, INES, JADE, KARIM, LEA = 101, 102, 103, 104, 105, 106, 107, 108, 109
ELIOT, FANNY = 201, 202
P1, P2, P3 = 301, 302, 303
CAMILLE, BRUNO = 501, 502


async def a_known_fortnight(factory: UnitOfWorkFactory) -> Known:
    scene = StoredScene(factory)
    scene.now = at(26, 8, month=10)
    # Alpha, local to Seine-Saint-Denis, comes first there; Beta, national, takes mentees up to 25.
    # Neither takes mentors.
    alpha = an_association(
        "alpha",
        name="Tremplin",
        national=False,
        departments=["93"],
        remote=False,
        formats=["in_person"],
        roles=["mentee"],
    )
    beta = an_association(
        "beta",
        name="Avenir",
        mentee_ages={"min": 5, "max": 25},
        roles=["mentee"],
        weekly_capacity=40,
    )
    await scene.import_catalog(a_catalog(alpha, beta))
    async with factory() as uow:
        record = await uow.catalog.by_slug("alpha")
        assert record is not None
        record.weekly_capacity = 10  # set from the dashboard, over the catalogue's 100
        await uow.commit()
    camille = await scene.coordinator("alpha", CAMILLE, "Camille")
    bruno = await scene.coordinator("beta", BRUNO, "Bruno")

    async def handoff_of(telegram_id: int, slug: str) -> int:
        return (await handoff_ids(factory))[(telegram_id, slug)]

    # --- the week before --------------------------------------------------------------------
    scene.now = at(27, 10, month=10)
    await scene.person(P2).fill()
    scene.now = at(27, 11, month=10)
    await camille.press(await handoff_of(P2, "alpha"), HandoffVerb.TAKE)  # 1 h, the week before
    scene.now = at(28, 9, month=10)
    await camille.press(await handoff_of(P2, "alpha"), HandoffVerb.CONTACTED)
    scene.now = at(28, 10, month=10)
    await scene.person(P1).start("radio")
    await scene.person(P1).fill()
    scene.now = at(29, 10, month=10)
    await scene.person(P3).fill("mentor", postal_code="75011")

    # --- this week --------------------------------------------------------------------------
    scene.now = at(2, 9)
    a = scene.person(AMEL)
    await a.start("salon")
    await a.choose("mentee")
    await say(a, "Amel", "dix-sept", "17", "93200", BackInput("situation"), "93200", "1")
    await say(a, tick("needs", "orientation"), pick("format", "either"), SkipInput("area"))
    await say(a, pick("contact_method", "phone"), "06 12 34 56 78", pick("consent", "yes"))
    await a.answer(ConfirmInput())

    scene.now = at(2, 10)
    b = Chat(scene, BEN, language="en")
    await b.start("ecole")
    await b.fill(age="15")
    await camille.press(await handoff_of(P1, "alpha"), HandoffVerb.TAKE)  # after 120 h

    scene.now = at(2, 12)
    await camille.press(await handoff_of(AMEL, "alpha"), HandoffVerb.DECLINE, "full")  # to Beta
    scene.now = at(2, 13)
    await camille.press(await handoff_of(BEN, "alpha"), HandoffVerb.TAKE)  # after 3 h
    scene.now = at(2, 14)
    await bruno.press(await handoff_of(AMEL, "beta"), HandoffVerb.TAKE)  # after 2 h

    scene.now = at(3, 9)
    await scene.person(CLARA).start("salon")
    await scene.person(CLARA).answer_until("mentee", "postal_code")
    scene.now = at(3, 9, 30)
    await scene.person(KARIM).answer_until("mentee", "age")
    await say(scene.person(KARIM), "45")
    scene.now = at(3, 10)
    await scene.person(LEA).answer_until("mentee", "needs")
    await scene.person(LEA).send(Cancel())
    scene.now = at(3, 11)
    await scene.person(INES).fill()
    scene.now = at(3, 12)
    await camille.press(await handoff_of(INES, "alpha"), HandoffVerb.TAKE)  # after 1 h

    scene.now = at(4, 9)
    await camille.press(await handoff_of(BEN, "alpha"), HandoffVerb.CONTACTED)
    scene.now = at(4, 10)
    e = Chat(scene, ELIOT, language="en")
    await e.start("ecole")
    await e.fill("mentor")
    scene.now = at(4, 11)
    await scene.person(FANNY).fill("mentor")
    scene.now = at(5, 9)
    await scene.person(HUGO).fill(age="28", postal_code="13001")
    scene.now = at(5, 10)
    await scene.person(JADE).fill()  # stays proposed
    scene.now = at(6, 11)
    await scene.person(DINA).answer_until("mentee", "situation")

    async with factory() as uow:
        # One admin alert that Telegram kept refusing.
        claimed = await uow.outbox.claim_due(NOW, timedelta(minutes=1), 1000)
        dead = next(c for c in claimed if isinstance(c.message, AdminAlert))
        await uow.outbox.mark_dead(dead.id, 5, "chat not found")
        await uow.outbox.release([c.id for c in claimed if c is not dead])
        record = await uow.catalog.by_slug("beta")
        assert record is not None
        record.paused = True
        await uow.commit()
        slugs = {r.slug: r.id for r in await uow.catalog.records()}
    return Known(await journeys(factory), await handoff_ids(factory), slugs["alpha"], slugs["beta"])


async def handoff_ids(factory: UnitOfWorkFactory) -> dict[tuple[int, str], int]:
    async with factory() as uow:
        assert isinstance(uow, UnitOfWork)
        rows = await uow.session.execute(
            select(people.c.telegram_id, handoffs.c.association_id, handoffs.c.id)
            .join(profiles, profiles.c.id == handoffs.c.profile_id)
            .join(people, people.c.id == profiles.c.person_id)
        )
        slugs = {r.id: r.slug for r in await uow.catalog.records()}
        return {(telegram_id, slugs[association]): id_ for telegram_id, association, id_ in rows}


async def journeys(factory: UnitOfWorkFactory) -> dict[int, str]:
    async with factory() as uow:
        assert isinstance(uow, UnitOfWork)
        rows = await uow.session.execute(
            select(people.c.telegram_id, conversations.c.journey).join(
                people, people.c.id == conversations.c.person_id
            )
        )
        return {telegram_id: str(journey) for telegram_id, journey in rows}


@pytest.fixture
async def known(uow_factory: UnitOfWorkFactory) -> Known:
    return await a_known_fortnight(uow_factory)


async def test_the_known_fortnight_went_where_the_figures_below_say(
    known: Known, uow_factory: UnitOfWorkFactory
) -> None:
    assert sorted(known.handoffs) == sorted(
        [
            (P2, "alpha"),
            (P1, "alpha"),
            (AMEL, "alpha"),
            (AMEL, "beta"),
            (BEN, "alpha"),
            (INES, "alpha"),
            (JADE, "alpha"),
        ]
    )
    assert len(set(known.journeys.values())) == len(known.journeys) == 14


async def test_the_overview_counts_sign_ups_against_the_week_before_and_the_handoffs_now(
    known: Known, uow_factory: UnitOfWorkFactory
) -> None:
    overview = await stats.overview(uow_factory, WEEK)

    assert overview.period == WEEK
    assert overview.sign_ups == (
        SignUps("mentee", "en", started=1, completed=1, started_before=0, completed_before=0),
        # Amel, Clara, Dina, Hugo, Inès, Jade, Karim and Léa started, four finished; the week
        # before, P1 and P2.
        SignUps("mentee", "fr", started=8, completed=4, started_before=2, completed_before=2),
        SignUps("mentor", "en", started=1, completed=1, started_before=0, completed_before=0),
        SignUps("mentor", "fr", started=1, completed=1, started_before=1, completed_before=1),
    )
    assert overview.waiting == 1  # Jade's
    assert overview.taken == 5  # P1's, Amel's at Beta, Inès's taken; P2's and Ben's contacted
    assert overview.declined == 1
    assert overview.rerouted == 1
    # Taken this week: after 120 h (P1's), 3 h, 2 h and 1 h; P2's 1 h was the week before.
    assert overview.median_hours_to_take == 2.5
    assert overview.dead_letters == 1


async def test_the_overview_of_a_week_with_nothing_is_zeros(
    known: Known, uow_factory: UnitOfWorkFactory
) -> None:
    empty = Period(at(9, 0) - timedelta(hours=1), at(16, 0) - timedelta(hours=1))
    overview = await stats.overview(uow_factory, empty)

    assert [(s.flow, s.language, s.started, s.started_before) for s in overview.sign_ups] == [
        ("mentee", "en", 0, 1),
        ("mentee", "fr", 0, 8),
        ("mentor", "en", 0, 1),
        ("mentor", "fr", 0, 1),
    ]
    assert (overview.declined, overview.rerouted, overview.median_hours_to_take) == (0, 0, None)
    assert (overview.waiting, overview.taken, overview.dead_letters) == (1, 5, 1)


def steps_of(funnel: stats.FlowFunnel) -> dict[str, tuple[int, int, int, int, int]]:
    """Each step's (reached, answered, invalid, back, abandoned), in the flow's order."""
    return {s.step: (s.reached, s.answered, s.invalid, s.back, s.abandoned) for s in funnel.steps}


ZERO = (0, 0, 0, 0, 0)


async def test_the_funnel_shows_where_each_journey_went_and_where_it_stopped(
    known: Known, uow_factory: UnitOfWorkFactory
) -> None:
    mentee, referral, mentor = await stats.funnel(uow_factory, FunnelQuery(WEEK), NOW)
    assert (referral.flow, referral.started) == ("referral", 0)

    assert (mentee.flow, mentee.started, mentee.completed) == ("mentee", 9, 5)
    assert (mentee.exited, mentee.cancelled) == (1, 1)
    assert [s.position for s in mentee.steps] == list(range(1, 16))
    assert steps_of(mentee) == {
        "first_name": (9, 9, 0, 0, 0),
        "age": (9, 9, 1, 0, 0),  # Amel's "dix-sept"; Karim was sent off here, which is no drop-off
        "postal_code": (8, 7, 0, 0, 1),  # Clara gave up here on Tuesday
        "situation": (7, 6, 0, 1, 0),  # Amel went back from here; Dina is still at it, an hour ago
        "diploma": ZERO,  # asked of students, job seekers and young workers: none here
        "grant": ZERO,
        "needs": (6, 5, 0, 0, 0),  # Léa cancelled here
        "format": (5, 5, 0, 0, 0),
        "area": (5, 5, 0, 0, 0),
        "contact_method": (5, 5, 0, 0, 0),
        "phone": (5, 5, 0, 0, 0),
        "email": ZERO,
        "parent_name": ZERO,
        "parent_phone": ZERO,
        "consent": (5, 5, 0, 0, 0),
    }
    assert (mentor.flow, mentor.started, mentor.completed, mentor.exited) == ("mentor", 2, 2, 0)
    reached = {s.step: s.reached for s in mentor.steps}
    assert reached == {
        "first_name": 2,
        "age_bracket": 2,
        "postal_code": 2,
        "situation": 2,
        "employer": 2,
        "mentee_groups": 2,
        "themes": 2,
        "availability": 2,
        "commitment": 2,
        "format": 2,
        "contact_method": 2,
        "phone": 0,
        "email": 2,
        "consent": 2,
    }
    assert {s.abandoned for s in mentor.steps} == {0}


async def test_a_day_later_the_one_still_answering_counts_as_given_up(
    known: Known, uow_factory: UnitOfWorkFactory
) -> None:
    (mentee,) = await stats.funnel(uow_factory, FunnelQuery(WEEK, flow="mentee"), at(7, 11, 1))

    assert {s.step: s.abandoned for s in mentee.steps if s.abandoned} == {
        "postal_code": 1,
        "situation": 1,
    }


async def test_the_funnel_narrows_to_a_flow_a_language_and_a_source(
    known: Known, uow_factory: UnitOfWorkFactory
) -> None:
    (mentor,) = await stats.funnel(uow_factory, FunnelQuery(WEEK, flow="mentor"), NOW)
    assert (mentor.flow, mentor.started, mentor.completed) == ("mentor", 2, 2)

    mentee, _referral, mentor = await stats.funnel(
        uow_factory, FunnelQuery(WEEK, language="en"), NOW
    )
    assert (mentee.started, mentee.completed, mentor.started, mentor.completed) == (1, 1, 1, 1)
    assert steps_of(mentee)["age"] == (1, 1, 0, 0, 0)

    (salon,) = await stats.funnel(
        uow_factory, FunnelQuery(WEEK, flow="mentee", language="fr", source="salon"), NOW
    )
    assert (salon.started, salon.completed, salon.exited, salon.cancelled) == (2, 1, 0, 0)
    assert steps_of(salon)["age"] == (2, 2, 1, 0, 0)
    assert steps_of(salon)["postal_code"] == (2, 1, 0, 0, 1)
    assert steps_of(salon)["situation"] == (1, 1, 0, 1, 0)

    mentee, _referral, mentor = await stats.funnel(
        uow_factory, FunnelQuery(WEEK, source="ecole"), NOW
    )
    assert (mentee.started, mentee.completed, mentor.started, mentor.completed) == (1, 1, 1, 1)

    (before,) = await stats.funnel(
        uow_factory, FunnelQuery(stats.previous(WEEK), flow="mentee"), NOW
    )
    assert (before.started, before.completed, steps_of(before)["age"]) == (2, 2, (2, 2, 0, 0, 0))

    assert await stats.funnel(uow_factory, FunnelQuery(WEEK, flow="nope"), NOW) == ()
    nobody = await stats.funnel(uow_factory, FunnelQuery(WEEK, source="nope"), NOW)
    assert [(f.flow, f.started, set(steps_of(f).values())) for f in nobody] == [
        ("mentee", 0, {ZERO}),
        ("referral", 0, {ZERO}),
        ("mentor", 0, {ZERO}),
    ]


async def test_the_sources_seen_fill_the_filter(
    known: Known, uow_factory: UnitOfWorkFactory
) -> None:
    assert await stats.sources(uow_factory) == ["ecole", "radio", "salon"]


async def test_each_association_shows_its_load_its_speed_and_its_declines(
    known: Known, uow_factory: UnitOfWorkFactory
) -> None:
    avenir, tremplin = await stats.associations(uow_factory, WEEK, NOW)

    assert avenir == stats.AssociationFigures(
        id=known.beta,
        slug="beta",
        name="Avenir",
        paused=True,
        weekly_capacity=40,
        capacity_overridden=False,
        used_this_week=1,
        waiting=0,
        median_hours_to_take=2.0,
        p90_hours_to_take=2.0,
        declines={},
    )
    # Taken this week after 1 h, 3 h and 120 h: the median is 3 h; the 90th percentile,
    # interpolated between the 2nd and 3rd, 3 + 0.8 × 117 = 96.6 h.
    assert (tremplin.median_hours_to_take, tremplin.p90_hours_to_take) == (
        3.0,
        pytest.approx(96.6, abs=1e-9),
    )
    assert tremplin == stats.AssociationFigures(
        id=known.alpha,
        slug="alpha",
        name="Tremplin",
        paused=False,
        weekly_capacity=10,
        capacity_overridden=True,
        used_this_week=4,  # Amel's, Ben's, Inès's and Jade's
        waiting=1,
        median_hours_to_take=3.0,
        p90_hours_to_take=tremplin.p90_hours_to_take,
        declines={"full": 1},
    )
    assert await stats.associations(uow_factory, WEEK, NOW, only=frozenset({known.beta})) == (
        avenir,
    )
    assert await stats.associations(uow_factory, WEEK, NOW, only=frozenset()) == ()
    # The week before: P2's contact, taken after 1 h; nothing declined.
    _avenir, alpha_before = await stats.associations(uow_factory, stats.previous(WEEK), NOW)
    assert (alpha_before.median_hours_to_take, alpha_before.p90_hours_to_take) == (1.0, 1.0)
    assert (alpha_before.declines, alpha_before.used_this_week) == ({}, 4)


async def test_the_gaps_name_where_nothing_fitted_most_first(
    known: Known, uow_factory: UnitOfWorkFactory
) -> None:
    assert await stats.gaps(uow_factory, WEEK) == (
        Gap("mentor", "69", 2),
        Gap("mentee", "13", 1),
    )
    assert await stats.gaps(uow_factory, stats.previous(WEEK)) == (Gap("mentor", "75", 1),)


async def rows(iterator: AsyncIterator[tuple[str, ...]]) -> list[tuple[str, ...]]:
    return [row async for row in iterator]


async def test_the_handoff_export_lists_the_week_s_contacts_without_personal_data(
    known: Known, uow_factory: UnitOfWorkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = known.handoffs
    expected = [
        stats.HANDOFF_COLUMNS,
        (
            str(h[(AMEL, "alpha")]),
            "alpha",
            "mentee",
            "93",
            "declined",
            "full",
            "2026-11-02T09:00:00+00:00",
            "",
            "",
            "",
            "2026-11-02T12:00:00+00:00",
            "",
        ),
        (
            str(h[(BEN, "alpha")]),
            "alpha",
            "mentee",
            "93",
            "contacted",
            "",
            "2026-11-02T10:00:00+00:00",
            "",
            "2026-11-02T13:00:00+00:00",
            "2026-11-04T09:00:00+00:00",
            "",
            "3.00",
        ),
        (
            str(h[(AMEL, "beta")]),
            "beta",
            "mentee",
            "93",
            "taken",
            "",
            "2026-11-02T12:00:00+00:00",
            "",
            "2026-11-02T14:00:00+00:00",
            "",
            "",
            "2.00",
        ),
        (
            str(h[(INES, "alpha")]),
            "alpha",
            "mentee",
            "93",
            "taken",
            "",
            "2026-11-03T11:00:00+00:00",
            "",
            "2026-11-03T12:00:00+00:00",
            "",
            "",
            "1.00",
        ),
        (
            str(h[(JADE, "alpha")]),
            "alpha",
            "mentee",
            "93",
            "proposed",
            "",
            "2026-11-05T10:00:00+00:00",
            "",
            "",
            "",
            "",
            "",
        ),
    ]
    assert await rows(stats.handoff_rows(uow_factory, WEEK)) == expected
    # Read in pages by id: the same rows whatever the page size.
    monkeypatch.setattr(stats, "PAGE", 2)
    assert await rows(stats.handoff_rows(uow_factory, WEEK)) == expected
    monkeypatch.setattr(stats, "PAGE", 5)
    assert await rows(stats.handoff_rows(uow_factory, WEEK)) == expected
    before = await rows(stats.handoff_rows(uow_factory, stats.previous(WEEK)))
    assert [(r[0], r[4], r[-1]) for r in before[1:]] == [
        (str(h[(P2, "alpha")]), "contacted", "1.00"),
        (str(h[(P1, "alpha")]), "taken", "120.00"),
    ]


async def test_the_funnel_export_lists_the_week_s_events_by_journey(
    known: Known, uow_factory: UnitOfWorkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    exported = await rows(stats.funnel_rows(uow_factory, WEEK))

    assert exported[0] == stats.FUNNEL_COLUMNS
    c = known.journeys[CLARA]
    tuesday = "2026-11-03T09:00:00+00:00"
    assert [r for r in exported if r[0] == c] == [
        (c, "mentee", "first_name", "started", "fr", "salon", tuesday),
        (c, "mentee", "first_name", "reached", "fr", "salon", tuesday),
        (c, "mentee", "first_name", "answered", "fr", "salon", tuesday),
        (c, "mentee", "age", "reached", "fr", "salon", tuesday),
        (c, "mentee", "age", "answered", "fr", "salon", tuesday),
        (c, "mentee", "postal_code", "reached", "fr", "salon", tuesday),
    ]
    k = known.journeys[KARIM]
    assert [r[2:4] for r in exported if r[0] == k] == [
        ("first_name", "started"),
        ("first_name", "reached"),
        ("first_name", "answered"),
        ("age", "reached"),
        ("age", "answered"),
        ("age", "exited"),
    ]
    f = known.journeys[FANNY]
    assert [r for r in exported if r[0] == f][-2:] == [
        (f, "mentor", "", "completed", "fr", "", "2026-11-04T11:00:00+00:00"),
        (f, "mentor", "", "no_match", "fr", "", "2026-11-04T11:00:00+00:00"),
    ]
    this_week = {AMEL, BEN, CLARA, DINA, HUGO, INES, JADE, KARIM, LEA, ELIOT, FANNY}
    assert {r[0] for r in exported[1:]} == {known.journeys[p] for p in this_week}
    async with uow_factory() as uow:
        assert isinstance(uow, UnitOfWork)
        stored = await uow.session.scalar(
            select(func.count())
            .select_from(funnel_events)
            .where(funnel_events.c.at >= WEEK.start, funnel_events.c.at < WEEK.end)
        )
    assert len(exported) - 1 == stored
    monkeypatch.setattr(stats, "PAGE", 7)
    assert await rows(stats.funnel_rows(uow_factory, WEEK)) == exported
