"""A person who signs up again while their first request is open: replace it, or keep it."""

from __future__ import annotations

from collections.abc import Callable

from bot.app import TelegramBot
from bot.sandbox.emulator import BotApiEmulator
from tests.e2e.conftest import Chat
from tests.e2e.test_handoff import (  # noqa: F401
    FIRST,
    app,
    card_of,
    clock,
    complete_sign_up,
    handoffs_in_db,
    join,
)


async def test_a_second_sign_up_offers_to_replace_the_first_and_its_association_is_told(
    app: TelegramBot,  # noqa: F811
    emulator: BotApiEmulator,
    person: Callable[..., Chat],
) -> None:
    camille = await join(app, emulator, 900001, "Camille", FIRST)
    young = await complete_sign_up(person)
    card = await card_of(camille)

    await young.starts(None)
    offer = await young.taps("Je cherche un·e mentor·e", expect="déjà une demande en cours")
    assert "Oui, la remplacer" in offer.button_texts
    assert "Non, la garder" in offer.button_texts
    first = await young.taps("Oui, la remplacer", expect="prénom")
    assert "Question 1 ·" in (first.text or "")

    # Camille's card no longer has buttons and says why; she is told in a message too.
    edited = await camille.user.next_edit(message_id=card.message_id)
    assert "nouvelle demande" in (edited.text or "")
    assert edited.button_texts == []
    notice = await camille.reads(expect="n'avez plus à la contacter")
    assert "Inès" not in (notice.text or "")
    assert [h.status for h in await handoffs_in_db(app)] == ["withdrawn"]


async def test_keeping_the_first_request_leaves_it_with_its_association(
    app: TelegramBot,  # noqa: F811
    emulator: BotApiEmulator,
    person: Callable[..., Chat],
) -> None:
    camille = await join(app, emulator, 900001, "Camille", FIRST)
    young = await complete_sign_up(person)
    await card_of(camille)

    await young.starts(None)
    await young.taps("Je cherche un·e mentor·e", expect="déjà une demande en cours")
    kept = await young.taps("Non, la garder", expect="continue")
    assert "/start" in (kept.text or "")
    assert [h.status for h in await handoffs_in_db(app)] in (["proposed"], ["delivered"])
