"""The Bot API emulator behaves like Telegram for raw HTTP clients and for PTB's telegram.Bot."""

from __future__ import annotations

import asyncio
import datetime as dtm
import json
import struct
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import telegram
from aiohttp import web
from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)
from telegram.error import BadRequest, Conflict, Forbidden, NetworkError, RetryAfter
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes

from bot.sandbox.emulator import BotApiEmulator, EmulatedUser, EmulatorTimeout
from bot.sandbox.formatting import parse_html, render_html, with_detected_links

TOKEN = "123456:ABC-DEF_ghi"


@pytest.fixture
async def emu() -> AsyncIterator[BotApiEmulator]:
    emulator = BotApiEmulator(bot_username="mentorat_sandbox_bot")
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def bot(emu: BotApiEmulator) -> AsyncIterator[telegram.Bot]:
    async with telegram.Bot(token=TOKEN, base_url=emu.base_url) as ptb_bot:
        yield ptb_bot


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def ines(emu: BotApiEmulator) -> EmulatedUser:
    user = emu.user(1001, "Inès", language_code="fr")
    user.send_command("start")
    return user


async def call(
    http: aiohttp.ClientSession, emu: BotApiEmulator, method: str, **params: Any
) -> tuple[int, dict[str, Any]]:
    async with http.post(f"{emu.base_url}{TOKEN}/{method}", json=params) as response:
        return response.status, await response.json()


def seconds(value: int | dtm.timedelta) -> float:
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


# -- plain HTTP -------------------------------------------------------------------------------


async def test_get_me_over_http_describes_the_bot_whose_id_is_the_token_prefix(
    emu: BotApiEmulator, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{emu.base_url}{TOKEN}/getMe") as response:
        body = await response.json()
    assert response.status == 200
    assert body["ok"] is True
    assert body["result"]["id"] == 123456
    assert body["result"]["is_bot"] is True
    assert body["result"]["username"] == "mentorat_sandbox_bot"
    assert body["result"]["can_read_all_group_messages"] is False


async def test_malformed_token_is_answered_401_unauthorized(
    emu: BotApiEmulator, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{emu.base_url}not-a-token/getMe") as response:
        body = await response.json()
    assert response.status == 401
    assert body == {"ok": False, "error_code": 401, "description": "Unauthorized"}


async def test_unknown_method_is_answered_404_not_found(
    emu: BotApiEmulator, http: aiohttp.ClientSession
) -> None:
    status, body = await call(http, emu, "sendTelepathy", chat_id=1)
    assert status == 404
    assert body == {"ok": False, "error_code": 404, "description": "Not Found"}


async def test_parameters_are_read_from_json_form_and_query_string_with_any_method_case(
    emu: BotApiEmulator, http: aiohttp.ClientSession, ines: EmulatedUser
) -> None:
    markup = json.dumps({"inline_keyboard": [[{"text": "Oui", "callback_data": "yes"}]]})
    url = f"{emu.base_url}{TOKEN}"
    async with http.post(f"{url}/SENDMESSAGE", json={"chat_id": 1001, "text": "json"}) as r1:
        assert r1.status == 200
    form = {"chat_id": "1001", "text": "form", "reply_markup": markup}
    async with http.post(f"{url}/sendmessage", data=form) as r2:
        assert r2.status == 200
    async with http.get(f"{url}/sendMessage", params={"chat_id": "1001", "text": "query"}) as r3:
        assert r3.status == 200
    multipart = aiohttp.FormData({"chat_id": "1001", "text": "multipart"})
    async with http.post(f"{url}/sendMessage", data=multipart()) as r4:
        assert r4.status == 200
    assert [m.text for m in ines.messages] == ["json", "form", "query", "multipart"]
    assert ines.messages[1].buttons == [{"text": "Oui", "callback_data": "yes"}]
    assert emu.calls("sendMessage", chat_id=1001)[1].params["chat_id"] == 1001


async def test_missing_parameters_get_telegram_descriptions(
    emu: BotApiEmulator, http: aiohttp.ClientSession, ines: EmulatedUser
) -> None:
    assert (await call(http, emu, "sendMessage", text="x"))[1]["description"] == (
        "Bad Request: chat_id is empty"
    )
    assert (await call(http, emu, "sendMessage", chat_id=1001))[1]["description"] == (
        "Bad Request: message text is empty"
    )
    status, body = await call(http, emu, "sendMessage", chat_id=999, text="x")
    assert (status, body["description"]) == (400, "Bad Request: chat not found")


# -- through PTB ------------------------------------------------------------------------------


async def test_ptb_bot_initializes_against_the_emulator(bot: telegram.Bot) -> None:
    me = await bot.get_me()
    assert me.id == 123456
    assert bot.username == "mentorat_sandbox_bot"


async def test_html_message_with_inline_keyboard_reaches_the_user_as_text_entities_and_html(
    bot: telegram.Bot, ines: EmulatedUser
) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Lycée", callback_data="level:lycee")]])
    sent = await bot.send_message(
        1001, "👋 <b>Salut</b> &amp; <i>bienvenue</i>", parse_mode="HTML", reply_markup=keyboard
    )
    message = await ines.next_message()
    assert message.message_id == sent.message_id
    assert message.text == "👋 Salut & bienvenue"
    # UTF-16 offsets: the emoji counts for two units.
    assert message.entities == [
        {"type": "bold", "offset": 3, "length": 5},
        {"type": "italic", "offset": 11, "length": 9},
    ]
    assert message.html_source == "👋 <b>Salut</b> &amp; <i>bienvenue</i>"
    assert message.html == "👋 <b>Salut</b> &amp; <i>bienvenue</i>"
    assert message.button_texts == ["Lycée"]
    assert sent.text == "👋 Salut & bienvenue"
    assert sent.reply_markup is not None
    assert sent.reply_markup.inline_keyboard[0][0].callback_data == "level:lycee"


async def test_unescaped_less_than_in_html_is_refused_like_telegram(
    bot: telegram.Bot, ines: EmulatedUser
) -> None:
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities") as info:
        await bot.send_message(1001, "Age < 18 ans", parse_mode="HTML")
    # PTB drops "Bad Request: " and lower-cases the rest of the description.
    assert 'unsupported start tag "" at byte offset 4' in info.value.message
    assert ines.messages == []


async def test_bare_ampersand_and_unclosed_tag_are_refused_in_html(
    bot: telegram.Bot, ines: EmulatedUser
) -> None:
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
        await bot.send_message(1001, "Sciences & techniques", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r'(?i)corresponding to start tag "b"'):
        await bot.send_message(1001, "<b>gras", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r'(?i)Unsupported start tag "br"'):
        await bot.send_message(1001, "ligne<br>ligne", parse_mode="HTML")
    assert ines.messages == []


async def test_lenient_emulator_keeps_a_bare_ampersand_like_tdlib() -> None:
    assert parse_html("A & B", strict_ampersand=False).text == "A & B"


async def test_markdown_v2_is_refused_as_not_emulated_rather_than_sent_as_plain_text(
    emu: BotApiEmulator, http: aiohttp.ClientSession, ines: EmulatedUser
) -> None:
    status, body = await call(
        http, emu, "sendMessage", chat_id=1001, text=r"*Merci*\.", parse_mode="MarkdownV2"
    )
    assert status == 400
    assert body == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: unsupported parse_mode: this emulator implements HTML only "
        "(MarkdownV2 is not emulated; send HTML or plain text)",
    }
    assert ines.messages == []


async def test_text_longer_than_4096_characters_after_parsing_is_refused(
    bot: telegram.Bot, ines: EmulatedUser
) -> None:
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(1001, "a" * 4097)
    # Tags do not count: the limit applies to the parsed text.
    await bot.send_message(1001, "<b>" + "a" * 4096 + "</b>", parse_mode="HTML")
    assert len(ines.messages) == 1


async def test_whitespace_only_text_is_refused(bot: telegram.Bot, ines: EmulatedUser) -> None:
    with pytest.raises(BadRequest, match=r"(?i)text must be non-empty"):
        await bot.send_message(1001, "<b> </b>", parse_mode="HTML")


async def test_callback_data_is_limited_to_64_utf8_bytes(
    bot: telegram.Bot, ines: EmulatedUser
) -> None:
    too_long = "é" * 32 + "a"  # 65 bytes but only 33 characters
    with pytest.raises(BadRequest, match=r"(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(
            1001,
            "Choix",
            reply_markup=InlineKeyboardMarkup(
                [[InlineKeyboardButton("x", callback_data=too_long)]]
            ),
        )
    await bot.send_message(
        1001,
        "Choix",
        reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="é" * 32)]]),
    )
    assert len(ines.messages) == 1


async def test_inline_button_must_have_exactly_one_action(
    emu: BotApiEmulator, http: aiohttp.ClientSession, ines: EmulatedUser
) -> None:
    bare = {"inline_keyboard": [[{"text": "Rien"}]]}
    status, body = await call(http, emu, "sendMessage", chat_id=1001, text="x", reply_markup=bare)
    assert status == 400
    assert "Text buttons are unallowed in the inline keyboard" in body["description"]
    both = {"inline_keyboard": [[{"text": "Deux", "callback_data": "a", "url": "https://a.fr"}]]}
    status, body = await call(http, emu, "sendMessage", chat_id=1001, text="x", reply_markup=both)
    assert status == 400
    assert "exactly one" in body["description"]
    bad_url = {"inline_keyboard": [[{"text": "Site", "url": "http://localhost:8080"}]]}
    status, body = await call(
        http, emu, "sendMessage", chat_id=1001, text="x", reply_markup=bad_url
    )
    assert body["description"] == (
        "Bad Request: inline keyboard button URL 'http://localhost:8080' is invalid: Wrong HTTP URL"
    )


async def test_identical_edit_is_refused_as_not_modified(
    bot: telegram.Bot, ines: EmulatedUser
) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("OK", callback_data="ok")]])
    sent = await bot.send_message(1001, "<b>Question</b>", parse_mode="HTML", reply_markup=keyboard)
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text(
            "<b>Question</b>", 1001, sent.message_id, parse_mode="HTML", reply_markup=keyboard
        )
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_reply_markup(1001, sent.message_id, reply_markup=keyboard)
    assert ines.messages[0].edited is False


async def test_edit_changes_the_message_and_without_markup_removes_the_keyboard(
    bot: telegram.Bot, ines: EmulatedUser
) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("OK", callback_data="ok")]])
    sent = await bot.send_message(1001, "Question", reply_markup=keyboard)
    edited = await bot.edit_message_text("Réponse notée", 1001, sent.message_id)
    assert isinstance(edited, telegram.Message)
    assert edited.edit_date is not None
    snapshot = await ines.next_edit()
    assert snapshot.text == "Réponse notée"
    assert ines.messages[0].text == "Réponse notée"
    assert ines.messages[0].edited is True
    assert ines.messages[0].buttons == []


async def test_editing_a_message_that_does_not_exist_is_refused(
    bot: telegram.Bot, ines: EmulatedUser
) -> None:
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("x", 1001, 4242)


async def test_pressing_a_button_yields_a_callback_query_that_can_be_answered_once(
    bot: telegram.Bot, ines: EmulatedUser
) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Lycée", callback_data="level:lycee")]])
    sent = await bot.send_message(1001, "Niveau ?", reply_markup=keyboard)
    update_id = ines.press("Lycée")
    updates = await bot.get_updates(timeout=1)
    query = updates[-1].callback_query
    assert updates[-1].update_id == update_id
    assert query is not None
    assert query.data == "level:lycee"
    assert query.from_user.id == 1001
    assert query.message is not None
    assert query.message.message_id == sent.message_id
    assert await query.answer("C'est noté", show_alert=True) is True
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await query.answer("encore")
    toast = await ines.next_toast()
    assert (toast.text, toast.show_alert) == ("C'est noté", True)
    assert len(ines.toasts) == 1


async def test_pressing_a_missing_button_fails_and_lists_the_buttons(
    bot: telegram.Bot, ines: EmulatedUser
) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Collège", callback_data="c")]])
    await bot.send_message(1001, "Niveau ?", reply_markup=keyboard)
    with pytest.raises(AssertionError, match="Collège"):
        ines.press("Lycée")


async def test_request_contact_button_of_reply_keyboard_shares_the_users_own_contact(
    bot: telegram.Bot, emu: BotApiEmulator
) -> None:
    user = emu.user(1002, "Yanis", phone_number="+33612345678")
    user.send_text("bonjour")
    keyboard = ReplyKeyboardMarkup(
        [[KeyboardButton("Partager mon numéro", request_contact=True)]], one_time_keyboard=True
    )
    sent = await bot.send_message(1002, "Ton numéro ?", reply_markup=keyboard)
    assert sent.reply_markup is None  # Telegram only echoes inline keyboards
    assert user.reply_keyboard is not None
    user.press("Partager mon numéro")
    updates = await bot.get_updates(timeout=1)
    contact = updates[-1].message.contact if updates[-1].message else None
    assert contact is not None
    assert (contact.phone_number, contact.user_id) == ("+33612345678", 1002)
    await bot.send_message(1002, "Merci", reply_markup=ReplyKeyboardRemove())
    assert user.reply_keyboard is None


@pytest.mark.filterwarnings("ignore:.*retry_after:DeprecationWarning")
async def test_429_fault_raises_retry_after_then_the_call_succeeds(
    bot: telegram.Bot, emu: BotApiEmulator, ines: EmulatedUser
) -> None:
    emu.faults.add(method="sendMessage", status=429, retry_after=3, times=1)
    with pytest.raises(RetryAfter) as info:
        await bot.send_message(1001, "bonjour")
    assert seconds(info.value.retry_after) == 3
    assert ines.messages == []
    await bot.send_message(1001, "bonjour")
    assert [m.text for m in ines.messages] == ["bonjour"]
    assert [r.status for r in emu.calls("sendMessage", chat_id=1001)] == [429, 200]


async def test_5xx_faults_raise_network_errors(
    bot: telegram.Bot, emu: BotApiEmulator, ines: EmulatedUser
) -> None:
    emu.faults.add(method="sendMessage", status=500)
    emu.faults.add(method="sendMessage", status=502)
    with pytest.raises(NetworkError, match="Internal Server Error"):
        await bot.send_message(1001, "a")
    with pytest.raises(NetworkError, match="Bad Gateway"):
        await bot.send_message(1001, "b")
    assert ines.messages == []


async def test_fault_after_processing_delivers_the_message_but_loses_the_answer(
    bot: telegram.Bot, emu: BotApiEmulator, ines: EmulatedUser
) -> None:
    emu.faults.add(method="sendMessage", status=500, after_processing=True)
    with pytest.raises(NetworkError):
        await bot.send_message(1001, "envoyé quand même")
    assert [m.text for m in ines.messages] == ["envoyé quand même"]


async def test_delay_fault_slows_the_answer(
    bot: telegram.Bot, emu: BotApiEmulator, ines: EmulatedUser
) -> None:
    emu.faults.add(method="sendChatAction", delay=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await bot.send_chat_action(1001, "typing")
    assert loop.time() - started >= 0.3
    assert ines.chat_action == "typing"


async def test_get_updates_long_polls_until_an_update_arrives_and_offset_confirms(
    bot: telegram.Bot, emu: BotApiEmulator
) -> None:
    user = emu.user(1003, "Léa")

    async def write_later() -> int:
        await asyncio.sleep(0.2)
        return user.send_text("coucou")

    loop = asyncio.get_running_loop()
    started = loop.time()
    writer = asyncio.create_task(write_later())
    updates = await bot.get_updates(timeout=5)
    elapsed = loop.time() - started
    update_id = await writer
    assert [u.update_id for u in updates] == [update_id]
    assert updates[0].message is not None
    assert updates[0].message.text == "coucou"
    assert 0.15 <= elapsed < 4
    # Not confirmed yet: delivered again.
    assert [u.update_id for u in await bot.get_updates(timeout=0)] == [update_id]
    assert await bot.get_updates(offset=update_id + 1, timeout=0) == ()
    assert emu.pending_updates == []


async def test_get_updates_with_timeout_returns_empty_when_nothing_happens(
    bot: telegram.Bot,
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await bot.get_updates(timeout=1) == ()
    assert loop.time() - started >= 0.9


async def test_allowed_updates_filters_out_other_update_types(
    bot: telegram.Bot, emu: BotApiEmulator, ines: EmulatedUser
) -> None:
    await bot.send_message(
        1001,
        "?",
        reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("A", callback_data="a")]]),
    )
    ines.press("A")
    updates = await bot.get_updates(timeout=0, allowed_updates=["callback_query"])
    assert [u.callback_query is not None for u in updates] == [True]


async def test_redeliver_sends_the_same_update_id_again_after_confirmation(
    bot: telegram.Bot, emu: BotApiEmulator
) -> None:
    user = emu.user(1004, "Noah")
    update_id = user.send_text("une fois")
    first = await bot.get_updates(timeout=0)
    assert await bot.get_updates(offset=update_id + 1, timeout=0) == ()
    emu.redeliver(update_id)
    again = await bot.get_updates(offset=update_id + 1, timeout=1)
    assert [u.update_id for u in first] == [update_id]
    assert [u.update_id for u in again] == [update_id]
    assert again[0].message is not None
    assert again[0].message.text == "une fois"


async def test_a_second_poller_terminates_the_first_with_conflict(
    bot: telegram.Bot, emu: BotApiEmulator
) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await emu.wait_for_call("getUpdates")
    # A second instance of the bot (PTB allows one getUpdates at a time per Bot object).
    async with telegram.Bot(token=TOKEN, base_url=emu.base_url) as other_instance:
        second = asyncio.create_task(other_instance.get_updates(timeout=5))
        with pytest.raises(Conflict, match="terminated by other getUpdates request"):
            await first
        emu.user(1005, "Sami").send_text("salut")
        assert len(await second) == 1


async def test_blocked_user_and_user_who_never_started_answer_forbidden(
    bot: telegram.Bot, emu: BotApiEmulator, ines: EmulatedUser
) -> None:
    ines.block()
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(1001, "tu es là ?")
    stranger = emu.user(1006, "Jamais")
    with pytest.raises(Forbidden, match="can't initiate conversation"):
        await bot.send_message(stranger.id, "hello")
    updates = await bot.get_updates(timeout=0)
    member = updates[-1].my_chat_member
    assert member is not None
    assert member.new_chat_member.status == "kicked"
    ines.unblock()
    await bot.send_message(1001, "re")
    assert [m.text for m in ines.messages] == ["re"]


async def test_reply_parameters_must_point_to_an_existing_message(
    bot: telegram.Bot, ines: EmulatedUser
) -> None:
    with pytest.raises(BadRequest, match=r"(?i)message to be replied not found"):
        await bot.send_message(1001, "x", reply_to_message_id=999)
    sent = await bot.send_message(1001, "réponse", reply_to_message_id=1)
    assert sent.reply_to_message is not None
    assert sent.reply_to_message.text == "/start"


async def test_next_message_returns_each_bot_message_once_in_order_and_times_out_clearly(
    bot: telegram.Bot, ines: EmulatedUser
) -> None:
    await bot.send_message(1001, "un")
    await bot.send_message(1001, "deux")
    assert (await ines.next_message()).text == "un"
    assert (await ines.next_message()).text == "deux"
    with pytest.raises(EmulatorTimeout, match=r"waiting for a new bot message[\s\S]*deux"):
        await ines.next_message(timeout=0.2)


async def test_wait_for_message_waits_for_a_message_sent_later(
    bot: telegram.Bot, ines: EmulatedUser
) -> None:
    async def send_later() -> None:
        await asyncio.sleep(0.1)
        await bot.send_message(1001, "ignoré")
        await bot.send_message(1001, "Bienvenue !")

    task = asyncio.create_task(send_later())
    message = await ines.wait_for_message(lambda m: "Bienvenue" in (m.text or ""), timeout=3)
    await task
    assert message.text == "Bienvenue !"


async def test_commands_are_stored_per_scope_and_language(bot: telegram.Bot) -> None:
    await bot.set_my_commands([("start", "Commencer")], language_code="fr")
    await bot.set_my_commands([("start", "Start")])
    fr = await bot.get_my_commands(language_code="fr")
    default = await bot.get_my_commands()
    assert [(c.command, c.description) for c in fr] == [("start", "Commencer")]
    assert [(c.command, c.description) for c in default] == [("start", "Start")]
    await bot.delete_my_commands(language_code="fr")
    assert await bot.get_my_commands(language_code="fr") == ()


async def test_webhook_info_and_delete_message_and_get_chat(
    bot: telegram.Bot, ines: EmulatedUser
) -> None:
    assert (await bot.get_webhook_info()).url == ""
    assert await bot.delete_webhook(drop_pending_updates=True) is True
    sent = await bot.send_message(1001, "éphémère")
    assert await bot.delete_message(1001, sent.message_id) is True
    assert ines.messages == []
    with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
        await bot.delete_message(1001, sent.message_id)
    chat = await bot.get_chat(1001)
    assert (chat.id, chat.type, chat.first_name) == (1001, "private", "Inès")


async def test_group_message_comes_from_the_user_in_a_supergroup(
    bot: telegram.Bot, emu: BotApiEmulator
) -> None:
    user = emu.user(1007, "Maya")
    user.send_text_in_group(-100123, "salut le groupe")
    updates = await bot.get_updates(timeout=0)
    message = updates[-1].message
    assert message is not None
    assert (
        message.chat.id,
        message.chat.type,
        message.from_user.id if message.from_user else 0,
    ) == (
        -100123,
        "supergroup",
        1007,
    )
    await bot.send_message(-100123, "bienvenue")
    assert [m.text for m in emu.chat_messages(-100123)] == ["salut le groupe", "bienvenue"]


async def test_a_real_ptb_application_polls_answers_and_edits_through_the_emulator(
    emu: BotApiEmulator,
) -> None:
    async def start(update: telegram.Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Lycée", callback_data="lycee")]])
        payload = " ".join(context.args or [])
        await update.effective_message.reply_html(
            f"Bonjour <b>{update.effective_user.first_name if update.effective_user else ''}</b>"
            f" ({payload})",
            reply_markup=keyboard,
        )

    async def level(update: telegram.Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer("Noté")
        await query.edit_message_text(f"Niveau : {query.data}")

    application = Application.builder().token(TOKEN).base_url(emu.base_url).build()
    application.add_handler(CommandHandler("start", start))
    application.add_handler(CallbackQueryHandler(level))
    user = emu.user(1010, "Inès")
    async with application:
        assert application.updater is not None
        await application.updater.start_polling(timeout=1, drop_pending_updates=True)
        await application.start()
        user.send_command("start", payload="ecole_93")
        greeting = await user.next_message()
        user.press("Lycée")
        edit = await user.next_edit()
        toast = await user.next_toast()
        await application.updater.stop()
        await application.stop()
    assert greeting.text == "Bonjour Inès (ecole_93)"
    assert greeting.reply_to_message is None
    assert edit.text == "Niveau : lycee"
    assert edit.buttons == []
    assert toast.text == "Noté"
    assert emu.calls("deleteWebhook")


# -- the sandbox JSON API ---------------------------------------------------------------------


async def test_sandbox_api_lets_a_page_chat_press_and_long_poll_for_bot_messages(
    emu: BotApiEmulator, http: aiohttp.ClientSession, bot: telegram.Bot
) -> None:
    root = emu.base_url.removesuffix("/bot") + "/sandbox/api/users"
    async with http.post(root, json={"user_id": 2001, "first_name": "Zoé"}) as response:
        assert (await response.json())["user"]["id"] == 2001
    async with http.post(f"{root}/2001/command", json={"command": "start"}) as response:
        update_id = (await response.json())["update_id"]
    updates = await bot.get_updates(timeout=0)
    assert updates[-1].update_id == update_id

    async def reply_later() -> None:
        await asyncio.sleep(0.1)
        keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Oui", callback_data="y")]])
        await bot.send_message(2001, "<b>Prête ?</b>", parse_mode="HTML", reply_markup=keyboard)

    async with http.get(f"{root}/2001/messages", params={"after": "0"}) as resp:
        history = await resp.json()
    assert [e["message"]["text"] for e in history["events"]] == ["/start"]
    task = asyncio.create_task(reply_later())
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with http.get(
        f"{root}/2001/messages", params={"after": str(history["cursor"]), "timeout": "5"}
    ) as resp:
        page = await resp.json()
    await task
    assert loop.time() - started < 4  # answered when the bot wrote, not at the timeout
    bot_events = [e for e in page["events"] if e["message"]["from_bot"]]
    assert bot_events[0]["kind"] == "new"
    assert bot_events[0]["message"]["html"] == "<b>Prête ?</b>"
    assert bot_events[0]["message"]["reply_markup"]["inline_keyboard"][0][0]["text"] == "Oui"
    async with http.post(f"{root}/2001/press", json={"text": "Oui"}) as response:
        assert response.status == 200
    async with http.post(f"{root}/2001/press", json={"text": "Non"}) as response:
        assert response.status == 400
        assert "no such button" in (await response.json())["error"]
    async with http.get(
        f"{root}/2001/messages", params={"after": str(page["cursor"]), "timeout": "0"}
    ) as resp:
        assert (await resp.json())["events"] == []


# -- photos -----------------------------------------------------------------------------------


def a_png(width: int, height: int) -> bytes:
    """A real (tiny) PNG: red pixels, compressed as any encoder would."""
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def a_jpeg_header(width: int, height: int) -> bytes:
    """The start of a baseline JPEG: enough for Telegram (and the emulator) to read its size."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x22\x00" * 3
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


async def upload(
    http: aiohttp.ClientSession,
    emu: BotApiEmulator,
    data: bytes | None,
    file_name: str = "chart.png",
    **params: str,
) -> tuple[int, dict[str, Any]]:
    """sendPhoto as PTB sends a new file: multipart/form-data, the photo as a file part."""
    form = aiohttp.FormData()
    for name, value in params.items():
        form.add_field(name, value)
    if data is not None:
        form.add_field("photo", data, filename=file_name, content_type="image/png")
    async with http.post(f"{emu.base_url}{TOKEN}/sendPhoto", data=form) as response:
        return response.status, await response.json()


async def test_an_uploaded_png_reaches_the_user_with_its_real_size_caption_and_buttons(
    bot: telegram.Bot, ines: EmulatedUser
) -> None:
    picture = a_png(960, 540)
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Détails", callback_data="d")]])

    sent = await bot.send_photo(
        1001,
        telegram.InputFile(picture, filename="chart.png"),
        caption="<b>Entonnoir</b> &amp; abandons",
        parse_mode="HTML",
        reply_markup=keyboard,
    )

    message = await ines.next_message()
    assert message.text is None
    assert message.photo_file == picture
    assert [(size["width"], size["height"]) for size in message.photo] == [
        (90, 51),
        (320, 180),
        (800, 450),
        (960, 540),
    ]
    assert message.photo[-1]["file_size"] == len(picture)
    assert message.caption == "Entonnoir & abandons"
    assert message.caption_entities == [{"type": "bold", "offset": 0, "length": 9}]
    assert message.caption_html == "<b>Entonnoir</b> &amp; abandons"
    assert message.button_texts == ["Détails"]
    # What PTB got back is Telegram's Message: the sizes, smallest first, and the caption.
    assert (sent.photo[-1].width, sent.photo[-1].height) == (960, 540)
    assert len({size.file_unique_id for size in sent.photo}) == 4
    assert sent.caption == "Entonnoir & abandons"
    # The sandbox page shows the picture itself.
    shown = message.to_sandbox()
    assert shown["photo"]["src"].startswith("data:image/png;base64,")
    assert shown["caption_html"] == "<b>Entonnoir</b> &amp; abandons"


async def test_a_photo_sent_again_by_file_id_keeps_its_sizes(
    bot: telegram.Bot, ines: EmulatedUser
) -> None:
    first = await bot.send_photo(1001, telegram.InputFile(a_jpeg_header(1600, 1200), "p.jpg"))

    again = await bot.send_photo(1001, first.photo[-1].file_id, caption="Encore")

    assert [(s.width, s.height) for s in first.photo] == [
        (90, 68),
        (320, 240),
        (800, 600),
        (1280, 960),
        (1600, 1200),
    ]
    assert [s.file_id for s in again.photo] == [s.file_id for s in first.photo]
    assert again.caption == "Encore"


async def test_a_photo_from_an_http_url_is_fetched_and_a_web_page_is_refused(
    bot: telegram.Bot, ines: EmulatedUser, http: aiohttp.ClientSession, emu: BotApiEmulator
) -> None:
    async def picture(_request: web.Request) -> web.Response:
        return web.Response(body=a_png(40, 30), content_type="image/png")

    async def page_of_text(_request: web.Request) -> web.Response:
        return web.Response(text="<html><body>Bonjour</body></html>", content_type="text/html")

    site = web.Application()
    site.router.add_get("/chart.png", picture)
    site.router.add_get("/page", page_of_text)
    runner = web.AppRunner(site)
    await runner.setup()
    server = web.TCPSite(runner, "127.0.0.1", 0)
    await server.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        sent = await bot.send_photo(1001, f"{base}/chart.png")
        _, page = await call(http, emu, "sendPhoto", chat_id=1001, photo=f"{base}/page")
        _, gone = await call(http, emu, "sendPhoto", chat_id=1001, photo=f"{base}/missing.png")
    finally:
        await runner.cleanup()

    assert (sent.photo[-1].width, sent.photo[-1].height) == (40, 30)
    assert page["description"] == "Bad Request: wrong type of the web page content"
    assert gone["description"] == "Bad Request: failed to get HTTP URL content"


async def test_send_photo_refuses_what_telegram_refuses_with_its_descriptions(
    http: aiohttp.ClientSession, emu: BotApiEmulator, ines: EmulatedUser
) -> None:
    status, missing = await upload(http, emu, None, chat_id="1001", caption="Sans image")
    _, not_an_image = await upload(http, emu, b"%PDF-1.7 not a picture", "a.png", chat_id="1001")
    _, unknown = await call(http, emu, "sendPhoto", chat_id=1001, photo="no-such-file-id")
    _, too_long = await upload(http, emu, a_png(4, 4), chat_id="1001", caption="a" * 1025)
    _, too_narrow = await upload(http, emu, a_png(1, 30), chat_id="1001")

    assert status == 400
    assert missing == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: there is no photo in the request",
    }
    assert not_an_image["description"] == "Bad Request: IMAGE_PROCESS_FAILED"
    assert unknown["description"] == "Bad Request: wrong file identifier/HTTP URL specified"
    assert too_long["description"] == "Bad Request: message caption is too long"
    assert too_narrow["description"] == "Bad Request: PHOTO_INVALID_DIMENSIONS"
    assert ines.drain() == []


async def test_a_caption_is_counted_after_entities_parsing(
    http: aiohttp.ClientSession, emu: BotApiEmulator, ines: EmulatedUser
) -> None:
    caption = "<b>" + "a" * 1024 + "</b>"

    status, sent = await upload(
        http, emu, a_png(4, 4), chat_id="1001", caption=caption, parse_mode="HTML"
    )

    assert status == 200
    assert len(sent["result"]["caption"]) == 1024


async def test_a_photo_over_10_mb_is_too_big_and_ptb_sees_telegram_s_error(
    bot: telegram.Bot, http: aiohttp.ClientSession, emu: BotApiEmulator, ines: EmulatedUser
) -> None:
    big = a_png(4, 4) + b"\x00" * (10 * 1024 * 1024)

    _, answer = await upload(http, emu, big, chat_id="1001")
    with pytest.raises(BadRequest, match=r"(?i)image_process_failed"):
        await bot.send_photo(1001, telegram.InputFile(b"GIF89a", filename="a.gif"))

    assert answer["description"] == "Bad Request: file is too big"
    assert ines.drain() == []


# -- documents --------------------------------------------------------------------------------


async def send_form(
    http: aiohttp.ClientSession,
    emu: BotApiEmulator,
    method: str,
    files: dict[str, tuple[bytes, str]] | None = None,
    **params: str,
) -> tuple[int, dict[str, Any]]:
    """A multipart/form-data call, as PTB sends new files: each file a part with its name."""
    form = aiohttp.FormData()
    for name, value in params.items():
        form.add_field(name, value)
    for name, (data, file_name) in (files or {}).items():
        form.add_field(name, data, filename=file_name, content_type="application/octet-stream")
    async with http.post(f"{emu.base_url}{TOKEN}/{method}", data=form) as response:
        return response.status, await response.json()


def sandbox_root(emu: BotApiEmulator) -> str:
    return emu.base_url.removesuffix("/bot") + "/sandbox/api/users"


async def test_an_uploaded_json_file_reaches_the_person_with_its_name_type_size_and_bytes(
    bot: telegram.Bot, ines: EmulatedUser
) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Merci", callback_data="ok")]])

    sent = await bot.send_document(
        1001,
        telegram.InputFile(b'{"a":1}', filename="data.json"),
        caption="<b>Tes données</b> &amp; réponses",
        parse_mode="HTML",
        reply_markup=keyboard,
        protect_content=True,
    )

    message = await ines.next_document()
    assert message.text is None
    assert message.document is not None
    assert message.document["file_name"] == "data.json"
    assert message.document["mime_type"] == "application/json"
    assert message.document["file_size"] == 7
    assert message.document_file is not None
    assert json.loads(message.document_file) == {"a": 1}
    assert message.caption == "Tes données & réponses"
    assert message.caption_entities == [{"type": "bold", "offset": 0, "length": 11}]
    assert message.button_texts == ["Merci"]
    # What PTB got back is Telegram's Message with its Document.
    assert sent.document is not None
    assert (sent.document.file_name, sent.document.mime_type) == ("data.json", "application/json")
    assert sent.document.file_size == 7
    assert sent.document.file_id
    assert sent.document.file_unique_id
    assert sent.caption == "Tes données & réponses"
    assert sent.has_protected_content is True
    assert message.to_sandbox()["document"] == {
        "file_name": "data.json",
        "mime_type": "application/json",
        "file_size": 7,
        "url": f"/sandbox/api/users/1001/documents/{sent.message_id}",
    }


async def test_the_mime_type_comes_from_the_file_name_whatever_the_part_claims(
    http: aiohttp.ClientSession, emu: BotApiEmulator, ines: EmulatedUser
) -> None:
    # Telegram's server keeps the uploaded file, not the Content-Type of its part.
    files = {"report": (b"a;b\n1;2\n", "bilan.csv"), "blob": (b"\x00\x01", "export")}
    _, csv = await send_form(
        http, emu, "sendDocument", files, chat_id="1001", document="attach://report"
    )
    _, blob = await send_form(
        http, emu, "sendDocument", files, chat_id="1001", document="attach://blob"
    )

    assert csv["result"]["document"]["mime_type"] == "text/csv"
    assert csv["result"]["document"]["file_name"] == "bilan.csv"
    assert blob["result"]["document"]["mime_type"] == "application/octet-stream"
    assert [m.document_file for m in ines.messages] == [b"a;b\n1;2\n", b"\x00\x01"]


async def test_a_document_sent_again_by_file_id_keeps_its_name_and_bytes(
    bot: telegram.Bot, ines: EmulatedUser
) -> None:
    first = await bot.send_document(1001, telegram.InputFile(b'{"a":1}', filename="data.json"))
    assert first.document is not None

    again = await bot.send_document(1001, first.document.file_id, caption="Encore")
    ines.send_document("cv.pdf", "application/pdf")
    updates = await bot.get_updates(timeout=0)
    theirs = updates[-1].message
    assert theirs is not None
    assert theirs.document is not None
    forwarded = await bot.send_document(1001, theirs.document.file_id)

    assert again.document is not None
    assert again.document.file_id == first.document.file_id
    assert again.document.file_unique_id == first.document.file_unique_id
    assert again.document.file_name == "data.json"
    assert again.caption == "Encore"
    shown = [await ines.next_document() for _ in range(3)]
    assert [m.document_file for m in shown] == [b'{"a":1}', b'{"a":1}', None]
    assert forwarded.document is not None
    assert forwarded.document.file_name == "cv.pdf"
    # A file the bot never had cannot be downloaded from the page.
    assert shown[2].to_sandbox()["document"]["url"] is None


async def test_send_document_refuses_what_telegram_refuses_with_its_descriptions(
    bot: telegram.Bot, http: aiohttp.ClientSession, emu: BotApiEmulator, ines: EmulatedUser
) -> None:
    a_file = {"document": (b'{"a":1}', "data.json")}
    status, missing = await send_form(http, emu, "sendDocument", chat_id="1001", caption="Rien")
    _, unattached = await send_form(
        http,
        emu,
        "sendDocument",
        {"report": (b"{}", "d.json")},
        chat_id="1001",
        document="attach://other",
    )
    _, empty = await send_form(
        http, emu, "sendDocument", {"document": (b"", "vide.json")}, chat_id="1001"
    )
    _, unknown = await call(http, emu, "sendDocument", chat_id=1001, document="no-such-file-id")
    _, too_long = await send_form(
        http, emu, "sendDocument", a_file, chat_id="1001", caption="a" * 1025
    )
    _, markdown = await send_form(
        http, emu, "sendDocument", a_file, chat_id="1001", caption="*gras*", parse_mode="MarkdownV2"
    )
    _, bad_markup = await send_form(
        http,
        emu,
        "sendDocument",
        a_file,
        chat_id="1001",
        reply_markup='{"inline_keyboard": [[{"text": "x"}]]}',
    )
    _, no_chat = await send_form(http, emu, "sendDocument", a_file, chat_id="424242")
    photo = await bot.send_photo(1001, telegram.InputFile(a_png(4, 4), filename="p.png"))
    _, photo_as_document = await call(
        http, emu, "sendDocument", chat_id=1001, document=photo.photo[-1].file_id
    )
    document = await bot.send_document(1001, telegram.InputFile(b"{}", filename="d.json"))
    assert document.document is not None
    _, document_as_photo = await call(
        http, emu, "sendPhoto", chat_id=1001, photo=document.document.file_id
    )

    assert status == 400
    assert missing == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: there is no document in the request",
    }
    assert unattached["description"] == "Bad Request: there is no document in the request"
    assert empty["description"] == "Bad Request: file must be non-empty"
    assert unknown["description"] == "Bad Request: wrong file identifier/HTTP URL specified"
    assert too_long["description"] == "Bad Request: message caption is too long"
    assert markdown["error_code"] == 400
    assert "unsupported parse_mode" in markdown["description"]
    assert bad_markup["error_code"] == 400
    assert no_chat["description"] == "Bad Request: chat not found"
    assert photo_as_document["description"] == (
        "Bad Request: can't use file of type Photo as Document"
    )
    assert document_as_photo["description"] == (
        "Bad Request: can't use file of type Document as Photo"
    )
    # Only the photo and the document sent to be reused reached the chat.
    assert [(bool(m.photo), m.document is not None) for m in ines.drain()] == [
        (True, False),
        (False, True),
    ]


async def test_a_person_who_blocked_the_bot_or_never_started_gets_no_document(
    bot: telegram.Bot, emu: BotApiEmulator, ines: EmulatedUser
) -> None:
    ines.block()
    with pytest.raises(Forbidden, match="Forbidden: bot was blocked by the user"):
        await bot.send_document(1001, telegram.InputFile(b"{}", filename="d.json"))
    stranger = emu.user(1006, "Jamais")
    with pytest.raises(Forbidden, match="bot can't initiate conversation with a user"):
        await bot.send_document(stranger.id, telegram.InputFile(b"{}", filename="d.json"))
    assert ines.drain() == []


async def test_a_document_over_50_mb_is_refused_with_413_request_entity_too_large(
    bot: telegram.Bot, http: aiohttp.ClientSession, emu: BotApiEmulator, ines: EmulatedUser
) -> None:
    big = b"0" * (50 * 1024 * 1024 + 1)

    status, answer = await send_form(
        http, emu, "sendDocument", {"document": (big, "big.bin")}, chat_id="1001"
    )
    with pytest.raises(NetworkError, match="Request Entity Too Large"):
        await bot.send_document(1001, telegram.InputFile(big, filename="big.bin"))

    assert (status, answer["description"]) == (413, "Request Entity Too Large")
    assert ines.drain() == []


async def test_a_document_from_an_http_url_is_fetched_if_it_is_a_pdf_zip_or_gif(
    bot: telegram.Bot, http: aiohttp.ClientSession, emu: BotApiEmulator, ines: EmulatedUser
) -> None:
    async def pdf(_request: web.Request) -> web.Response:
        return web.Response(body=b"%PDF-1.7 rapport", content_type="application/pdf")

    async def json_file(_request: web.Request) -> web.Response:
        return web.Response(body=b'{"a":1}', content_type="application/json")

    site = web.Application()
    site.router.add_get("/files/rapport final.pdf", pdf)
    site.router.add_get("/files/data.json", json_file)
    runner = web.AppRunner(site)
    await runner.setup()
    server = web.TCPSite(runner, "127.0.0.1", 0)
    await server.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}/files"
    try:
        sent = await bot.send_document(1001, f"{base}/rapport%20final.pdf")
        _, not_a_pdf = await call(
            http, emu, "sendDocument", chat_id=1001, document=f"{base}/data.json"
        )
        _, gone = await call(http, emu, "sendDocument", chat_id=1001, document=f"{base}/no.pdf")
    finally:
        await runner.cleanup()

    assert sent.document is not None
    assert (sent.document.file_name, sent.document.mime_type) == (
        "rapport final.pdf",
        "application/pdf",
    )
    assert (await ines.next_document()).document_file == b"%PDF-1.7 rapport"
    assert not_a_pdf["description"] == "Bad Request: wrong type of the web page content"
    assert gone["description"] == "Bad Request: failed to get HTTP URL content"


async def test_the_sandbox_page_downloads_a_document_the_bot_sent_and_nothing_else(
    bot: telegram.Bot, http: aiohttp.ClientSession, emu: BotApiEmulator, ines: EmulatedUser
) -> None:
    sent = await bot.send_document(
        1001, telegram.InputFile(b'{"a":1}', filename="données élève.json")
    )
    text = await bot.send_message(1001, "pas un fichier")
    root = sandbox_root(emu)

    async with http.get(f"{root}/1001/documents/{sent.message_id}") as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json"
        disposition = response.headers["Content-Disposition"]
        assert disposition.startswith('attachment; filename="donn_es _l_ve.json"')
        assert "filename*=UTF-8''donn%C3%A9es%20%C3%A9l%C3%A8ve.json" in disposition
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert json.loads(await response.read()) == {"a": 1}
    refused = [
        f"{root}/1001/documents/{text.message_id}",  # a text message
        f"{root}/1001/documents/1",  # the person's own /start
        f"{root}/1001/documents/999",
        f"{root}/1001/documents/..%2F..%2Fetc%2Fpasswd",
        f"{root}/1001/documents/%C2%B2",
        f"{root}/4242/documents/{sent.message_id}",  # someone else's chat
    ]
    statuses = []
    for url in refused:
        async with http.get(url) as response:
            statuses.append(response.status)
    assert statuses == [404] * 6


# -- the parsers ------------------------------------------------------------------------------


def test_html_parser_handles_pre_with_language_links_and_references() -> None:
    parsed = parse_html(
        '<pre><code class="language-python">x &lt; 1</code></pre> '
        '<a href="https://example.org">lien</a> &#233;&#x1F600;'
    )
    assert parsed.text == "x < 1 lien é😀"
    assert parsed.entities == [
        {"type": "pre", "offset": 0, "length": 5, "language": "python"},
        {"type": "text_link", "offset": 6, "length": 4, "url": "https://example.org"},
    ]
    assert render_html(parsed.text, parsed.entities) == (
        '<pre><code class="language-python">x &lt; 1</code></pre> '
        '<a href="https://example.org">lien</a> é😀'
    )


def test_plain_links_become_url_entities_as_telegram_detects_them() -> None:
    """Not inside another entity, without the sentence's final punctuation, UTF-16 offsets."""
    parsed = with_detected_links(
        parse_html("😀 Lien : https://t.me/bot?start=pc_a-1. <code>https://x.org</code>")
    )
    assert parsed.entities == [
        {"type": "url", "offset": 10, "length": 29},
        {"type": "code", "offset": 41, "length": 13},
    ]
    assert render_html(parsed.text, parsed.entities) == (
        '😀 Lien : <a href="https://t.me/bot?start=pc_a-1">https://t.me/bot?start=pc_a-1</a>. '
        "<code>https://x.org</code>"
    )


def test_html_parser_reports_mismatched_tags_with_byte_offsets() -> None:
    with pytest.raises(ValueError, match=r'Unmatched end tag at byte offset 10, expected "</i>"'):
        parse_html("<b><i>test</b></i>")
    with pytest.raises(ValueError, match='Tag "span" must have class "tg-spoiler"'):
        parse_html("<span>x</span>")
