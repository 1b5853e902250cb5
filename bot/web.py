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
from collections import Counter
from collections.abc import Callable
from urllib.parse import urlsplit

from aiohttp import web
from sqlalchemy import func, select, text
from telegram import Update
from telegram.ext import Application

from bot.app import build_application
from bot.settings import Settings
from storage.models import Handoff, OutboxMessage
from storage.uow import UnitOfWork

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message", "callback_query"]
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Updates are a few kilobytes; anything bigger is not from Telegram.
MAX_BODY = 1024 * 1024
READY_TIMEOUT = 2.0
# The Bot API accepts 1 to 100 simultaneous webhook connections.
MAX_CONNECTIONS = 100


class Metrics:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()


def webhook_app(application: Application, settings: Settings) -> web.Application:  # type: ignore[type-arg]
    assert settings.webhook_url is not None
    assert settings.webhook_secret is not None
    secret = settings.webhook_secret.get_secret_value()
    unit_of_work: Callable[[], UnitOfWork] = application.bot_data["unit_of_work"]
    metrics = Metrics()
    failed: set[int] = application.bot_data["handlers"].failed_updates

    async def telegram(request: web.Request) -> web.Response:
        """One update from Telegram, handled before the answer."""
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), secret.encode()):
            metrics.counts["refused"] += 1
            return web.Response(status=403)
        try:
            data = await request.json()
            update = Update.de_json(data, application.bot) if isinstance(data, dict) else None
        except (ValueError, TypeError, KeyError):
            update = None
        if update is None:
            metrics.counts["malformed"] += 1
            return web.Response(status=400)
        # Through the per-chat processor: one chat's updates in order, as in polling mode.
        await application.update_processor.process_update(
            update, application.process_update(update)
        )
        if update.update_id in failed:
            # Nothing was committed: a 500 makes Telegram send it again, and the recorded ids
            # of handled updates keep that retry from doing anything twice.
            failed.discard(update.update_id)
            metrics.counts["failed"] += 1
            return web.Response(status=500)
        metrics.counts["updates"] += 1
        return web.Response(status=200)

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def ping() -> None:
        async with unit_of_work() as uow:
            await uow.session.execute(text("SELECT 1"))

    async def readyz(_request: web.Request) -> web.Response:
        try:
            # A probe must answer quickly, even when SQLite transactions queue up.
            await asyncio.wait_for(ping(), timeout=READY_TIMEOUT)
        except Exception:
            return web.Response(status=503, text="database unreachable\n")
        return web.Response(text="ready\n")

    async def prometheus(_request: web.Request) -> web.Response:
        async with unit_of_work() as uow:
            outbox = await uow.session.execute(
                select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
            )
            handoffs = await uow.session.execute(
                select(Handoff.status, func.count()).group_by(Handoff.status)
            )
            outbox_counts, handoff_counts = list(outbox), list(handoffs)
        lines = [
            "# TYPE mentorat_webhook_requests_total counter",
            *(
                f'mentorat_webhook_requests_total{{result="{result}"}} {metrics.counts[result]}'
                for result in ("updates", "failed", "refused", "malformed")
            ),
            "# TYPE mentorat_outbox_messages gauge",
            *(f'mentorat_outbox_messages{{status="{s}"}} {n}' for s, n in outbox_counts),
            "# TYPE mentorat_handoffs gauge",
            *(f'mentorat_handoffs{{status="{s}"}} {n}' for s, n in handoff_counts),
        ]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

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
    application = build_application(settings)
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
        runner = web.AppRunner(webhook_app(application, settings), access_log=None)
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
