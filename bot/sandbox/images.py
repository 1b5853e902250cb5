"""What the emulator needs to know of an uploaded picture: is it one, and how big, from its header.

Telegram decodes every photo it is sent and refuses what it cannot (IMAGE_PROCESS_FAILED); reading
the header of the formats it takes for photos (JPEG, PNG, GIF, WebP) is enough to tell a picture
from a file that is none, and gives the width and height its PhotoSize objects report.
"""

from __future__ import annotations

from dataclasses import dataclass

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (they hold the size); C4, C8 and CC are other segments.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers that stand alone, without a length.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})


@dataclass(frozen=True)
class ImageSize:
    format: str
    width: int
    height: int


def image_size(data: bytes) -> ImageSize | None:
    """The format and size of a PNG, JPEG, GIF or WebP picture; None for anything else."""
    for read in (_png, _jpeg, _gif, _webp):
        found = read(data)
        if found is not None:
            return found if found.width > 0 and found.height > 0 else None
    return None


def _png(data: bytes) -> ImageSize | None:
    if not data.startswith(PNG_SIGNATURE) or len(data) < 24 or data[12:16] != b"IHDR":
        return None
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    return ImageSize("png", width, height)


def _jpeg(data: bytes) -> ImageSize | None:
    if not data.startswith(b"\xff\xd8"):
        return None
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte before a marker
            at += 1
            continue
        if marker in _STANDALONE:
            at += 2
            continue
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        if length < 2:
            return None
        if marker in _SOF:
            if at + 9 > len(data):
                return None
            height = int.from_bytes(data[at + 5 : at + 7], "big")
            width = int.from_bytes(data[at + 7 : at + 9], "big")
            return ImageSize("jpeg", width, height)
        if marker == 0xDA:  # start of scan before any frame header: not a picture we can read
            return None
        at += 2 + length
    return None


def _gif(data: bytes) -> ImageSize | None:
    if data[:6] not in (b"GIF87a", b"GIF89a") or len(data) < 10:
        return None
    width = int.from_bytes(data[6:8], "little")
    height = int.from_bytes(data[8:10], "little")
    return ImageSize("gif", width, height)


def _webp(data: bytes) -> ImageSize | None:
    if len(data) < 30 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
    elif chunk == b"VP8L":
        if data[20] != 0x2F:
            return None
        bits = int.from_bytes(data[21:25], "little")
        width = 1 + (bits & 0x3FFF)
        height = 1 + ((bits >> 14) & 0x3FFF)
    elif chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            return None
        width = int.from_bytes(data[26:28], "little") & 0x3FFF
        height = int.from_bytes(data[28:30], "little") & 0x3FFF
    else:
        return None
    return ImageSize("webp", width, height)
