"""The `mentorat-bot` command: run the bot, migrate the database, manage the catalogue."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from bot.settings import Settings
from storage.db import create_engine, session_factory
from storage.migrate import upgrade
from storage.uow import UnitOfWork

log = logging.getLogger("mentorat-bot")

NO_TOKEN = (
    "mentorat-bot: TELEGRAM_BOT_TOKEN is not set. Create a bot with @BotFather, then run "
    "TELEGRAM_BOT_TOKEN=123456:ABC… make run (see README)."
)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # At INFO, httpx logs every request URL, and Bot API URLs contain the bot token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("aiosqlite").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


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
    return run(settings)


async def catalog_import(settings: Settings, path: Path, dry_run: bool) -> int:
    from bot.catalog import import_catalog
    from conversations.catalog import CatalogError, load_catalog

    try:
        catalog = load_catalog(path)
    except CatalogError as error:
        print(error, file=sys.stderr)
        return 1
    async with _database(settings) as unit_of_work:
        changes = await import_catalog(unit_of_work, catalog, datetime.now(UTC), dry_run=dry_run)
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
    from bot.catalog import associations_of

    async with _database(settings) as unit_of_work, unit_of_work() as uow:
        records = await uow.catalog.records()
        associations = associations_of(records)
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
async def _database(settings: Settings) -> AsyncIterator[Callable[[], UnitOfWork]]:
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    try:
        yield lambda: UnitOfWork(sessions)
    finally:
        await engine.dispose()


def run(settings: Settings) -> int:
    if settings.telegram_bot_token is None:
        print(NO_TOKEN, file=sys.stderr)
        return 2
    from bot.app import build_application

    upgrade(settings.database_url)
    application = build_application(settings)
    # Updates that arrived while the bot was down are kept: nobody's answer is dropped.
    application.run_polling(
        drop_pending_updates=False, allowed_updates=["message", "callback_query"]
    )
    return 0
