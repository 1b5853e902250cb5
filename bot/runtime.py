"""The running services, built once from the settings: the database, the rules, the translations.

The Telegram application, the webhook server, the sandbox and the CLI all hold this one typed
object instead of rebuilding services by hand or reading them back from PTB's `bot_data`.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.i18n import Translator
from bot.settings import Settings
from conversations.handoff import SilenceRules
from conversations.ports import UnitOfWorkFactory
from conversations.services.policy import Policy
from conversations.text import Text
from storage.db import RoundTrips, create_engine, is_sqlite, session_factory, write_lock
from storage.uow import unit_of_work_factory


def utc_now() -> datetime:
    return datetime.now(UTC)


def policy_of(settings: Settings) -> Policy:
    return Policy(
        admins=settings.admin_telegram_ids,
        silence=SilenceRules(
            remind_after=timedelta(hours=settings.handoff_reminder_hours),
            reroute_after=timedelta(days=settings.handoff_reroute_days),
        ),
        abandoned_after=timedelta(days=settings.abandoned_conversation_days),
        retention=timedelta(days=settings.profile_retention_days),
        nudge_after=(
            timedelta(hours=settings.nudge_after_hours) if settings.nudge_after_hours else None
        ),
        parental_link_valid=timedelta(days=settings.parental_link_days),
        dashboard_url=settings.dashboard_base_url,
    )


@dataclass(frozen=True)
class Services:
    settings: Settings
    engine: AsyncEngine
    unit_of_work: UnitOfWorkFactory
    policy: Policy
    translator: Translator
    clock: Callable[[], datetime]
    # The inbox's own bookkeeping (rows done, rows still held): on PostgreSQL through a pool of
    # its own, so that it never queues behind the updates it keeps track of. Late, a live
    # process's rows would look abandoned and be taken over (its people asked again).
    bookkeeping: UnitOfWorkFactory
    bookkeeping_engine: AsyncEngine | None = None
    round_trips: RoundTrips = field(default_factory=RoundTrips)

    @classmethod
    def from_settings(cls, settings: Settings, clock: Callable[[], datetime] = utc_now) -> Services:
        url = settings.database_url
        engine = create_engine(url)
        unit_of_work = unit_of_work_factory(session_factory(engine), write_lock(url))
        bookkeeping, bookkeeping_engine = unit_of_work, None
        if not is_sqlite(url):
            # SQLite has one writer whatever the pool: the bookkeeping shares its write lock.
            bookkeeping_engine = create_engine(url, pool_size=2, max_overflow=2)
            bookkeeping = unit_of_work_factory(session_factory(bookkeeping_engine), None)
        round_trips = RoundTrips()
        for watched in (engine, bookkeeping_engine):
            if watched is not None:
                round_trips.watch(watched)
        return cls(
            settings,
            engine,
            unit_of_work,
            policy_of(settings),
            Translator(),
            clock,
            bookkeeping,
            bookkeeping_engine,
            round_trips,
        )

    def localize(self, language: str, text: Text) -> str:
        return self.translator.plain(language, text)

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.bookkeeping_engine is not None:
            await self.bookkeeping_engine.dispose()


def settle_heap() -> None:
    """Once the bot is up: what it loaded (modules, translations, the catalogue, SQLAlchemy's
    mappers: some 300,000 objects) lives as long as the process, yet each full pass of the
    cyclic garbage collector scanned it all, stopping the event loop about 100 ms each time
    (issue 13: 9 such passes in a benchmark run, the bot's worst reply times). Frozen, a full
    pass only looks at what was made since."""
    gc.collect()
    gc.freeze()
