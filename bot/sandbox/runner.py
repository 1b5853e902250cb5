"""The sandbox: the real bot polling a local Telegram emulator, and a web chat page to talk to it
as a young person, a mentor or a coordinator — for trying the bot without a Telegram account."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from bot.dashboard.app import Dashboard, add_dashboard_routes
from bot.runtime import Services, utc_now
from bot.sandbox.emulator import BotApiEmulator
from bot.settings import Settings
from bot.webhooks import add_crm_routes

if TYPE_CHECKING:
    from telegram.ext import Application

    from bot.app import TelegramBot

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
SANDBOX_TOKEN = "123456:SANDBOX"
API_PREFIX = "/sandbox/api/"
# The page's scripts, styles and the bot's rebuilt HTML come from this server and nowhere else.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

OnReady = Callable[[BotApiEmulator], Awaitable[None]]


@dataclass(frozen=True)
class Persona:
    """An emulated Telegram account the page offers; its chat is a pane of the page."""

    id: int
    first_name: str
    role: str
    label: str
    start_payload: str | None


PERSONAS = (
    Persona(100001, "Inès", "mentee", "Jeune", "sandbox"),
    Persona(200001, "Karim", "mentor", "Mentor·e", "sandbox"),
    # Signs a child up ("J'inscris un·e jeune"), or confirms Inès's sign-up when she is under 15:
    # her link's "/start pc_…" typed here is what a parent's tap on the link sends.
    Persona(300001, "Samia", "parent", "Parent", "sandbox"),
    # Joined through invites at start-up (see _join_coordinator): the page only shows the chat.
    Persona(900001, "Camille", "coordinator", "Coordinateur·rice", None),
    # An admin of the Collectif: /dashboard gives them the sign-in link to the staff dashboard.
    Persona(800001, "Sam", "admin", "Équipe du Collectif", None),
)
ADMIN_PERSONA = 800001


class Sandbox:
    """One emulator and the bot polling it; `reset()` swaps both for fresh ones."""

    def __init__(
        self,
        settings: Settings,
        on_ready: OnReady | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._settings = settings
        # Tests move time forward (a questionnaire left for a day counts as abandoned).
        self._clock = clock
        self._on_ready = on_ready
        self._emulator: BotApiEmulator | None = None
        self._application: Application | None = None  # type: ignore[type-arg]
        self._bot: TelegramBot | None = None
        self._lock = asyncio.Lock()
        # API calls wait while a reset swaps the emulator, instead of reaching a stopped one.
        self._live = asyncio.Event()
        self.epoch = 0

    @property
    def emulator(self) -> BotApiEmulator:
        if self._emulator is None:
            raise RuntimeError("the sandbox is not started")
        return self._emulator

    async def start(self) -> None:
        async with self._lock:
            await self._start()

    async def stop(self) -> None:
        async with self._lock:
            await self._stop()

    async def reset(self) -> None:
        """Starts over: new emulator (no chats), empty database, bot restarted."""
        async with self._lock:
            await self._stop()
            await asyncio.to_thread(_wipe_database, self._settings.database_url)
            await self._start()

    def dashboard(self) -> Dashboard:
        """The staff dashboard of whichever bot is current (a reset swaps it)."""

        def services() -> Services:
            if self._bot is None:
                raise web.HTTPServiceUnavailable(text="the sandbox is restarting\n")
            return self._bot.services

        def username() -> str:
            return self._bot.application.bot.username if self._bot is not None else "bot"

        settings = self._settings.model_copy(
            update={"telegram_bot_token": SecretStr(SANDBOX_TOKEN)}
        )
        return Dashboard(services, username, SANDBOX_TOKEN, settings)

    def wake_relay(self) -> None:
        if self._bot is not None:
            self._bot.relay.wake()

    async def wait_live(self, patience: float = 30.0) -> BotApiEmulator | None:
        """The current emulator, once a reset in progress is over; None if it never ends."""
        try:
            await asyncio.wait_for(self._live.wait(), patience)
        except TimeoutError:
            return None
        return self.emulator

    async def _start(self) -> None:
        from bot.app import build_bot
        from storage.migrate import upgrade_async

        await upgrade_async(self._settings.database_url)
        # The bot skips update ids it already handled, and the sandbox database outlives the
        # process: a new emulator counting from 1 would see its first messages ignored.
        last_update_id = await _last_handled_update_id(self._settings.database_url)
        emulator = BotApiEmulator(first_update_id=last_update_id + 1)
        # Only the bot talks to the Bot API side: it stays on the loopback interface.
        await emulator.start("127.0.0.1", 0)
        self._emulator = emulator
        # The admin persona writes to the bot before it starts, so that whatever the bot sends
        # admins from its first moment (the weekly digest, alerts) reaches its pane: Telegram
        # lets a bot write only to people who wrote to it first.
        admin = next(p for p in PERSONAS if p.role == "admin")
        emulator.user(admin.id, admin.first_name, language_code="fr").send_command("help")
        try:
            settings = self._settings.model_copy(
                update={
                    "telegram_bot_token": SecretStr(SANDBOX_TOKEN),
                    "telegram_api_base_url": emulator.base_url,
                    "admin_telegram_ids": (*self._settings.admin_telegram_ids, ADMIN_PERSONA),
                }
            )
            bot = build_bot(settings, clock=self._clock)
            application = bot.application
            # The steps and order of Application.run_polling(), which the production bot uses;
            # run_polling() itself owns the event loop and so cannot run beside the page.
            await application.initialize()
            self._application = application
            if application.post_init is not None:
                await application.post_init(application)
            await application.start()
            await bot.poller.start()
            self._bot = bot
            await _join_coordinator(bot, emulator)
            if self._on_ready is not None:
                await self._on_ready(emulator)
        except BaseException:
            await self._stop()
            raise
        self.epoch += 1
        self._live.set()

    async def _stop(self) -> None:
        self._live.clear()
        application, self._application = self._application, None
        bot, self._bot = self._bot, None
        if application is not None:
            if bot is not None:
                await bot.poller.stop()
            if application.running:
                await application.stop()
                if application.post_stop is not None:
                    await application.post_stop(application)
            await application.shutdown()
            # Disposes of the database engine, among others.
            if application.post_shutdown is not None:
                await application.post_shutdown(application)
        emulator, self._emulator = self._emulator, None
        if emulator is not None:
            await emulator.stop()


async def _join_coordinator(bot: TelegramBot, emulator: BotApiEmulator) -> None:
    """Camille coordinates every association of the catalogue, so that whatever profile the
    young persona or the mentor persona fills in, its card shows up in her pane. She joins with
    real invites (hashed, single-use), through the same code as a coordinator's /start link,
    then says /start once: Telegram lets a bot write only to people who wrote to it first."""
    from conversations.services import coordinators

    coordinator = next(p for p in PERSONAS if p.role == "coordinator")
    now = bot.services.clock()
    async with bot.services.unit_of_work() as uow:
        for record in await uow.catalog.records():
            if await uow.coordinators.find(record.id, coordinator.id) is None:
                invite = await coordinators.invite(uow, record.slug, now, timedelta(minutes=5))
                await uow.flush()
                await coordinators.join(
                    uow, invite.token, coordinator.id, coordinator.first_name, "fr", now
                )
        await uow.commit()
    user = emulator.user(coordinator.id, coordinator.first_name, language_code="fr")
    if not user.started:
        user.send_command("start")
        await user.next_message(timeout=10)


async def _last_handled_update_id(url: str) -> int:
    from storage.db import create_engine, session_factory
    from storage.uow import unit_of_work_factory

    engine = create_engine(url)
    try:
        async with unit_of_work_factory(session_factory(engine))() as uow:
            return await uow.updates.newest()
    finally:
        await engine.dispose()


def _wipe_database(url: str) -> None:
    """An empty schema: a SQLite file is deleted, any other database is migrated down to nothing."""
    from storage.migrate import alembic_config

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            return
        path = Path(parsed.database)
        for leftover in (
            path,
            *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal")),
        ):
            leftover.unlink(missing_ok=True)
        return
    from alembic import command

    command.downgrade(alembic_config(url), "base")


# -- the page's server -------------------------------------------------------------------------


def build_page_app(sandbox: Sandbox) -> web.Application:
    """The page, its assets, the personas, the reset, and the emulator's user-side API."""
    app = web.Application()
    app.router.add_get("/", _index)
    app.router.add_static("/static/", STATIC)
    app.router.add_get("/sandbox/api/personas", _personas(sandbox))
    app.router.add_post("/sandbox/reset", _reset(sandbox))
    add_dashboard_routes(app, sandbox.dashboard())
    add_crm_routes(app, sandbox.dashboard().services, sandbox.wake_relay)
    # The emulator's user-side routes (bot.sandbox.webapi), served here for whichever emulator
    # is current: a reset replaces the emulator while the page stays on this server.
    dispatch = _dispatch(sandbox)
    for route in sandbox.emulator.app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if path.startswith(API_PREFIX) and route.method != "HEAD":
            app.router.add_route(route.method, path, dispatch)
    return app


async def _index(_request: web.Request) -> web.StreamResponse:
    return web.FileResponse(
        STATIC / "index.html",
        headers={"Cache-Control": "no-cache", "Content-Security-Policy": CSP},
    )


def _personas(sandbox: Sandbox) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def personas(_request: web.Request) -> web.StreamResponse:
        return _json({"epoch": sandbox.epoch, "personas": [asdict(p) for p in PERSONAS]})

    return personas


def _reset(sandbox: Sandbox) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def reset(_request: web.Request) -> web.StreamResponse:
        # The page may go away mid-reset: the reset must finish all the same.
        await asyncio.shield(sandbox.reset())
        return _json({"epoch": sandbox.epoch})

    return reset


def _dispatch(sandbox: Sandbox) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def dispatch(request: web.Request) -> web.StreamResponse:
        emulator = await sandbox.wait_live()
        if emulator is None:
            return web.json_response({"error": "the sandbox failed to restart"}, status=503)
        match = await emulator.app.router.resolve(request)
        # Same route patterns on both routers, so request.match_info holds what the handler reads.
        response = await match.handler(request)
        response.headers["X-Sandbox-Epoch"] = str(sandbox.epoch)
        return response

    return dispatch


def _json(body: dict[str, Any]) -> web.Response:
    return web.json_response(body, dumps=lambda o: json.dumps(o, ensure_ascii=False))


# -- running ----------------------------------------------------------------------------------


async def run_sandbox(
    settings: Settings,
    host: str,
    port: int,
    *,
    ready: asyncio.Event | None = None,
    on_ready: OnReady | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> None:
    """Runs the sandbox until cancelled (Ctrl+C); `ready` is set once the page can be used."""
    if settings.dashboard_url is None and port:
        # The dashboard is on the page's server: its sign-in links must point here.
        shown = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
        settings = settings.model_copy(update={"dashboard_url": f"http://{shown}:{port}"})
    sandbox = Sandbox(settings, on_ready, clock)
    runner: web.AppRunner | None = None
    try:
        await sandbox.start()
        runner = web.AppRunner(
            build_page_app(sandbox),
            handler_cancellation=True,
            access_log=None,
            shutdown_timeout=1.0,
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = int(runner.addresses[0][1])
        shown_host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
        print("Sandbox: no TELEGRAM_BOT_TOKEN, so the bot talks to a local Telegram emulator.")
        print(
            f"Open http://{shown_host}:{bound_port} to chat with it (Ctrl+C to stop).", flush=True
        )
        if ready is not None:
            ready.set()
        await asyncio.Event().wait()
    finally:
        if runner is not None:
            await runner.cleanup()
        await sandbox.stop()


def serve(settings: Settings, host: str, port: int) -> int:
    """Blocking entry point for the command line; Ctrl+C stops the sandbox cleanly."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_sandbox(settings, host, port))
    return 0
