"""The python-telegram-bot Application, wired from settings: one place that builds everything."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from telegram import BotCommand, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.ext import Application, ApplicationBuilder, Defaults
from telegram.request import BaseRequest, HTTPXRequest

from bot.handlers import Handlers
from bot.inbox import UpdateInbox
from bot.polling import InboxPoller
from bot.processor import PerChatUpdateProcessor
from bot.ratelimit import PriorityRateLimiter
from bot.relay import Relay
from bot.render import Renderer
from bot.runtime import Services, utc_now
from bot.settings import Settings
from bot.timers import Job, Timers
from bot.transport import AiohttpRequest
from bot.webhooks import WebhookSender
from conversations.services import catalogue, updates
from conversations.text import LANGUAGES, Text, _

log = logging.getLogger(__name__)

COMMANDS: tuple[tuple[str, Text], ...] = (
    ("start", _("Commencer ou reprendre")),
    ("restart", _("Recommencer le questionnaire")),
    ("cancel", _("Arrêter le questionnaire")),
    ("language", _("Changer de langue")),
    ("mydata", _("Voir mes données")),
    ("privacy", _("Qui garde mes données, et pourquoi")),
    ("queue", _("Coordinateurs : les contacts qui attendent")),
    ("delete", _("Effacer mes données")),
    ("help", _("Aide")),
)


@dataclass(frozen=True)
class TelegramBot:
    """The running bot: PTB's application and what runs beside it."""

    application: Application  # type: ignore[type-arg]
    services: Services
    relay: Relay
    timers: Timers
    handlers: Handlers
    inbox: UpdateInbox
    # Polling mode only: webhook mode is fed by bot.web.
    poller: InboxPoller


def build_bot(settings: Settings, clock: Callable[[], datetime] = utc_now) -> TelegramBot:
    """The bot, ready for `run_polling()` or for start/stop by a test."""
    if settings.telegram_bot_token is None:
        raise ValueError("TELEGRAM_BOT_TOKEN is not set")
    services = Services.from_settings(settings, clock)
    translator = services.translator

    async def post_init(application: Application) -> None:  # type: ignore[type-arg]
        now = clock()
        if await catalogue.import_sample_if_empty(
            services.unit_of_work, now, settings.catalog_path
        ):
            log.info("the catalogue was empty: imported %s", settings.catalog_path.name)
        for language in LANGUAGES:
            commands = [
                BotCommand(name, translator.plain(language, about)) for name, about in COMMANDS
            ]
            # French is the default list; English speakers get theirs by their language_code.
            await application.bot.set_my_commands(
                commands, language_code=None if language == "fr" else language
            )
        removed = await updates.forget_old_updates(services.unit_of_work, now)
        inbox.start()
        relay.start()
        timers.start()
        log.info(
            "bot ready as @%s (%s old update ids forgotten)", application.bot.username, removed
        )

    async def post_stop(_application: Application) -> None:  # type: ignore[type-arg]
        await timers.stop()
        await relay.stop()
        await inbox.stop()

    async def post_shutdown(_application: Application) -> None:  # type: ignore[type-arg]
        await timers.stop()
        await relay.stop()
        await inbox.stop()
        await services.dispose()

    processor = PerChatUpdateProcessor(settings.max_concurrent_updates)
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
        .concurrent_updates(processor)
        .request(telegram_transport(settings, pool_size=256))
        # Long polling holds one connection at a time.
        .get_updates_request(telegram_transport(settings, pool_size=1))
        # Updates come from our own poller (bot.polling) or webhook server (bot.web).
        .updater(None)
        .post_init(post_init)
        .post_stop(post_stop)
        .post_shutdown(post_shutdown)
        # Honours Telegram's retry_after on 429 and keeps under its flood limit (0: no limit),
        # the person in front of the chat first, the relay's background sends after.
        .rate_limiter(PriorityRateLimiter(settings.telegram_max_requests_per_second))
        .build()
    )
    renderer = Renderer(translator)
    relay = Relay(
        services.unit_of_work,
        application.bot,
        renderer,
        clock,
        services.policy,
        webhook_sender=WebhookSender(services.unit_of_work),
        lease=timedelta(seconds=settings.outbox_lease_seconds),
    )
    handlers = Handlers(services, renderer, on_outbox=relay.wake)
    handlers.register(application)
    inbox = UpdateInbox(services, application, handlers, renderer)
    handlers.replaying = inbox.replaying
    processor.inbox = inbox

    async def take_over(_now: datetime) -> int:
        """What a process that died left in the inbox; given-up updates are forgotten later."""
        await inbox.forget_given_up()
        return await inbox.replay_stale()

    # Three times per takeover delay: a live process refreshes the rows it holds well before
    # another may take them as left by a dead one (a busy chat's update can wait that long).
    inbox_job = Job("inbox", inbox.stale_after / 3, take_over)
    timers = Timers(services, on_outbox=relay.wake, extra=(inbox_job,))
    poller = InboxPoller(application, inbox)
    return TelegramBot(application, services, relay, timers, handlers, inbox, poller)


def telegram_transport(settings: Settings, *, pool_size: int) -> BaseRequest:
    """aiohttp by default; PTB's httpx transport when `TELEGRAM_HTTP_CLIENT=httpx`."""
    if settings.telegram_http_client == "httpx":
        return HTTPXRequest(connection_pool_size=pool_size)
    return AiohttpRequest(connection_pool_size=pool_size)
