"""The `mentorat-bot` command: run the bot, migrate, manage the catalogue and the coordinators."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from pydantic import ValidationError

from bot.runtime import Services
from bot.settings import Settings
from conversations.services import stats
from storage.migrate import upgrade

log = logging.getLogger("mentorat-bot")


# Libraries that write what logs must never carry, held at these levels whatever LOG_LEVEL says:
# python-telegram-bot logs every request's parameters (texts, names, phones), every update and
# the Bot API URL (which contains the token) at DEBUG; httpx logs each request's URL at INFO;
# aiosqlite logs each statement with its parameters at DEBUG, SQLAlchemy at INFO.
LIBRARY_LEVELS = {
    "telegram": logging.INFO,
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "aiosqlite": logging.WARNING,
    "sqlalchemy": logging.WARNING,
    "alembic": logging.WARNING,
}
# PTB's loggers (telegram/_utils/logging.py names them after their class). Even above DEBUG a few
# of their messages quote content: a Bot API answer that is not JSON, updates PTB cannot parse.
TELEGRAM_LOGGERS = (
    "telegram",
    "telegram.Bot",
    "telegram.ext",
    "telegram.ext.ExtBot",
    "telegram.ext.Application",
    "telegram.ext.Updater",
    "telegram.ext.AIORateLimiter",
    "telegram.ext.JobQueue",
    "telegram.request.BaseRequest",
    "telegram.request.HTTPXRequest",
)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# A bot token is "<bot id>:<35 characters>"; in an exception's text it would be in a URL.
_BOT_TOKEN = re.compile(r"\d{3,}:[A-Za-z0-9_-]{20,}")
_PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[a-zA-Z%]")


class NoContent(logging.Filter):
    """On PTB's loggers: no DEBUG record at all, and no argument other than a number in the rest."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO:
            return False
        args = record.args if isinstance(record.args, tuple) else (record.args,)
        if record.args and not all(isinstance(arg, int | float) or arg is None for arg in args):
            record.msg = _PLACEHOLDER.sub(
                lambda m: "%" if m.group() == "%%" else "(not logged)", str(record.msg)
            )
            record.args = None
        return True


class RedactingFormatter(logging.Formatter):
    """Whatever slips through (an exception quoting a Bot API URL) loses its bot token."""

    def format(self, record: logging.LogRecord) -> str:
        return _BOT_TOKEN.sub("<bot token>", super().format(record))


def configure_logging(level: str) -> None:
    root = logging.getLogger()
    had_handlers = bool(root.handlers)
    logging.basicConfig(format=LOG_FORMAT)
    if not had_handlers:
        for handler in root.handlers:
            handler.setFormatter(RedactingFormatter(LOG_FORMAT))
    # Set even when a handler was there before (basicConfig then does nothing at all).
    root.setLevel(level.upper())
    for name, floor in LIBRARY_LEVELS.items():
        logging.getLogger(name).setLevel(max(root.level, floor))
    for name in TELEGRAM_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, NoContent) for existing in logger.filters):
            logger.addFilter(NoContent())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mentorat-bot", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="run the bot (long polling)")
    commands.add_parser("migrate", help="bring the database schema up to date")
    catalog = commands.add_parser("catalog", help="the association catalogue").add_subparsers(
        dest="catalog_command", required=True
    )
    importing = catalog.add_parser("import", help="add or update the associations of a YAML file")
    importing.add_argument("file", type=Path)
    importing.add_argument(
        "--dry-run", action="store_true", help="say what would change, change nothing"
    )
    catalog.add_parser("list", help="the associations in the database")
    commands.add_parser("stats", help="where people give up, how fast associations answer")
    coordinator = commands.add_parser(
        "coordinator", help="the coordinators who receive an association's contacts"
    ).add_subparsers(dest="coordinator_command", required=True)
    inviting = coordinator.add_parser("invite", help="print a single-use invite link")
    inviting.add_argument("association", help="the association's slug (see: catalog list)")
    inviting.add_argument(
        "--expires", default="7d", type=_duration, help="how long the link works: 7d, 48h, 30m"
    )
    coordinator.add_parser("list", help="every coordinator, by association")
    removing = coordinator.add_parser("remove", help="stop sending contacts to a coordinator")
    removing.add_argument("association")
    removing.add_argument("telegram_id", type=int)
    args = parser.parse_args(argv)

    try:
        settings = Settings()
    except ValidationError as error:
        print(f"mentorat-bot: invalid settings: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)

    if args.command == "migrate":
        upgrade(settings.database_url)
        print("database is up to date")
        return 0
    if args.command == "catalog":
        upgrade(settings.database_url)
        if args.catalog_command == "import":
            return asyncio.run(catalog_import(settings, args.file, args.dry_run))
        return asyncio.run(catalog_list(settings))
    if args.command == "stats":
        upgrade(settings.database_url)
        return asyncio.run(print_stats(settings))
    if args.command == "coordinator":
        upgrade(settings.database_url)
        if args.coordinator_command == "invite":
            return asyncio.run(coordinator_invite(settings, args.association, args.expires))
        if args.coordinator_command == "remove":
            return asyncio.run(coordinator_remove(settings, args.association, args.telegram_id))
        return asyncio.run(coordinator_list(settings))
    return run(settings)


async def print_stats(settings: Settings) -> int:
    from conversations.services import stats

    async with _services(settings) as services:
        print(format_report(await stats.report(services.unit_of_work)))
    return 0


def format_report(report: stats.Report) -> str:
    """The staff's numbers as a terminal table."""
    lines: list[str] = []
    for flow in report.flows:
        lines.append(f"== {flow.flow} questionnaire")
        lines.append("   " + "  ".join(f"{event}: {n}" for event, n in flow.outcomes.items()))
        lines.append("   answers per question (where people stop):")
        for step in flow.steps:
            share = f"{100 * step.share:5.1f} %" if step.share is not None else "    - "
            lines.append(f"   {step.position:>2}. {step.step:<16} {step.answered:>6}  {share}")
    lines.append("== handoffs by association (median time to take)")
    if not report.associations:
        lines.append("   none yet")
    for association in report.associations:
        spread = "  ".join(f"{s}: {n}" for s, n in association.by_status.items())
        hours = association.median_hours_to_take
        median_take = f"{hours:.1f} h" if hours is not None else "-"
        lines.append(f"   {association.slug:<26} {median_take:>8}  {spread}")
    return "\n".join(lines)


def _duration(text: str) -> timedelta:
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit() or int(text[:-1]) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: write 7d, 48h or 30m")
    return timedelta(**{units[text[-1]]: int(text[:-1])})


async def coordinator_invite(settings: Settings, slug: str, valid_for: timedelta) -> int:
    from conversations.services import catalogue, coordinators

    async with _services(settings) as services:
        now = services.clock()
        await catalogue.import_sample_if_empty(services.unit_of_work, now, settings.catalog_path)
        async with services.unit_of_work() as uow:
            try:
                invitation = await coordinators.invite(uow, slug, now, valid_for)
            except coordinators.UnknownAssociation:
                print(
                    f"mentorat-bot: no association {slug!r} (see: mentorat-bot catalog list)",
                    file=sys.stderr,
                )
                return 1
            await uow.commit()
    username = await _bot_username(settings)
    expires = invitation.expires_at.strftime("%Y-%m-%d %H:%M UTC")
    token = invitation.token
    print(f"Invite for {invitation.association} (single use, until {expires}):")
    print(f"https://t.me/{username or '<bot username>'}?start={token}")
    if username is None:
        print(f"(no TELEGRAM_BOT_TOKEN: replace <bot username>, or send /start {token} to the bot)")
    return 0


async def _bot_username(settings: Settings) -> str | None:
    if settings.telegram_bot_token is None:
        return None
    from telegram import Bot
    from telegram.error import TelegramError

    try:
        async with Bot(
            settings.telegram_bot_token.get_secret_value(), base_url=settings.telegram_api_base_url
        ) as bot:
            return bot.username
    except (TelegramError, OSError):
        return None


async def coordinator_list(settings: Settings) -> int:
    async with _services(settings) as services, services.unit_of_work() as uow:
        listing = await uow.coordinators.listing()
    if not listing:
        print("no coordinator yet: mentorat-bot coordinator invite <association>")
    for coordinator, slug in listing:
        state = "active" if coordinator.active else "removed"
        joined = coordinator.joined_at.strftime("%Y-%m-%d")
        print(
            f"{slug:<26} {coordinator.telegram_id:>12}  {coordinator.first_name:<20} {state:<8} joined {joined}"
        )
    return 0


async def coordinator_remove(settings: Settings, slug: str, telegram_id: int) -> int:
    from conversations.services import coordinators

    async with _services(settings) as services, services.unit_of_work() as uow:
        try:
            released = await coordinators.remove(
                uow, slug, telegram_id, services.clock(), services.policy
            )
        except coordinators.NotACoordinator:
            print(
                f"mentorat-bot: {telegram_id} is not an active coordinator of {slug!r}",
                file=sys.stderr,
            )
            return 1
        await uow.commit()
    print(f"{telegram_id} no longer receives the contacts of {slug}")
    if released:
        print(f"{released} contact(s) they had taken are open to the other coordinators again")
    return 0


async def catalog_import(settings: Settings, path: Path, dry_run: bool) -> int:
    from conversations.catalog import CatalogError, load_catalog
    from conversations.services import catalogue

    try:
        catalog = load_catalog(path)
    except CatalogError as error:
        print(error, file=sys.stderr)
        return 1
    async with _services(settings) as services:
        changes = await catalogue.import_catalog(
            services.unit_of_work, catalog, services.clock(), dry_run=dry_run
        )
    verb = "would be" if dry_run else ""
    for label, slugs in (
        ("added", changes.added),
        ("changed", changes.changed),
        ("unchanged", changes.unchanged),
        ("not in the file (kept)", changes.not_in_file),
    ):
        if slugs:
            print(
                f"{len(slugs)} {verb + ' ' if verb and label != 'unchanged' else ''}{label}: {', '.join(slugs)}"
            )
    if dry_run:
        print("dry run: nothing was written")
    return 0


async def catalog_list(settings: Settings) -> int:
    from conversations.services import catalogue

    async with _services(settings) as services:
        associations = await catalogue.listing(services.unit_of_work)
    if not associations:
        print("the catalogue is empty: mentorat-bot catalog import FILE")
        return 0
    for association in associations:
        where = "national" if association.national else ", ".join(sorted(association.departments))
        state = " (paused)" if association.paused else ""
        print(
            f"{association.slug:<24} {association.name:<28} {'/'.join(association.roles):<13} "
            f"{association.mentee_min_age}-{association.mentee_max_age} y  "
            f"{association.weekly_capacity}/week  {where}{state}"
        )
    return 0


@asynccontextmanager
async def _services(settings: Settings) -> AsyncIterator[Services]:
    services = Services.from_settings(settings)
    try:
        yield services
    finally:
        await services.dispose()


def run(settings: Settings) -> int:
    if settings.telegram_bot_token is None:
        if not settings.allow_sandbox:
            # The image's setting: a forgotten token must not put a test chat on a public port.
            print(
                "mentorat-bot: TELEGRAM_BOT_TOKEN is not set. Put the token from @BotFather in "
                "TELEGRAM_BOT_TOKEN; the sandbox (a test chat anyone reaching "
                f"{settings.web_host}:{settings.web_port} could read) starts without it only "
                "with ALLOW_SANDBOX=true.",
                file=sys.stderr,
            )
            return 2
        from bot.sandbox.runner import serve

        # Never DATABASE_URL: the page's reset button empties the sandbox's database.
        sandbox = settings.model_copy(update={"database_url": settings.sandbox_database_url})
        if "LOG_LEVEL" not in os.environ:
            # The terminal says what the sandbox is in two lines; INFO logs would bury them.
            logging.getLogger().setLevel(logging.WARNING)
        return serve(sandbox, settings.web_host, settings.web_port)
    upgrade(settings.database_url)
    if settings.webhook_url:
        from bot.web import run_webhook

        asyncio.run(run_webhook(settings))
        return 0
    from bot.polling import run_polling

    asyncio.run(run_polling(settings))
    return 0
