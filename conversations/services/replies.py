"""What a use-case answers the person in front of the chat: plain screens the edge renders."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

from conversations.engine import Echo
from conversations.entities import Person
from conversations.model import Ask, Summary
from conversations.ports import CardButton
from conversations.services.actions import Action
from conversations.services.stats import FlowFunnel
from conversations.text import Text


@dataclass(frozen=True)
class Button:
    label: Text
    action: Action


@dataclass(frozen=True)
class Notice:
    """A message that is not a question: a welcome, a thank-you, help, a confirmation."""

    text: Text
    buttons: tuple[Button, ...] = ()
    # Meant to be forwarded as it is (a parent's link): never joined to another message, whose
    # text would go with it.
    to_forward: bool = False


@dataclass(frozen=True)
class Chart:
    """A flow's funnel, drawn by the edge and sent as a picture with a short caption."""

    funnel: FlowFunnel
    title: Text
    caption: Text


@dataclass(frozen=True)
class Document:
    """A file sent in the chat (the person's data, as JSON): its name, its bytes, a caption."""

    filename: str
    content: bytes
    caption: Text


Screen: TypeAlias = Ask | Summary | Notice | Chart | Document


@dataclass(frozen=True)
class CardKeyboard:
    """New buttons for the pressed contact card (decline reasons, or its own buttons back)."""

    handoff_id: int
    buttons: tuple[CardButton, ...]


@dataclass(frozen=True)
class Reply:
    """What the person sees after one update."""

    language: str
    screens: tuple[Screen, ...] = ()
    toast: Text | None = None
    # The answer a pressed button gave, shown on that message in place of its keyboard.
    echo: Echo = None
    # The pressed message is the summary that was sent: it becomes this record of it (what
    # was sent, not what that copy showed), its answer, then what follows (or what follows
    # comes in a message of its own); never only what follows.
    record: Summary | None = None
    # The press was on the screen the person is at, which this reply moves on from: the
    # pressed message may become the reply's screen (under the echo, if any).
    replaces_pressed: bool = False
    # A new keyboard for the pressed message (multi-choice toggles).
    in_place: Ask | None = None
    # The step just answered was a phone number: the "share my number" keyboard must go.
    close_reply_keyboard: bool = False
    # A coordinator's press changes the buttons of the card they pressed.
    card_keyboard: CardKeyboard | None = None
    duplicate: bool = False
    # "tu" or "vous": how the texts the edge adds (help, errors, the summary) speak to them.
    address: str = "vous"


@dataclass(frozen=True)
class Sender:
    """Who sent an update, and which one: the plain values a use-case needs."""

    update_id: int
    telegram_id: int
    chat_id: int
    telegram_language: str | None
    now: datetime
    # Kept only when the person joins as a coordinator (shown to colleagues and to contacts).
    first_name: str = ""
    # The bot's @username, for the t.me links it hands out (a parent's confirmation link).
    bot_username: str = ""


def address_of(person: Person | None) -> str:
    """How a person is spoken to: as their questionnaire did, "vous" before they chose one."""
    if person is not None and person.address in ("tu", "vous"):
        return person.address
    return "vous"
