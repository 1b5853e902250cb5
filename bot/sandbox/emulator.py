"""In-process Telegram Bot API emulator (aiohttp): the real bot talks to it over HTTP in
end-to-end tests and in the browser sandbox, and it is as strict as Telegram.

Bot side: ``POST|GET /bot<token>/<method>`` with query string, form, multipart or JSON
parameters, answering ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": N,
"description": "..."}`` with Telegram's descriptions. Implemented methods: getMe, getUpdates
(long polling, offset confirmation, allowed_updates, 409 when two pollers compete), setWebhook,
deleteWebhook, getWebhookInfo, setMyCommands, getMyCommands, deleteMyCommands, setChatMenuButton,
getChatMenuButton, sendMessage, sendPhoto, sendDocument, editMessageText, editMessageReplyMarkup,
deleteMessage, answerCallbackQuery, sendChatAction, getChat, close, logOut. Anything else is 404
"Not Found". Text (and a caption) is plain, formatted by explicit ``entities``, or
``parse_mode=HTML``; MarkdownV2 and legacy Markdown are not emulated and are answered 400 (the bot
only sends HTML). A photo or a document is an uploaded file (a multipart/form-data part, or
``attach://<part>``; its bytes kept), the file_id of one sent before, or an HTTP URL the emulator
fetches. A document's MIME type comes from its file name, as on Telegram, whose server keeps only
the file; content type detection (a GIF or an MP4 sent as a document becoming an animation or a
video) is not emulated: every document stays a document.

User side, from Python (tests)::

    emu = BotApiEmulator()
    await emu.start()                       # emu.base_url == "http://127.0.0.1:<port>/bot"
    ines = emu.user(1001, "Inès", language_code="fr")
    ines.send_command("start", payload="ecole_93")
    reply = await ines.next_message()       # first bot message not yet returned
    ines.press("Lycée")                     # inline button (newest message) or reply keyboard
    sent = await ines.next_document()       # the next bot message carrying a document
    json.loads(sent.document_file)          # its bytes; sent.document is the Document object
    await emu.stop()

and over HTTP for the sandbox page (see bot.sandbox.webapi for the routes under /sandbox/api/).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import mimetypes
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp
from aiohttp import web

from bot.sandbox.formatting import (
    MAX_MESSAGE_LENGTH,
    EntityParseError,
    EntityValidationError,
    FormattedText,
    parse_html,
    strip_formatted,
    validate_entities,
    with_detected_links,
)
from bot.sandbox.images import image_size
from bot.sandbox.markup import MarkupError, ReplyMarkup, parse_reply_markup
from bot.sandbox.models import (
    ApiError,
    ApiRequest,
    ChatEvent,
    ChatMessage,
    EmulatorTimeout,
    EventKind,
    FaultList,
    Notifier,
    Toast,
    UploadedFile,
)
from bot.sandbox.webapi import add_sandbox_routes

__all__ = [
    "ApiError",
    "ApiRequest",
    "BotApiEmulator",
    "ChatEvent",
    "ChatMessage",
    "EmulatedUser",
    "EmulatorTimeout",
    "Toast",
]

JSONDict = dict[str, Any]

TOKEN_RE = re.compile(r"\d+:[A-Za-z0-9_-]+")
MAX_CALLBACK_ANSWER_LENGTH = 200
MAX_CAPTION_LENGTH = 1024
# Bot API limits: a photo uploaded is at most 10 MB, one fetched from a URL 5 MB, and a
# multipart request at most 50 MB (Telegram answers 413 past it).
MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_URL_PHOTO_BYTES = 5 * 1024 * 1024
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
# sendDocument by URL: at most 20 MB, and only GIF, PDF and ZIP files (core.telegram.org/bots/api
# #sending-files); Telegram finds no document in anything else.
MAX_URL_DOCUMENT_BYTES = 20 * 1024 * 1024
URL_DOCUMENT_TYPES = frozenset({"image/gif", "application/pdf", "application/zip"})
# sendPhoto: width + height at most 10000, and a ratio of at most 20.
MAX_PHOTO_SIDES = 10_000
MAX_PHOTO_RATIO = 20
# The longer side of the sizes Telegram keeps of a photo (the last, the photo itself, is capped).
PHOTO_SIDES = (90, 320, 800, 1280, 2560)

# Telegram's default when a bot never sent allowed_updates.
DEFAULT_UPDATE_TYPES = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_connection",
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
        "inline_query",
        "chosen_inline_result",
        "callback_query",
        "shipping_query",
        "pre_checkout_query",
        "purchased_paid_media",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_join_request",
        "chat_boost",
        "removed_chat_boost",
    }
)
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)

_INT_PARAMS = frozenset(
    {
        "message_id",
        "offset",
        "limit",
        "timeout",
        "reply_to_message_id",
        "cache_time",
        "user_id",
        "message_thread_id",
        "max_connections",
    }
)
_BOOL_PARAMS = frozenset(
    {
        "disable_notification",
        "protect_content",
        "show_alert",
        "drop_pending_updates",
        "disable_web_page_preview",
        "allow_sending_without_reply",
        "allow_paid_broadcast",
        "has_spoiler",
        "show_caption_above_media",
        "disable_content_type_detection",
    }
)
_JSON_PARAMS = frozenset(
    {
        "reply_markup",
        "entities",
        "caption_entities",
        "link_preview_options",
        "reply_parameters",
        "allowed_updates",
        "commands",
        "scope",
        "menu_button",
    }
)
# parse_mode values Telegram accepts but the emulator does not implement (the bot only sends
# HTML); they are answered 400 rather than taken as plain text.
_UNEMULATED_PARSE_MODES = frozenset({"markdownv2", "markdown"})


_ENTITY = re.compile(r"(?<!\S)(/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{5,32})?|@[A-Za-z0-9_]{5,32})")


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def detect_entities(text: str) -> list[JSONDict]:
    """The bot_command and mention entities Telegram's servers add to a person's text."""
    entities: list[JSONDict] = []
    for found in _ENTITY.finditer(text):
        kind = "bot_command" if found.group(0).startswith("/") else "mention"
        entities.append(
            {
                "type": kind,
                "offset": _utf16_length(text[: found.start()]),
                "length": _utf16_length(found.group(0)),
            }
        )
    return entities


class _Unparsable:
    """A parameter that should hold JSON but does not parse."""

    def __init__(self, raw: str) -> None:
        self.raw = raw

    def __repr__(self) -> str:
        return f"<unparsable JSON {self.raw!r}>"


def _normalize_params(raw: dict[str, Any]) -> JSONDict:
    """Gives form/query strings the types the Bot API would infer from each parameter's schema."""
    params: JSONDict = {}
    for name, value in raw.items():
        if isinstance(value, str):
            if (name == "chat_id" and re.fullmatch(r"-?\d+", value)) or (
                name in _INT_PARAMS and re.fullmatch(r"-?\d+", value)
            ):
                value = int(value)
            elif name in _BOOL_PARAMS and value.lower() in ("true", "false", "1", "0", ""):
                value = value.lower() in ("true", "1")
            elif name in _JSON_PARAMS:
                try:
                    value = json.loads(value)
                except ValueError:
                    value = _Unparsable(value)
        params[name] = value
    return params


@dataclass
class _Chat:
    info: JSONDict
    messages: dict[int, ChatMessage]
    events: list[ChatEvent]
    next_message_id: int = 1
    reply_keyboard: JSONDict | None = None
    last_action: str | None = None

    @property
    def id(self) -> int:
        return int(self.info["id"])


@dataclass(frozen=True)
class _Photo:
    sizes: list[JSONDict]
    data: bytes | None
    mime_type: str | None


@dataclass(frozen=True)
class _Document:
    # The Bot API Document object, and the file itself when the bot uploaded it.
    info: JSONDict
    data: bytes | None


# Python's built-in table only: the system's /etc/mime.types differs from machine to machine.
_MIME_TYPES = mimetypes.MimeTypes()


def _document_mime_type(file_name: str) -> str:
    """The MIME type Telegram gives a document: its file name's, else application/octet-stream."""
    guessed, _ = _MIME_TYPES.guess_type(file_name, strict=False)
    return guessed or "application/octet-stream"


@dataclass
class _CallbackQuery:
    query_id: str
    user_id: int
    chat_id: int
    message_id: int
    data: str
    answered: bool = False


class EmulatedUser:
    """A Telegram user talking to the bot; its private chat id is its user id."""

    def __init__(
        self,
        emulator: BotApiEmulator,
        user_id: int,
        first_name: str,
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
        phone_number: str | None = None,
    ) -> None:
        self._emu = emulator
        self.id = user_id
        self.first_name = first_name
        self.last_name = last_name
        self.username = username
        self.language_code = language_code
        self.phone_number = phone_number or f"+336{user_id % 100_000_000:08d}"
        self.blocked = False
        self.started = False
        self.toasts: list[Toast] = []
        self._new_cursor = 0
        self._edit_cursor = 0
        self._toast_cursor = 0

    # -- identity -------------------------------------------------------------------------

    @property
    def chat_id(self) -> int:
        return self.id

    def as_api(self) -> JSONDict:
        """The Bot API User object."""
        user: JSONDict = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            user["last_name"] = self.last_name
        if self.username:
            user["username"] = self.username
        if self.language_code:
            user["language_code"] = self.language_code
        return user

    def chat_info(self) -> JSONDict:
        chat: JSONDict = {"id": self.id, "type": "private", "first_name": self.first_name}
        if self.last_name:
            chat["last_name"] = self.last_name
        if self.username:
            chat["username"] = self.username
        return chat

    def to_sandbox(self) -> JSONDict:
        return {
            "user": self.as_api(),
            "phone_number": self.phone_number,
            "blocked": self.blocked,
            "started": self.started,
            "reply_keyboard": copy.deepcopy(self.reply_keyboard),
        }

    # -- what the user sees ----------------------------------------------------------------

    @property
    def messages(self) -> list[ChatMessage]:
        """Bot messages of the private chat, in their current state (edits applied)."""
        return [m for m in self.history if m.from_bot]

    @property
    def history(self) -> list[ChatMessage]:
        """Every message of the private chat (user's and bot's) that is not deleted."""
        chat = self._emu._chats.get(self.id)
        if chat is None:
            return []
        return [m for m in chat.messages.values() if not m.deleted]

    @property
    def last_message(self) -> ChatMessage | None:
        messages = self.messages
        return messages[-1] if messages else None

    @property
    def reply_keyboard(self) -> JSONDict | None:
        """The ReplyKeyboardMarkup currently shown, or None."""
        chat = self._emu._chats.get(self.id)
        return None if chat is None else chat.reply_keyboard

    @property
    def chat_action(self) -> str | None:
        chat = self._emu._chats.get(self.id)
        return None if chat is None else chat.last_action

    # -- acting ----------------------------------------------------------------------------

    def send_text(self, text: str, *, entities: list[JSONDict] | None = None) -> int:
        """Sends a text message to the bot; returns the update_id. Like Telegram, it marks
        commands and @mentions as entities unless `entities` are given."""
        found = entities if entities is not None else detect_entities(text)
        return self._send({"text": text, **({"entities": found} if found else {})})

    def send_command(self, command: str, payload: str | None = None) -> int:
        """Sends "/command payload" with its bot_command entity, as a client does."""
        head = "/" + command.lstrip("/")
        text = f"{head} {payload}" if payload else head
        entity = {"type": "bot_command", "offset": 0, "length": len(head)}
        return self._send({"text": text, "entities": [entity]})

    def send_contact(
        self,
        phone_number: str | None = None,
        *,
        first_name: str | None = None,
        user_id: int | None = None,
    ) -> int:
        """Shares a contact; by default the user's own (user_id == own id, as a
        request_contact button does). Pass user_id=0 for someone else's card."""
        contact: JSONDict = {
            "phone_number": phone_number or self.phone_number,
            "first_name": first_name or self.first_name,
        }
        if self.last_name and first_name is None:
            contact["last_name"] = self.last_name
        owner = self.id if user_id is None else user_id
        if owner:
            contact["user_id"] = owner
        return self._send({"contact": contact})

    def send_sticker(self, emoji: str = "👍") -> int:
        n = next(self._emu._file_counter)
        sticker = {
            "file_id": f"CAACAgIAAxk-sticker-{n}",
            "file_unique_id": f"AgADsticker{n}",
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
        }
        return self._send({"sticker": sticker})

    def send_photo(self, caption: str | None = None) -> int:
        n = next(self._emu._file_counter)
        sizes = [
            {
                "file_id": f"AgACAgQAAxk-photo-{n}-{w}",
                "file_unique_id": f"AQADphoto{n}{w}",
                "width": w,
                "height": w * 3 // 4,
                "file_size": w * 60,
            }
            for w in (90, 320, 800)
        ]
        # The bot may send it on by file_id, as on Telegram.
        self._emu._photos.update({str(size["file_id"]): (sizes, None, None) for size in sizes})
        payload: JSONDict = {"photo": sizes}
        if caption:
            payload["caption"] = caption
        return self._send(payload)

    def send_voice(self, duration: int = 3) -> int:
        n = next(self._emu._file_counter)
        voice = {
            "file_id": f"AwACAgQAAxk-voice-{n}",
            "file_unique_id": f"AgADvoice{n}",
            "duration": duration,
            "mime_type": "audio/ogg",
            "file_size": duration * 4000,
        }
        return self._send({"voice": voice})

    def send_document(
        self, file_name: str = "document.pdf", mime_type: str = "application/pdf"
    ) -> int:
        n = next(self._emu._file_counter)
        document: JSONDict = {
            "file_id": f"BQACAgQAAxk-doc-{n}",
            "file_unique_id": f"AgADdoc{n}",
            "file_name": file_name,
            "mime_type": mime_type,
            "file_size": 12345,
        }
        # The bot may send it on by file_id, as on Telegram.
        self._emu._documents[document["file_id"]] = _Document(dict(document), None)
        return self._send({"document": document})

    def send_location(self, latitude: float, longitude: float) -> int:
        return self._send({"location": {"latitude": latitude, "longitude": longitude}})

    def send_text_in_group(self, group_id: int, text: str, *, title: str = "Sandbox group") -> int:
        """A message from this user in a supergroup where the bot is a member."""
        chat = self._emu._ensure_group(group_id, title)
        message = self._emu._store_message(
            chat, sender=self.as_api(), from_bot=False, text=text, entities=detect_entities(text)
        )
        return self._emu._push_update("message", message.to_api())

    def press(
        self,
        text: str | None = None,
        *,
        callback_data: str | None = None,
        message_id: int | None = None,
    ) -> int:
        """Presses a button and returns the update_id it produced.

        Looks for an inline callback button (by label and/or callback_data) on the newest bot
        message having one (or on message_id); failing that, for a button of the reply
        keyboard currently shown, which sends its label (or the contact / location it
        requests) like a client would.
        """
        if text is None and callback_data is None:
            raise ValueError("press() needs the button text or its callback_data")
        self._check_can_act()
        for message in reversed(self.messages):
            if message_id is not None and message.message_id != message_id:
                continue
            for button in message.buttons:
                if text is not None and button["text"] != text:
                    continue
                if callback_data is not None and button.get("callback_data") != callback_data:
                    continue
                if "callback_data" not in button:
                    raise AssertionError(
                        f"button {button['text']!r} of message #{message.message_id} sends no "
                        f"callback query: {button}"
                    )
                return self._emu._push_callback_query(self, message, str(button["callback_data"]))
        keyboard = self.reply_keyboard
        if text is not None and callback_data is None and message_id is None and keyboard:
            for row in keyboard["keyboard"]:
                for button in row:
                    if button["text"] != text:
                        continue
                    if button.get("request_contact"):
                        return self.send_contact()
                    if button.get("request_location"):
                        return self.send_location(48.8566, 2.3522)
                    return self.send_text(text)
        raise AssertionError(
            f"{self.first_name} cannot press {text or callback_data!r}: no such button. "
            f"Inline buttons: {self._inline_summary()}; reply keyboard: "
            f"{self._keyboard_summary()}"
        )

    def block(self) -> None:
        """The user blocks the bot: sends a my_chat_member update, later sends answer 403."""
        if not self.blocked:
            self.blocked = True
            self._emu._push_member_update(self, old="member", new="kicked")

    def unblock(self) -> None:
        if self.blocked:
            self.blocked = False
            self._emu._push_member_update(self, old="kicked", new="member")

    # -- waiting ---------------------------------------------------------------------------

    # The wait helpers take `timeout` (ASYNC109) so that a failure can say what was awaited.
    async def next_message(self, timeout: float = 5.0) -> ChatMessage:  # noqa: ASYNC109
        """The first bot message sent after the last one this method (or wait_for_message)
        returned; the first call starts from the beginning of the chat, so nothing is missed."""
        return await self.wait_for_message(timeout=timeout)

    async def wait_for_message(
        self,
        predicate: Callable[[ChatMessage], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
        *,
        include_edits: bool = False,
    ) -> ChatMessage:
        """Consumes bot messages after the cursor until one matches predicate; returns a
        snapshot of it as it was when sent (or edited, with include_edits)."""
        kinds: tuple[EventKind, ...] = ("new", "edit") if include_edits else ("new",)
        found: list[ChatEvent] = []

        def ready() -> bool:
            for event in self._events_after(self._new_cursor, kinds):
                self._new_cursor = event.seq
                if predicate is None or predicate(event.message):
                    found.append(event)
                    return True
            return False

        if await self._emu._changed.wait_until(ready, timeout):
            return found[0].message
        what = "a new bot message" + (" or edit" if include_edits else "")
        if predicate is not None:
            what += " matching the predicate"
        raise self._timeout(what, timeout)

    async def next_edit(
        self,
        timeout: float = 5.0,  # noqa: ASYNC109
        *,
        message_id: int | None = None,
    ) -> ChatMessage:
        """The next edit of a bot message (after the last edit returned), as a snapshot."""
        found: list[ChatEvent] = []

        def ready() -> bool:
            for event in self._events_after(self._edit_cursor, ("edit",)):
                self._edit_cursor = event.seq
                if message_id is None or event.message.message_id == message_id:
                    found.append(event)
                    return True
            return False

        if await self._emu._changed.wait_until(ready, timeout):
            return found[0].message
        raise self._timeout(f"an edit of message {message_id or 'any'}", timeout)

    async def next_document(self, timeout: float = 5.0) -> ChatMessage:  # noqa: ASYNC109
        """The next bot message carrying a document (skipping the others, as wait_for_message
        does): `document` is its Document object, `document_file` its bytes."""
        return await self.wait_for_message(lambda m: m.document is not None, timeout)

    async def next_toast(self, timeout: float = 5.0) -> Toast:  # noqa: ASYNC109
        """The next answerCallbackQuery this user received."""

        def ready() -> bool:
            return len(self.toasts) > self._toast_cursor

        if await self._emu._changed.wait_until(ready, timeout):
            self._toast_cursor += 1
            return self.toasts[self._toast_cursor - 1]
        raise self._timeout("an answerCallbackQuery", timeout)

    async def presses_answered(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Until every button this user pressed got its answerCallbackQuery (the spinner
        stopped): a bot may answer a press after editing the message, so after the reply."""

        def ready() -> bool:
            return all(q.answered for q in self._emu._callbacks.values() if q.user_id == self.id)

        if not await self._emu._changed.wait_until(ready, timeout):
            raise self._timeout("the answer to every press", timeout)

    def skip_edits(self) -> None:
        """Marks the edits so far as seen, for `next_edit` (new messages are left unread)."""
        chat = self._emu._chats.get(self.id)
        if chat is not None and chat.events:
            self._edit_cursor = chat.events[-1].seq

    def drain(self) -> list[ChatMessage]:
        """Marks every bot message and edit so far as seen; returns the unseen new ones."""
        chat = self._emu._chats.get(self.id)
        unseen = [e.message for e in self._events_after(self._new_cursor, ("new",))]
        if chat is not None and chat.events:
            self._new_cursor = self._edit_cursor = chat.events[-1].seq
        self._toast_cursor = len(self.toasts)
        return unseen

    # -- internals -------------------------------------------------------------------------

    def _send(self, payload: JSONDict) -> int:
        self._check_can_act()
        chat = self._emu._private_chat(self)
        self.started = True
        text = payload.pop("text", None)
        entities = payload.pop("entities", [])
        message = self._emu._store_message(
            chat,
            sender=self.as_api(),
            from_bot=False,
            text=text,
            entities=entities,
            extra=payload,
        )
        return self._emu._push_update("message", message.to_api())

    def _check_can_act(self) -> None:
        if self.blocked:
            raise AssertionError(f"{self.first_name} blocked the bot: call unblock() first")

    def _events_after(self, seq: int, kinds: tuple[EventKind, ...]) -> list[ChatEvent]:
        chat = self._emu._chats.get(self.id)
        if chat is None:
            return []
        return [e for e in chat.events if e.seq > seq and e.kind in kinds and e.message.from_bot]

    def _inline_summary(self) -> list[str]:
        return [f"#{m.message_id}: {m.button_texts}" for m in self.messages if m.buttons]

    def _keyboard_summary(self) -> list[list[str]] | None:
        keyboard = self.reply_keyboard
        if keyboard is None:
            return None
        return [[str(b["text"]) for b in row] for row in keyboard["keyboard"]]

    def _timeout(self, what: str, timeout: float) -> EmulatorTimeout:
        recent = "\n  ".join(str(m) for m in self.history[-6:]) or "(no message)"
        failures = [
            f"{r.method} -> {r.status}" for r in self._emu.requests[-30:] if r.status >= 400
        ]
        return EmulatorTimeout(
            f"timed out after {timeout}s waiting for {what} in the chat of {self.first_name} "
            f"(id {self.id}).\nLast messages:\n  {recent}\nRecent failed Bot API calls: "
            f"{failures or 'none'}"
        )


Handler = Callable[[JSONDict], Awaitable[Any]]


class BotApiEmulator:
    """Emulates api.telegram.org for one bot; see the module docstring."""

    def __init__(
        self,
        bot_username: str = "mentorat_sandbox_bot",
        *,
        bot_first_name: str = "Mentorat (sandbox)",
        strict_html_ampersand: bool = True,
        first_update_id: int = 1,
    ) -> None:
        self.bot_username = bot_username
        self.bot_first_name = bot_first_name
        self.strict_html_ampersand = strict_html_ampersand
        self.bot_id = 123456
        self.faults = FaultList()
        self.requests: list[ApiRequest] = []
        self.base_url = ""
        self.webhook_url = ""
        self.commands: dict[tuple[str, str], list[JSONDict]] = {}
        self.menu_buttons: dict[int | None, JSONDict] = {}
        self._users: dict[int, EmulatedUser] = {}
        self._chats: dict[int, _Chat] = {}
        self._updates: list[JSONDict] = []
        self._redeliveries: list[JSONDict] = []
        self._all_updates: dict[int, JSONDict] = {}
        self._next_update_id = first_update_id
        self._allowed_updates: frozenset[str] = DEFAULT_UPDATE_TYPES
        self._callbacks: dict[str, _CallbackQuery] = {}
        self._callback_counter = itertools.count(4_611_686_018_427_387_904 // 1000)
        self._file_counter = itertools.count(1)
        # file_id -> (the photo's sizes, its bytes and MIME type when uploaded): what a photo sent
        # again by file_id shows.
        self._photos: dict[str, tuple[list[JSONDict], bytes | None, str | None]] = {}
        # file_id -> a document sent or received, for sendDocument by file_id.
        self._documents: dict[str, _Document] = {}
        self._seq = 0
        self._poll_generation = 0
        self._closing = False
        self._changed = Notifier()
        self._runner: web.AppRunner | None = None
        self._methods: dict[str, tuple[str, Handler]] = {}
        for name, handler in self._method_table().items():
            self._methods[name.lower()] = (name, handler)
        self.app = web.Application()
        self.app.router.add_route("*", "/bot{token}/{method}", self._handle_bot_request)
        add_sandbox_routes(self.app, self)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serves the emulator; returns (and sets) base_url for the bot's HTTP client."""
        self._closing = False
        runner = web.AppRunner(
            self.app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound_port = int(runner.addresses[0][1])
        self.base_url = f"http://{host}:{bound_port}/bot"
        return self.base_url

    async def stop(self) -> None:
        # Pending long polls answer at once instead of holding the shutdown.
        self._closing = True
        self._changed.notify()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> BotApiEmulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- user side -------------------------------------------------------------------------

    def user(
        self,
        user_id: int | None = None,
        first_name: str = "Camille",
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "fr",
        phone_number: str | None = None,
    ) -> EmulatedUser:
        """Gets the user with this id, creating it (and its private chat) if needed."""
        if user_id is None:
            user_id = max([1000, *self._users]) + 1
        existing = self._users.get(user_id)
        if existing is not None:
            return existing
        if user_id <= 0:
            raise ValueError("user ids are positive")
        user = EmulatedUser(
            self,
            user_id,
            first_name,
            last_name=last_name,
            username=username,
            language_code=language_code,
            phone_number=phone_number,
        )
        self._users[user_id] = user
        return user

    @property
    def users(self) -> list[EmulatedUser]:
        return list(self._users.values())

    def chat_messages(self, chat_id: int) -> list[ChatMessage]:
        """Current (non-deleted) messages of any chat, e.g. a group."""
        chat = self._chats.get(chat_id)
        return [] if chat is None else [m for m in chat.messages.values() if not m.deleted]

    def chat_events(self, chat_id: int, after: int = 0) -> list[ChatEvent]:
        chat = self._chats.get(chat_id)
        return [] if chat is None else [e for e in chat.events if e.seq > after]

    @property
    def last_seq(self) -> int:
        return self._seq

    def redeliver(self, update_id: int) -> None:
        """Delivers an already delivered update once more, as a retried webhook would."""
        update = self._all_updates.get(update_id)
        if update is None:
            raise KeyError(f"no update {update_id} was ever created")
        self._redeliveries.append(copy.deepcopy(update))
        self._changed.notify()

    @property
    def pending_updates(self) -> list[JSONDict]:
        """Updates not yet confirmed by the bot (getUpdates offset)."""
        return copy.deepcopy(self._redeliveries + self._updates)

    def calls(self, method: str, **params: Any) -> list[ApiRequest]:
        """Successful and failed calls of `method` whose params include the given values."""
        return [
            r
            for r in self.requests
            if r.method.lower() == method.lower()
            and all(str(r.params.get(k)) == str(v) for k, v in params.items())
        ]

    async def wait_for_call(
        self,
        method: str,
        *,
        timeout: float = 5.0,  # noqa: ASYNC109
        after: int = 0,
        **params: Any,
    ) -> ApiRequest:
        """Waits until the bot called `method` (the n-th call with after=n-1)."""
        if await self._changed.wait_until(
            lambda: len(self.calls(method, **params)) > after, timeout
        ):
            return self.calls(method, **params)[after]
        raise EmulatorTimeout(
            f"timed out after {timeout}s waiting for a {method} call with {params}; "
            f"received: {[r.method for r in self.requests[-20:]]}"
        )

    # -- state changes ---------------------------------------------------------------------

    def _bot_user(self) -> JSONDict:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }

    def _private_chat(self, user: EmulatedUser) -> _Chat:
        chat = self._chats.get(user.id)
        if chat is None:
            chat = _Chat(info=user.chat_info(), messages={}, events=[])
            self._chats[user.id] = chat
        return chat

    def _ensure_group(self, group_id: int, title: str) -> _Chat:
        if group_id >= 0:
            raise ValueError("group chat ids are negative")
        chat = self._chats.get(group_id)
        if chat is None:
            info = {"id": group_id, "type": "supergroup", "title": title}
            chat = _Chat(info=info, messages={}, events=[])
            self._chats[group_id] = chat
        return chat

    def _record_event(self, chat: _Chat, kind: EventKind, message: ChatMessage) -> None:
        self._seq += 1
        chat.events.append(ChatEvent(self._seq, kind, message.snapshot()))
        self._changed.notify()

    def _store_message(
        self,
        chat: _Chat,
        *,
        sender: JSONDict,
        from_bot: bool,
        text: str | None,
        entities: list[JSONDict],
        extra: JSONDict | None = None,
        parse_mode: str | None = None,
        source_text: str | None = None,
        reply_markup: ReplyMarkup | None = None,
        reply_to: ChatMessage | None = None,
        options: JSONDict | None = None,
        photo: _Photo | None = None,
        document: _Document | None = None,
        caption: FormattedText | None = None,
    ) -> ChatMessage:
        message = ChatMessage(
            chat=dict(chat.info),
            message_id=chat.next_message_id,
            sender=sender,
            date=int(time.time()),
            from_bot=from_bot,
            text=text,
            entities=entities,
            parse_mode=parse_mode,
            source_text=source_text,
            reply_markup=reply_markup.data
            if reply_markup and reply_markup.kind == "inline"
            else None,
            keyboard_markup=reply_markup.data
            if reply_markup and reply_markup.kind != "inline"
            else None,
            reply_to_message=reply_to.to_api(with_reply=False) if reply_to else None,
            extra=extra or {},
            options=options or {},
            photo=copy.deepcopy(photo.sizes) if photo else [],
            photo_file=photo.data if photo else None,
            photo_mime_type=photo.mime_type if photo else None,
            document=copy.deepcopy(document.info) if document else None,
            document_file=document.data if document else None,
            caption=caption.text if caption else None,
            caption_entities=caption.entities if caption else [],
        )
        chat.next_message_id += 1
        chat.messages[message.message_id] = message
        if reply_markup is not None and reply_markup.kind == "reply":
            chat.reply_keyboard = reply_markup.data
        elif reply_markup is not None and reply_markup.kind == "remove":
            chat.reply_keyboard = None
        self._record_event(chat, "new", message)
        return message

    def _push_update(self, kind: str, payload: JSONDict) -> int:
        update_id = self._next_update_id
        self._next_update_id += 1
        update = {"update_id": update_id, kind: payload}
        self._updates.append(update)
        self._all_updates[update_id] = copy.deepcopy(update)
        self._changed.notify()
        return update_id

    def _push_callback_query(self, user: EmulatedUser, message: ChatMessage, data: str) -> int:
        query_id = str(next(self._callback_counter))
        self._callbacks[query_id] = _CallbackQuery(
            query_id, user.id, message.chat_id, message.message_id, data
        )
        query = {
            "id": query_id,
            "from": user.as_api(),
            "message": message.to_api(),
            "chat_instance": str((message.chat_id * 7_919 + self.bot_id) % 2**62),
            "data": data,
        }
        return self._push_update("callback_query", query)

    def _push_member_update(self, user: EmulatedUser, *, old: str, new: str) -> None:
        if not user.started:
            return
        now = int(time.time())
        payload = {
            "chat": user.chat_info(),
            "from": user.as_api(),
            "date": now,
            "old_chat_member": {"user": self._bot_user(), "status": old, **self._until(old)},
            "new_chat_member": {"user": self._bot_user(), "status": new, **self._until(new)},
        }
        self._push_update("my_chat_member", payload)

    @staticmethod
    def _until(status: str) -> JSONDict:
        return {"until_date": 0} if status == "kicked" else {}

    # -- HTTP ------------------------------------------------------------------------------

    async def _handle_bot_request(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        if not TOKEN_RE.fullmatch(token):
            return _json_response(ApiError(401, "Unauthorized").payload(), 401)
        self.bot_id = int(token.split(":", 1)[0])
        method_name = request.match_info["method"]
        entry = self._methods.get(method_name.lower())
        canonical = entry[0] if entry else method_name
        try:
            params = await self._read_params(request)
        except ApiError as exc:
            self.requests.append(ApiRequest(canonical, {}, exc.code))
            return _json_response(exc.payload(), exc.code)
        record = ApiRequest(canonical, params)
        self.requests.append(record)
        fault = self.faults.take(canonical, params)
        if fault is not None and fault.delay > 0:
            await asyncio.sleep(fault.delay)
        if fault is not None and fault.status is not None and not fault.after_processing:
            return self._fault_response(record, fault.status, fault.error())
        if entry is None:
            record.status = 404
            self._changed.notify()
            return _json_response(ApiError(404, "Not Found").payload(), 404)
        try:
            result = await entry[1](params)
        except ApiError as exc:
            record.status = exc.code
            self._changed.notify()
            return _json_response(exc.payload(), exc.code)
        if fault is not None and fault.status is not None:
            return self._fault_response(record, fault.status, fault.error())
        record.status = 200
        self._changed.notify()
        return _json_response({"ok": True, "result": result}, 200)

    async def webhook_response(self, status: int, content_type: str, body: bytes) -> None:
        """What Telegram does with the bot's response to a webhook request: a 2xx JSON object
        naming a `method` is run as if the bot had called it; its result and its errors go
        nowhere (the Bot API gives no way to know them). Anything else is only the answer."""
        if not 200 <= status < 300 or content_type != "application/json" or not body:
            return
        try:
            raw = json.loads(body)
        except ValueError:
            return
        if not isinstance(raw, dict) or not isinstance(raw.get("method"), str):
            return
        name = str(raw.pop("method"))
        entry = self._methods.get(name.lower())
        params = _normalize_params(raw)
        record = ApiRequest(entry[0] if entry else name, params, in_webhook_response=True)
        self.requests.append(record)
        if entry is None or entry[0] in ("getUpdates", "getMe", "getWebhookInfo"):
            # Only methods whose result is not needed make sense there; Telegram ignores others.
            record.status = 404 if entry is None else 400
        else:
            try:
                await entry[1](params)
                record.status = 200
            except ApiError as exc:
                record.status = exc.code
        self._changed.notify()

    def _fault_response(self, record: ApiRequest, status: int, error: ApiError) -> web.Response:
        record.status = status
        self._changed.notify()
        if status == 502:
            # Telegram's 502s come from its nginx front, as an HTML page rather than JSON.
            body = (
                "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
                "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
                "</body>\r\n</html>\r\n"
            )
            return web.Response(status=502, text=body, content_type="text/html")
        return _json_response(error.payload(), status)

    async def _read_params(self, request: web.Request) -> JSONDict:
        raw: dict[str, Any] = dict(request.query)
        if request.body_exists:
            content_type = request.content_type
            if content_type == "application/json":
                try:
                    body = json.loads(await request.text() or "{}")
                except ValueError as exc:
                    raise ApiError(
                        400, f"Bad Request: can't parse JSON encoded request: {exc}"
                    ) from None
                if not isinstance(body, dict):
                    raise ApiError(400, "Bad Request: JSON object expected")
                raw.update(body)
            elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
                # aiohttp's 1 MB default would refuse photos Telegram takes.
                uploads = request.clone(client_max_size=MAX_UPLOAD_BYTES)
                try:
                    form = await uploads.post()
                except web.HTTPRequestEntityTooLarge:
                    raise ApiError(413, "Request Entity Too Large") from None
                for name, value in form.items():
                    if isinstance(value, str):
                        raw[name] = value
                    elif isinstance(value, bytes | bytearray):
                        raw[name] = value.decode("utf-8", "replace")
                    else:
                        raw[name] = UploadedFile(
                            value.filename, value.content_type, value.file.read()
                        )
        return _normalize_params(raw)

    # -- Bot API methods -------------------------------------------------------------------

    def _method_table(self) -> dict[str, Handler]:
        return {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "setChatMenuButton": self._set_chat_menu_button,
            "getChatMenuButton": self._get_chat_menu_button,
            "sendMessage": self._send_message,
            "sendPhoto": self._send_photo,
            "sendDocument": self._send_document,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback_query,
            "sendChatAction": self._send_chat_action,
            "getChat": self._get_chat,
            "close": self._true,
            "logOut": self._true,
        }

    async def _true(self, params: JSONDict) -> bool:
        return True

    async def _get_me(self, params: JSONDict) -> JSONDict:
        return {
            **self._bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, params: JSONDict) -> list[JSONDict]:
        if self.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use "
                "deleteWebhook to delete the webhook first",
            )
        offset = _optional_int(params, "offset")
        limit = min(max(_optional_int(params, "limit") or 100, 1), 100)
        timeout = max(_optional_int(params, "timeout") or 0, 0)
        if "allowed_updates" in params:
            allowed = params["allowed_updates"]
            if not isinstance(allowed, list) or not all(isinstance(a, str) for a in allowed):
                raise ApiError(400, "Bad Request: can't parse allowed updates")
            self._allowed_updates = frozenset(allowed) if allowed else DEFAULT_UPDATE_TYPES
        self._confirm(offset)
        self._poll_generation += 1
        generation = self._poll_generation
        # Wake the poll this one supersedes, so that it answers 409 as on Telegram.
        self._changed.notify()
        await self._changed.wait_until(
            lambda: self._closing or generation != self._poll_generation or self._has_deliverable(),
            timeout,
        )
        if generation != self._poll_generation:
            raise ApiError(
                409,
                "Conflict: terminated by other getUpdates request; make sure that only one bot "
                "instance is running",
            )
        return self._take_updates(limit)

    def _confirm(self, offset: int | None) -> None:
        if offset is None or offset == 0:
            return
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        else:
            self._updates = self._updates[offset:]

    def _drop_filtered(self) -> None:
        self._updates = [u for u in self._updates if _update_type(u) in self._allowed_updates]
        self._redeliveries = [
            u for u in self._redeliveries if _update_type(u) in self._allowed_updates
        ]

    def _has_deliverable(self) -> bool:
        self._drop_filtered()
        return bool(self._updates or self._redeliveries)

    def _take_updates(self, limit: int) -> list[JSONDict]:
        self._drop_filtered()
        # Redeliveries first: the bot then confirms with the newest id, as after a retry.
        batch = self._redeliveries[:limit]
        self._redeliveries = self._redeliveries[limit:]
        batch += self._updates[: limit - len(batch)]
        return copy.deepcopy(batch)

    async def _set_webhook(self, params: JSONDict) -> bool:
        url = params.get("url")
        if not isinstance(url, str):
            raise ApiError(400, "Bad Request: bad webhook: URL must be provided for webhook")
        if url and not url.startswith("https://"):
            raise ApiError(
                400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
            )
        self.webhook_url = url
        if params.get("drop_pending_updates") is True:
            self._updates.clear()
        return True

    async def _delete_webhook(self, params: JSONDict) -> bool:
        self.webhook_url = ""
        if params.get("drop_pending_updates") is True:
            self._updates.clear()
            self._redeliveries.clear()
        return True

    async def _get_webhook_info(self, params: JSONDict) -> JSONDict:
        return {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }

    def _commands_key(self, params: JSONDict) -> tuple[str, str]:
        scope = params.get("scope") or {"type": "default"}
        if not isinstance(scope, dict) or not isinstance(scope.get("type"), str):
            raise ApiError(400, "Bad Request: can't parse BotCommandScope JSON object")
        language = params.get("language_code") or ""
        if not isinstance(language, str) or (language and not re.fullmatch(r"[a-z]{2}", language)):
            raise ApiError(400, "Bad Request: invalid language code specified")
        return json.dumps(scope, sort_keys=True), language

    async def _set_my_commands(self, params: JSONDict) -> bool:
        commands = params.get("commands")
        if commands is None:
            raise ApiError(400, 'Bad Request: parameter "commands" is required')
        if not isinstance(commands, list):
            raise ApiError(400, "Bad Request: can't parse commands JSON object")
        if len(commands) > 100:
            raise ApiError(400, "Bad Request: too many commands specified")
        for command in commands:
            if not isinstance(command, dict):
                raise ApiError(400, "Bad Request: can't parse BotCommand: expected an Object")
            name, description = command.get("command"), command.get("description")
            if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]{1,32}", name):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not isinstance(description, str) or not 1 <= len(description.strip()) <= 256:
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        key = self._commands_key(params)
        self.commands[key] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    async def _get_my_commands(self, params: JSONDict) -> list[JSONDict]:
        return copy.deepcopy(self.commands.get(self._commands_key(params), []))

    async def _delete_my_commands(self, params: JSONDict) -> bool:
        self.commands.pop(self._commands_key(params), None)
        return True

    async def _set_chat_menu_button(self, params: JSONDict) -> bool:
        button = params.get("menu_button") or {"type": "default"}
        if not isinstance(button, dict) or button.get("type") not in (
            "commands",
            "web_app",
            "default",
        ):
            raise ApiError(400, "Bad Request: can't parse menu button JSON object")
        chat_id = params.get("chat_id")
        if chat_id is not None:
            self._resolve_chat(chat_id)
        self.menu_buttons[chat_id if isinstance(chat_id, int) else None] = button
        return True

    async def _get_chat_menu_button(self, params: JSONDict) -> JSONDict:
        chat_id = params.get("chat_id")
        key = chat_id if isinstance(chat_id, int) else None
        return copy.deepcopy(
            self.menu_buttons.get(key) or self.menu_buttons.get(None) or {"type": "default"}
        )

    # -- messages --------------------------------------------------------------------------

    def _resolve_chat(self, chat_id: Any) -> _Chat:
        if chat_id is None or chat_id == "":
            raise ApiError(400, "Bad Request: chat_id is empty")
        chat = self._chats.get(chat_id) if isinstance(chat_id, int) else None
        if chat is None and isinstance(chat_id, int) and chat_id in self._users:
            # A known user who never opened the chat: Telegram knows them, refuses to write.
            raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")
        if chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        return chat

    def _check_writable(self, chat: _Chat) -> None:
        if chat.info["type"] != "private":
            return
        user = self._users[chat.id]
        if user.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        if not user.started:
            raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")

    def _format(self, params: JSONDict, field: str = "text") -> tuple[FormattedText, str | None]:
        text = params.get(field)
        if text is None or text == "":
            raise ApiError(400, "Bad Request: message text is empty")
        formatted, parse_mode = self._parse(str(text), params, "entities")
        if not formatted.text:
            raise ApiError(400, "Bad Request: text must be non-empty")
        if len(formatted.text) > MAX_MESSAGE_LENGTH:
            raise ApiError(400, "Bad Request: message is too long")
        return formatted, parse_mode

    def _caption(self, params: JSONDict) -> tuple[FormattedText | None, str | None]:
        """A media caption: optional, formatted like a text, 1024 characters after parsing."""
        caption = params.get("caption")
        if caption is None or caption == "":
            return None, None
        formatted, parse_mode = self._parse(str(caption), params, "caption_entities")
        if len(formatted.text) > MAX_CAPTION_LENGTH:
            raise ApiError(400, "Bad Request: message caption is too long")
        return (formatted if formatted.text else None), parse_mode

    def _parse(
        self, text: str, params: JSONDict, entities_field: str
    ) -> tuple[FormattedText, str | None]:
        """`text` with its entities: given explicitly, parsed from HTML, or none (plain)."""
        parse_mode = params.get("parse_mode") or None
        entities = params.get(entities_field)
        if entities is not None:
            if isinstance(entities, _Unparsable):
                raise ApiError(400, "Bad Request: can't parse entities JSON object")
            try:
                formatted = FormattedText(text, validate_entities(text, entities))
            except EntityValidationError as exc:
                raise ApiError(400, str(exc)) from None
            parse_mode = None
        elif parse_mode is None:
            formatted = FormattedText(text, [])
        else:
            if not isinstance(parse_mode, str):
                raise ApiError(400, "Bad Request: unsupported parse_mode")
            mode = parse_mode.lower()
            if mode in _UNEMULATED_PARSE_MODES:
                # Valid for Telegram, but formatted in ways the emulator does not reproduce:
                # refusing is safer than passing the markup through as plain text.
                raise ApiError(
                    400,
                    f"Bad Request: unsupported parse_mode: this emulator implements HTML only "
                    f"({parse_mode} is not emulated; send HTML or plain text)",
                )
            if mode != "html":
                raise ApiError(400, "Bad Request: unsupported parse_mode")
            try:
                formatted = parse_html(text, strict_ampersand=self.strict_html_ampersand)
            except EntityParseError as exc:
                raise ApiError(400, f"Bad Request: can't parse entities: {exc}") from None
        return with_detected_links(strip_formatted(formatted.text, formatted.entities)), parse_mode

    def _markup(self, params: JSONDict) -> ReplyMarkup | None:
        raw = params.get("reply_markup")
        if raw is None:
            return None
        if isinstance(raw, _Unparsable):
            raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
        try:
            return parse_reply_markup(raw)
        except MarkupError as exc:
            raise ApiError(400, str(exc)) from None

    def _reply_target(self, chat: _Chat, params: JSONDict) -> ChatMessage | None:
        reply = params.get("reply_parameters")
        if reply is None and params.get("reply_to_message_id") is not None:
            reply = {
                "message_id": params["reply_to_message_id"],
                "allow_sending_without_reply": params.get("allow_sending_without_reply", False),
            }
        if reply is None:
            return None
        if isinstance(reply, _Unparsable) or not isinstance(reply, dict):
            raise ApiError(400, "Bad Request: can't parse reply parameters JSON object")
        if "message_id" not in reply:
            raise ApiError(400, 'Bad Request: can\'t find field "message_id"')
        target_chat = chat
        if reply.get("chat_id") not in (None, chat.id):
            target_chat = self._resolve_chat(reply["chat_id"])
        target = target_chat.messages.get(reply["message_id"])
        if target is None or target.deleted:
            if reply.get("allow_sending_without_reply"):
                return None
            raise ApiError(400, "Bad Request: message to be replied not found")
        return target

    async def _send_message(self, params: JSONDict) -> JSONDict:
        if params.get("chat_id") in (None, ""):
            raise ApiError(400, "Bad Request: chat_id is empty")
        if params.get("text") in (None, ""):
            raise ApiError(400, "Bad Request: message text is empty")
        chat = self._resolve_chat(params["chat_id"])
        formatted, parse_mode = self._format(params)
        markup = self._markup(params)
        reply_to = self._reply_target(chat, params)
        self._check_writable(chat)
        options: JSONDict = {
            k: params[k]
            for k in ("link_preview_options", "disable_notification", "protect_content")
            if k in params
        }
        message = self._store_message(
            chat,
            sender=self._bot_user(),
            from_bot=True,
            text=formatted.text,
            entities=formatted.entities,
            parse_mode=parse_mode,
            source_text=str(params["text"]),
            reply_markup=markup,
            reply_to=reply_to,
            options=options,
        )
        return message.to_api()

    async def _send_photo(self, params: JSONDict) -> JSONDict:
        if params.get("chat_id") in (None, ""):
            raise ApiError(400, "Bad Request: chat_id is empty")
        chat = self._resolve_chat(params["chat_id"])
        given = _input_file(params, "photo")
        if given is None:
            raise ApiError(400, "Bad Request: there is no photo in the request")
        caption, parse_mode = self._caption(params)
        markup = self._markup(params)
        reply_to = self._reply_target(chat, params)
        photo = await self._photo(given)
        self._check_writable(chat)
        options: JSONDict = {
            k: params[k] for k in ("disable_notification", "protect_content") if k in params
        }
        extra: JSONDict = {}
        if params.get("has_spoiler") is True:
            extra["has_media_spoiler"] = True
        if params.get("show_caption_above_media") is True and caption is not None:
            extra["show_caption_above_media"] = True
        message = self._store_message(
            chat,
            sender=self._bot_user(),
            from_bot=True,
            text=None,
            entities=[],
            extra=extra,
            parse_mode=parse_mode,
            reply_markup=markup,
            reply_to=reply_to,
            options=options,
            photo=photo,
            caption=caption,
        )
        return message.to_api()

    async def _photo(self, given: Any) -> _Photo:
        """The photo of a sendPhoto: an upload, a file_id sent before, or an HTTP URL."""
        if isinstance(given, UploadedFile):
            if not given.data:
                raise ApiError(400, "Bad Request: file must be non-empty")
            if len(given.data) > MAX_PHOTO_BYTES:
                raise ApiError(400, "Bad Request: file is too big")
            return self._new_photo(given.data, "Bad Request: IMAGE_PROCESS_FAILED")
        if not isinstance(given, str):
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        known = self._photos.get(given)
        if known is not None:
            return _Photo(*known)
        if given in self._documents:
            raise ApiError(400, "Bad Request: can't use file of type Document as Photo")
        if re.match(r"https?://", given):
            data = await _fetch(given, MAX_URL_PHOTO_BYTES)
            return self._new_photo(data, "Bad Request: wrong type of the web page content")
        raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")

    def _new_photo(self, data: bytes, not_an_image: str) -> _Photo:
        size = image_size(data)
        if size is None:
            raise ApiError(400, not_an_image)
        width, height = size.width, size.height
        if width + height > MAX_PHOTO_SIDES or max(width, height) > MAX_PHOTO_RATIO * min(
            width, height
        ):
            raise ApiError(400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
        n = next(self._file_counter)
        longer = max(width, height)
        # Smaller copies first, the photo itself last, as Telegram lists them.
        sides = [side for side in PHOTO_SIDES if side < longer] + [min(longer, PHOTO_SIDES[-1])]
        sizes: list[JSONDict] = []
        for side in sides:
            scale = side / longer
            w, h = max(1, round(width * scale)), max(1, round(height * scale))
            sizes.append(
                {
                    "file_id": f"AgACAgQAAxk-sent-{n}-{side}",
                    "file_unique_id": f"AQADsent{n}x{side}",
                    "width": w,
                    "height": h,
                    "file_size": max(1, round(len(data) * scale * scale)),
                }
            )
        photo = _Photo(sizes, data, f"image/{size.format}")
        for entry in sizes:
            self._photos[entry["file_id"]] = (sizes, data, photo.mime_type)
        return photo

    async def _send_document(self, params: JSONDict) -> JSONDict:
        if params.get("chat_id") in (None, ""):
            raise ApiError(400, "Bad Request: chat_id is empty")
        chat = self._resolve_chat(params["chat_id"])
        given = _input_file(params, "document")
        if given is None:
            raise ApiError(400, "Bad Request: there is no document in the request")
        caption, parse_mode = self._caption(params)
        markup = self._markup(params)
        reply_to = self._reply_target(chat, params)
        # thumbnail is accepted and ignored: the emulator shows no previews.
        document = await self._document(given)
        self._check_writable(chat)
        options: JSONDict = {
            k: params[k] for k in ("disable_notification", "protect_content") if k in params
        }
        message = self._store_message(
            chat,
            sender=self._bot_user(),
            from_bot=True,
            text=None,
            entities=[],
            parse_mode=parse_mode,
            reply_markup=markup,
            reply_to=reply_to,
            options=options,
            document=document,
            caption=caption,
        )
        return message.to_api()

    async def _document(self, given: UploadedFile | str) -> _Document:
        """The document of a sendDocument: an upload, a file_id sent before, or an HTTP URL."""
        if isinstance(given, UploadedFile):
            # Over 50 MB the whole request was refused with 413 before reaching here.
            if not given.data:
                raise ApiError(400, "Bad Request: file must be non-empty")
            return self._new_document(given.data, given.file_name)
        known = self._documents.get(given)
        if known is not None:
            return known
        if given in self._photos:
            raise ApiError(400, "Bad Request: can't use file of type Photo as Document")
        if re.match(r"https?://", given):
            data, content_type = await _fetch_typed(given, MAX_URL_DOCUMENT_BYTES)
            if content_type not in URL_DOCUMENT_TYPES:
                raise ApiError(400, "Bad Request: wrong type of the web page content")
            name = unquote(urlsplit(given).path.rsplit("/", 1)[-1]) or None
            return self._new_document(data, name, content_type)
        raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")

    def _new_document(
        self, data: bytes, file_name: str | None, mime_type: str | None = None
    ) -> _Document:
        n = next(self._file_counter)
        info: JSONDict = {"file_id": f"BQACAgQAAxk-sent-{n}", "file_unique_id": f"AgADsent{n}"}
        if file_name:
            info["file_name"] = file_name
        info["mime_type"] = mime_type or _document_mime_type(file_name or "")
        info["file_size"] = len(data)
        document = _Document(info, data)
        self._documents[info["file_id"]] = document
        return document

    def _message_to_edit(self, params: JSONDict) -> tuple[_Chat, ChatMessage]:
        if params.get("inline_message_id"):
            raise ApiError(400, "Bad Request: MESSAGE_ID_INVALID")
        chat = self._resolve_chat(params.get("chat_id"))
        message_id = params.get("message_id")
        if message_id is None:
            raise ApiError(400, "Bad Request: message identifier is not specified")
        if not isinstance(message_id, int):
            raise ApiError(400, "Bad Request: message to edit not found")
        message = chat.messages.get(message_id)
        if message is None or message.deleted:
            raise ApiError(400, "Bad Request: message to edit not found")
        if not message.from_bot:
            raise ApiError(400, "Bad Request: message can't be edited")
        self._check_writable(chat)
        return chat, message

    def _inline_markup(self, params: JSONDict) -> JSONDict | None:
        markup = self._markup(params)
        if markup is None:
            return None
        if markup.kind != "inline":
            raise ApiError(400, "Bad Request: inline keyboard expected")
        return markup.data

    async def _edit_message_text(self, params: JSONDict) -> JSONDict:
        chat, message = self._message_to_edit(params)
        if message.text is None:
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        formatted, parse_mode = self._format(params)
        # Like Telegram, an edit without reply_markup removes the inline keyboard.
        markup = self._inline_markup(params)
        if (
            formatted.text == message.text
            and formatted.entities == message.entities
            and markup == message.reply_markup
        ):
            raise _not_modified()
        message.text = formatted.text
        message.entities = formatted.entities
        message.parse_mode = parse_mode
        message.source_text = str(params["text"])
        message.reply_markup = markup
        message.edit_date = int(time.time())
        self._record_event(chat, "edit", message)
        return message.to_api()

    async def _edit_message_reply_markup(self, params: JSONDict) -> JSONDict:
        chat, message = self._message_to_edit(params)
        markup = self._inline_markup(params)
        if markup == message.reply_markup:
            raise _not_modified()
        message.reply_markup = markup
        message.edit_date = int(time.time())
        self._record_event(chat, "edit", message)
        return message.to_api()

    async def _delete_message(self, params: JSONDict) -> bool:
        chat = self._resolve_chat(params.get("chat_id"))
        message_id = params.get("message_id")
        if message_id is None:
            raise ApiError(400, "Bad Request: message identifier is not specified")
        message = chat.messages.get(message_id) if isinstance(message_id, int) else None
        if message is None or message.deleted:
            raise ApiError(400, "Bad Request: message to delete not found")
        message.deleted = True
        self._record_event(chat, "delete", message)
        return True

    async def _answer_callback_query(self, params: JSONDict) -> bool:
        query_id = params.get("callback_query_id")
        if query_id in (None, ""):
            raise ApiError(400, 'Bad Request: parameter "callback_query_id" is required')
        query = self._callbacks.get(str(query_id))
        if query is None or query.answered:
            raise ApiError(
                400,
                "Bad Request: query is too old and response timeout expired or query ID is invalid",
            )
        text = params.get("text")
        if text is not None and not isinstance(text, str):
            text = str(text)
        if text is not None and len(text) > MAX_CALLBACK_ANSWER_LENGTH:
            raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        url = params.get("url")
        query.answered = True
        user = self._users.get(query.user_id)
        if user is not None:
            user.toasts.append(
                Toast(
                    text=text or None,
                    show_alert=params.get("show_alert") is True,
                    url=str(url) if url else None,
                    callback_query_id=query.query_id,
                    message_id=query.message_id,
                )
            )
        self._changed.notify()
        return True

    async def _send_chat_action(self, params: JSONDict) -> bool:
        chat = self._resolve_chat(params.get("chat_id"))
        action = params.get("action")
        if action in (None, ""):
            raise ApiError(400, 'Bad Request: parameter "action" is required')
        if action not in CHAT_ACTIONS:
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        self._check_writable(chat)
        chat.last_action = str(action)
        return True

    async def _get_chat(self, params: JSONDict) -> JSONDict:
        chat = self._resolve_chat(params.get("chat_id"))
        if chat.info["type"] == "private" and not self._users[chat.id].started:
            raise ApiError(400, "Bad Request: chat not found")
        return {
            **chat.info,
            "accent_color_id": chat.id % 7,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }


def _not_modified() -> ApiError:
    return ApiError(
        400,
        "Bad Request: message is not modified: specified new message content and reply markup "
        "are exactly the same as a current content and reply markup of the message",
    )


def _optional_int(params: JSONDict, name: str) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f'Bad Request: field "{name}" must be of type Integer')
    return value


def _input_file(params: JSONDict, name: str) -> UploadedFile | str | None:
    """A file parameter: its own multipart part, the part an ``attach://<part>`` value names, or
    a file_id / URL; None when there is none (like Telegram's server, an ``attach://`` naming no
    part counts as no file)."""
    given = params.get(name)
    if isinstance(given, str) and given.startswith("attach://"):
        given = params.get(given.removeprefix("attach://"))
        return given if isinstance(given, UploadedFile) else None
    if given is None or given == "":
        return None
    return given if isinstance(given, UploadedFile) else str(given)


async def _fetch(url: str, limit: int) -> bytes:
    """What Telegram's servers would download from `url` (a photo sent by its address)."""
    data, _ = await _fetch_typed(url, limit)
    return data


async def _fetch_typed(url: str, limit: int) -> tuple[bytes, str]:
    """The bytes at `url` and the MIME type its server gave them."""
    failed = ApiError(400, "Bad Request: failed to get HTTP URL content")
    try:
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url) as response,
        ):
            if response.status != 200:
                raise failed
            # read(n) may stop at any chunk: read to the end, giving up past the limit.
            data = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                data += chunk
                if len(data) > limit:
                    raise failed
            content_type = response.content_type
    except (aiohttp.ClientError, TimeoutError, ValueError):
        raise failed from None
    return bytes(data), content_type


def _update_type(update: JSONDict) -> str:
    return next(k for k in update if k != "update_id")


def _json_response(body: JSONDict, status: int) -> web.Response:
    return web.json_response(body, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False))
