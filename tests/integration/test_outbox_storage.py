"""The outbox's storage on SQLite and PostgreSQL: typed messages queued once, leased, recorded."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from conversations.handoff import HandoffVerb
from conversations.ports import (
    AdminAlert,
    AssociationWebhook,
    CardButton,
    ContactCard,
    CoordinatorNotice,
    OutboxMessage,
    PersonNotice,
    SentCard,
)
from conversations.text import Lines, When, _
from storage.tables import outbox
from storage.uow import UnitOfWork

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)
UowFactory = Callable[[], UnitOfWork]


def card(
    handoff_id: int = 7, coordinator_id: int = 3, chat_id: int = 3003, **changes: object
) -> ContactCard:
    values: dict[str, object] = {
        "chat_id": chat_id,
        "language": "fr",
        "handoff_id": handoff_id,
        "coordinator_id": coordinator_id,
        "body": _("Contact : %(name)s, %(phone)s").fmt(name="Inès", phone="+33612345678"),
        "buttons": (CardButton(HandoffVerb.TAKE, _("Je le prends")),),
        **changes,
    }
    return ContactCard(**values)  # type: ignore[arg-type]


def notice(chat_id: int = 5001, text: str = "Afev a pris votre demande") -> PersonNotice:
    return PersonNotice(chat_id, "fr", _(text))


WEBHOOK = AssociationWebhook(
    "https://crm.example.org/hook",
    7,
    "afev",
    {"event": "handoff.proposed", "handoff_id": 7, "contact": {"first_name": "Inès"}},
)


async def enqueue(
    uow_factory: UowFactory,
    key: str,
    message: OutboxMessage,
    person_id: int | None = None,
    now: datetime = NOW,
) -> int:
    async with uow_factory() as uow:
        await uow.outbox.enqueue(key, message, now, person_id=person_id)
        enqueued = uow.outbox.enqueued
        await uow.commit()
    return enqueued


async def row(uow_factory: UowFactory, key: str):  # type: ignore[no-untyped-def]
    async with uow_factory() as uow:
        found = await uow.outbox.by_key(key)  # type: ignore[attr-defined]
    assert found is not None, key
    return found


async def claim(
    uow_factory: UowFactory, now: datetime = NOW, limit: int = 10
) -> dict[str, OutboxMessage]:
    async with uow_factory() as uow:
        claimed = await uow.outbox.claim_due(now, LEASE, limit)
        await uow.commit()
    return {c.key: c.message for c in claimed}


async def test_a_second_enqueue_with_one_key_does_nothing_but_is_counted(
    uow_factory: UowFactory,
) -> None:
    async with uow_factory() as uow:
        await uow.outbox.enqueue("handoff:7:3", card(), NOW, person_id=11)
        await uow.outbox.enqueue("handoff:7:3", notice(), NOW)
        assert uow.outbox.enqueued == 2
        await uow.commit()
    assert await enqueue(uow_factory, "handoff:7:3", notice()) == 1
    stored = await row(uow_factory, "handoff:7:3")
    assert (stored.channel, stored.chat_id, stored.url) == ("telegram", 3003, None)
    assert (stored.status, stored.attempts, stored.person_id) == ("pending", 0, 11)
    assert stored.next_attempt_at == stored.created_at == NOW
    assert await claim(uow_factory) == {"handoff:7:3": card()}


async def test_a_webhook_goes_by_its_url_and_every_message_comes_back_as_queued(
    uow_factory: UowFactory,
) -> None:
    messages: dict[str, OutboxMessage] = {
        "card": card(status=_("Pris le %(when)s").fmt(when=When(NOW)), message_id=99),
        "notice": PersonNotice(
            5001, "en", _("%(lines)s").fmt(lines=Lines((_("a"), "b", _("%(n)s").fmt(n=2))))
        ),
        "coordinator": CoordinatorNotice(3003, "fr", _("Rappel")),
        "admin": AdminAlert(555, _("⚠️ n° %(id)s").fmt(id=12)),
        "webhook": WEBHOOK,
    }
    for key, message in messages.items():
        await enqueue(uow_factory, key, message)
    stored = await row(uow_factory, "webhook")
    assert (stored.channel, stored.chat_id, stored.url) == (
        "webhook",
        None,
        "https://crm.example.org/hook",
    )
    assert await claim(uow_factory) == messages


async def test_a_claimed_message_is_left_alone_until_its_lease_expires(
    uow_factory: UowFactory,
) -> None:
    await enqueue(uow_factory, "leased", notice())
    async with uow_factory() as uow:
        [claimed] = await uow.outbox.claim_due(NOW, LEASE, 10)
        assert (claimed.key, claimed.message, claimed.attempts) == ("leased", notice(), 0)
        await uow.commit()
    assert (await row(uow_factory, "leased")).claimed_until == NOW + LEASE
    assert await claim(uow_factory, NOW + timedelta(seconds=59)) == {}
    assert list(await claim(uow_factory, NOW + timedelta(seconds=61))) == ["leased"]


async def test_what_is_not_due_yet_waits_and_a_claim_takes_the_oldest_first(
    uow_factory: UowFactory,
) -> None:
    await enqueue(uow_factory, "later", notice(), now=NOW + timedelta(minutes=5))
    await enqueue(uow_factory, "second", notice(), now=NOW - timedelta(minutes=1))
    await enqueue(uow_factory, "first", notice(), now=NOW - timedelta(minutes=2))
    assert list(await claim(uow_factory, limit=1)) == ["first"]
    assert list(await claim(uow_factory)) == ["second"]


async def test_released_messages_can_be_claimed_again_at_once(uow_factory: UowFactory) -> None:
    await enqueue(uow_factory, "a", notice())
    await enqueue(uow_factory, "b", notice())
    async with uow_factory() as uow:
        claimed = await uow.outbox.claim_due(NOW, LEASE, 10)
        await uow.outbox.release([c.id for c in claimed if c.key == "b"])
        await uow.outbox.release([])
        await uow.commit()
    assert list(await claim(uow_factory)) == ["b"]


async def test_two_relays_never_claim_the_same_message(
    uow_factory: UowFactory, database_url: str
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite has one writer at a time: the second relay waits for the first")
    for key in ("a", "b", "c"):
        await enqueue(uow_factory, key, notice())
    first, second = uow_factory(), uow_factory()
    async with first, second:
        mine = await first.outbox.claim_due(NOW, LEASE, 2)
        # The first relay has not committed yet: its rows are locked, and skipped.
        theirs = await second.outbox.claim_due(NOW, LEASE, 10)
        await first.commit()
        await second.commit()
    assert [c.key for c in mine] == ["a", "b"]
    assert [c.key for c in theirs] == ["c"]


async def test_a_sent_message_is_recorded_and_not_sent_again(uow_factory: UowFactory) -> None:
    await enqueue(uow_factory, "k", notice())
    async with uow_factory() as uow:
        [claimed] = await uow.outbox.claim_due(NOW, LEASE, 10)
        await uow.commit()
    later = NOW + timedelta(seconds=3)
    async with uow_factory() as uow:
        assert await uow.outbox.mark_sent(claimed.id, 1, 4242, later) is False
        await uow.commit()
    stored = await row(uow_factory, "k")
    assert (stored.status, stored.attempts, stored.sent_message_id) == ("sent", 1, 4242)
    assert (stored.sent_at, stored.claimed_until) == (later, None)
    assert await claim(uow_factory, NOW + timedelta(hours=1)) == {}


async def test_a_failed_attempt_waits_for_its_retry(uow_factory: UowFactory) -> None:
    await enqueue(uow_factory, "k", notice())
    async with uow_factory() as uow:
        [claimed] = await uow.outbox.claim_due(NOW, LEASE, 10)
        await uow.outbox.retry_later(claimed.id, 1, NOW + timedelta(seconds=30), "429 " * 100)
        await uow.commit()
    stored = await row(uow_factory, "k")
    assert (stored.status, stored.attempts, stored.claimed_until) == ("pending", 1, None)
    assert stored.last_error == ("429 " * 100)[:200]
    assert await claim(uow_factory, NOW + timedelta(seconds=29)) == {}
    async with uow_factory() as uow:
        [again] = await uow.outbox.claim_due(NOW + timedelta(seconds=30), LEASE, 10)
        assert again.attempts == 1
        await uow.outbox.mark_dead(again.id, 2, "Forbidden: bot was blocked by the user")
        await uow.commit()
    stored = await row(uow_factory, "k")
    assert (stored.status, stored.attempts, stored.claimed_until) == ("dead", 2, None)
    assert stored.last_error == "Forbidden: bot was blocked by the user"
    assert await claim(uow_factory, NOW + timedelta(days=1)) == {}


async def test_erasure_scrubs_every_message_about_a_person_and_stops_the_queued_ones(
    uow_factory: UowFactory,
) -> None:
    await enqueue(uow_factory, "handoff:7:3", card(), person_id=11)
    await enqueue(uow_factory, "notice:7", notice(), person_id=11)
    await enqueue(uow_factory, "webhook:7", WEBHOOK, person_id=11)
    await enqueue(uow_factory, "someone-else", notice(5002, "Bonjour Léa"), person_id=12)
    async with uow_factory() as uow:
        [claimed] = await uow.outbox.claim_due(NOW, LEASE, 1)  # on its way when erased
        await uow.outbox.mark_sent(claimed.id, 1, 77, NOW)
        await uow.commit()
    async with uow_factory() as uow:
        await uow.outbox.forget_person(11)
        await uow.commit()
    sent = await row(uow_factory, "handoff:7:3")
    assert (sent.status, sent.person_id, sent.sent_message_id) == ("sent", None, 77)
    assert sent.payload == {
        "erased": True,
        "type": "contact_card",
        "handoff_id": 7,
        "coordinator_id": 3,
    }
    for key in ("notice:7", "webhook:7"):
        stored = await row(uow_factory, key)
        assert (stored.status, stored.last_error, stored.person_id) == ("dead", "erased", None)
        text = json.dumps(stored.payload, ensure_ascii=False)
        assert "Inès" not in text
        assert "Afev a pris" not in text
        assert "crm.example.org" not in text
    assert list(await claim(uow_factory)) == ["someone-else"]
    async with uow_factory() as uow:
        assert await uow.outbox.cards_of(7) == []  # nothing left to keep current


async def test_a_message_erased_while_on_its_way_stays_dead_and_says_so(
    uow_factory: UowFactory,
) -> None:
    await enqueue(uow_factory, "handoff:7:3", card(), person_id=11)
    async with uow_factory() as uow:
        [claimed] = await uow.outbox.claim_due(NOW, LEASE, 10)
        await uow.commit()
    async with uow_factory() as uow:
        await uow.outbox.forget_person(11)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.outbox.mark_sent(claimed.id, 1, 88, NOW) is True
        await uow.commit()
    stored = await row(uow_factory, "handoff:7:3")
    assert (stored.status, stored.last_error) == ("dead", "erased")
    assert (stored.sent_message_id, stored.sent_at, stored.attempts) == (88, NOW, 1)
    assert stored.claimed_until is None


async def test_a_newer_edit_supersedes_the_pending_older_ones(uow_factory: UowFactory) -> None:
    await enqueue(uow_factory, "edit:7:3:taken:2", card(message_id=5))
    await enqueue(uow_factory, "edit:7:3:delivered:3", card(message_id=5))
    await enqueue(uow_factory, "edit:7:30:taken:2", card(message_id=6))  # another coordinator
    await enqueue(uow_factory, "edit_7_3_x", card(message_id=7))  # `_` is no LIKE wildcard here
    await enqueue(uow_factory, "edit:7:3:closed:4", card(message_id=5))
    async with uow_factory() as uow:
        await uow.outbox.supersede("edit:7:3:", keep="edit:7:3:closed:4")
        await uow.commit()
    for key in ("edit:7:3:taken:2", "edit:7:3:delivered:3"):
        stored = await row(uow_factory, key)
        assert (stored.status, stored.last_error) == ("dead", "superseded")
    assert sorted(await claim(uow_factory)) == [
        "edit:7:30:taken:2",
        "edit:7:3:closed:4",
        "edit_7_3_x",
    ]


async def test_nothing_more_goes_to_a_coordinator_who_left(uow_factory: UowFactory) -> None:
    await enqueue(uow_factory, "sent", card(chat_id=3003))
    assert list(await claim(uow_factory)) == ["sent"]
    async with uow_factory() as uow:
        claimed = await uow.outbox.by_key("sent")  # type: ignore[attr-defined]
        await uow.outbox.mark_sent(claimed.id, 1, 1, NOW)
        await uow.commit()
    await enqueue(uow_factory, "queued", card(chat_id=3003))
    await enqueue(uow_factory, "colleague", card(chat_id=3004))
    async with uow_factory() as uow:
        await uow.outbox.drop_pending_for_chat(3003)
        await uow.commit()
    assert (await row(uow_factory, "sent")).status == "sent"
    queued = await row(uow_factory, "queued")
    assert (queued.status, queued.last_error) == ("dead", "recipient left")
    assert list(await claim(uow_factory)) == ["colleague"]


async def test_the_cards_of_a_handoff_are_the_first_one_each_coordinator_got(
    uow_factory: UowFactory,
) -> None:
    await enqueue(uow_factory, "handoff:7:3", card(coordinator_id=3, chat_id=3003), person_id=11)
    await enqueue(uow_factory, "handoff:7:4", card(coordinator_id=4, chat_id=3004), person_id=11)
    await enqueue(uow_factory, "handoff:70:3", card(handoff_id=70))
    await enqueue(uow_factory, "edit:7:3:taken:2", card(message_id=501))
    async with uow_factory() as uow:
        first = await uow.outbox.by_key("handoff:7:3")  # type: ignore[attr-defined]
        second = await uow.outbox.by_key("handoff:7:4")  # type: ignore[attr-defined]
        await uow.outbox.mark_sent(first.id, 1, 501, NOW)
        await uow.commit()
    async with uow_factory() as uow:
        cards = await uow.outbox.cards_of(7)
    assert cards == [
        SentCard(first.id, card(coordinator_id=3, chat_id=3003), True, 501, 11),
        SentCard(second.id, card(coordinator_id=4, chat_id=3004), False, None, 11),
    ]


async def test_a_card_not_sent_yet_goes_out_as_it_is_now(uow_factory: UowFactory) -> None:
    await enqueue(uow_factory, "handoff:7:3", card(coordinator_id=3))
    await enqueue(uow_factory, "handoff:7:4", card(coordinator_id=4))
    taken = _("Pris par %(who)s").fmt(who="Camille")
    async with uow_factory() as uow:
        [sent, pending] = await uow.outbox.cards_of(7)
        await uow.outbox.mark_sent(sent.outbox_id, 1, 900, NOW)
        await uow.outbox.replace_pending(sent.outbox_id, card(coordinator_id=3, status=taken))
        await uow.outbox.replace_pending(pending.outbox_id, card(coordinator_id=4, status=taken))
        await uow.commit()
    async with uow_factory() as uow:
        assert [c.card.status for c in await uow.outbox.cards_of(7)] == [None, taken]
    assert await claim(uow_factory) == {"handoff:7:4": card(coordinator_id=4, status=taken)}


async def test_a_payload_from_an_older_version_is_dead_lettered_not_claimed(
    uow_factory: UowFactory,
) -> None:
    async with uow_factory() as uow:
        await uow.session.execute(
            insert(outbox).values(
                dedup_key="old",
                channel="telegram",
                chat_id=1,
                payload={"kind": "person_notice", "text": "<b>Bonjour</b>"},
                status="pending",
                attempts=0,
                next_attempt_at=NOW,
                created_at=NOW,
            )
        )
        await uow.commit()
    await enqueue(uow_factory, "new", notice())
    assert list(await claim(uow_factory)) == ["new"]
    old = await row(uow_factory, "old")
    assert (old.status, old.last_error) == ("dead", "undecodable payload")


async def test_outbox_counts_by_status(uow_factory: UowFactory) -> None:
    for key in ("a", "b", "c"):
        await enqueue(uow_factory, key, notice())
    async with uow_factory() as uow:
        [a, b] = await uow.outbox.claim_due(NOW, LEASE, 2)
        await uow.outbox.mark_sent(a.id, 1, 1, NOW)
        await uow.outbox.mark_dead(b.id, 1, "Forbidden")
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.outbox.counts_by_status() == {"pending": 1, "sent": 1, "dead": 1}
