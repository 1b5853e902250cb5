"""The staff's figures in the chat: /stats for an admin, and the weekly digest every Monday morning.

Both show one week's key figures next to the week before's (sign-ups, contacts, how fast they are
taken, messages given up); /stats adds the mentee funnel of the last 30 days as a chart. The
numbers come from `conversations.services.stats`; this module only chooses and words them.
"""

from __future__ import annotations

import logging
from datetime import datetime, time, timedelta

from conversations.flows import FLOWS
from conversations.ports import UnitOfWorkFactory
from conversations.services import alerts, stats
from conversations.services.policy import Policy
from conversations.services.replies import Chart, Notice, Reply, Sender
from conversations.text import Lines, Text, When, _, pick_language

log = logging.getLogger(__name__)

# The digest goes out at the first timer tick on or after this time each Monday (Paris).
DIGEST_AT = time(8, 0)
# /stats draws the funnel of the young people's questionnaire over this many days.
CHART_DAYS = 30
CHART_FLOW = "mentee"

NOT_ADMIN = _("Les chiffres de /stats sont réservés à l'équipe du Collectif.")
THIS_WEEK = _("📊 <b>Les chiffres de la semaine</b>, du %(start)s au %(end)s")
LAST_WEEK = _("📊 <b>Les chiffres de la semaine dernière</b>, du %(start)s au %(end)s")
COMPARED = _("<i>Entre parenthèses : la semaine d'avant.</i>")
SIGN_UPS = _("<b>Inscriptions</b>")
SIGN_UP_LINE = _(
    "%(flow)s : commencées %(started)s (%(started_before)s) · "
    "terminées %(completed)s (%(completed_before)s)"
)
CONTACTS = _("<b>Contacts</b>")
HELD_NOW = _("En ce moment : %(waiting)s en attente · %(taken)s pris en charge")
DECLINED = _(
    "Refusés : %(declined)s (%(declined_before)s) · réorientés : %(rerouted)s (%(rerouted_before)s)"
)
MEDIAN = _("Délai médian de prise en charge : %(median)s (%(median_before)s)")
DEAD_LETTERS = _("Messages non remis : %(dead)s")
HOURS = _("%(hours)s h %(minutes)s")
MINUTES = _("%(minutes)s min")
# No handoff taken in the period: no delay to speak of.
NO_DELAY = "–"
CHART_TITLE = _("Questionnaire des jeunes, les 30 derniers jours")
CHART_CAPTION = _(
    "Questionnaire des jeunes, sur les 30 derniers jours : à chaque question, qui l'a vue, "
    "qui y a répondu et qui s'est arrêté là."
)


# --- /stats --------------------------------------------------------------------------------------


async def show_stats(unit_of_work: UnitOfWorkFactory, sender: Sender, policy: Policy) -> Reply:
    """This week's figures and the mentee funnel chart for an admin; a polite no for anyone else.

    Only reads: a redelivered /stats shows the figures again and changes nothing."""
    async with unit_of_work() as uow:
        person = await uow.people.by_telegram_id(sender.telegram_id)
    language = pick_language(
        person.language if person is not None else None, sender.telegram_language
    )
    if sender.telegram_id not in policy.admins:
        log.info("a /stats from an account that is not an admin was refused")
        return Reply(language, screens=(Notice(NOT_ADMIN),))
    text = await week_figures(unit_of_work, stats.week_of(sender.now), THIS_WEEK)
    days = stats.Period(sender.now - timedelta(days=CHART_DAYS), sender.now)
    funnels = await stats.funnel(unit_of_work, stats.FunnelQuery(days, CHART_FLOW), sender.now)
    chart = Chart(funnels[0], CHART_TITLE, CHART_CAPTION)
    return Reply(language, screens=(Notice(text), chart))


# --- the weekly digest ----------------------------------------------------------------------------


def digest_week(now: datetime) -> str | None:
    """The ISO week whose digest is due at `now` ("2026-W45"), None before Monday 08:00 (Paris)."""
    local = now.astimezone(stats.PARIS)
    if local.weekday() == 0 and local.time() < DIGEST_AT:
        return None
    year, week, _day = local.date().isocalendar()
    return f"{year}-W{week:02d}"


class WeeklyDigest:
    """The timer job: each admin gets last week's figures once per ISO week.

    The outbox's dedup key (week and admin) makes it once across processes and restarts; the
    week remembered here only spares a process from computing the figures at every tick."""

    def __init__(self, unit_of_work: UnitOfWorkFactory, policy: Policy) -> None:
        self._unit_of_work = unit_of_work
        self._policy = policy
        self._queued_week: str | None = None

    async def __call__(self, now: datetime) -> int:
        """How many digests were handed to the outbox (0 when not due or already done here)."""
        week = digest_week(now)
        if week is None or week == self._queued_week or not self._policy.admins:
            return 0
        last_week = stats.previous(stats.week_of(now))
        text = await week_figures(self._unit_of_work, last_week, LAST_WEEK)
        async with self._unit_of_work() as uow:
            await alerts.alert_admins(uow, self._policy.admins, f"digest:{week}", text, now)
            await uow.commit()
        self._queued_week = week
        log.info(
            "weekly digest %s handed to the outbox for %s admins", week, len(self._policy.admins)
        )
        return len(self._policy.admins)


# --- the words ------------------------------------------------------------------------------------


async def week_figures(
    unit_of_work: UnitOfWorkFactory, period: stats.Period, heading: Text
) -> Text:
    """One week's key figures, each with the week before's in brackets."""
    now = await stats.overview(unit_of_work, period)
    before = await stats.overview(unit_of_work, stats.previous(period))
    lines: list[Text | str] = [
        heading.fmt(start=When(period.start), end=When(period.end - timedelta(microseconds=1))),
        COMPARED,
        "",
        SIGN_UPS,
    ]
    for flow in FLOWS:
        counts = [s for s in now.sign_ups if s.flow == flow]
        lines.append(
            SIGN_UP_LINE.fmt(
                flow=stats.FLOW_NAMES.get(flow, flow),
                started=sum(s.started for s in counts),
                started_before=sum(s.started_before for s in counts),
                completed=sum(s.completed for s in counts),
                completed_before=sum(s.completed_before for s in counts),
            )
        )
    lines += [
        "",
        CONTACTS,
        HELD_NOW.fmt(waiting=now.waiting, taken=now.taken),
        DECLINED.fmt(
            declined=now.declined,
            declined_before=before.declined,
            rerouted=now.rerouted,
            rerouted_before=before.rerouted,
        ),
        MEDIAN.fmt(
            median=duration(now.median_hours_to_take),
            median_before=duration(before.median_hours_to_take),
        ),
        DEAD_LETTERS.fmt(dead=now.dead_letters),
    ]
    return Text("%(lines)s").fmt(lines=Lines(tuple(lines)))


def duration(hours: float | None) -> Text | str:
    """A delay as people say it: "45 min", "5 h 30"; a dash when there is none."""
    if hours is None:
        return NO_DELAY
    minutes = round(hours * 60)
    if minutes < 60:
        return MINUTES.fmt(minutes=minutes)
    return HOURS.fmt(hours=minutes // 60, minutes=f"{minutes % 60:02d}")
