"""The staff's figures in the chat: the Monday digest (once per admin and week) and /stats."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Self

from bot.i18n import Translator
from conversations.handoff import HandoffStatus, HandoffVerb
from conversations.ports import AdminAlert, StepTally, TakeDelay, UnitOfWork
from conversations.services import digest
from conversations.services.policy import Policy
from conversations.services.replies import Chart, Notice, Sender
from conversations.text import Text
from tests.unit.fakes import ADMINS, T0, FakeUnitOfWork, Scene, a_catalog, an_association

# T0 is Monday 2 November 2026, 10:00 in Paris: the digest of week 45 is due.
LAST_WEEK = T0 - timedelta(days=4)  # Thursday 29 October
WEEK_BEFORE = T0 - timedelta(days=11)  # Thursday 22 October
TRANSLATOR = Translator()


class FakeFigures:
    """The read-only queries the figures need, over the fake tables (funnel counts and the
    handoffs; the step tallies of the chart are left empty)."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def milestones(
        self, start: datetime, end: datetime, kinds: Sequence[str]
    ) -> dict[tuple[str, str | None, str], int]:
        events = self._uow.read().funnel.values()
        return dict(
            Counter(
                (e.flow, e.language, e.event)
                for e in events
                if e.event in kinds and start <= e.at < end
            )
        )

    async def step_tallies(self, *_args: object, **_narrow: object) -> list[StepTally]:
        return []

    async def abandoned(self, *_args: object, **_narrow: object) -> dict[tuple[str, str], int]:
        return {}

    async def sources(self) -> list[str]:
        return []

    async def declines(self, start: datetime, end: datetime) -> dict[tuple[int, str | None], int]:
        handoffs = self._uow.read().handoffs.values()
        return dict(
            Counter(
                (h.association_id, h.decline_reason)
                for h in handoffs
                if h.status == HandoffStatus.DECLINED and start <= h.created_at < end
            )
        )

    async def rerouted(self, start: datetime, end: datetime) -> int:
        handoffs = sorted(self._uow.read().handoffs.values(), key=lambda h: h.id)
        first = {}
        for handoff in handoffs:
            first.setdefault(handoff.profile_id, handoff.id)
        return len(
            {
                h.profile_id
                for h in handoffs
                if h.id != first[h.profile_id] and start <= h.created_at < end
            }
        )

    async def take_delays(self, start: datetime, end: datetime) -> list[TakeDelay]:
        return [
            TakeDelay(h.association_id, h.created_at, h.taken_at)
            for h in self._uow.read().handoffs.values()
            if h.taken_at is not None and start <= h.taken_at < end
        ]

    async def gaps(self, *_args: object) -> list[tuple[str, str | None, int]]:
        return []


class FiguredUnitOfWork(FakeUnitOfWork):
    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.figures = FakeFigures(self)  # type: ignore[assignment]
        return self


def with_figures(scene: Scene) -> Callable[[], UnitOfWork]:
    return lambda: FiguredUnitOfWork(scene.db)


def digests(scene: Scene) -> list[tuple[str, AdminAlert]]:
    return [
        (row.key, alert)
        for row, alert in scene.rows(AdminAlert, status=None)
        if row.key.startswith("digest:")
    ]


def lines(text: Text, language: str = "fr") -> list[str]:
    return TRANSLATOR.plain(language, text).split("\n")


async def signed_up(scene: Scene, telegram_id: int, at: datetime) -> None:
    scene.now = at
    await scene.person(telegram_id).fill()


# --- when -------------------------------------------------------------------------------------


def test_the_digest_is_due_from_monday_8_in_paris_in_winter_and_in_summer() -> None:
    # Winter: Paris is UTC+1.
    assert digest.digest_week(datetime(2026, 11, 2, 6, 59, tzinfo=UTC)) is None
    assert digest.digest_week(datetime(2026, 11, 2, 7, 0, tzinfo=UTC)) == "2026-W45"
    # Summer: UTC+2.
    assert digest.digest_week(datetime(2026, 6, 1, 5, 59, tzinfo=UTC)) is None
    assert digest.digest_week(datetime(2026, 6, 1, 6, 0, tzinfo=UTC)) == "2026-W23"
    # Sunday 23:00 in Paris is still week 45; half past midnight is Monday of week 46, too early.
    assert digest.digest_week(datetime(2026, 11, 8, 22, 0, tzinfo=UTC)) == "2026-W45"
    assert digest.digest_week(datetime(2026, 11, 8, 23, 30, tzinfo=UTC)) is None


# --- once per admin and week --------------------------------------------------------------------


async def test_each_admin_gets_last_week_s_figures_once_however_often_the_job_runs() -> None:
    scene = Scene()
    await scene.import_catalog(a_catalog(an_association("alpha")))
    await signed_up(scene, 101, LAST_WEEK)
    job = digest.WeeklyDigest(with_figures(scene), scene.policy)

    assert await job(T0) == len(ADMINS)
    assert await job(T0 + timedelta(minutes=1)) == 0
    # A restarted process remembers nothing: the outbox's key keeps it at one per admin.
    assert await digest.WeeklyDigest(with_figures(scene), scene.policy)(T0 + timedelta(hours=2))

    sent = digests(scene)
    assert sorted(key for key, _alert in sent) == ["digest:2026-W45:9001", "digest:2026-W45:9002"]
    assert sorted(alert.chat_id for _key, alert in sent) == sorted(ADMINS)
    shown = lines(sent[0][1].text)
    assert shown[0] == "📊 Les chiffres de la semaine dernière, du 26 oct. 2026 au 1 nov. 2026"
    assert "Jeunes : commencées 1 (0) · terminées 1 (0)" in shown


async def test_two_processes_running_the_job_at_once_queue_one_digest_per_admin() -> None:
    scene = Scene()
    first = digest.WeeklyDigest(with_figures(scene), scene.policy)
    second = digest.WeeklyDigest(with_figures(scene), scene.policy)
    # The other process commits its digests just before this one commits the same.
    scene.db.interleave(lambda: second(T0))

    await first(T0)

    assert Counter(alert.chat_id for _key, alert in digests(scene)) == dict.fromkeys(ADMINS, 1)


async def test_the_next_monday_brings_the_next_digest() -> None:
    scene = Scene()
    job = digest.WeeklyDigest(with_figures(scene), scene.policy)

    await job(T0)
    await job(T0 + timedelta(days=7))

    weeks = Counter(key.rsplit(":", 1)[0] for key, _alert in digests(scene))
    assert weeks == {"digest:2026-W45": 2, "digest:2026-W46": 2}


async def test_no_digest_before_monday_8_nor_without_admins() -> None:
    scene = Scene()
    early = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)  # 07:00 in Paris
    assert await digest.WeeklyDigest(with_figures(scene), scene.policy)(early) == 0
    nobody = Scene(Policy(admins=()))
    assert await digest.WeeklyDigest(with_figures(nobody), nobody.policy)(T0) == 0
    assert digests(scene) == []
    assert digests(nobody) == []


# --- the figures ----------------------------------------------------------------------------------


async def test_the_figures_compare_the_week_with_the_one_before() -> None:
    scene = Scene()
    await scene.import_catalog(a_catalog(an_association("alpha"), an_association("beta")))
    coordinators = {
        "alpha": await scene.coordinator("alpha", 501, "Camille"),
        "beta": await scene.coordinator("beta", 502, "Karim"),
    }
    await signed_up(scene, 101, WEEK_BEFORE)
    await signed_up(scene, 102, LAST_WEEK)
    await signed_up(scene, 103, LAST_WEEK)
    _first, taken, declined = scene.handoffs()
    scene.later(timedelta(hours=3, minutes=30))
    await coordinators[scene.slug_of(taken)].press(taken, HandoffVerb.TAKE)
    await coordinators[scene.slug_of(declined)].press(declined, HandoffVerb.DECLINE, "full")

    text = await digest.week_figures(
        with_figures(scene), digest.stats.previous(digest.stats.week_of(T0)), digest.LAST_WEEK
    )

    shown = lines(text)
    assert "Jeunes : commencées 2 (1) · terminées 2 (1)" in shown
    assert "Mentors : commencées 0 (0) · terminées 0 (0)" in shown
    # 101's contact and 103's, sent on to the other association, wait; 102's is taken.
    assert "En ce moment : 2 en attente · 1 pris en charge" in shown
    assert "Refusés : 1 (0) · réorientés : 1 (0)" in shown
    assert "Délai médian de prise en charge : 3 h 30 (–)" in shown
    assert "Messages non remis : 0" in shown


def test_a_delay_reads_as_people_say_it() -> None:
    def said(hours: float | None) -> str:
        shown = digest.duration(hours)
        return shown if isinstance(shown, str) else TRANSLATOR.plain("fr", shown)

    assert said(None) == "–"
    assert said(0.75) == "45 min"
    assert said(5.5) == "5 h 30"
    assert said(49.02) == "49 h 01"


# --- /stats ---------------------------------------------------------------------------------------


def sender(telegram_id: int, language: str | None = "fr") -> Sender:
    return Sender(
        update_id=1,
        telegram_id=telegram_id,
        chat_id=telegram_id,
        telegram_language=language,
        now=T0,
    )


async def test_an_admin_s_stats_are_this_week_s_figures_and_the_mentee_funnel_chart() -> None:
    scene = Scene()
    await signed_up(scene, 101, T0 - timedelta(hours=1))

    reply = await digest.show_stats(with_figures(scene), sender(ADMINS[0], "en"), scene.policy)

    figures, chart = reply.screens
    assert reply.language == "en"
    assert isinstance(figures, Notice)
    assert "Young people: started 1 (0) · finished 1 (0)" in lines(figures.text, "en")
    assert isinstance(chart, Chart)
    assert chart.funnel.flow == "mentee"
    assert chart.caption == digest.CHART_CAPTION


async def test_someone_who_is_not_an_admin_is_told_the_figures_are_for_the_team() -> None:
    scene = Scene()

    reply = await digest.show_stats(with_figures(scene), sender(4242), scene.policy)

    assert reply.screens == (Notice(digest.NOT_ADMIN),)
