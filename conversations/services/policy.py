"""The settings the use-cases obey, as plain values: who the admins are and how long things wait."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from conversations.handoff import SilenceRules


@dataclass(frozen=True)
class Policy:
    # Telegram user ids of the Collectif's admins: told about gaps, unstaffed associations and
    # messages that could not be delivered.
    admins: tuple[int, ...] = ()
    silence: SilenceRules = field(default_factory=SilenceRules)
    # Retention (CNIL): unfinished questionnaires, then everything about a person.
    abandoned_after: timedelta = timedelta(days=30)
    retention: timedelta = timedelta(days=3 * 365)
    # One reminder to a person who stopped half-way through a questionnaire; None: never.
    nudge_after: timedelta | None = timedelta(hours=24)
    # How long the link an under-15 forwards to a parent stays valid (a reminder at half-time).
    parental_link_valid: timedelta = timedelta(days=7)
    # Where /dashboard's sign-in links point (the dashboard's public address).
    dashboard_url: str = "http://127.0.0.1:8080"

    @property
    def reroute_days(self) -> int:
        return self.silence.reroute_after.days
