"""Telegram text formatting for the Bot API emulator: the HTML parser, entity checks, rendering.

The HTML parser follows tdlib's (MessageEntity.cpp) byte-level algorithm so that error descriptions
and UTF-16 offsets match what the real Bot API returns. MarkdownV2 and legacy Markdown are not
ported: the bot only sends parse_mode=HTML, and the emulator refuses the other modes.
"""

from __future__ import annotations

import html
import itertools
import re
from dataclasses import dataclass
from typing import Any

JSONDict = dict[str, Any]

MAX_MESSAGE_LENGTH = 4096

ENTITY_TYPES = frozenset(
    {
        "mention",
        "hashtag",
        "cashtag",
        "bot_command",
        "url",
        "email",
        "phone_number",
        "bold",
        "italic",
        "underline",
        "strikethrough",
        "spoiler",
        "blockquote",
        "expandable_blockquote",
        "code",
        "pre",
        "text_link",
        "text_mention",
        "custom_emoji",
        "date_time",
    }
)

_HTML_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "s",
        "strike",
        "del",
        "u",
        "ins",
        "tg-spoiler",
        "tg-emoji",
        "span",
        "pre",
        "code",
        "blockquote",
    }
)

# tdlib treats NUL as whitespace, which is how its C-string scanners stop at the end of the text.
_SPACES = frozenset(b" \t\r\n\v\f\x00")

_STRIP_CHARS = " \t\r\n\v\f"


class EntityParseError(ValueError):
    """The text cannot be parsed; str(self) is tdlib's message (without the Bot API prefix)."""


class EntityValidationError(ValueError):
    """An explicit `entities` array is invalid; str(self) is the full Bot API description."""


@dataclass(frozen=True)
class FormattedText:
    text: str
    entities: list[JSONDict]


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _utf16_units(c: int) -> int:
    """UTF-16 units contributed by a UTF-8 byte (0 for continuation bytes)."""
    if c & 0xC0 == 0x80:
        return 0
    return 2 if c >= 0xF0 else 1


def _is_space(c: int) -> bool:
    return c in _SPACES


def _is_alnum(c: int) -> bool:
    return 0x30 <= c <= 0x39 or 0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A


def _is_alpha(c: int) -> bool:
    return 0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A


class _Bytes:
    """A byte string that, like a C string, reads as NUL past its end."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)

    def __getitem__(self, i: int) -> int:
        return self.data[i] if i < self.size else 0


def _decode_html_entity(text: _Bytes, pos: int) -> tuple[int, int]:
    """Returns (code point, position after the reference), or (0, pos) if it is not one."""
    end = pos + 1
    code = 0
    if text[pos + 1] == ord("#"):
        end += 1
        if text[pos + 2] == ord("x"):
            end += 1
            while chr(text[end]) in "0123456789abcdefABCDEF" and text[end] != 0:
                code = code * 16 + int(chr(text[end]), 16)
                end += 1
        else:
            while 0x30 <= text[end] <= 0x39:
                code = code * 10 + text[end] - 0x30
                end += 1
        if code == 0 or code >= 0x10FFFF or end - pos >= 10:
            return 0, pos
    else:
        while _is_alpha(text[end]):
            end += 1
        name = text.data[pos + 1 : end]
        code = {b"lt": 0x3C, b"gt": 0x3E, b"amp": 0x26, b"quot": 0x22}.get(name, 0)
        if code == 0:
            return 0, pos
    if text[end] == ord(";"):
        end += 1
    return code, end


def _encode_code_point(code: int) -> bytes:
    return chr(code).encode("utf-8", "surrogatepass")


@dataclass
class _OpenTag:
    name: str
    argument: str
    utf16_offset: int
    result_pos: int
    expandable: bool = False


def parse_html(source: str, *, strict_ampersand: bool = True) -> FormattedText:
    """Parses Bot API HTML like tdlib does; raises EntityParseError with tdlib's message.

    tdlib keeps a `&` that starts no known reference as a literal character; with
    strict_ampersand (the default) the emulator refuses it instead, as the Bot API documentation
    requires escaping every `&`, so the bot cannot rely on that leniency.
    """
    text = _Bytes(source.encode("utf-8"))
    out = bytearray()
    utf16 = 0
    stack: list[_OpenTag] = []
    entities: list[JSONDict] = []
    i = 0
    while i < text.size:
        c = text[i]
        if c == ord("&"):
            code, end = _decode_html_entity(text, i)
            if code:
                out += _encode_code_point(code)
                utf16 += 2 if code > 0xFFFF else 1
                i = end
                continue
            if strict_ampersand:
                raise EntityParseError(
                    f'Unescaped "&" at byte offset {i}: write &amp; '
                    "(sandbox rule, the Bot API documentation requires it)"
                )
        if c != ord("<"):
            utf16 += _utf16_units(c)
            out.append(c)
            i += 1
            continue

        begin = i
        i += 1
        if text[i] != ord("/"):
            while not _is_space(text[i]) and text[i] != ord(">"):
                i += 1
            if text[i] == 0:
                raise EntityParseError(f"Unclosed start tag at byte offset {begin}")
            tag = text.data[begin + 1 : i].decode("utf-8", "replace").lower()
            if tag not in _HTML_TAGS:
                raise EntityParseError(f'Unsupported start tag "{tag}" at byte offset {begin}')
            argument = ""
            expandable = False
            while text[i] != ord(">"):
                while text[i] != 0 and _is_space(text[i]):
                    i += 1
                if text[i] == ord(">"):
                    break
                attr_begin = i
                while not _is_space(text[i]) and text[i] not in (ord("="), ord(">")):
                    i += 1
                attr_name = text.data[attr_begin:i].decode("utf-8", "replace")
                if not attr_name:
                    raise EntityParseError(
                        f'Empty attribute name in the tag "{tag}" at byte offset {begin}'
                    )
                while text[i] != 0 and _is_space(text[i]):
                    i += 1
                if text[i] != ord("="):
                    if tag == "blockquote" and attr_name.lower() == "expandable":
                        expandable = True
                        continue
                    if text[i] == 0:
                        raise EntityParseError(f'Unclosed start tag "{tag}" at byte offset {begin}')
                    raise EntityParseError(
                        "Expected equal sign in declaration of an attribute of the tag "
                        f'"{tag}" at byte offset {begin}'
                    )
                i += 1
                while text[i] != 0 and _is_space(text[i]):
                    i += 1
                if text[i] == 0:
                    raise EntityParseError(f'Unclosed start tag "{tag}" at byte offset {begin}')
                value = bytearray()
                if text[i] not in (ord("'"), ord('"')):
                    token_begin = i
                    while _is_alnum(text[i]) or text[i] in (ord("."), ord("-")):
                        i += 1
                    value += text.data[token_begin:i].lower()
                    if not _is_space(text[i]) and text[i] != ord(">"):
                        raise EntityParseError(
                            f"Unexpected end of name token at byte offset {token_begin}"
                        )
                else:
                    quote = text[i]
                    i += 1
                    while text[i] != quote and text[i] != 0:
                        if text[i] == ord("&"):
                            code, end = _decode_html_entity(text, i)
                            if code:
                                value += _encode_code_point(code)
                                i = end
                                continue
                        value.append(text[i])
                        i += 1
                    if text[i] == quote:
                        i += 1
                if text[i] == 0:
                    raise EntityParseError(f"Unclosed start tag at byte offset {begin}")
                attr_value = value.decode("utf-8", "replace")
                attr = attr_name.lower()
                if tag == "a" and attr == "href":
                    argument = attr_value
                elif tag == "code" and attr == "class" and attr_value.startswith("language-"):
                    argument = attr_value[len("language-") :]
                elif tag == "span" and attr == "class" and attr_value.startswith("tg-"):
                    argument = attr_value[len("tg-") :]
                elif tag == "tg-emoji" and attr == "emoji-id":
                    argument = attr_value
                elif tag == "blockquote" and attr == "expandable":
                    expandable = True
            if tag == "span" and argument != "spoiler":
                raise EntityParseError(
                    f'Tag "span" must have class "tg-spoiler" at byte offset {begin}'
                )
            stack.append(_OpenTag(tag, argument, utf16, len(out), expandable))
            i += 1
            continue

        if not stack:
            raise EntityParseError(f"Unexpected end tag at byte offset {begin}")
        while not _is_space(text[i]) and text[i] != ord(">"):
            i += 1
        end_tag = text.data[begin + 2 : i].decode("utf-8", "replace").lower()
        while _is_space(text[i]) and text[i] != 0:
            i += 1
        if text[i] != ord(">"):
            raise EntityParseError(f"Unclosed end tag at byte offset {begin}")
        top = stack[-1]
        if end_tag and end_tag != top.name:
            raise EntityParseError(
                f'Unmatched end tag at byte offset {begin}, expected "</{top.name}>", '
                f'found "</{end_tag}>"'
            )
        i += 1
        if utf16 > top.utf16_offset:
            entity = _html_entity(top, utf16, bytes(out[top.result_pos :]), entities)
            if entity is not None:
                entities.append(entity)
        stack.pop()
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"')
    try:
        plain = out.decode("utf-8")
    except UnicodeDecodeError:
        raise EntityParseError(
            "Text contains invalid Unicode characters after decoding HTML entities, check for "
            "unmatched surrogate code units"
        ) from None
    return FormattedText(plain, sort_entities(entities))


def _html_entity(
    tag: _OpenTag, utf16_end: int, inner: bytes, entities: list[JSONDict]
) -> JSONDict | None:
    offset, length = tag.utf16_offset, utf16_end - tag.utf16_offset
    simple = {
        "b": "bold",
        "strong": "bold",
        "i": "italic",
        "em": "italic",
        "s": "strikethrough",
        "strike": "strikethrough",
        "del": "strikethrough",
        "u": "underline",
        "ins": "underline",
        "tg-spoiler": "spoiler",
        "span": "spoiler",
    }
    if tag.name in simple:
        return {"type": simple[tag.name], "offset": offset, "length": length}
    if tag.name == "tg-emoji":
        if not tag.argument.isdigit() or not 0 < int(tag.argument) < 2**63:
            raise EntityParseError("Invalid custom emoji identifier specified")
        return {
            "type": "custom_emoji",
            "offset": offset,
            "length": length,
            "custom_emoji_id": tag.argument,
        }
    if tag.name == "a":
        url = tag.argument or inner.decode("utf-8", "replace")
        checked = checked_link(url)
        if checked is None:
            # tdlib silently drops links it cannot accept instead of failing the message.
            return None
        return {"type": "text_link", "offset": offset, "length": length, "url": checked}
    if tag.name == "blockquote":
        kind = "expandable_blockquote" if tag.expandable else "blockquote"
        return {"type": kind, "offset": offset, "length": length}
    same_span = [e for e in entities[-1:] if e["offset"] == offset and e["length"] == length]
    if tag.name == "pre":
        if same_span and same_span[0]["type"] == "code" and same_span[0].get("language"):
            same_span[0]["type"] = "pre"
            return None
        return {"type": "pre", "offset": offset, "length": length}
    # tag.name == "code"
    if same_span and same_span[0]["type"] == "pre" and tag.argument:
        same_span[0]["language"] = tag.argument
        return None
    entity: JSONDict = {"type": "code", "offset": offset, "length": length}
    if tag.argument:
        # Kept only until the enclosing <pre> claims it; a bare <code> has no language.
        entity["language"] = tag.argument
    return entity


_ENTITY_PRIORITY = {
    "blockquote": 0,
    "expandable_blockquote": 0,
    "pre": 1,
    "code": 2,
    "text_link": 3,
    "text_mention": 3,
    "bold": 4,
    "italic": 5,
    "underline": 6,
    "strikethrough": 7,
    "spoiler": 8,
    "custom_emoji": 9,
}


def sort_entities(entities: list[JSONDict]) -> list[JSONDict]:
    """Orders entities as Telegram returns them: by offset, then longest first."""
    return sorted(
        entities,
        key=lambda e: (e["offset"], -e["length"], _ENTITY_PRIORITY.get(e["type"], 10)),
    )


_HOST_RE = re.compile(r"^[A-Za-z0-9\-._~%!$&'()*+,;=\u0080-\uffff]+$")


def check_url(url: str, *, allow_tg: bool = True) -> str | None:
    """Returns None if Telegram would accept the link, else its reason ("Wrong HTTP URL", ...)."""
    scheme_match = re.match(r"^([A-Za-z][A-Za-z0-9+.\-]*):", url)
    rest = url
    if scheme_match is not None and (
        "://" in url or scheme_match.group(1).lower() in ("tg", "ton", "mailto")
    ):
        scheme = scheme_match.group(1).lower()
        if scheme in ("tg", "ton", "tonsite"):
            return None if allow_tg else "Unsupported URL protocol"
        if scheme not in ("http", "https"):
            return "Unsupported URL protocol"
        rest = url[len(scheme) + 1 :].lstrip("/")
    host = re.split(r"[/?#]", rest, maxsplit=1)[0]
    host = host.rsplit("@", 1)[-1]
    host = re.sub(r":\d*$", "", host)
    if not host:
        return "URL host is empty"
    if not _HOST_RE.match(host) or "." not in host.strip("."):
        return "Wrong HTTP URL"
    tld = host.rstrip(".").rsplit(".", 1)[-1]
    if not (tld.isalpha() or tld.isdigit() or tld.startswith("xn--")):
        return "Wrong HTTP URL"
    return None


def checked_link(url: str) -> str | None:
    """The link as Telegram stores it, or None if it would be dropped."""
    url = url.strip()
    if check_url(url) is not None:
        return None
    if "://" not in url and not re.match(r"^(tg|ton):", url, re.IGNORECASE):
        return "http://" + url
    return url


def strip_formatted(text: str, entities: list[JSONDict]) -> FormattedText:
    """Trims leading/trailing whitespace as Telegram does, clipping entities to what remains."""
    stripped_start = text[: len(text) - len(text.lstrip(_STRIP_CHARS))]
    body = text.strip(_STRIP_CHARS)
    shift = utf16_len(stripped_start)
    limit = utf16_len(body)
    result: list[JSONDict] = []
    for entity in entities:
        start = max(entity["offset"] - shift, 0)
        end = min(entity["offset"] + entity["length"] - shift, limit)
        if end > start:
            result.append({**entity, "offset": start, "length": end - start})
    return FormattedText(body, sort_entities(result))


# Telegram finds the links in a text a bot sends and gives the message "url" entities for them;
# this emulator finds the plain http(s) ones that no other entity covers.
_PLAIN_URL = re.compile(r"https?://[^\s<>\"]+")
_URL_TRAILER = ".,;:!?)»"


def with_detected_links(formatted: FormattedText) -> FormattedText:
    text, entities = formatted.text, formatted.entities
    found: list[JSONDict] = []
    for match in _PLAIN_URL.finditer(text):
        url = match.group(0).rstrip(_URL_TRAILER)
        start, length = utf16_len(text[: match.start()]), utf16_len(url)
        if any(
            e["offset"] < start + length and start < e["offset"] + e["length"] for e in entities
        ):
            continue
        found.append({"type": "url", "offset": start, "length": length})
    if not found:
        return formatted
    return FormattedText(text, sort_entities([*entities, *found]))


def validate_entities(text: str, raw: Any) -> list[JSONDict]:
    """Checks an explicit `entities` parameter; raises EntityValidationError like the Bot API."""
    if not isinstance(raw, list):
        raise EntityValidationError("Bad Request: can't parse entities JSON object")
    size = utf16_len(text)
    result: list[JSONDict] = []
    for item in raw:
        if not isinstance(item, dict):
            raise EntityValidationError(
                "Bad Request: can't parse MessageEntity: expected an Object"
            )
        kind = item.get("type")
        if not isinstance(kind, str):
            raise EntityValidationError(
                "Bad Request: can't parse MessageEntity: Can't find field \"type\""
            )
        if kind not in ENTITY_TYPES:
            raise EntityValidationError(
                "Bad Request: can't parse MessageEntity: Unsupported type specified"
            )
        offset, length = item.get("offset"), item.get("length")
        if not isinstance(offset, int) or isinstance(offset, bool):
            raise EntityValidationError(
                "Bad Request: can't parse MessageEntity: Can't find field \"offset\""
            )
        if not isinstance(length, int) or isinstance(length, bool):
            raise EntityValidationError(
                "Bad Request: can't parse MessageEntity: Can't find field \"length\""
            )
        if offset < 0:
            raise EntityValidationError(
                f"Bad Request: receive an entity with incorrect offset {offset}"
            )
        if length < 0:
            raise EntityValidationError(
                f"Bad Request: receive an entity with incorrect length {length}"
            )
        if offset > size:
            raise EntityValidationError(
                f"Bad Request: entity begins after the end of the text at UTF-16 offset {offset}"
            )
        if offset + length > size:
            raise EntityValidationError(
                f"Bad Request: entity beginning at UTF-16 offset {offset} ends after the end of "
                f"the text at UTF-16 offset {offset + length}"
            )
        entity: JSONDict = {"type": kind, "offset": offset, "length": length}
        if kind == "text_link":
            url = item.get("url")
            if not isinstance(url, str):
                raise EntityValidationError(
                    "Bad Request: can't parse MessageEntity: Can't find field \"url\""
                )
            reason = check_url(url)
            if reason is not None:
                raise EntityValidationError(f"Bad Request: entity URL '{url}' is invalid: {reason}")
            entity["url"] = url
        elif kind == "text_mention":
            user = item.get("user")
            if not isinstance(user, dict):
                raise EntityValidationError(
                    "Bad Request: can't parse MessageEntity: Can't find field \"user\""
                )
            entity["user"] = user
        elif kind == "custom_emoji":
            emoji_id = item.get("custom_emoji_id")
            if emoji_id is None:
                raise EntityValidationError(
                    "Bad Request: can't parse MessageEntity: Can't find field \"custom_emoji_id\""
                )
            if not str(emoji_id).isdigit() or not 0 < int(str(emoji_id)) < 2**63:
                raise EntityValidationError(
                    'Bad Request: can\'t parse MessageEntity: Field "custom_emoji_id" must be a '
                    "valid Number"
                )
            entity["custom_emoji_id"] = str(emoji_id)
        elif kind == "pre" and isinstance(item.get("language"), str) and item["language"]:
            entity["language"] = item["language"]
        if length > 0:
            result.append(entity)
    return sort_entities(result)


def render_html(text: str, entities: list[JSONDict]) -> str:
    """Safe HTML for a browser view of a message: escaped text with its entities as tags."""
    units = text.encode("utf-16-le")
    boundaries: set[int] = {0, len(units) // 2}
    for entity in entities:
        boundaries.update((entity["offset"], entity["offset"] + entity["length"]))
    points = sorted(b for b in boundaries if 0 <= b <= len(units) // 2)
    parts: list[str] = []
    for start, end in itertools.pairwise(points):
        chunk = units[start * 2 : end * 2].decode("utf-16-le", "replace")
        piece = html.escape(chunk, quote=False)
        # Innermost last: shorter entities nest inside longer ones covering the same chunk.
        covering = [
            e
            for e in sort_entities(entities)
            if e["offset"] <= start and end <= e["offset"] + e["length"]
        ]
        for entity in reversed(covering):
            piece = _wrap(entity, piece)
        parts.append(piece)
    return "".join(parts)


def _wrap(entity: JSONDict, inner: str) -> str:
    kind = entity["type"]
    tags = {
        "bold": "b",
        "italic": "i",
        "underline": "u",
        "strikethrough": "s",
        "spoiler": "tg-spoiler",
        "code": "code",
        "blockquote": "blockquote",
    }
    if kind in tags:
        return f"<{tags[kind]}>{inner}</{tags[kind]}>"
    if kind == "expandable_blockquote":
        return f"<blockquote expandable>{inner}</blockquote>"
    if kind == "pre":
        language = entity.get("language")
        if language:
            lang = html.escape(str(language))
            return f'<pre><code class="language-{lang}">{inner}</code></pre>'
        return f"<pre>{inner}</pre>"
    if kind == "text_link":
        return f'<a href="{html.escape(str(entity["url"]))}">{inner}</a>'
    if kind == "url":
        # The link is its own text (escaped already; no quote can be in it).
        return f'<a href="{inner}">{inner}</a>'
    return inner
