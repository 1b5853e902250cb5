"""A bare aiogram 3 echo bot: the other floor `bench_e2e.py` measures the bot against.

    TELEGRAM_BOT_TOKEN=… TELEGRAM_API_BASE_URL=http://127.0.0.1:<port>/bot \
        bench/.venv-bench/bin/python bench/echo_aiogram.py

aiogram is not a dependency of the project: it lives in the bench's own virtualenv
(bench/.venv-bench, which bench_e2e.py creates). Like aiogram's examples, it long-polls with
`start_polling` (each update in its own task) and answers each text message and each button
press with one sendMessage, with one button to press next: one Bot API call per update.
"""

from __future__ import annotations

import asyncio
import os

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

KEYBOARD = InlineKeyboardMarkup(
    inline_keyboard=[[InlineKeyboardButton(text="OK", callback_data="ok")]]
)
dispatcher = Dispatcher()


@dispatcher.message()
async def echo(message: Message) -> None:
    """A text (or a command): sent back."""
    await message.answer(message.text or "…", reply_markup=KEYBOARD)


@dispatcher.callback_query()
async def pressed(query: CallbackQuery, bot: Bot) -> None:
    """A button press: one new message, no answerCallbackQuery (one call per update)."""
    assert query.message is not None
    await bot.send_message(query.message.chat.id, query.data or "ok", reply_markup=KEYBOARD)


async def main() -> None:
    # The emulator's base is http://127.0.0.1:<port>/bot; aiogram appends /bot<token>/<method>.
    base = os.environ["TELEGRAM_API_BASE_URL"].removesuffix("/bot")
    session = AiohttpSession(api=TelegramAPIServer.from_base(base, is_local=True))
    bot = Bot(os.environ["TELEGRAM_BOT_TOKEN"], session=session)
    await dispatcher.start_polling(bot, allowed_updates=["message", "callback_query"])


if __name__ == "__main__":
    asyncio.run(main())
