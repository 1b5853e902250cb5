"""Validation of `reply_markup` for the Bot API emulator, with the Bot API's error descriptions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from bot.sandbox.formatting import check_url

JSONDict = dict[str, Any]

MarkupKind = Literal["inline", "reply", "remove", "force_reply"]

INLINE_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
REPLY_REQUESTS = (
    "request_contact",
    "request_location",
    "request_poll",
    "request_users",
    "request_chat",
    "web_app",
)
MAX_CALLBACK_DATA_BYTES = 64
MAX_BUTTONS = 100


class MarkupError(ValueError):
    """str(self) is the full Bot API description."""


@dataclass(frozen=True)
class ReplyMarkup:
    kind: MarkupKind
    data: JSONDict


def _require_bool(obj: JSONDict, field: str, prefix: str = "") -> None:
    if field in obj and not isinstance(obj[field], bool):
        raise MarkupError(f'Bad Request: {prefix}field "{field}" must be of type Boolean')


def parse_reply_markup(raw: Any) -> ReplyMarkup | None:
    """Validates a decoded reply_markup; None when the object is of no known kind (ignored)."""
    if not isinstance(raw, dict):
        raise MarkupError("Bad Request: can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in raw:
        return ReplyMarkup("inline", _inline(raw))
    if "keyboard" in raw:
        return ReplyMarkup("reply", _reply(raw))
    if "remove_keyboard" in raw or "hide_keyboard" in raw:
        _require_bool(raw, "remove_keyboard")
        _require_bool(raw, "selective")
        return ReplyMarkup("remove", dict(raw))
    if "force_reply" in raw:
        _require_bool(raw, "force_reply")
        _require_bool(raw, "selective")
        return ReplyMarkup("force_reply", dict(raw))
    # The Bot API ignores an object that is none of the four markups.
    return None


def _inline(raw: JSONDict) -> JSONDict:
    rows = raw["inline_keyboard"]
    if not isinstance(rows, list):
        raise MarkupError('Bad Request: field "inline_keyboard" must be of type Array')
    count = 0
    result: list[list[JSONDict]] = []
    for row in rows:
        if not isinstance(row, list):
            raise MarkupError('Bad Request: field "inline_keyboard" must be an Array of Arrays')
        checked_row: list[JSONDict] = []
        for button in row:
            checked_row.append(_inline_button(button))
            count += 1
        result.append(checked_row)
    if count > MAX_BUTTONS:
        raise MarkupError("Bad Request: reply markup is too long")
    return {"inline_keyboard": result}


def _inline_button(button: Any) -> JSONDict:
    prefix = "Bad Request: can't parse inline keyboard button: "
    if not isinstance(button, dict):
        raise MarkupError(prefix + "InlineKeyboardButton must be an Object")
    if "text" not in button:
        raise MarkupError(prefix + 'Can\'t find field "text"')
    text = button["text"]
    if not isinstance(text, str):
        raise MarkupError(prefix + 'Field "text" must be of type String')
    if not text.strip():
        # Telegram's server answers an empty label with this code.
        raise MarkupError("Bad Request: BUTTON_TEXT_INVALID")
    actions = [
        name
        for name in INLINE_ACTIONS
        if name in button and button[name] is not None and button[name] != ""
    ]
    if not actions:
        raise MarkupError(prefix + "Text buttons are unallowed in the inline keyboard")
    if len(actions) > 1:
        # The Bot API silently keeps one of them; refusing makes the ambiguity visible.
        raise MarkupError(
            prefix + f"exactly one of the optional fields must be used, got {', '.join(actions)}"
        )
    action = actions[0]
    value = button[action]
    if action == "callback_data":
        if not isinstance(value, str):
            raise MarkupError(prefix + 'Field "callback_data" must be of type String')
        if len(value.encode("utf-8")) > MAX_CALLBACK_DATA_BYTES:
            raise MarkupError("Bad Request: BUTTON_DATA_INVALID")
    elif action == "url":
        if not isinstance(value, str):
            raise MarkupError(prefix + 'Field "url" must be of type String')
        reason = check_url(value)
        if reason is not None:
            raise MarkupError(
                f"Bad Request: inline keyboard button URL '{value}' is invalid: {reason}"
            )
    elif action == "web_app":
        url = value.get("url") if isinstance(value, dict) else None
        if not isinstance(url, str):
            raise MarkupError(prefix + 'Can\'t find field "url"')
        if not url.lower().startswith("https://") or check_url(url) is not None:
            raise MarkupError(
                f"Bad Request: inline keyboard button Web App URL '{url}' is invalid: "
                "Only HTTPS links are allowed"
            )
    elif action in ("pay", "callback_game"):
        # Only valid on invoice and game messages, which the emulator does not send.
        raise MarkupError("Bad Request: BUTTON_TYPE_INVALID")
    elif action == "copy_text":
        copied = value.get("text") if isinstance(value, dict) else None
        if not isinstance(copied, str) or not 1 <= len(copied) <= 256:
            raise MarkupError("Bad Request: BUTTON_COPY_TEXT_INVALID")
    return {"text": text, action: value}


def _reply(raw: JSONDict) -> JSONDict:
    rows = raw["keyboard"]
    if not isinstance(rows, list):
        raise MarkupError('Bad Request: field "keyboard" must be of type Array')
    for field in ("resize_keyboard", "one_time_keyboard", "selective", "is_persistent"):
        _require_bool(raw, field)
    prefix = "Bad Request: can't parse keyboard button: "
    result: list[list[JSONDict]] = []
    count = 0
    for row in rows:
        if not isinstance(row, list):
            raise MarkupError('Bad Request: field "keyboard" must be an Array of Arrays')
        checked_row: list[JSONDict] = []
        for button in row:
            count += 1
            if isinstance(button, str):
                button = {"text": button}
            if not isinstance(button, dict):
                raise MarkupError(prefix + "KeyboardButton must be a String or an Object")
            text = button.get("text")
            if text is None:
                raise MarkupError(prefix + 'Can\'t find field "text"')
            if not isinstance(text, str):
                raise MarkupError(prefix + 'Field "text" must be of type String')
            if not text.strip():
                raise MarkupError("Bad Request: BUTTON_TEXT_INVALID")
            for field in ("request_contact", "request_location"):
                if field in button and not isinstance(button[field], bool):
                    raise MarkupError(prefix + f'Field "{field}" must be of type Boolean')
            requests = [name for name in REPLY_REQUESTS if button.get(name)]
            if len(requests) > 1:
                raise MarkupError(
                    prefix + f"exactly one of the optional fields must be used, got "
                    f"{', '.join(requests)}"
                )
            checked_row.append(dict(button))
        result.append(checked_row)
    if count == 0:
        # An empty reply keyboard would leave the user without any input on some clients.
        raise MarkupError("Bad Request: keyboard must be non-empty")
    if count > 300:
        raise MarkupError("Bad Request: reply markup is too long")
    return {**raw, "keyboard": result}
