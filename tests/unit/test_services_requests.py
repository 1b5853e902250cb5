"""One open request per person and role: a second sign-up asks to replace the first or keep it."""

from __future__ import annotations

from datetime import timedelta

from conversations.entities import ProfileStatus
from conversations.handoff import HandoffStatus
from conversations.model import Ask
from conversations.ports import AssociationWebhook, ContactCard, CoordinatorNotice
from conversations.services import cards, onboarding
from conversations.services.actions import KeepRequest, ReplaceRequest
from conversations.services.replies import Notice
from tests.unit.fakes import Scene, a_catalog, an_association, only
from tests.unit.test_services_handoffs import CAMILLE, NADIA, WEBHOOK, a_delivered_contact


def buttons_of(reply: object) -> list[object]:
    screen = reply.screens[-1]  # type: ignore[attr-defined]
    assert isinstance(screen, Notice)
    return [button.action for button in screen.buttons]


async def test_a_second_sign_up_while_one_is_open_asks_to_replace_or_keep_it() -> None:
    scene, handoff = await a_delivered_contact("alpha")
    nadia = scene.person(NADIA)

    offer = await nadia.choose("mentee")

    notice = offer.screens[-1]
    assert isinstance(notice, Notice)
    assert notice.text == onboarding.ALREADY_REQUESTED["mentee"].fmt(association="Alpha")
    profile = only(scene.db.tables.profiles.values())
    assert buttons_of(offer) == [ReplaceRequest("mentee", profile.id), KeepRequest("mentee")]
    # Nothing started, nothing withdrawn yet.
    assert [c.status for c in scene.db.tables.conversations.values()] == ["completed"]
    assert only(scene.handoffs()).status == handoff.status


async def test_keeping_the_request_changes_nothing() -> None:
    scene, handoff = await a_delivered_contact("alpha")
    nadia = scene.person(NADIA)
    await nadia.choose("mentee")
    before = len(scene.db.tables.outbox)

    kept = await nadia.send(KeepRequest("mentee"))

    assert kept.screens == (Notice(onboarding.KEPT_REQUEST["mentee"]),)
    assert only(scene.handoffs()).status == handoff.status
    assert len(scene.db.tables.outbox) == before


async def test_replacing_withdraws_the_first_request_and_tells_its_association() -> None:
    scene = Scene()
    crm = {"telegram": True, "webhook_url": WEBHOOK, "webhook_secret": "s" * 32}
    await scene.import_catalog(a_catalog(an_association("alpha", handoff=crm)))
    await scene.coordinator("alpha", CAMILLE, "Camille")
    nadia = scene.person(NADIA)
    await nadia.fill()
    await scene.deliver()
    first = only(scene.handoffs())

    await nadia.choose("mentee")
    replaced = await nadia.send(ReplaceRequest("mentee", first.profile_id))

    # The new questionnaire begins at once, after saying the first request is withdrawn.
    assert replaced.screens[0] == Notice(onboarding.REPLACED["mentee"])
    assert isinstance(replaced.screens[-1], Ask)
    withdrawn = next(h for h in scene.handoffs() if h.id == first.id)
    assert withdrawn.status == HandoffStatus.WITHDRAWN
    profile = scene.db.tables.profiles[first.profile_id]
    assert profile.status == ProfileStatus.WITHDRAWN
    # The coordinator's card says so, she is told, and so is the association's CRM.
    edits = [c for c in scene.pending(ContactCard) if c.message_id is not None]
    assert [c.status for c in edits] == [cards.STATUS_WITHDRAWN]
    assert edits[0].buttons == ()
    assert any(n.chat_id == CAMILLE for n in scene.pending(CoordinatorNotice))
    events = [w.event for w in scene.pending(AssociationWebhook)]
    assert "handoff.withdrawn" in events


async def test_after_replacing_the_new_sign_up_is_handed_off_and_the_old_one_stays_withdrawn() -> (
    None
):
    scene, first = await a_delivered_contact("alpha")
    nadia = scene.person(NADIA)
    await nadia.choose("mentee")
    await nadia.send(ReplaceRequest("mentee", first.profile_id))
    # Answer the new questionnaire to the end (it is already open: fill's choose, a minute
    # later, resumes it).
    scene.later(timedelta(minutes=1))
    await nadia.fill()

    statuses = sorted(h.status for h in scene.handoffs())
    assert statuses == sorted([HandoffStatus.WITHDRAWN, HandoffStatus.PROPOSED])
    # A third sign-up asks again, about the new request this time.
    offer = await nadia.choose("mentee")
    newer = max(scene.db.tables.profiles.values(), key=lambda p: p.id)
    assert buttons_of(offer) == [ReplaceRequest("mentee", newer.id), KeepRequest("mentee")]
    # The old offer's button names the first request: it does not withdraw the newer one.
    stale = await nadia.send(ReplaceRequest("mentee", first.profile_id))
    assert stale.toast == onboarding.FORGED
    assert sorted(h.status for h in scene.handoffs()) == sorted(
        [HandoffStatus.WITHDRAWN, HandoffStatus.PROPOSED]
    )


async def test_a_mentor_sign_up_is_not_blocked_by_an_open_mentee_request() -> None:
    scene, _handoff = await a_delivered_contact("alpha")

    reply = await scene.person(NADIA).choose("mentor")

    assert isinstance(reply.screens[-1], Ask)


async def test_a_request_on_the_waiting_list_is_open_too() -> None:
    scene = Scene()
    await scene.import_catalog(a_catalog(an_association("alpha", roles=["mentor"])))
    nadia = scene.person(NADIA)
    await nadia.fill()  # a mentee: nothing fits, the waiting list
    assert only(scene.db.tables.profiles.values()).status == ProfileStatus.WAITING

    offer = await nadia.choose("mentee")

    notice = offer.screens[-1]
    assert isinstance(notice, Notice)
    assert notice.text == onboarding.ALREADY_WAITING["mentee"]
    waiting = only(scene.db.tables.profiles.values())
    await nadia.send(ReplaceRequest("mentee", waiting.id))
    assert only(scene.db.tables.profiles.values()).status == ProfileStatus.WITHDRAWN


async def test_a_forged_replace_for_an_unknown_flow_changes_nothing() -> None:
    scene, handoff = await a_delivered_contact("alpha")

    reply = await scene.person(NADIA).send(ReplaceRequest("pirate", handoff.profile_id))

    assert reply.toast == onboarding.FORGED
    assert only(scene.handoffs()).status == handoff.status
