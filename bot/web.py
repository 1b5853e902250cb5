"""Webhook mode: Telegram POSTs each update here; operators get /healthz, /readyz and /metrics.

Several bot processes can run behind a load balancer: their state is in the shared database. An
update is processed before the answer, so a crash leaves it unanswered and Telegram sends it again;
its recorded id makes the second delivery change nothing.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import signal
from urllib.parse import urlsplit

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from telegram import Update

from bot.app import TelegramBot, build_bot
from bot.settings import Settings

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message", "callback_query"]
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Updates are a few kilobytes; anything bigger is not from Telegram.
MAX_BODY = 1024 * 1024
READY_TIMEOUT = 2.0
# The Bot API accepts 1 to 100 simultaneous webhook connections.
MAX_CONNECTIONS = 100


class Metrics:
    """Prometheus metrics of one process; no personal data, only counts."""

    def __init__(self) -> None:
        # One registry per server: several servers run in one test process.
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mentorat_webhook_requests",
            "Updates POSTed by Telegram, by result",
            ["result"],
            registry=self.registry,
        )
        for result in ("updates", "failed", "refused", "malformed"):
            self.requests.labels(result)
        self.outbox = Gauge(
            "mentorat_outbox_messages",
            "Outbox messages by status",
            ["status"],
            registry=self.registry,
        )
        self.handoffs = Gauge(
            "mentorat_handoffs", "Handoffs by status", ["status"], registry=self.registry
        )

    def set_counts(self, gauge: Gauge, counts: dict[str, int]) -> None:
        gauge.clear()
        for status, count in counts.items():
            gauge.labels(status).set(count)


def webhook_app(bot: TelegramBot, settings: Settings) -> web.Application:
    assert settings.webhook_url is not None
    assert settings.webhook_secret is not None
    secret = settings.webhook_secret.get_secret_value()
    application = bot.application
    unit_of_work = bot.services.unit_of_work
    metrics = Metrics()
    failed = bot.handlers.failed_updates

    async def telegram(request: web.Request) -> web.Response:
        """One update from Telegram, handled before the answer."""
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), secret.encode()):
            metrics.requests.labels("refused").inc()
            return web.Response(status=403)
        try:
            data = await request.json()
            update = Update.de_json(data, application.bot) if isinstance(data, dict) else None
        except (ValueError, TypeError, KeyError):
            update = None
        if update is None:
            metrics.requests.labels("malformed").inc()
            return web.Response(status=400)
        # Through the per-chat processor: one chat's updates in order, as in polling mode.
        await application.update_processor.process_update(
            update, application.process_update(update)
        )
        if update.update_id in failed:
            # Nothing was committed: a 500 makes Telegram send it again, and the recorded ids
            # of handled updates keep that retry from doing anything twice.
            failed.discard(update.update_id)
            metrics.requests.labels("failed").inc()
            return web.Response(status=500)
        metrics.requests.labels("updates").inc()
        return web.Response(status=200)

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def ping() -> None:
        async with unit_of_work() as uow:
            await uow.ping()

    async def readyz(_request: web.Request) -> web.Response:
        try:
            # A probe must answer quickly, even when SQLite transactions queue up.
            await asyncio.wait_for(ping(), timeout=READY_TIMEOUT)
        except Exception:
            return web.Response(status=503, text="database unreachable\n")
        return web.Response(text="ready\n")

    async def prometheus(_request: web.Request) -> web.Response:
        async with unit_of_work() as uow:
            metrics.set_counts(metrics.outbox, await uow.outbox.counts_by_status())
            metrics.set_counts(metrics.handoffs, await uow.handoffs.counts_by_status())
        return web.Response(
            body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_post(urlsplit(settings.webhook_url).path or "/", telegram)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", prometheus)
    return app


async def run_webhook(
    settings: Settings,
    *,
    ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Register the webhook with Telegram and serve it until SIGINT/SIGTERM (or `stop`)."""
    assert settings.webhook_url is not None
    assert settings.webhook_secret is not None
    bot = build_bot(settings)
    application = bot.application
    if stop is None:
        # From the command line: Ctrl+C or the orchestrator's SIGTERM stops it cleanly.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    async with application:
        assert application.post_init is not None
        await application.post_init(application)
        await application.bot.set_webhook(
            settings.webhook_url,
            secret_token=settings.webhook_secret.get_secret_value(),
            allowed_updates=ALLOWED_UPDATES,
            max_connections=min(settings.max_concurrent_updates, MAX_CONNECTIONS),
        )
        await application.start()
        runner = web.AppRunner(webhook_app(bot, settings), access_log=None)
        try:
            await runner.setup()
            await web.TCPSite(runner, settings.web_host, settings.web_port).start()
            log.info("webhook mode: serving on %s:%s", settings.web_host, settings.web_port)
            if ready is not None:
                ready.set()
            await stop.wait()
        finally:
            await runner.cleanup()
            await application.stop()
            assert application.post_stop is not None
            await application.post_stop(application)
    assert application.post_shutdown is not None
    await application.post_shutdown(application)
