"""JSON HTTP API of the emulator's user side, for the sandbox chat page (the user's thumbs).

Routes (JSON in and out; errors are ``{"error": "..."}`` with status 400/404):

- ``POST /sandbox/api/users`` ``{"user_id"?, "first_name"?, "last_name"?, "username"?,
  "language_code"?, "phone_number"?}`` -> the user (created, or the existing one with that id).
- ``GET  /sandbox/api/users/{user_id}`` -> ``{"user", "phone_number", "blocked", "started",
  "reply_keyboard"}``.
- ``POST /sandbox/api/users/{user_id}/text`` ``{"text"}`` -> ``{"update_id"}``.
- ``POST /sandbox/api/users/{user_id}/command`` ``{"command", "payload"?}`` -> ``{"update_id"}``.
- ``POST /sandbox/api/users/{user_id}/contact`` ``{"phone_number"?}`` -> ``{"update_id"}``.
- ``POST /sandbox/api/users/{user_id}/press`` ``{"text"?, "callback_data"?, "message_id"?}``
  -> ``{"update_id"}``.
- ``POST /sandbox/api/users/{user_id}/block`` and ``/unblock`` -> the user.
- ``GET  /sandbox/api/users/{user_id}/messages?after=<seq>&timeout=<s>`` -> ``{"cursor",
  "events": [{"seq", "kind": "new"|"edit"|"delete", "message"}], "reply_keyboard"}``;
  long-polls up to ``timeout`` seconds (max 60) until an event newer than ``after`` exists.
  Messages carry ``text``, ``entities``, escaped ``html``, ``reply_markup`` (inline) and
  ``keyboard_markup`` (the reply keyboard / removal / force reply sent with them), and a
  document the bot sent as ``document``: ``{"file_name", "mime_type", "file_size", "url"}``.
- ``GET  /sandbox/api/users/{user_id}/documents/{message_id}`` -> the file of the document the bot
  uploaded in that message of the user's chat, as an attachment (404 for any other message).
- ``GET  /sandbox/api/users/{user_id}/toasts?after=<n>`` -> ``{"cursor", "toasts"}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

if TYPE_CHECKING:
    from bot.sandbox.emulator import BotApiEmulator, EmulatedUser

JSONDict = dict[str, Any]

MAX_POLL_SECONDS = 60.0
# A file is served with the MIME type the bot gave it only when that is a plain type/subtype.
_MIME_TYPE = re.compile(r"[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*", re.ASCII)


def add_sandbox_routes(app: web.Application, emulator: BotApiEmulator) -> None:
    api = _SandboxApi(emulator)
    prefix = "/sandbox/api/users"
    app.router.add_post(prefix, _guarded(api.create_user))
    app.router.add_get(prefix + "/{user_id}", _guarded(api.get_user))
    app.router.add_post(prefix + "/{user_id}/text", _guarded(api.post_text))
    app.router.add_post(prefix + "/{user_id}/command", _guarded(api.post_command))
    app.router.add_post(prefix + "/{user_id}/contact", _guarded(api.post_contact))
    app.router.add_post(prefix + "/{user_id}/press", _guarded(api.post_press))
    app.router.add_post(prefix + "/{user_id}/block", _guarded(api.post_block))
    app.router.add_post(prefix + "/{user_id}/unblock", _guarded(api.post_unblock))
    app.router.add_get(prefix + "/{user_id}/messages", _guarded(api.get_messages))
    app.router.add_get(prefix + "/{user_id}/toasts", _guarded(api.get_toasts))
    app.router.add_get(prefix + "/{user_id}/documents/{message_id}", _guarded(api.get_document))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _guarded(handler: Handler) -> Handler:
    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except _BadInput as exc:
            return _error(str(exc), exc.status)
        except AssertionError as exc:
            # The user cannot do that in Telegram either (no such button, bot blocked...).
            return _error(str(exc), 400)

    return guarded


class _BadInput(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _error(message: str, status: int) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _ok(body: JSONDict) -> web.Response:
    return web.json_response(body, dumps=lambda o: json.dumps(o, ensure_ascii=False))


class _SandboxApi:
    def __init__(self, emulator: BotApiEmulator) -> None:
        self._emu = emulator

    async def _body(self, request: web.Request) -> JSONDict:
        if not request.body_exists:
            return {}
        try:
            body = await request.json()
        except ValueError:
            raise _BadInput("the body must be a JSON object") from None
        if not isinstance(body, dict):
            raise _BadInput("the body must be a JSON object")
        return body

    def _user(self, request: web.Request) -> EmulatedUser:
        raw = request.match_info["user_id"]
        if not _is_number(raw):
            raise _BadInput("user_id must be a positive integer")
        user = next((u for u in self._emu.users if u.id == int(raw)), None)
        if user is None:
            raise _BadInput(f"no user {raw}; create it with POST /sandbox/api/users", 404)
        return user

    @staticmethod
    def _str(body: JSONDict, name: str, *, required: bool = False) -> str | None:
        value = body.get(name)
        if value is None:
            if required:
                raise _BadInput(f'"{name}" is required')
            return None
        if not isinstance(value, str):
            raise _BadInput(f'"{name}" must be a string')
        return value

    async def create_user(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        user_id = body.get("user_id")
        if user_id is not None and (not isinstance(user_id, int) or user_id <= 0):
            raise _BadInput('"user_id" must be a positive integer')
        user = self._emu.user(
            user_id,
            self._str(body, "first_name") or "Camille",
            last_name=self._str(body, "last_name"),
            username=self._str(body, "username"),
            language_code=self._str(body, "language_code") or "fr",
            phone_number=self._str(body, "phone_number"),
        )
        return _ok(user.to_sandbox())

    async def get_user(self, request: web.Request) -> web.Response:
        return _ok(self._user(request).to_sandbox())

    async def post_text(self, request: web.Request) -> web.Response:
        user = self._user(request)
        text = self._str(await self._body(request), "text", required=True)
        if not text or not text.strip():
            raise _BadInput('"text" must not be empty')
        return _ok({"update_id": user.send_text(text)})

    async def post_command(self, request: web.Request) -> web.Response:
        user = self._user(request)
        body = await self._body(request)
        command = self._str(body, "command", required=True) or ""
        if not command.lstrip("/"):
            raise _BadInput('"command" must not be empty')
        update_id = user.send_command(command, self._str(body, "payload"))
        return _ok({"update_id": update_id})

    async def post_contact(self, request: web.Request) -> web.Response:
        user = self._user(request)
        phone = self._str(await self._body(request), "phone_number")
        return _ok({"update_id": user.send_contact(phone)})

    async def post_press(self, request: web.Request) -> web.Response:
        user = self._user(request)
        body = await self._body(request)
        message_id = body.get("message_id")
        if message_id is not None and not isinstance(message_id, int):
            raise _BadInput('"message_id" must be an integer')
        text, data = self._str(body, "text"), self._str(body, "callback_data")
        if text is None and data is None:
            raise _BadInput('"text" or "callback_data" is required')
        update_id = user.press(text, callback_data=data, message_id=message_id)
        return _ok({"update_id": update_id})

    async def post_block(self, request: web.Request) -> web.Response:
        user = self._user(request)
        user.block()
        return _ok(user.to_sandbox())

    async def post_unblock(self, request: web.Request) -> web.Response:
        user = self._user(request)
        user.unblock()
        return _ok(user.to_sandbox())

    async def get_messages(self, request: web.Request) -> web.Response:
        user = self._user(request)
        after = _query_number(request, "after", 0.0)
        timeout = min(max(_query_number(request, "timeout", 0.0), 0.0), MAX_POLL_SECONDS)
        cursor = int(after)
        await self._emu._changed.wait_until(
            lambda: bool(self._emu.chat_events(user.id, cursor)) or self._emu._closing, timeout
        )
        events = self._emu.chat_events(user.id, cursor)
        return _ok(
            {
                "cursor": events[-1].seq if events else cursor,
                "events": [e.to_sandbox() for e in events],
                "reply_keyboard": user.reply_keyboard,
            }
        )

    async def get_toasts(self, request: web.Request) -> web.Response:
        user = self._user(request)
        after = int(_query_number(request, "after", 0.0))
        toasts = [
            {
                "text": t.text,
                "show_alert": t.show_alert,
                "url": t.url,
                "message_id": t.message_id,
            }
            for t in user.toasts[after:]
        ]
        return _ok({"cursor": len(user.toasts), "toasts": toasts})

    async def get_document(self, request: web.Request) -> web.Response:
        user = self._user(request)
        raw = request.match_info["message_id"]
        # Only files the emulator holds, looked up in memory: a name never reaches a disk path.
        message = next(
            (m for m in user.messages if _is_number(raw) and m.message_id == int(raw)), None
        )
        if message is None or message.document is None or message.document_file is None:
            raise _BadInput(f"no document sent by the bot in message {raw} of user {user.id}", 404)
        mime_type = str(message.document.get("mime_type") or "")
        if not _MIME_TYPE.fullmatch(mime_type):
            mime_type = "application/octet-stream"
        name = str(message.document.get("file_name") or "document")
        return web.Response(
            body=message.document_file,
            headers={
                "Content-Type": mime_type,
                "Content-Disposition": _attachment(name),
                # The bot chose the type: the browser must neither guess another nor run it.
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'; sandbox",
                "Cache-Control": "no-store",
            },
        )


def _is_number(raw: str) -> bool:
    # str.isdigit() alone also takes "²" and other digits int() refuses.
    return raw.isascii() and raw.isdigit() and len(raw) <= 18


def _attachment(file_name: str) -> str:
    """Content-Disposition for a download: an ASCII fallback, and the name itself (RFC 6266)."""
    fallback = re.sub(r"[^A-Za-z0-9._ -]", "_", file_name).strip() or "document"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(file_name, safe='')}"


def _query_number(request: web.Request, name: str, default: float) -> float:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise _BadInput(f"{name} must be a number") from None
