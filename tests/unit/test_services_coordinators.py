"""Coordinators: invited by the Collectif, they join in the chat, see their queue, pause, or leave."""

from __future__ import annotations

from dataclasses import fields
from datetime import timedelta

import pytest

from conversations.entities import Handoff
from conversations.handoff import HandoffStatus, HandoffVerb
from conversations.ports import ContactCard
from conversations.services import cards, coordinators
from conversations.services.actions import ConfirmJoin, DeclineJoin, PauseAssociation, ShowQueue
from conversations.services.replies import Notice, Reply
from conversations.text import Lines, Text
from tests.unit.fakes import DEAD, Scene, a_catalog, an_association, only

CAMILLE, BOB, DORA, NADIA, INES = 501, 502, 601, 101, 102
WEEK = timedelta(days=7)


async def a_scene(
    *coordinators_of_alpha: tuple[int, str], slugs: tuple[str, ...] = ("alpha", "beta")
) -> Scene:
    """Alpha and beta take anyone (the less loaded first); coordinators for alpha only."""
    scene = Scene()
    await scene.import_catalog(a_catalog(*(an_association(slug) for slug in slugs)))
    for telegram_id, first_name in coordinators_of_alpha:
        await scene.coordinator("alpha", telegram_id, first_name)
    return scene


async def an_invite(scene: Scene, slug: str = "alpha") -> coordinators.Invitation:
    async with scene.unit_of_work() as uow:
        invitation = await coordinators.invite(uow, slug, scene.now, WEEK)
        await uow.commit()
    return invitation


def texts(reply: Reply) -> list[Text]:
    notices = [screen for screen in reply.screens if isinstance(screen, Notice)]
    assert len(notices) == len(reply.screens), reply
    return [notice.text for notice in notices]


# --- invites and joining ------------------------------------------------------------------------


async def test_an_invite_is_stored_only_as_its_hash() -> None:
    scene = await a_scene()

    invitation = await an_invite(scene)

    stored = only(scene.db.tables.invites.values())
    assert stored.token_hash == coordinators.hash_token(invitation.token)
    values = [str(getattr(stored, f.name)) for f in fields(stored)]
    assert not any(invitation.token in value for value in values)
    assert invitation.token.startswith(coordinators.INVITE_PREFIX)
    assert len(invitation.token) <= 64  # a Telegram /start payload
    assert (invitation.association, invitation.expires_at) == ("Alpha", scene.now + WEEK)


async def test_an_invite_to_an_unknown_association_is_refused() -> None:
    scene = await a_scene()

    with pytest.raises(coordinators.UnknownAssociation):
        await an_invite(scene, "nowhere")
    assert scene.db.tables.invites == {}


async def test_opening_an_invite_link_asks_to_confirm_and_confirming_makes_an_active_coordinator() -> (
    None
):
    scene = await a_scene()
    invitation = await an_invite(scene)
    camille = scene.person(CAMILLE, "Camille")

    asked = await camille.start(invitation.token)
    assert scene.db.tables.coordinators == {}  # opening the link alone joins nothing
    joined = await camille.send(ConfirmJoin(invitation.token))

    notice = only(asked.screens)
    assert isinstance(notice, Notice)
    assert notice.text == coordinators.JOIN_CONFIRM.fmt(association="Alpha")
    assert [b.action for b in notice.buttons] == [ConfirmJoin(invitation.token), DeclineJoin()]
    assert texts(joined) == [coordinators.JOINED.fmt(association="Alpha")]
    row = scene.coordinator_row(CAMILLE)
    assert row.association_id == scene.association("alpha").id
    assert (row.first_name, row.language, row.active) == ("Camille", "fr", True)
    invite = only(scene.db.tables.invites.values())
    assert (invite.used_at, invite.used_by) == (scene.now, CAMILLE)
    # The invite link is not a campaign: it is not kept as where the person came from.
    assert only(scene.db.tables.people.values()).source is None


async def test_an_invite_works_only_once() -> None:
    scene = await a_scene()
    invitation = await an_invite(scene)
    await scene.person(CAMILLE, "Camille").send(ConfirmJoin(invitation.token))

    opened = await scene.person(BOB, "Bob").start(invitation.token)
    confirmed = await scene.person(BOB, "Bob").send(ConfirmJoin(invitation.token))

    assert texts(opened) == [coordinators.INVITE_INVALID]
    assert texts(confirmed) == [coordinators.INVITE_INVALID]
    assert only(scene.db.tables.coordinators.values()).telegram_id == CAMILLE


async def test_an_expired_invite_is_refused() -> None:
    scene = await a_scene()
    invitation = await an_invite(scene)
    scene.later(WEEK)

    reply = await scene.person(CAMILLE, "Camille").send(ConfirmJoin(invitation.token))

    assert texts(reply) == [coordinators.INVITE_INVALID]
    assert scene.db.tables.coordinators == {}


async def test_declining_an_invite_joins_nothing_and_leaves_the_invite_usable() -> None:
    scene = await a_scene()
    invitation = await an_invite(scene)

    reply = await scene.person(CAMILLE, "Camille").send(DeclineJoin())

    assert texts(reply) == [coordinators.JOIN_DECLINED]
    assert scene.db.tables.coordinators == {}
    assert only(scene.db.tables.invites.values()).used_at is None
    joined = await scene.person(CAMILLE, "Camille").send(ConfirmJoin(invitation.token))
    assert texts(joined) == [coordinators.JOINED.fmt(association="Alpha")]


async def test_a_coordinator_who_was_removed_can_join_again_with_a_new_invite() -> None:
    scene = await a_scene((CAMILLE, "Camille"))
    async with scene.unit_of_work() as uow:
        await coordinators.remove(uow, "alpha", CAMILLE, scene.now, scene.policy)
        await uow.commit()
    assert not scene.coordinator_row(CAMILLE).active
    invitation = await an_invite(scene)

    await scene.person(CAMILLE, "Camille B.").send(ConfirmJoin(invitation.token))

    row = scene.coordinator_row(CAMILLE)
    assert (row.active, row.removed_at, row.first_name) == (True, None, "Camille B.")


# --- /queue and /pause --------------------------------------------------------------------------


def queue_lines(reply: Reply) -> list[Text]:
    (text,) = texts(reply)
    lines = text.params["lines"]
    assert isinstance(lines, Lines)
    return [line for line in lines.items if isinstance(line, Text)]


async def test_queue_lists_the_contacts_that_wait_oldest_first_with_who_took_them() -> None:
    scene = await a_scene((CAMILLE, "Camille"), slugs=("alpha",))
    await scene.person(NADIA).fill()
    scene.later(timedelta(hours=1))
    await scene.person(INES).fill(first_name="Inès")
    first, second = scene.handoffs()
    await scene.person(CAMILLE, "Camille").press(second, HandoffVerb.TAKE)

    reply = await scene.person(CAMILLE, "Camille").send(ShowQueue())

    (text,) = texts(reply)
    assert text.params["title"] == coordinators.QUEUE_TITLE.fmt(association="Alpha", count=2)
    lines = queue_lines(reply)
    assert [line.params["id"] for line in lines] == [first.id, second.id]
    assert [line.params["name"] for line in lines] == ["Nadia", "Inès"]
    assert lines[0].params["status"] == coordinators.QUEUE_STATUS[HandoffStatus.PROPOSED]
    taken = coordinators.QUEUE_STATUS[HandoffStatus.TAKEN].fmt(coordinator="Camille")
    assert lines[1].params["status"] == taken


async def test_queue_leaves_out_contacts_that_no_longer_wait() -> None:
    scene = await a_scene((CAMILLE, "Camille"))
    await scene.person(NADIA).fill()
    camille = scene.person(CAMILLE, "Camille")
    await camille.press(only(scene.handoffs()), HandoffVerb.TAKE)
    await camille.press(only(scene.handoffs()), HandoffVerb.CONTACTED)

    reply = await camille.send(ShowQueue())

    assert texts(reply) == [coordinators.QUEUE_EMPTY.fmt(association="Alpha")]


async def test_queue_and_pause_are_only_for_coordinators() -> None:
    scene = await a_scene()

    queue = await scene.person(NADIA).send(ShowQueue())
    pause = await scene.person(NADIA).send(PauseAssociation(True))

    assert texts(queue) == [coordinators.NOT_A_COORDINATOR]
    assert texts(pause) == [coordinators.NOT_A_COORDINATOR]
    assert not scene.association("alpha").paused


async def test_a_paused_association_gets_no_new_contacts_until_it_resumes() -> None:
    scene = await a_scene((CAMILLE, "Camille"))
    camille = scene.person(CAMILLE, "Camille")

    paused = await camille.send(PauseAssociation(True))
    await scene.person(NADIA).fill()

    assert texts(paused) == [coordinators.PAUSED.fmt(association="Alpha")]
    assert scene.association("alpha").paused
    assert [scene.slug_of(h) for h in scene.handoffs()] == ["beta"]

    resumed = await camille.send(PauseAssociation(False))
    await scene.person(INES).fill()

    assert texts(resumed) == [coordinators.RESUMED.fmt(association="Alpha")]
    assert not scene.association("alpha").paused
    assert scene.slug_of(scene.handoffs()[-1]) == "alpha"


# --- leaving ------------------------------------------------------------------------------------


async def remove(scene: Scene, telegram_id: int) -> int:
    async with scene.unit_of_work() as uow:
        released = await coordinators.remove(uow, "alpha", telegram_id, scene.now, scene.policy)
        await uow.commit()
    return released


def card_of(scene: Scene, chat_id: int) -> ContactCard:
    live = [m for row, m in scene.rows(ContactCard, status=None) if row.status != DEAD]
    return [card for card in live if card.chat_id == chat_id][-1]


async def test_a_removed_coordinator_s_contacts_go_back_to_their_colleagues() -> None:
    scene = await a_scene((CAMILLE, "Camille"), (BOB, "Bob"))
    await scene.person(NADIA).fill()
    await scene.deliver()
    handoff: Handoff = only(scene.handoffs())
    await scene.person(CAMILLE, "Camille").press(handoff, HandoffVerb.TAKE)
    scene.later(timedelta(days=1))

    released = await remove(scene, CAMILLE)

    assert released == 1
    back = scene.db.tables.handoffs[handoff.id]
    assert (back.status, back.taken_by) == (HandoffStatus.DELIVERED, None)
    # Silence is counted again from the release.
    assert (back.delivered_at, back.reminded_at) == (scene.now, None)
    assert [b.verb for b in card_of(scene, BOB).buttons] == [HandoffVerb.TAKE, HandoffVerb.DECLINE]
    assert card_of(scene, CAMILLE).buttons == ()
    assert not scene.coordinator_row(CAMILLE).active
    assert scene.coordinator_row(CAMILLE).removed_at == scene.now


async def test_nothing_queued_goes_to_a_coordinator_who_was_removed() -> None:
    scene = await a_scene((CAMILLE, "Camille"), (BOB, "Bob"), slugs=("alpha",))
    await scene.person(NADIA).fill()  # Camille's card is not delivered yet

    await remove(scene, CAMILLE)

    assert [card.chat_id for card in scene.pending(ContactCard)] == [BOB]
    await scene.person(INES).fill(first_name="Inès")
    assert [card.chat_id for card in scene.pending(ContactCard)] == [BOB, BOB]


async def test_removing_someone_who_does_not_coordinate_the_association_is_refused() -> None:
    scene = await a_scene((CAMILLE, "Camille"))
    await remove(scene, CAMILLE)

    with pytest.raises(coordinators.NotACoordinator):
        await remove(scene, CAMILLE)
    with pytest.raises(coordinators.NotACoordinator):
        await remove(scene, DORA)


async def test_a_card_already_delivered_to_a_removed_coordinator_loses_its_buttons() -> None:
    scene = await a_scene((CAMILLE, "Camille"), (BOB, "Bob"))
    await scene.person(NADIA).fill()
    await scene.deliver()

    await remove(scene, CAMILLE)
    await scene.person(BOB, "Bob").press(only(scene.handoffs()), HandoffVerb.TAKE)

    camille_sees = card_of(scene, CAMILLE)
    assert camille_sees.buttons == ()
    assert camille_sees.status == cards.STATUS_TAKEN_BY.fmt(coordinator="Bob")


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="coordinators.leave calls outbox.drop_pending_for_chat(coordinator.telegram_id), which "
    "kills every pending message to that Telegram chat: leaving one association also drops the "
    "pending contact cards of another association the same account still coordinates",
)
async def test_leaving_one_association_keeps_the_contacts_of_another_one_still_coordinated() -> (
    None
):
    scene = Scene()
    await scene.import_catalog(
        a_catalog(an_association("alpha", roles=["mentor"]), an_association("beta"))
    )
    await scene.coordinator("alpha", CAMILLE, "Camille")
    await scene.coordinator("beta", CAMILLE, "Camille")
    await scene.person(NADIA).fill()  # a mentee: only beta takes mentees

    await remove(scene, CAMILLE)  # from alpha

    card = only(scene.pending(ContactCard))
    assert (card.chat_id, card.handoff_id) == (CAMILLE, only(scene.handoffs()).id)
