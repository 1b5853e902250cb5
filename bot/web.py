"""Webhook mode: Telegram POSTs each update here; operators get /healthz, /readyz and /metrics
(served in polling mode too, by operations_server).

Several bot processes can run behind a load balancer: their state is in the shared database. An
update is processed before the answer, so a crash leaves it unanswered and Telegram sends it again;
its recorded id makes the second delivery change nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import signal
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from telegram import Bot, Message, Update
from telegram.constants import ChatType

from bot.app import TelegramBot, build_bot
from bot.dashboard.app import Dashboard, add_dashboard_routes
from bot.inbox import Outcome
from bot.processor import PerChatUpdateProcessor
from bot.runtime import settle_heap
from bot.settings import Settings
from bot.webhooks import add_crm_routes
from conversations.ports import UnitOfWorkFactory

log = logging.getLogger(__name__)

# my_chat_member: Telegram says when a person blocks (or unblocks) the bot.
ALLOWED_UPDATES = ["message", "callback_query", "my_chat_member"]
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Updates are a few kilobytes; anything bigger is not from Telegram.
MAX_BODY = 1024 * 1024
READY_TIMEOUT = 2.0
# The Bot API accepts 1 to 100 simultaneous webhook connections.
MAX_CONNECTIONS = 100
# Telegram's ids and dates are 64-bit integers at most (the ids' columns are BIGINT): 20
# characters with the sign. Longer digit runs are refused before int() reads them.
INT_CHARS_MAX = 20
INT64_MAX = 2**63 - 1
# A real update nests about a dozen levels (a card's button in a pressed message); PTB builds
# nested messages recursively, so a deep body is refused before it is built.
DEPTH_MAX = 32
# Telegram caps a text (and a Premium caption) at 4096 UTF-16 code units, so 4096 characters.
TEXT_MAX = 4096


class Metrics:
    """Prometheus metrics of one process; no personal data, only counts."""

    def __init__(
        self, *, webhook: bool = True, round_trips: Callable[[], int] | None = None
    ) -> None:
        # One registry per server: several servers run in one test process.
        self.registry = CollectorRegistry()
        if round_trips is not None:
            self.registry.register(_RoundTripsCollector(round_trips))
        self.requests = Counter(
            "mentorat_webhook_requests",
            "Updates POSTed by Telegram, by result",
            ["result"],
            # In polling mode nothing is POSTed: the counter exists, unexported.
            registry=self.registry if webhook else None,
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


class _RoundTripsCollector(Collector):
    """Read at each scrape: the count lives in the storage layer's engine events."""

    def __init__(self, count: Callable[[], int]) -> None:
        self._count = count

    def collect(self) -> Iterable[Metric]:
        yield CounterMetricFamily(
            "mentorat_db_round_trips",
            "Statements, BEGIN, COMMIT, ROLLBACK and pool resets sent to the database",
            value=self._count(),
        )


def answer_in_response(callback_query_id: str, toast: str | None) -> dict[str, Any]:
    """An answerCallbackQuery as the body of a webhook response."""
    answer: dict[str, Any] = {
        "method": "answerCallbackQuery",
        "callback_query_id": callback_query_id,
    }
    if toast:
        answer["text"] = toast
    return answer


def webhook_app(bot: TelegramBot, settings: Settings) -> web.Application:
    assert settings.webhook_url is not None
    assert settings.webhook_secret is not None
    secret = settings.webhook_secret.get_secret_value()
    application = bot.application
    unit_of_work = bot.services.unit_of_work
    metrics = Metrics(round_trips=lambda: bot.services.round_trips.count)
    processor = application.update_processor
    assert isinstance(processor, PerChatUpdateProcessor)
    handlers = bot.handlers

    async def telegram(request: web.Request) -> web.Response:
        """One update from Telegram, handled before the answer."""
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), secret.encode()):
            metrics.requests.labels("refused").inc()
            return web.Response(status=403)
        update = parse_update(await request.read(), application.bot)
        if isinstance(update, Malformed):
            # The reason only: the body may be anyone's message, or an attacker's payload.
            log.warning("webhook: refused a malformed update: %s", update.reason)
            metrics.requests.labels("malformed").inc()
            return web.Response(status=400)
        try:
            # Stored first: should this process die now, another takes the update over.
            fresh = await bot.inbox.store([update])
        except Exception:
            log.exception(
                "update %s could not be stored; Telegram will send it again", update.update_id
            )
            metrics.requests.labels("failed").inc()
            return web.Response(status=500)
        if not fresh:
            # Done or given up before: acknowledged, nothing more (a press's spinner stopped,
            # in case our first answer was lost).
            metrics.requests.labels("updates").inc()
            if update.callback_query is not None:
                return web.json_response(answer_in_response(update.callback_query.id, None))
            return web.Response(status=200)
        press = update.callback_query
        if press is not None:
            handlers.answered_in_response.add(update.update_id)
        try:
            # Through the per-chat processor: one chat's updates in order, as in polling mode.
            outcome = await processor.process_webhook(update, application.process_update(update))
        finally:
            handlers.answered_in_response.discard(update.update_id)
            toast = handlers.toasts.pop(update.update_id, None)
        if outcome is Outcome.RETRY_LATER:
            # Not handled yet: a 500 makes Telegram send it again, and the recorded ids of
            # handled updates keep that retry from doing anything twice.
            metrics.requests.labels("failed").inc()
            return web.Response(status=500)
        metrics.requests.labels("updates").inc()
        if press is not None:
            # The Bot API runs one method given in the response to its request: the button's
            # spinner stops without a call of our own. (Telegram does not say whether it
            # worked; a lost answer only lets the spinner run out.)
            return web.json_response(answer_in_response(press.id, toast))
        return web.Response(status=200)

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_post(urlsplit(settings.webhook_url).path or "/", telegram)
    add_operations_routes(app, unit_of_work, metrics)
    add_dashboard_routes(app, dashboard_of(bot))
    add_crm_routes(app, lambda: bot.services, bot.relay.wake)
    return app


def dashboard_of(bot: TelegramBot) -> Dashboard:
    token = bot.services.settings.telegram_bot_token
    assert token is not None
    return Dashboard(
        lambda: bot.services,
        bot_username=lambda: bot.application.bot.username,
        bot_token=token.get_secret_value(),
        settings=bot.services.settings,
    )


def add_operations_routes(
    app: web.Application,
    unit_of_work: UnitOfWorkFactory,
    metrics: Metrics,
    alive: Callable[[], bool] = lambda: True,
) -> None:
    """GET /healthz (alive), /readyz (the database answers), /metrics: in both modes."""

    async def healthz(_request: web.Request) -> web.Response:
        if not alive():
            return web.Response(status=503, text="not receiving updates\n")
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

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", prometheus)


@contextlib.asynccontextmanager
async def operations_server(bot: TelegramBot, settings: Settings) -> AsyncIterator[None]:
    """Polling mode: /healthz, /readyz and /metrics on WEB_HOST:WEB_PORT (the image's
    HEALTHCHECK reads /healthz), the staff dashboard at /admin and the CRMs' requests at
    /associations/…; /healthz fails once the poller has stopped."""
    app = web.Application()
    add_operations_routes(
        app,
        bot.services.unit_of_work,
        Metrics(webhook=False, round_trips=lambda: bot.services.round_trips.count),
        alive=lambda: bot.poller.alive,
    )
    add_dashboard_routes(app, dashboard_of(bot))
    add_crm_routes(app, lambda: bot.services, bot.relay.wake)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, settings.web_host, settings.web_port).start()
        except OSError as error:
            # Polling itself needs no port: a developer's busy 8080 must not stop the bot.
            log.error(
                "polling mode: /healthz cannot listen on %s:%s (%s); the bot polls without it",
                settings.web_host,
                settings.web_port,
                error.strerror,
            )
        else:
            log.info(
                "polling mode: /healthz, /readyz, /metrics and the dashboard (/admin) on %s:%s",
                settings.web_host,
                settings.web_port,
            )
        yield
    finally:
        await runner.cleanup()


class Malformed:
    """Why a POSTed body is not an update Telegram would send; never any of its content."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class _Refused(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_update(body: bytes, bot: Bot) -> Update | Malformed:
    """The update in a webhook body, or why it is refused. Never raises."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return Malformed("not UTF-8")
    try:
        data = json.loads(
            text, parse_int=_bounded_int, parse_float=_finite_float, parse_constant=_no_constant
        )
    except _Refused as refused:
        return Malformed(refused.reason)
    except RecursionError:
        return Malformed("nested too deep")
    except ValueError:
        return Malformed("not JSON")
    if not isinstance(data, dict):
        return Malformed("not a JSON object")
    if not _is_int(data.get("update_id"), 0, INT64_MAX):
        return Malformed("update_id missing, not an integer, or out of range")
    if _too_deep(data):
        return Malformed("nested too deep")
    try:
        # PTB checks no type: a string where an object belongs raises anything from KeyError to
        # AttributeError or OverflowError (a date), and a wrong type it lets through fails later.
        update = Update.de_json(data, bot)
        refusal = _refusal(update)
    except Exception as error:
        return Malformed(f"not an update ({type(error).__name__})")
    return update if refusal is None else Malformed(refusal)


def _bounded_int(digits: str) -> int:
    if len(digits) > INT_CHARS_MAX:
        raise _Refused("an integer of more than 64 bits")
    return int(digits)


def _finite_float(digits: str) -> float:
    value = float(digits)
    if not math.isfinite(value):
        raise _Refused("a number beyond floating point (1e999)")
    return value


def _no_constant(name: str) -> Any:
    raise _Refused("NaN or Infinity, which JSON does not allow")


def _too_deep(data: object) -> bool:
    # Iterative: a recursive walk would itself hit the recursion limit json.loads stayed under.
    stack: list[tuple[object, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > DEPTH_MAX:
            return True
        if isinstance(value, dict):
            stack.extend((child, depth + 1) for child in value.values())
        elif isinstance(value, list):
            stack.extend((child, depth + 1) for child in value)
    return False


def _is_int(value: object, low: int, high: int) -> bool:
    # JSON's true and false are ints to Python.
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_text(value: object, longest: int = TEXT_MAX) -> bool:
    return value is None or (isinstance(value, str) and len(value) <= longest)


def _refusal(update: Update) -> str | None:
    """What the handlers read, in the types they expect; None when it all is."""
    user = update.effective_user
    if user is not None and not (
        _is_int(user.id, 1, INT64_MAX)
        and isinstance(user.first_name, str)
        and _is_text(user.language_code)
    ):
        return "a sender of the wrong shape"
    chat = update.effective_chat
    if chat is not None and not (
        _is_int(chat.id, -INT64_MAX, INT64_MAX) and chat.id != 0 and isinstance(chat.type, str)
    ):
        return "a chat of the wrong shape"
    query = update.callback_query
    if query is not None:
        if query.from_user is None or not isinstance(query.id, str):
            return "a button press without a sender or an id"
        if not _is_text(query.data):
            return "button data that is not text"
    message = update.effective_message
    if message is not None:
        problem = _message_refusal(message)
        if problem is not None:
            return problem
    if chat is not None and chat.type == ChatType.PRIVATE:
        # In a private chat Telegram always names the sender, and the chat's id is theirs.
        if user is None:
            return "a private message without a sender"
        if chat.id != user.id:
            return "a private chat that is not its sender's"
    return None


def _message_refusal(message: Any) -> str | None:
    if not _is_int(message.message_id, -INT64_MAX, INT64_MAX):
        return "a message id that is not an integer"
    if getattr(message, "chat", None) is None:
        # PTB builds a message without its chat, which every handler reads.
        return "a message without a chat"
    if not isinstance(message, Message):
        return None  # an inaccessible message: only its chat and id are read
    if not (_is_text(message.text) and _is_text(message.caption)):
        return "a text or caption that is not text, or over 4096 characters"
    for entity in (*message.entities, *message.caption_entities):
        if not (
            isinstance(entity.type, str)
            and _is_int(entity.offset, 0, TEXT_MAX)
            and _is_int(entity.length, 0, TEXT_MAX)
        ):
            return "a formatting entity of the wrong shape"
    contact = message.contact
    if contact is not None and not (
        isinstance(contact.phone_number, str)
        and len(contact.phone_number) <= TEXT_MAX
        and (contact.user_id is None or _is_int(contact.user_id, 1, INT64_MAX))
    ):
        return "a shared contact of the wrong shape"
    return None


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
    from_command_line = stop is None
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
            if from_command_line:
                settle_heap()
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
