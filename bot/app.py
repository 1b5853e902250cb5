"""The python-telegram-bot Application, wired from settings: one place that builds everything."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from telegram import BotCommand, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder, Defaults

from bot.catalog import import_sample_if_empty
from bot.dispatcher import Dispatcher
from bot.handlers import Handlers
from bot.handoffs import HandoffService
from bot.i18n import LANGUAGES, Translator
from bot.processor import PerChatUpdateProcessor
from bot.render import Renderer
from bot.retention import Retention
from bot.services import Services
from bot.settings import Settings
from bot.webhooks import WebhookSender
from conversations.handoff import SilenceRules
from conversations.text import Text, _
from storage.db import create_engine, session_factory, write_lock
from storage.uow import UnitOfWork

log = logging.getLogger(__name__)

COMMANDS: tuple[tuple[str, Text], ...] = (
    ("start", _("Commencer ou reprendre")),
    ("restart", _("Recommencer le questionnaire")),
    ("cancel", _("Arrêter le questionnaire")),
    ("language", _("Changer de langue")),
    ("mydata", _("Voir mes données")),
    ("queue", _("Coordinateurs : les contacts qui attendent")),
    ("delete", _("Effacer mes données")),
    ("help", _("Aide")),
)


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_application(settings: Settings, clock: Callable[[], datetime] = utc_now) -> Application:  # type: ignore[type-arg]
    """The bot, ready for `run_polling()` or for start/stop by a test."""
    if settings.telegram_bot_token is None:
        raise ValueError("TELEGRAM_BOT_TOKEN is not set")
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    lock = write_lock(settings.database_url)

    def unit_of_work() -> UnitOfWork:
        return UnitOfWork(sessions, lock)

    translator = Translator()

    async def post_init(application: Application) -> None:  # type: ignore[type-arg]
        if await import_sample_if_empty(unit_of_work, clock(), settings.catalog_path):
            log.info("the catalogue was empty: imported %s", settings.catalog_path.name)
        for language in LANGUAGES:
            commands = [
                BotCommand(name, translator.plain(language, about)) for name, about in COMMANDS
            ]
            # French is the default list; English speakers get theirs by their language_code.
            await application.bot.set_my_commands(
                commands, language_code=None if language == "fr" else language
            )
        removed = await services.forget_old_updates(clock())
        dispatcher.start()
        log.info(
            "bot ready as @%s (%s old update ids forgotten)", application.bot.username, removed
        )

    async def post_stop(_application: Application) -> None:  # type: ignore[type-arg]
        await dispatcher.stop()

    async def post_shutdown(_application: Application) -> None:  # type: ignore[type-arg]
        await dispatcher.stop()
        await engine.dispose()

    application = (
        ApplicationBuilder()
        .token(settings.telegram_bot_token.get_secret_value())
        .base_url(settings.telegram_api_base_url)
        .defaults(
            Defaults(
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )
        )
        .concurrent_updates(PerChatUpdateProcessor(settings.max_concurrent_updates))
        .post_init(post_init)
        .post_stop(post_stop)
        .post_shutdown(post_shutdown)
        # Honours Telegram's retry_after on 429 and keeps under its flood limits (0: no limit).
        .rate_limiter(
            AIORateLimiter(
                overall_max_rate=settings.telegram_max_requests_per_second,
                overall_time_period=1,
                max_retries=3,
            )
        )
        .build()
    )
    handoffs = HandoffService(
        translator,
        settings.admin_telegram_ids,
        SilenceRules(
            remind_after=timedelta(hours=settings.handoff_reminder_hours),
            reroute_after=timedelta(days=settings.handoff_reroute_days),
        ),
    )
    retention = Retention(
        unit_of_work,
        handoffs,
        abandoned_after=timedelta(days=settings.abandoned_conversation_days),
        retention=timedelta(days=settings.profile_retention_days),
    )

    async def periodic(now: datetime) -> int:
        """Silence timers, the waiting list and retention, all read from the database."""
        handled = await handoffs.run_timers(unit_of_work, now)
        handled += await handoffs.retry_waiting_if_due(unit_of_work, now)
        await retention.purge_if_due(now)
        return handled

    dispatcher = Dispatcher(
        unit_of_work,
        application.bot,
        clock,
        translator,
        admins=settings.admin_telegram_ids,
        on_sent=handoffs.on_delivered,
        webhook_sender=WebhookSender(unit_of_work),
        timers=periodic,
        timer_seconds=settings.timer_seconds,
        lease=timedelta(seconds=settings.outbox_lease_seconds),
    )
    services = Services(unit_of_work, translator, handoffs, on_outbox=dispatcher.wake)
    handlers = Handlers(services, Renderer(translator), clock)
    handlers.register(application)
    # Tests and the sandbox reach the running parts through here.
    application.bot_data["dispatcher"] = dispatcher
    application.bot_data["services"] = services
    application.bot_data["unit_of_work"] = unit_of_work
    application.bot_data["handoffs"] = handoffs
    application.bot_data["retention"] = retention
    application.bot_data["handlers"] = handlers
    return application
