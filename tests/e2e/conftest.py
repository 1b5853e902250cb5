"""End-to-end fixtures: the real python-telegram-bot Application, over HTTP, against the emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace

import pytest

from bot.app import TelegramBot, build_bot
from bot.polling import running
from bot.sandbox.emulator import BotApiEmulator, EmulatedUser
from bot.sandbox.models import ChatMessage
from bot.settings import Settings

TOKEN = "123456:TEST-token_for_end_to_end"


@pytest.fixture
async def emulator() -> AsyncIterator[BotApiEmulator]:
    async with BotApiEmulator() as emu:
        yield emu


def settings_for(emulator: BotApiEmulator, database_url: str) -> Settings:
    return Settings(
        telegram_bot_token=TOKEN,
        telegram_api_base_url=emulator.base_url,
        database_url=database_url,
    )


@pytest.fixture
async def bot(emulator: BotApiEmulator, sqlite_url: str) -> AsyncIterator[TelegramBot]:
    async with running(build_bot(settings_for(emulator, sqlite_url))) as running_bot:
        yield running_bot


@dataclass
class Chat:
    """A person in front of the bot: says things, taps buttons, reads what comes back."""

    user: EmulatedUser

    async def says(self, text: str, expect: str | None = None) -> ChatMessage:
        """Types `text`; returns the next bot message (containing `expect`, when given)."""
        self.user.send_text(text)
        return await self.reads(expect)

    async def taps(self, label: str, expect: str | None = None) -> ChatMessage:
        """Presses the newest button containing `label`; returns what the person reads next:
        a new bot message, or the pressed message turned into the next question."""
        full_label = self.button(label)
        live = next(m for m in reversed(self.user.messages) if full_label in m.button_texts)
        # The chat's messages change as they are edited: the pressed one as it was.
        pressed = replace(live)
        self.user.press(full_label, message_id=pressed.message_id)
        return await self.user.wait_for_message(
            lambda m: followed(m, pressed) and (expect is None or expect in (m.text or "")),
            include_edits=True,
        )

    async def toggles(self, label: str) -> ChatMessage:
        """A multi-choice toggle: the keyboard changes in place, no new message."""
        full_label = self.button(label)
        message = next(m for m in reversed(self.user.messages) if full_label in m.button_texts)
        # Earlier edits of this message (it became this question) are not the toggle's.
        self.user.skip_edits()
        self.user.press(full_label, message_id=message.message_id)
        return await self.user.next_edit(message_id=message.message_id)

    async def starts(self, payload: str | None = None, expect: str | None = None) -> ChatMessage:
        self.user.send_command("start", payload)
        return await self.reads(expect)

    async def reads(self, expect: str | None = None) -> ChatMessage:
        if expect is None:
            return await self.user.next_message()
        return await self.user.wait_for_message(lambda m: expect in (m.text or ""))

    def button(self, label: str) -> str:
        """The full label of the newest button containing `label` (marks like ⬜ vary)."""
        for message in reversed(self.user.messages):
            for button in message.buttons:
                if label in button["text"]:
                    return str(button["text"])
        raise AssertionError(f"no button with {label!r}; last message: {self.user.last_message}")


def followed(message: ChatMessage, pressed: ChatMessage) -> bool:
    """A bot message that follows a press: any new one, or the pressed one edited into what
    follows ("✓ <answer>" then the next question; the previous one for "Retour"; the same with
    what was wrong; the summary, its answer, then the thanks); not the pressed one only frozen
    with its answer (its text, then "→ <answer>"), nor only given new buttons (a toggle)."""
    if message.edit_date is None:
        return True
    text, before = message.text or "", pressed.text or ""
    if message.message_id != pressed.message_id:
        return False
    if not text.startswith(before):
        return True
    added = text[len(before) :].strip()
    return bool(added) and "\n\n" in added


@pytest.fixture
def person(emulator: BotApiEmulator) -> Callable[..., Chat]:
    def make(user_id: int = 1001, first_name: str = "Inès", language_code: str = "fr") -> Chat:
        return Chat(emulator.user(user_id, first_name, language_code=language_code))

    return make
