"""Handoffs end to end: coordinators join, receive each contact at once, take or decline it."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from bot.app import TelegramBot, build_bot
from bot.sandbox.emulator import BotApiEmulator, EmulatedUser
from conversations.entities import Handoff
from conversations.ports import UnitOfWorkFactory
from conversations.services import coordinators, handoffs, privacy
from storage.tables import handoffs as handoffs_table
from tests.e2e.conftest import Chat, running, settings_for
from tests.e2e.test_questionnaire import sign_up_as_17_year_old_in_saint_denis

# The 17-year-old of Saint-Denis goes to Proxité first, then to JobIRL, made for orientation and
# internships (sample catalogue).
FIRST, SECOND = "proxite", "jobirl"


class Clock:
    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def app(
    emulator: BotApiEmulator, sqlite_url: str, clock: Clock
) -> AsyncIterator[TelegramBot]:
    settings = settings_for(emulator, sqlite_url).model_copy(update={"admin_telegram_ids": (999,)})
    async with running(build_bot(settings, clock=clock)) as running_bot:
        yield running_bot


def parts(app: TelegramBot) -> UnitOfWorkFactory:
    return app.services.unit_of_work


async def invite(app: TelegramBot, slug: str, valid_for: timedelta = timedelta(days=7)) -> str:
    async with parts(app)() as uow:
        invitation = await coordinators.invite(uow, slug, datetime.now(UTC), valid_for)
        await uow.commit()
    return invitation.token


async def chase_silence(app: TelegramBot, now: datetime) -> int:
    return await handoffs.chase_silence(app.services.unit_of_work, now, app.services.policy)


async def join(
    app: TelegramBot, emulator: BotApiEmulator, user_id: int, name: str, slug: str
) -> Chat:  # type: ignore[type-arg]
    coordinator = Chat(emulator.user(user_id, name))
    token = await invite(app, slug)
    confirm = await coordinator.starts(token)
    assert "coordinateur" in (confirm.text or "")
    welcome = await coordinator.taps("Oui, je rejoins", expect="Bienvenue")
    assert "/queue" in (welcome.text or "")
    return coordinator


async def complete_sign_up(person: Callable[..., Chat], user_id: int = 4242) -> Chat:
    young = person(user_id, "Inès")
    young.user.phone_number = "+33612345678"
    await sign_up_as_17_year_old_in_saint_denis(young)
    await young.taps("C'est bon", expect="Merci")
    return young


async def card_of(coordinator: Chat) -> Any:
    return await coordinator.user.wait_for_message(lambda m: "Nouveau contact" in (m.text or ""))


async def handoffs_in_db(app: TelegramBot) -> list[Handoff]:
    async with parts(app)() as uow:
        query = select(Handoff).order_by(handoffs_table.c.id)
        return list(await uow.session.scalars(query))  # type: ignore[attr-defined]


async def recorded_as_delivered(app: TelegramBot) -> None:  # type: ignore[type-arg]
    """The dispatcher records a delivery just after the card arrives: wait for that record."""
    for _ in range(100):
        if all(h.delivered_at is not None for h in await handoffs_in_db(app)):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the handoff was never recorded as delivered")


async def camille_takes_while_karim_watches(
    app: TelegramBot,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],
) -> tuple[Chat, Chat, Chat, Any]:
    """Two coordinators of one association; Camille takes the contact, the young person is told."""
    camille = await join(app, emulator, 900001, "Camille", FIRST)
    karim = await join(app, emulator, 900002, "Karim", FIRST)
    young = await complete_sign_up(person)
    card = await card_of(camille)
    karim_card = await card_of(karim)
    press(camille.user, card.message_id, "Je m'en occupe")
    await young.reads(expect="Bonne nouvelle")
    return camille, karim, young, karim_card


async def erases_own_data(chat: Chat) -> None:
    chat.user.send_command("delete")
    await chat.reads(expect="effacer")
    await chat.taps("Oui, tout effacer", expect="effacées")


async def toast_on(user: EmulatedUser, message_id: int, after: int = 0) -> Any:
    """The next toast on that message, among those after the first `after` the user got (a
    message edited into the next screen keeps its id: its earlier presses' toasts are not it)."""
    while True:
        toast = await user.next_toast()
        if toast.message_id == message_id and user.toasts.index(toast) >= after:
            return toast


def press(user: EmulatedUser, message_id: int, label: str) -> None:
    message = next(m for m in user.messages if m.message_id == message_id)
    full = next(text for text in message.button_texts if label in text)
    user.press(full, message_id=message_id)


async def test_a_coordinator_receives_the_contact_takes_it_and_the_young_person_is_told(
    app: TelegramBot,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],  # type: ignore[type-arg]
) -> None:
    camille = await join(app, emulator, 900001, "Camille", FIRST)
    young = await complete_sign_up(person)
    card = await card_of(camille)
    text = card.text or ""
    for expected in (
        "Inès",
        "17",
        "93200",
        "93",
        "Lycée professionnel",
        "+33612345678",
        "Orientation",
    ):
        assert expected in text
    assert "Accord pour être contacté·e donné le" in text
    press(camille.user, card.message_id, "Je m'en occupe")
    told = await young.reads(expect="Bonne nouvelle")
    assert "Camille" in (told.text or "")
    assert "Proxité" in (told.text or "")
    edited = await camille.user.next_edit(message_id=card.message_id)
    assert "Vous vous en occupez" in (edited.text or "")
    assert any("Contact établi" in label for label in edited.button_texts)
    [handoff] = await handoffs_in_db(app)
    assert handoff.status == "taken"
    press(camille.user, card.message_id, "Contact établi")
    edited = await camille.user.next_edit(message_id=card.message_id)
    assert any("Clore" in label for label in edited.button_texts)
    press(camille.user, card.message_id, "Clore")
    edited = await camille.user.next_edit(message_id=card.message_id)
    assert edited.button_texts == []
    [handoff] = await handoffs_in_db(app)
    assert handoff.status == "closed"
    async with parts(app)() as uow:
        recorded = [event.event for event in await uow.handoffs.events(handoff.id)]
    # The delivery is recorded by the dispatcher, possibly after a quick take.
    assert "delivered" in recorded
    assert [e for e in recorded if e != "delivered"] == ["proposed", "taken", "contacted", "closed"]


async def test_two_coordinators_pressing_take_at_once_exactly_one_wins(
    app: TelegramBot,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],  # type: ignore[type-arg]
) -> None:
    camille = await join(app, emulator, 900001, "Camille", FIRST)
    karim = await join(app, emulator, 900002, "Karim", FIRST)
    young = await complete_sign_up(person)
    cards = [await card_of(camille), await card_of(karim)]
    press(camille.user, cards[0].message_id, "Je m'en occupe")
    press(karim.user, cards[1].message_id, "Je m'en occupe")
    await young.reads(expect="Bonne nouvelle")
    [handoff] = await handoffs_in_db(app)
    assert handoff.status == "taken"
    winner, loser = (
        (camille, karim) if "Camille" in (young.user.last_message.text or "") else (karim, camille)
    )  # type: ignore[union-attr]
    loser_card = next(m for m in loser.user.messages if "Nouveau contact" in (m.text or ""))
    edited = await loser.user.next_edit(message_id=loser_card.message_id)
    assert f"Pris en charge par {winner.user.first_name}" in (edited.text or "")
    assert edited.button_texts == []
    toast = await toast_on(loser.user, loser_card.message_id)
    assert toast.text is not None
    assert "Déjà pris" in toast.text or "déjà changé" in toast.text
    told = [m for m in young.user.messages if "Bonne nouvelle" in (m.text or "")]
    assert len(told) == 1


async def test_a_decline_goes_to_the_next_association_whose_coordinator_receives_it(
    app: TelegramBot,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],  # type: ignore[type-arg]
) -> None:
    camille = await join(app, emulator, 900001, "Camille", FIRST)
    yanis = await join(app, emulator, 900003, "Yanis", SECOND)
    young = await complete_sign_up(person)
    card = await card_of(camille)
    press(camille.user, card.message_id, "Refuser")
    reasons = await camille.user.next_edit(message_id=card.message_id)
    assert "Complet" in reasons.button_texts
    press(camille.user, card.message_id, "Complet")
    second_card = await card_of(yanis)
    assert "JobIRL" in (second_card.text or "")
    told = await young.reads(expect="Du nouveau")
    assert "JobIRL" in (told.text or "")
    first, second = await handoffs_in_db(app)
    assert (first.status, first.decline_reason) == ("declined", "full")
    assert second.status in ("proposed", "delivered")


async def test_forged_presses_by_another_association_or_a_stranger_change_nothing(
    app: TelegramBot,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],  # type: ignore[type-arg]
) -> None:
    camille = await join(app, emulator, 900001, "Camille", FIRST)
    other = await join(app, emulator, 900004, "Léo", SECOND)
    stranger = Chat(emulator.user(900005, "Eve"))
    await stranger.starts()
    await complete_sign_up(person)
    card = await card_of(camille)
    [handoff] = await handoffs_in_db(app)
    for intruder in (other, stranger):
        # A modified client sends the card's callback data from a message of its own: the
        # emulator's private hook does what Telegram's own clients never would.
        own = intruder.user.messages[-1]
        seen = len(intruder.user.toasts)
        emulator._push_callback_query(intruder.user, own, f"h|take|{handoff.id}")
        toast = await toast_on(intruder.user, own.message_id, after=seen)
        assert toast.text == "Ce bouton n'est pas pour vous."
    [handoff] = await handoffs_in_db(app)
    assert handoff.status in ("proposed", "delivered")
    assert handoff.taken_by is None
    assert card.button_texts  # Camille's card still offers the buttons


async def test_silence_reminds_the_coordinators_once_then_reroutes_once(
    app: TelegramBot,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],
    clock: Clock,  # type: ignore[type-arg]
) -> None:
    camille = await join(app, emulator, 900001, "Camille", FIRST)
    yanis = await join(app, emulator, 900003, "Yanis", SECOND)
    young = await complete_sign_up(person)
    await card_of(camille)
    await recorded_as_delivered(app)  # silence counts from the delivery
    clock.offset = timedelta(hours=49)
    assert await chase_silence(app, clock()) == 1
    assert await chase_silence(app, clock()) == 0
    reminder = await camille.user.wait_for_message(lambda m: "⏰" in (m.text or ""))
    assert "48" in (reminder.text or "")
    clock.offset = timedelta(days=7, hours=1)
    assert await chase_silence(app, clock()) == 1
    assert await chase_silence(app, clock()) == 0
    await card_of(yanis)
    await young.reads(expect="Du nouveau")
    first, second = await handoffs_in_db(app)
    assert first.status == "expired"
    assert second.status in ("proposed", "delivered")
    reminders = [m for m in camille.user.messages if "⏰" in (m.text or "")]
    assert len(reminders) == 1


async def test_an_invite_works_once_and_never_after_it_expires(
    app: TelegramBot,
    emulator: BotApiEmulator,  # type: ignore[type-arg]
) -> None:
    token = await invite(app, FIRST)
    first = Chat(emulator.user(900010, "Camille"))
    await first.starts(token)
    await first.taps("Oui, je rejoins", expect="Bienvenue")
    second = Chat(emulator.user(900011, "Mallory"))
    refused = await second.starts(token)
    assert "n'est plus valable" in (refused.text or "")
    expired = await invite(app, FIRST, valid_for=timedelta(seconds=-1))
    third = Chat(emulator.user(900012, "Trudy"))
    refused = await third.starts(expired)
    assert "n'est plus valable" in (refused.text or "")
    queue = Chat(emulator.user(900012, "Trudy"))
    queue.user.send_command("queue")
    assert "réservée aux coordinateurs" in ((await queue.reads(expect="réservée")).text or "")


async def test_queue_lists_waiting_contacts_and_pause_stops_new_ones(
    app: TelegramBot,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],  # type: ignore[type-arg]
) -> None:
    camille = await join(app, emulator, 900001, "Camille", FIRST)
    await complete_sign_up(person)
    await card_of(camille)
    camille.user.send_command("queue")
    queue = await camille.reads(expect="en attente")
    assert "Inès" in (queue.text or "")
    assert "à prendre" in (queue.text or "")
    camille.user.send_command("pause")
    assert "en pause" in ((await camille.reads(expect="pause")).text or "")
    await complete_sign_up(person, user_id=4343)
    first, second = await handoffs_in_db(app)
    assert second.association_id != first.association_id


async def test_erasing_their_data_tells_the_association_and_scrubs_its_card(
    app: TelegramBot,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],  # type: ignore[type-arg]
) -> None:
    camille = await join(app, emulator, 900001, "Camille", FIRST)
    young = await complete_sign_up(person)
    card = await card_of(camille)
    await erases_own_data(young)
    scrubbed = await camille.user.next_edit(message_id=card.message_id)
    assert "Inès" not in (scrubbed.text or "")
    assert "+33612345678" not in (scrubbed.text or "")
    notice = await camille.user.wait_for_message(lambda m: "a effacé ses données" in (m.text or ""))
    assert "Inès" not in (notice.text or "")


class Receiver:
    """An association's CRM: checks the signature, answers 500 once, then 200."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.received: list[dict[str, Any]] = []
        self.deliveries: list[str] = []
        self.failures_left = 1
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Mentorat-Signature", "")):
            return web.Response(status=401)
        self.deliveries.append(request.headers["X-Mentorat-Delivery"])
        if self.failures_left:
            self.failures_left -= 1
            return web.Response(status=500)
        self.received.append(json.loads(body))
        self.arrived.set()
        return web.Response(status=204)


async def test_a_webhook_receives_each_signed_handoff_once_even_after_answering_500(
    emulator: BotApiEmulator, sqlite_url: str, person: Callable[..., Chat], clock: Clock
) -> None:
    receiver = Receiver("a-secret-of-sixteen-chars")
    server = web.Application()
    server.router.add_post("/crm", receiver.handle)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with running(
            build_bot(settings_for(emulator, sqlite_url), clock=clock)
        ) as application:
            async with parts(application)() as uow:
                record = await uow.catalog.by_slug(FIRST)
                assert record is not None
                record.entry = {
                    **record.entry,
                    "handoff": {
                        "telegram": True,
                        "webhook_url": f"http://127.0.0.1:{port}/crm",
                        "webhook_secret": receiver.secret,
                    },
                }
                await uow.commit()
            await complete_sign_up(person)
            await asyncio.sleep(0.5)  # the first attempt got a 500
            clock.offset = timedelta(seconds=5)  # past the back-off
            application.relay.wake()
            await asyncio.wait_for(receiver.arrived.wait(), timeout=10)
            await asyncio.sleep(0.5)
        assert len(receiver.received) == 1
        body = receiver.received[0]
        assert body["event"] == "handoff.proposed"
        assert body["association"] == FIRST
        assert body["profile"]["answers"]["first_name"] == "Inès"
        assert len(set(receiver.deliveries)) == 1  # the retry carried the same delivery id
    finally:
        await runner.cleanup()


async def test_a_card_refused_with_500_then_429_reaches_the_coordinator_exactly_once(
    app: TelegramBot,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],
    clock: Clock,
) -> None:
    camille = await join(app, emulator, 900001, "Camille", FIRST)
    emulator.faults.add(method="sendMessage", status=500, chat_id=camille.user.id)
    emulator.faults.add(method="sendMessage", status=429, retry_after=1, chat_id=camille.user.id)
    await complete_sign_up(person)
    await emulator.wait_for_call("sendMessage", chat_id=camille.user.id)  # the 500
    clock.offset = timedelta(seconds=10)  # past the back-off
    app.relay.wake()
    await card_of(camille)
    await asyncio.sleep(1.5)
    cards = [m for m in camille.user.messages if "Nouveau contact" in (m.text or "")]
    assert len(cards) == 1
    statuses = [r.status for r in emulator.calls("sendMessage", chat_id=camille.user.id)]
    assert statuses.count(500) == 1
    assert statuses.count(429) == 1


async def test_stats_show_where_people_stop_and_how_fast_associations_take_contacts(
    app: TelegramBot,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],
) -> None:
    from bot.cli import format_report
    from conversations.services.stats import report

    camille = await join(app, emulator, 900001, "Camille", FIRST)
    young = await complete_sign_up(person)
    card = await card_of(camille)
    press(camille.user, card.message_id, "Je m'en occupe")
    await young.reads(expect="Bonne nouvelle")
    quitter = person(5151, "Noé")
    await quitter.starts()
    await quitter.taps("Je cherche un·e mentor·e", expect="Question 1 ·")
    await quitter.says("Noé", expect="Question 2 ·")
    text = format_report(await report(parts(app)))
    assert "started: 2  completed: 1" in text
    first_name_line = next(line for line in text.splitlines() if "first_name" in line)
    assert " 2 " in first_name_line  # both answered the first question
    age_line = next(line for line in text.splitlines() if " age " in line)
    assert " 1 " in age_line  # only one went past the age
    assert "proxite" in text
    assert "taken: 1" in text
    assert "Inès" not in text  # numbers only, nobody's name


async def test_a_coordinator_who_leaves_gives_back_what_they_took(
    app: TelegramBot,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],
) -> None:
    camille, karim, _young, karim_card = await camille_takes_while_karim_watches(
        app, emulator, person
    )
    taken = await karim.user.next_edit(message_id=karim_card.message_id)
    assert taken.button_texts == []
    # Camille erases her own data: her role goes, and Karim can take the contact again.
    await erases_own_data(camille)
    reopened = await karim.user.next_edit(message_id=karim_card.message_id)
    assert any("Je m'en occupe" in label for label in reopened.button_texts)
    [handoff] = await handoffs_in_db(app)
    assert (handoff.status, handoff.taken_by) == ("delivered", None)
    async with parts(app)() as uow:
        assert await uow.coordinators.of_person(900001, active_only=False) == []


async def test_cancelling_a_decline_brings_the_cards_buttons_back_and_changes_nothing(
    app: TelegramBot,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],
) -> None:
    camille = await join(app, emulator, 900001, "Camille", FIRST)
    young = await complete_sign_up(person)
    card = await card_of(camille)
    press(camille.user, card.message_id, "Refuser")
    reasons = await camille.user.next_edit(message_id=card.message_id)
    assert "Annuler" in reasons.button_texts
    press(camille.user, card.message_id, "Annuler")
    back = await camille.user.next_edit(message_id=card.message_id)
    assert any("Je m'en occupe" in label for label in back.button_texts)
    [handoff] = await handoffs_in_db(app)
    assert handoff.status in ("proposed", "delivered")
    young.user.send_command("mydata")
    data = await young.reads(expect="Tes données")
    assert "Transmis à Proxité" in (data.text or "")
    assert "en attente de réponse" in (data.text or "")


async def test_a_coordinator_silent_for_a_month_keeps_the_role(
    app: TelegramBot,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],
) -> None:
    await join(app, emulator, 900001, "Camille", FIRST)
    later = datetime.now(UTC) + timedelta(days=31)
    await privacy.purge(app.services.unit_of_work, later, app.services.policy)
    async with parts(app)() as uow:
        assert len(await uow.coordinators.of_person(900001)) == 1


async def test_after_a_release_the_next_taker_gets_working_buttons_and_the_person_is_told(
    app: TelegramBot,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],
) -> None:
    camille, karim, young, karim_card = await camille_takes_while_karim_watches(
        app, emulator, person
    )
    await karim.user.next_edit(message_id=karim_card.message_id)
    await erases_own_data(camille)
    await karim.user.next_edit(message_id=karim_card.message_id)  # reopened
    press(karim.user, karim_card.message_id, "Je m'en occupe")
    taken = await karim.user.next_edit(message_id=karim_card.message_id)
    assert any("Contact établi" in label for label in taken.button_texts)
    told = await young.user.wait_for_message(lambda m: "Karim" in (m.text or ""))
    assert "Bonne nouvelle" in (told.text or "")


async def test_a_released_contact_is_not_rerouted_at_once_for_its_age(
    app: TelegramBot,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],
    clock: Clock,
) -> None:
    camille = await join(app, emulator, 900001, "Camille", FIRST)
    await join(app, emulator, 900002, "Karim", FIRST)
    young = await complete_sign_up(person)
    card = await card_of(camille)
    press(camille.user, card.message_id, "Je m'en occupe")
    await young.reads(expect="Bonne nouvelle")
    clock.offset = timedelta(days=10)  # Camille leaves ten days later
    async with parts(app)() as uow:
        released = await coordinators.remove(uow, FIRST, 900001, clock(), app.services.policy)
        assert released == 1
        await uow.commit()
    assert await chase_silence(app, clock()) == 0
    [handoff] = await handoffs_in_db(app)
    assert handoff.status == "delivered"


async def test_a_card_telegram_answers_slowly_reaches_the_coordinator_once(
    app: TelegramBot,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],
) -> None:
    camille = await join(app, emulator, 900001, "Camille", FIRST)
    # Telegram answers after 6 s, past PTB's 5 s default: a send that gave up then would retry
    # and show the card twice.
    emulator.faults.add(method="sendMessage", delay=6, chat_id=camille.user.id)
    await complete_sign_up(person)
    await camille.user.wait_for_message(lambda m: "Nouveau contact" in (m.text or ""), timeout=15)
    await asyncio.sleep(1.0)
    app.relay.wake()
    await asyncio.sleep(1.0)
    cards = [m for m in camille.user.messages if "Nouveau contact" in (m.text or "")]
    assert len(cards) == 1
    sent = emulator.calls("sendMessage", chat_id=camille.user.id)
    assert len([c for c in sent if "Nouveau contact" in str(c.params.get("text"))]) == 1
