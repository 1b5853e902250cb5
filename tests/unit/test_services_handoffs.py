"""Handoffs: proposing a profile, the coordinators' buttons, silence, and what the relay reports."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from conversations.entities import Handoff, ProfileStatus
from conversations.handoff import DECLINE_REASONS, HandoffStatus, HandoffVerb
from conversations.ports import (
    AdminAlert,
    AssociationWebhook,
    ContactCard,
    CoordinatorNotice,
    PersonNotice,
)
from conversations.services import cards, coordinators, handoffs
from conversations.services.actions import ConfirmErase
from conversations.services.replies import CardKeyboard
from tests.unit.fakes import (
    ADMINS,
    DEAD,
    T0,
    Chat,
    Scene,
    a_catalog,
    an_association,
    only,
)

NADIA, CAMILLE, BOB, DORA, GUS, STRANGER = 101, 501, 502, 601, 701, 999
TAKE, DECLINE, KEEP = HandoffVerb.TAKE, HandoffVerb.DECLINE, HandoffVerb.KEEP
CONTACTED, CLOSE = HandoffVerb.CONTACTED, HandoffVerb.CLOSE
WEBHOOK = "https://crm.alpha.example/hook"


async def a_delivered_contact(*slugs: str) -> tuple[Scene, Handoff]:
    """Nadia signed up; her contact reached Camille and Bob of alpha. Beta (Dora) and gamma (Gus)
    fit her too, in that order."""
    scene = Scene()
    slugs = slugs or ("alpha", "beta", "gamma")
    await scene.import_catalog(a_catalog(*(an_association(slug) for slug in slugs)))
    staff = {"alpha": [(CAMILLE, "Camille"), (BOB, "Bob")], "beta": [(DORA, "Dora")]}
    staff["gamma"] = [(GUS, "Gus")]
    for slug in slugs:
        for telegram_id, first_name in staff[slug]:
            await scene.coordinator(slug, telegram_id, first_name)
    await scene.person(NADIA).fill()
    await scene.deliver()
    return scene, only(scene.handoffs())


def coordinator(scene: Scene, telegram_id: int) -> Chat:
    names = {CAMILLE: "Camille", BOB: "Bob", DORA: "Dora", GUS: "Gus"}
    return scene.person(telegram_id, names[telegram_id])


def card_of(scene: Scene, chat_id: int) -> ContactCard:
    """The card as this coordinator sees it (or is about to): their latest live copy."""
    live = [m for row, m in scene.rows(ContactCard, status=None) if row.status != DEAD]
    return [card for card in live if card.chat_id == chat_id][-1]


def verbs(card: ContactCard) -> list[HandoffVerb]:
    return [button.verb for button in card.buttons]


def current(scene: Scene, handoff: Handoff) -> Handoff:
    return scene.db.tables.handoffs[handoff.id]


async def with_webhook(scene: Scene, slug: str) -> None:
    """The association also receives its contacts in its CRM (set as the e2e tests do: see
    test_services_catalogue for why not through an import)."""
    async with scene.unit_of_work() as uow:
        record = await uow.catalog.by_slug(slug)
        assert record is not None
        record.entry = {
            **record.entry,
            "handoff": {"telegram": True, "webhook_url": WEBHOOK, "webhook_secret": "s" * 20},
        }
        await uow.commit()


# --- proposing ----------------------------------------------------------------------------------


async def test_each_coordinator_gets_the_contact_with_take_and_decline_buttons() -> None:
    scene, handoff = await a_delivered_contact()

    for chat_id in (CAMILLE, BOB):
        card = card_of(scene, chat_id)
        assert card.handoff_id == handoff.id
        assert verbs(card) == [TAKE, DECLINE]
        assert card.status is None
    assert [e.event for e in scene.db.tables.events.values()] == ["proposed", "delivered"]


async def test_an_association_crm_receives_the_profile_without_the_consent_answers() -> None:
    scene = Scene()
    await scene.import_catalog(a_catalog(an_association("alpha")))
    await with_webhook(scene, "alpha")

    await scene.person(NADIA).fill()

    webhook = only(scene.pending(AssociationWebhook))
    handoff = only(scene.handoffs())
    assert (webhook.url, webhook.event, webhook.handoff_id) == (
        WEBHOOK,
        "handoff.proposed",
        handoff.id,
    )
    profile = webhook.body["profile"]
    assert profile["answers"]["first_name"] == "Nadia"
    assert "consent" not in profile["answers"]
    assert profile["parental_consent"] is False
    # The CRM is someone to receive it: the admins are not asked to invite a coordinator.
    assert scene.pending(AdminAlert) == []


# --- who may press ------------------------------------------------------------------------------


async def test_a_take_by_someone_who_is_not_its_coordinator_is_refused_and_logs_no_names(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scene, handoff = await a_delivered_contact()
    caplog.set_level(logging.DEBUG)

    reply = await scene.person(STRANGER, "Mallory").press(handoff, TAKE)

    assert reply.toast == handoffs.TOAST_NOT_ALLOWED
    assert reply.card_keyboard is None
    assert current(scene, handoff).status == HandoffStatus.DELIVERED
    assert "refused" in caplog.text
    for name in ("Mallory", "Nadia", str(STRANGER)):
        assert name not in caplog.text


async def test_a_coordinator_of_another_association_cannot_take_the_contact() -> None:
    scene, handoff = await a_delivered_contact()

    reply = await coordinator(scene, DORA).press(handoff, TAKE)

    assert reply.toast == handoffs.TOAST_NOT_ALLOWED
    assert current(scene, handoff).taken_by is None


async def test_a_coordinator_who_left_cannot_press_any_more() -> None:
    scene, handoff = await a_delivered_contact()
    async with scene.unit_of_work() as uow:
        await coordinators.remove(uow, "alpha", BOB, scene.now, scene.policy)
        await uow.commit()

    reply = await coordinator(scene, BOB).press(handoff, TAKE)

    assert reply.toast == handoffs.TOAST_NOT_ALLOWED
    assert current(scene, handoff).status == HandoffStatus.DELIVERED


async def test_a_press_on_a_contact_that_no_longer_exists_says_it_is_too_late() -> None:
    scene, _handoff = await a_delivered_contact()

    reply = await coordinator(scene, CAMILLE).press(10_000, TAKE)

    assert reply.toast == handoffs.TOAST_TOO_LATE


# --- take ---------------------------------------------------------------------------------------


async def test_taking_a_contact_tells_the_person_who_will_call_and_shows_colleagues_who_took_it() -> (
    None
):
    scene, handoff = await a_delivered_contact()

    reply = await coordinator(scene, CAMILLE).press(handoff, TAKE)

    assert reply.toast == handoffs.TOAST_TAKEN
    taken = current(scene, handoff)
    assert taken.status == HandoffStatus.TAKEN
    assert taken.taken_by == scene.coordinator_row(CAMILLE).id
    assert taken.taken_at == scene.now
    notice = only(scene.pending(PersonNotice))
    assert notice.chat_id == NADIA
    assert notice.text == handoffs.PERSON_TAKEN["mentee"].fmt(
        coordinator="Camille", association="Alpha", name="Nadia"
    )
    bob_sees = card_of(scene, BOB)
    assert bob_sees.message_id is not None  # an edit of the card he already has
    assert bob_sees.status == cards.STATUS_TAKEN_BY.fmt(coordinator="Camille")
    assert bob_sees.buttons == ()
    camille_sees = card_of(scene, CAMILLE)
    assert camille_sees.status == cards.STATUS_TAKEN_BY_YOU
    assert verbs(camille_sees) == [CONTACTED, DECLINE]


async def test_the_second_of_two_coordinators_to_take_is_told_who_took_it_first() -> None:
    scene, handoff = await a_delivered_contact()
    await coordinator(scene, CAMILLE).press(handoff, TAKE)

    reply = await coordinator(scene, BOB).press(handoff, TAKE)

    assert reply.toast == handoffs.TOAST_ALREADY_TAKEN.fmt(coordinator="Camille")
    assert current(scene, handoff).taken_by == scene.coordinator_row(CAMILLE).id
    assert len(scene.pending(PersonNotice)) == 1


async def test_a_double_tap_on_take_changes_nothing_the_second_time() -> None:
    scene, handoff = await a_delivered_contact()
    camille = coordinator(scene, CAMILLE)
    await camille.press(handoff, TAKE)
    queued = len(scene.db.tables.outbox)

    reply = await camille.press(handoff, TAKE)

    assert reply.toast == handoffs.TOAST_TOO_LATE
    assert len(scene.db.tables.outbox) == queued


async def test_only_the_coordinator_who_took_it_may_mark_it_contacted_then_close_it() -> None:
    scene, handoff = await a_delivered_contact()
    camille, bob = coordinator(scene, CAMILLE), coordinator(scene, BOB)
    await camille.press(handoff, TAKE)
    refused = handoffs.TOAST_ALREADY_TAKEN.fmt(coordinator="Camille")

    assert (await bob.press(handoff, CONTACTED)).toast == refused
    assert (await bob.press(handoff, DECLINE, "full")).toast == refused
    assert current(scene, handoff).status == HandoffStatus.TAKEN

    assert (await camille.press(handoff, CONTACTED)).toast == handoffs.TOAST_DONE
    assert current(scene, handoff).status == HandoffStatus.CONTACTED
    assert verbs(card_of(scene, CAMILLE)) == [CLOSE]

    assert (await bob.press(handoff, CLOSE)).toast == refused
    assert (await camille.press(handoff, CLOSE)).toast == handoffs.TOAST_DONE
    closed = current(scene, handoff)
    assert (closed.status, closed.closed_at) == (HandoffStatus.CLOSED, scene.now)
    assert card_of(scene, BOB).status == cards.STATUS_CLOSED.fmt(coordinator="Camille")


# --- decline and keep ---------------------------------------------------------------------------


async def test_declining_without_a_reason_asks_for_one_and_changes_nothing_yet() -> None:
    scene, handoff = await a_delivered_contact()

    reply = await coordinator(scene, CAMILLE).press(handoff, DECLINE)

    assert reply.toast == handoffs.ASK_REASON
    assert reply.card_keyboard == CardKeyboard(handoff.id, cards.decline_reasons())
    assert [b.reason for b in reply.card_keyboard.buttons] == ["full", "scope", "unreachable", None]
    assert reply.card_keyboard.buttons[-1].verb is KEEP
    assert current(scene, handoff).status == HandoffStatus.DELIVERED
    assert len(scene.handoffs()) == 1


async def test_keep_under_the_reasons_gives_back_the_card_s_buttons_and_changes_nothing() -> None:
    scene, handoff = await a_delivered_contact()
    camille = coordinator(scene, CAMILLE)
    await camille.press(handoff, DECLINE)
    queued = len(scene.db.tables.outbox)

    reply = await camille.press(handoff, KEEP)

    assert reply.toast == handoffs.TOAST_KEPT
    assert reply.card_keyboard is not None
    assert [b.verb for b in reply.card_keyboard.buttons] == [TAKE, DECLINE]
    assert current(scene, handoff).status == HandoffStatus.DELIVERED
    assert len(scene.db.tables.outbox) == queued


async def test_a_declined_contact_goes_to_the_next_association_and_the_person_is_told() -> None:
    scene, handoff = await a_delivered_contact()

    reply = await coordinator(scene, CAMILLE).press(handoff, DECLINE, "full")

    assert reply.toast == handoffs.TOAST_DECLINED
    declined = current(scene, handoff)
    assert (declined.status, declined.decline_reason) == (HandoffStatus.DECLINED, "full")
    assert declined.closed_at == scene.now
    rerouted = scene.handoffs()[-1]
    assert (scene.slug_of(rerouted), rerouted.status) == ("beta", HandoffStatus.PROPOSED)
    assert only(scene.pending(PersonNotice)).text == handoffs.PERSON_REROUTED[
        "mentee", "declined"
    ].fmt(old="Alpha", association="Beta", name="Nadia")
    assert card_of(scene, DORA).handoff_id == rerouted.id
    full = DECLINE_REASONS[0].label
    assert card_of(scene, BOB).status == cards.STATUS_DECLINED.fmt(
        coordinator="Camille", reason=full
    )
    profile = only(scene.db.tables.profiles.values())
    assert profile.association_slug == "beta"


async def test_a_declined_contact_never_goes_back_to_an_association_that_declined_it() -> None:
    scene, handoff = await a_delivered_contact()
    await coordinator(scene, CAMILLE).press(handoff, DECLINE, "full")
    await scene.deliver()
    await coordinator(scene, DORA).press(scene.handoffs()[-1], DECLINE, "scope")
    await scene.deliver()

    await coordinator(scene, GUS).press(scene.handoffs()[-1], DECLINE, "unreachable")

    assert [scene.slug_of(h) for h in scene.handoffs()] == ["alpha", "beta", "gamma"]
    assert {h.status for h in scene.handoffs()} == {HandoffStatus.DECLINED}
    assert only(scene.db.tables.profiles.values()).status == ProfileStatus.WAITING


async def test_when_no_other_association_fits_the_person_hears_they_are_on_the_waiting_list() -> (
    None
):
    scene, handoff = await a_delivered_contact("alpha")

    await coordinator(scene, CAMILLE).press(handoff, DECLINE, "scope")

    profile = only(scene.db.tables.profiles.values())
    assert (profile.status, profile.association_slug) == (ProfileStatus.WAITING, None)
    assert only(scene.pending(PersonNotice)).text == handoffs.PERSON_WAITING[
        "mentee", "declined"
    ].fmt(old="Alpha", name="Nadia")
    alerts = scene.pending(AdminAlert)
    assert sorted(a.chat_id for a in alerts) == sorted(ADMINS)
    assert {a.text.msgid for a in alerts} == {handoffs.NO_MATCH_ALERT.msgid}


# --- silence ------------------------------------------------------------------------------------


async def test_silence_reminds_each_coordinator_once_after_the_reminder_delay() -> None:
    scene, handoff = await a_delivered_contact()
    rules = scene.policy.silence

    async def chase(at: timedelta) -> int:
        return await handoffs.chase_silence(scene.unit_of_work, T0 + at, scene.policy)

    assert await chase(rules.remind_after - timedelta(minutes=1)) == 0
    assert scene.pending(CoordinatorNotice) == []

    assert await chase(rules.remind_after) == 1
    reminders = scene.pending(CoordinatorNotice)
    assert sorted(r.chat_id for r in reminders) == [CAMILLE, BOB]
    assert {r.text.msgid for r in reminders} == {handoffs.REMINDER.msgid}
    assert reminders[0].text.params == {"id": handoff.id, "hours": 48}

    assert await chase(rules.remind_after + timedelta(hours=12)) == 0
    assert len(scene.pending(CoordinatorNotice)) == 2
    assert current(scene, handoff).status == HandoffStatus.DELIVERED


async def test_a_contact_nobody_takes_is_re_routed_after_the_re_route_delay() -> None:
    scene, handoff = await a_delivered_contact()
    rerouting = T0 + scene.policy.silence.reroute_after

    assert await handoffs.chase_silence(scene.unit_of_work, rerouting, scene.policy) == 1

    expired = current(scene, handoff)
    assert (expired.status, expired.closed_at) == (HandoffStatus.EXPIRED, rerouting)
    rerouted = scene.handoffs()[-1]
    assert scene.slug_of(rerouted) == "beta"
    assert only(scene.pending(PersonNotice)).text == handoffs.PERSON_REROUTED[
        "mentee", "silence"
    ].fmt(old="Alpha", association="Beta", name="Nadia")
    assert card_of(scene, CAMILLE).status == cards.STATUS_EXPIRED.fmt(days=7)


async def test_silence_never_re_routes_a_contact_someone_took() -> None:
    scene, handoff = await a_delivered_contact()
    await coordinator(scene, CAMILLE).press(handoff, TAKE)
    much_later = T0 + scene.policy.silence.reroute_after * 2

    assert await handoffs.chase_silence(scene.unit_of_work, much_later, scene.policy) == 0

    assert current(scene, handoff).status == HandoffStatus.TAKEN
    assert len(scene.handoffs()) == 1


async def test_a_take_at_the_very_moment_of_the_re_route_wins() -> None:
    scene, handoff = await a_delivered_contact()
    scene.db.interleave(lambda: coordinator(scene, CAMILLE).press(handoff, TAKE))
    rerouting = T0 + scene.policy.silence.reroute_after

    handled = await handoffs.chase_silence(scene.unit_of_work, rerouting, scene.policy)

    assert handled == 0
    assert current(scene, handoff).status == HandoffStatus.TAKEN
    assert len(scene.handoffs()) == 1
    assert only(scene.pending(PersonNotice)).text.msgid == handoffs.PERSON_TAKEN["mentee"].msgid


# --- what the relay reports ---------------------------------------------------------------------


async def test_a_delivered_card_marks_the_contact_delivered_at_the_time_it_arrived() -> None:
    scene = Scene()
    await scene.import_catalog(a_catalog(an_association("alpha")))
    await scene.coordinator("alpha", CAMILLE, "Camille")
    await scene.person(NADIA).fill()
    assert only(scene.handoffs()).status == HandoffStatus.PROPOSED

    arrived = scene.later(timedelta(minutes=10))
    await scene.deliver()

    handoff = only(scene.handoffs())
    assert (handoff.status, handoff.delivered_at) == (HandoffStatus.DELIVERED, arrived)


async def test_only_the_first_card_delivered_sets_the_delivery_time_not_later_edits() -> None:
    scene, handoff = await a_delivered_contact()
    await coordinator(scene, CAMILLE).press(handoff, TAKE)
    scene.later(timedelta(hours=1))

    delivered = await scene.deliver()

    assert any(isinstance(m, ContactCard) and m.message_id is not None for m in delivered)
    assert current(scene, handoff).delivered_at == T0


async def test_a_proposal_delivered_to_the_crm_marks_the_contact_delivered() -> None:
    scene = Scene()
    await scene.import_catalog(a_catalog(an_association("alpha")))
    await with_webhook(scene, "alpha")
    await scene.person(NADIA).fill()

    arrived = scene.later(timedelta(minutes=2))
    await scene.deliver()

    handoff = only(scene.handoffs())
    assert (handoff.status, handoff.delivered_at) == (HandoffStatus.DELIVERED, arrived)


async def test_a_card_taken_before_its_delivery_was_recorded_stays_taken_and_is_edited_once() -> (
    None
):
    scene = Scene()
    await scene.import_catalog(a_catalog(an_association("alpha")))
    camille = await scene.coordinator("alpha", CAMILLE, "Camille")
    await scene.person(NADIA).fill()
    claimed = only(await scene.claim())
    sent_id, erased = await scene.mark_sent(claimed)
    # Camille presses the card the moment it shows, before the relay records the delivery.
    await camille.press(only(scene.handoffs()), TAKE)

    arrived = scene.later(timedelta(seconds=2))
    await scene.report_delivered(claimed.message, sent_id, erased)

    handoff = only(scene.handoffs())
    assert (handoff.status, handoff.delivered_at) == (HandoffStatus.TAKEN, arrived)
    edit = only(scene.pending(ContactCard))
    assert (edit.message_id, edit.status) == (sent_id, cards.STATUS_TAKEN_BY_YOU)


async def test_a_card_that_arrives_after_its_person_erased_their_data_is_scrubbed_at_once() -> None:
    scene = Scene()
    await scene.import_catalog(a_catalog(an_association("alpha")))
    await scene.coordinator("alpha", CAMILLE, "Camille")
    nadia = scene.person(NADIA)
    await nadia.fill()
    claimed = only(await scene.claim())
    handoff_id = only(scene.handoffs()).id
    await nadia.send(ConfirmErase())  # while the relay is sending her card

    await scene.sent(claimed)

    rows = scene.rows(ContactCard)
    row, scrub = only(rows)
    assert scrub.chat_id == CAMILLE
    assert scrub.message_id is not None
    assert scrub.body == cards.erased(handoff_id)
    assert (scrub.buttons, scrub.status) == ((), None)
    assert row.person_id is None


async def test_a_contact_released_by_a_coordinator_who_left_is_reminded_again_after_the_delay() -> (
    None
):
    scene, handoff = await a_delivered_contact()
    remind_after = scene.policy.silence.remind_after
    scene.later(remind_after)
    await handoffs.chase_silence(scene.unit_of_work, scene.now, scene.policy)
    await scene.deliver()
    await coordinator(scene, CAMILLE).press(handoff, TAKE)
    scene.later(timedelta(days=1))
    async with scene.unit_of_work() as uow:
        await coordinators.remove(uow, "alpha", CAMILLE, scene.now, scene.policy)
        await uow.commit()
    scene.later(remind_after)

    assert await handoffs.chase_silence(scene.unit_of_work, scene.now, scene.policy) == 1

    assert only(scene.pending(CoordinatorNotice)).chat_id == BOB
