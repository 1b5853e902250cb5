"""A bare python-telegram-bot echo bot: the floor `bench_e2e.py` measures the bot against.

    TELEGRAM_BOT_TOKEN=… TELEGRAM_API_BASE_URL=http://127.0.0.1:<port>/bot \
        python bench/echo_ptb.py [httpx|aiohttp]

It long-polls like PTB's own examples (`run_polling`) and answers each text message and each
button press with one sendMessage (with one button, to be pressed next): one Bot API call per
update. `httpx` is PTB's default transport; `aiohttp` is this repository's (bot/transport.py),
built as bot/app.py builds it. Updates are handled concurrently, as the bot and aiogram do.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

# Run as a plain script from anywhere: the project root is the parent of bench/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.transport import AiohttpRequest

KEYBOARD = InlineKeyboardMarkup([[InlineKeyboardButton("OK", callback_data="ok")]])


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A text (or a command): sent back."""
    assert update.effective_chat is not None
    assert update.effective_message is not None
    text = update.effective_message.text or "…"
    await context.bot.send_message(update.effective_chat.id, text, reply_markup=KEYBOARD)


async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A button press: one new message, no answerCallbackQuery (one call per update)."""
    assert update.effective_chat is not None
    assert update.callback_query is not None
    data = update.callback_query.data or "ok"
    await context.bot.send_message(update.effective_chat.id, data, reply_markup=KEYBOARD)


def build(transport: str) -> Application:  # type: ignore[type-arg]
    builder = (
        ApplicationBuilder()
        .token(os.environ["TELEGRAM_BOT_TOKEN"])
        .base_url(os.environ["TELEGRAM_API_BASE_URL"])
        .concurrent_updates(True)
    )
    if transport == "aiohttp":
        builder = builder.request(AiohttpRequest(connection_pool_size=256)).get_updates_request(
            AiohttpRequest(connection_pool_size=1)
        )
    application = builder.build()
    application.add_handler(MessageHandler(filters.TEXT, echo))
    application.add_handler(CallbackQueryHandler(pressed))
    return application


if __name__ == "__main__":
    chosen = sys.argv[1] if len(sys.argv) > 1 else "httpx"
    if chosen not in ("httpx", "aiohttp"):
        raise SystemExit(f"echo_ptb.py: unknown transport {chosen!r} (httpx or aiohttp)")
    build(chosen).run_polling(allowed_updates=["message", "callback_query"], timeout=10)
