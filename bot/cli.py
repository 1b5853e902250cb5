"""The `mentorat-bot` command: run the bot, migrate the database."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from bot.settings import Settings
from storage.migrate import upgrade

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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mentorat-bot", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="run the bot (long polling)")
    commands.add_parser("migrate", help="bring the database schema up to date")
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
    return run(settings)


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
