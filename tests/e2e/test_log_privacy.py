"""Logs never carry a person's name, phone or e-mail, an invite token or the bot token, at any level.

A whole sign-up runs with the real application, logging configured the way `mentorat-bot run`
configures it (`configure_logging`), at INFO and at DEBUG; every record any logger emits is kept,
formatted, and searched for what must not be there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.app import build_bot
from bot.cli import LIBRARY_LEVELS, TELEGRAM_LOGGERS, configure_logging
from bot.sandbox.emulator import BotApiEmulator
from conversations.services import coordinators
from tests.e2e.conftest import TOKEN, Chat, running, settings_for
from tests.e2e.test_questionnaire import (
    sign_up_as_17_year_old_in_saint_denis,
    sign_up_as_45_year_old_mentor_in_lyon,
)

MENTEE_PHONE = "+33611223344"
MENTEE_NAME = "Inès"  # what sign_up_as_17_year_old_in_saint_denis types
MENTOR_NAME = "Karim"  # and sign_up_as_45_year_old_mentor_in_lyon
MENTOR_EMAIL = "karim.b@example.org"
COORDINATOR_NAME = "Eulalie"
# The 17-year-old of Saint-Denis goes to Proxité (sample catalogue): its coordinator gets the card.
ASSOCIATION = "proxite"


class Everything(logging.Handler):
    """Keeps every record that reaches the root logger, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def captured() -> Iterator[Everything]:
    """A handler on the root logger; afterwards, logging as it was before the test."""
    root = logging.getLogger()
    names = [*LIBRARY_LEVELS, *TELEGRAM_LOGGERS]
    before = (
        root.level,
        list(root.handlers),
        {name: logging.getLogger(name).level for name in names},
        {name: list(logging.getLogger(name).filters) for name in names},
    )
    handler = Everything()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        level, handlers, levels, filters = before
        root.setLevel(level)
        for extra in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(extra)
        for name in names:
            logging.getLogger(name).setLevel(levels[name])
            logging.getLogger(name).filters[:] = filters[name]


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
async def test_a_whole_sign_up_logs_no_name_phone_email_or_token(
    emulator: BotApiEmulator, sqlite_url: str, captured: Everything, level: str
) -> None:
    configure_logging(level)
    async with running(build_bot(settings_for(emulator, sqlite_url))) as bot:
        async with bot.services.unit_of_work() as uow:
            invitation = await coordinators.invite(
                uow, ASSOCIATION, datetime.now(UTC), timedelta(days=7)
            )
            await uow.commit()
        coordinator = Chat(emulator.user(900_101, COORDINATOR_NAME))
        await coordinator.starts(invitation.token, expect="coordinateur")
        await coordinator.taps("Oui, je rejoins", expect="Bienvenue")

        mentee = Chat(emulator.user(900_102, MENTEE_NAME))
        mentee.user.phone_number = MENTEE_PHONE
        await sign_up_as_17_year_old_in_saint_denis(mentee)
        await mentee.taps("C'est bon", expect="Merci")
        card = await coordinator.reads(expect="Nouveau contact")
        assert MENTEE_NAME in (card.text or "")

        mentor = Chat(emulator.user(900_103, MENTOR_NAME))
        await sign_up_as_45_year_old_mentor_in_lyon(mentor)
        await mentor.taps("C'est bon", expect="Merci")

        # The test would prove nothing if the level asked for were not the one in force.
        logging.getLogger("bot.probe").debug("probe at DEBUG")
    assert "conversation started" in "\n".join(captured.lines)
    assert ("DEBUG bot.probe: probe at DEBUG" in captured.lines) == (level == "DEBUG")
    secrets = {
        "a first name": [MENTEE_NAME, MENTOR_NAME, COORDINATOR_NAME],
        "a phone": [MENTEE_PHONE, MENTEE_PHONE[3:], "06 11 22 33 44", "6 11 22 33 44"],
        "an e-mail": [MENTOR_EMAIL],
        "the invite token": [invitation.token, invitation.token.removeprefix("join-")],
        "the bot token": [TOKEN, TOKEN.split(":", 1)[1]],
    }
    leaks = {
        what: [line for line in captured.lines if any(value in line for value in values)]
        for what, values in secrets.items()
    }
    assert leaks == {what: [] for what in secrets}
