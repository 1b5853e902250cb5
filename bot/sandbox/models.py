"""Data types shared by the Bot API emulator: stored messages, faults, request log, waiting."""

from __future__ import annotations

import asyncio
import base64
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from bot.sandbox.formatting import render_html

JSONDict = dict[str, Any]

EventKind = Literal["new", "edit", "delete"]


class ApiError(Exception):
    """A Bot API error answer: HTTP status == error_code."""

    def __init__(self, code: int, description: str, *, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after

    def payload(self) -> JSONDict:
        body: JSONDict = {"ok": False, "error_code": self.code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


class EmulatorTimeout(AssertionError):
    """A wait helper of the emulator gave up; the message says what was awaited."""


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart/form-data request, bytes included (a photo is read from them)."""

    file_name: str | None
    mime_type: str | None
    data: bytes = field(repr=False)

    def __str__(self) -> str:
        return f"<file {self.file_name!r} {self.mime_type} {len(self.data)} bytes>"


@dataclass
class ChatMessage:
    """A message of an emulated chat, in its current state (or a snapshot of it)."""

    chat: JSONDict
    message_id: int
    sender: JSONDict
    date: int
    from_bot: bool
    text: str | None = None
    entities: list[JSONDict] = field(default_factory=list)
    parse_mode: str | None = None
    source_text: str | None = None
    reply_markup: JSONDict | None = None
    keyboard_markup: JSONDict | None = None
    reply_to_message: JSONDict | None = None
    edit_date: int | None = None
    deleted: bool = False
    extra: JSONDict = field(default_factory=dict)
    options: JSONDict = field(default_factory=dict)
    # A photo the bot sent: its PhotoSize objects (smallest first), caption and the file itself.
    photo: list[JSONDict] = field(default_factory=list)
    caption: str | None = None
    caption_entities: list[JSONDict] = field(default_factory=list)
    photo_file: bytes | None = field(default=None, repr=False)
    photo_mime_type: str | None = None
    # A document the bot sent: its Document object (file_name, mime_type, file_size...) and, when
    # the bot uploaded it, the file itself (None when sent by the file_id of a person's document).
    document: JSONDict | None = None
    document_file: bytes | None = field(default=None, repr=False)

    @property
    def chat_id(self) -> int:
        return int(self.chat["id"])

    @property
    def edited(self) -> bool:
        return self.edit_date is not None

    @property
    def html(self) -> str:
        """Escaped HTML rebuilt from text + entities: safe to show in a browser."""
        return render_html(self.text or "", self.entities)

    @property
    def caption_html(self) -> str | None:
        """The caption as escaped HTML rebuilt from its entities, like `html` for a text."""
        return None if self.caption is None else render_html(self.caption, self.caption_entities)

    @property
    def html_source(self) -> str | None:
        """The text exactly as the bot sent it, when it used parse_mode=HTML."""
        return self.source_text if (self.parse_mode or "").lower() == "html" else None

    @property
    def buttons(self) -> list[JSONDict]:
        """Inline buttons, row by row."""
        if self.reply_markup is None:
            return []
        return [b for row in self.reply_markup.get("inline_keyboard", []) for b in row]

    @property
    def button_texts(self) -> list[str]:
        return [str(b["text"]) for b in self.buttons]

    def snapshot(self) -> ChatMessage:
        return copy.deepcopy(self)

    def to_api(self, *, with_reply: bool = True) -> JSONDict:
        """The Bot API Message object."""
        message: JSONDict = {
            "message_id": self.message_id,
            "from": dict(self.sender),
            "chat": dict(self.chat),
            "date": self.date,
        }
        if self.edit_date is not None:
            message["edit_date"] = self.edit_date
        if with_reply and self.reply_to_message is not None:
            message["reply_to_message"] = copy.deepcopy(self.reply_to_message)
        if self.text is not None:
            message["text"] = self.text
            if self.entities:
                message["entities"] = copy.deepcopy(self.entities)
        if self.photo:
            message["photo"] = copy.deepcopy(self.photo)
        if self.document is not None:
            message["document"] = copy.deepcopy(self.document)
        if self.caption is not None:
            message["caption"] = self.caption
            if self.caption_entities:
                message["caption_entities"] = copy.deepcopy(self.caption_entities)
        if self.options.get("link_preview_options"):
            message["link_preview_options"] = copy.deepcopy(self.options["link_preview_options"])
        if self.options.get("protect_content"):
            message["has_protected_content"] = True
        message.update(copy.deepcopy(self.extra))
        if self.reply_markup is not None:
            message["reply_markup"] = copy.deepcopy(self.reply_markup)
        return message

    def to_sandbox(self) -> JSONDict:
        """The shape served to the sandbox web page."""
        return {
            "message_id": self.message_id,
            "chat_id": self.chat_id,
            "from_bot": self.from_bot,
            "date": self.date,
            "edit_date": self.edit_date,
            "edited": self.edited,
            "deleted": self.deleted,
            "text": self.text,
            "entities": copy.deepcopy(self.entities),
            "html": self.html,
            "reply_markup": copy.deepcopy(self.reply_markup),
            "keyboard_markup": copy.deepcopy(self.keyboard_markup),
            "extra": copy.deepcopy(self.extra),
            "photo": self._sandbox_photo(),
            "document": self._sandbox_document(),
            "caption": self.caption,
            "caption_html": self.caption_html,
        }

    def _sandbox_photo(self) -> JSONDict | None:
        """The largest size, and the picture inline (the page's CSP allows data: images)."""
        if not self.photo:
            return None
        largest = self.photo[-1]
        photo: JSONDict = {"width": largest["width"], "height": largest["height"], "src": None}
        if self.photo_file is not None and self.photo_mime_type is not None:
            encoded = base64.b64encode(self.photo_file).decode()
            photo["src"] = f"data:{self.photo_mime_type};base64,{encoded}"
        return photo

    def _sandbox_document(self) -> JSONDict | None:
        """Name, type and size, and where the page downloads the file (bot.sandbox.webapi)."""
        if self.document is None:
            return None
        url = None
        if self.document_file is not None and self.chat.get("type") == "private":
            url = f"/sandbox/api/users/{self.chat_id}/documents/{self.message_id}"
        return {
            "file_name": self.document.get("file_name"),
            "mime_type": self.document.get("mime_type"),
            "file_size": self.document.get("file_size"),
            "url": url,
        }

    def __str__(self) -> str:
        label = "bot" if self.from_bot else "user"
        text = self.text if self.text is not None else f"<{', '.join(self.extra) or 'empty'}>"
        if self.photo:
            text = f"<photo {self.photo[-1]['width']}x{self.photo[-1]['height']}> {self.caption!r}"
        if self.document is not None:
            name, size = self.document.get("file_name"), self.document.get("file_size")
            text = f"<document {name!r} {self.document.get('mime_type')} {size} B> {self.caption!r}"
        buttons = f" {self.button_texts}" if self.buttons else ""
        edited = " (edited)" if self.edited else ""
        return f"#{self.message_id} {label}: {text!r}{buttons}{edited}"


@dataclass(frozen=True)
class ChatEvent:
    """A change in a chat: its sequence number orders all changes of the emulator."""

    seq: int
    kind: EventKind
    message: ChatMessage

    def to_sandbox(self) -> JSONDict:
        return {"seq": self.seq, "kind": self.kind, "message": self.message.to_sandbox()}


@dataclass(frozen=True)
class Toast:
    """An answerCallbackQuery as the user sees it."""

    text: str | None
    show_alert: bool
    url: str | None
    callback_query_id: str
    message_id: int | None


@dataclass
class ApiRequest:
    """One Bot API call received by the emulator, with decoded parameters and HTTP status."""

    method: str
    params: JSONDict
    status: int = 0
    at: float = field(default_factory=time.time)
    # Given in the bot's response to a webhook request, not a call of its own.
    in_webhook_response: bool = False

    def __iter__(self) -> Any:
        # Lets a test unpack `method, params = request`.
        return iter((self.method, self.params))


_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; make sure that only one bot "
    "instance is running",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


@dataclass
class Fault:
    """An injected failure: answers `status` (and/or waits `delay` s) to matching calls."""

    method: str | None
    status: int | None
    retry_after: int | None
    times: int | None
    chat_id: int | str | None
    delay: float
    description: str | None
    after_processing: bool
    hits: int = 0

    def matches(self, method: str, params: JSONDict) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if self.method is not None and self.method.lower() != method.lower():
            return False
        return self.chat_id is None or str(params.get("chat_id")) == str(self.chat_id)

    def error(self) -> ApiError:
        assert self.status is not None
        if self.status == 429:
            retry_after = self.retry_after if self.retry_after is not None else 1
            return ApiError(
                429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after
            )
        description = self.description or _DEFAULT_DESCRIPTIONS.get(self.status, "Error")
        return ApiError(self.status, description)


class FaultList:
    """Faults are tried in the order they were added; each match uses up one of `times`."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(
        self,
        method: str | None = None,
        status: int | None = None,
        *,
        retry_after: int | None = None,
        times: int | None = 1,
        chat_id: int | str | None = None,
        delay: float = 0.0,
        description: str | None = None,
        after_processing: bool = False,
    ) -> Fault:
        """`times=None` never runs out; `after_processing=True` performs the call, then fails
        (the answer is lost, as when Telegram times out after sending)."""
        if status is None and delay <= 0:
            raise ValueError("a fault needs a status, a delay, or both")
        fault = Fault(
            method=method,
            status=status,
            retry_after=retry_after,
            times=times,
            chat_id=chat_id,
            delay=delay,
            description=description,
            after_processing=after_processing,
        )
        self._faults.append(fault)
        return fault

    def take(self, method: str, params: JSONDict) -> Fault | None:
        for fault in self._faults:
            if fault.matches(method, params):
                fault.hits += 1
                if fault.times is not None:
                    fault.times -= 1
                return fault
        return None

    def clear(self) -> None:
        self._faults.clear()

    @property
    def pending(self) -> list[Fault]:
        return [f for f in self._faults if f.times is None or f.times > 0]

    def __len__(self) -> int:
        return len(self.pending)


class Notifier:
    """Wakes every waiter on each state change; waiters re-check their own condition."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait_until(
        self,
        predicate: Callable[[], bool],
        timeout: float,  # noqa: ASYNC109 - callers report what they awaited on expiry
    ) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            event = self._event
            try:
                # asyncio.timeout, unlike wait_for, creates no task per wake-up: with hundreds
                # of waiters woken on every change, that is most of the emulator's CPU.
                async with asyncio.timeout(remaining):
                    await event.wait()
            except TimeoutError:
                return predicate()
        return True
