"""The running services, built once from the settings: the database, the rules, the translations.

The Telegram application, the webhook server, the sandbox and the CLI all hold this one typed
object instead of rebuilding services by hand or reading them back from PTB's `bot_data`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.i18n import Translator
from bot.settings import Settings
from conversations.handoff import SilenceRules
from conversations.ports import UnitOfWorkFactory
from conversations.services.policy import Policy
from conversations.text import Text
from storage.db import create_engine, session_factory, write_lock
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
    )


@dataclass(frozen=True)
class Services:
    settings: Settings
    engine: AsyncEngine
    unit_of_work: UnitOfWorkFactory
    policy: Policy
    translator: Translator
    clock: Callable[[], datetime]

    @classmethod
    def from_settings(cls, settings: Settings, clock: Callable[[], datetime] = utc_now) -> Services:
        engine = create_engine(settings.database_url)
        unit_of_work = unit_of_work_factory(
            session_factory(engine), write_lock(settings.database_url)
        )
        return cls(settings, engine, unit_of_work, policy_of(settings), Translator(), clock)

    def localize(self, language: str, text: Text) -> str:
        return self.translator.plain(language, text)

    async def dispose(self) -> None:
        await self.engine.dispose()
