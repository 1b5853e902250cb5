"""What a person can know and erase about themselves, and retention (CNIL)."""

from __future__ import annotations

from datetime import timedelta

from conversations.entities import Milestone
from conversations.handoff import HandoffStatus, HandoffVerb
from conversations.model import Status, TextInput
from conversations.ports import AssociationWebhook, ContactCard, CoordinatorNotice
from conversations.services import cards, coordinators, handoffs, privacy
from conversations.services.actions import ConfirmErase, ConfirmJoin, ShowMyData
from conversations.services.replies import Document, Notice, Reply
from conversations.text import Lines, Text
from tests.unit.fakes import (
    DEAD,
    ERASED,
    Scene,
    a_catalog,
    an_association,
    only,
)

NADIA, INES, CAMILLE, BOB = 101, 102, 501, 502
WEBHOOK = "https://crm.alpha.example/hook"


async def a_scene() -> Scene:
    scene = Scene()
    await scene.import_catalog(a_catalog(an_association("alpha"), an_association("beta")))
    await scene.coordinator("alpha", CAMILLE, "Camille")
    await scene.coordinator("alpha", BOB, "Bob")
    return scene


def details(reply: Reply) -> list[Text | str]:
    notice, document = reply.screens
    assert isinstance(notice, Notice)
    assert isinstance(document, Document)
    lines = notice.text.params["details"]
    assert isinstance(lines, Lines)
    return list(lines.items)


def assert_outbox_holds_nothing_of_nadia(scene: Scene) -> None:
    """No message, queued or sent, still holds what she answered."""
    for row in scene.db.tables.outbox.values():
        assert row.person_id is None
        for her_answer in ("Nadia", "+33612345678", "93200"):
            assert her_answer not in repr(row.message), row


def card_of(scene: Scene, chat_id: int) -> ContactCard:
    live = [m for row, m in scene.rows(ContactCard, status=None) if row.status != DEAD]
    return [card for card in live if card.chat_id == chat_id][-1]


# --- /mydata ------------------------------------------------------------------------------------


async def test_someone_the_bot_knows_nothing_about_is_told_so() -> None:
    reply = await Scene().person(NADIA).send(ShowMyData())

    assert reply.screens == (Notice(privacy.NO_DATA["vous"]),)


async def test_my_data_shows_the_answers_of_a_questionnaire_in_progress() -> None:
    scene = Scene()
    nadia = scene.person(NADIA)
    await nadia.choose("mentee")
    await nadia.answer(TextInput("Nadia"))

    (in_progress,) = details(await nadia.send(ShowMyData()))

    assert isinstance(in_progress, Text)
    assert in_progress.msgid == privacy.MY_DATA_IN_PROGRESS.msgid
    answers = in_progress.params["answers"]
    assert isinstance(answers, Lines)
    (first_name,) = answers.items
    assert isinstance(first_name, Text)
    assert first_name.params["value"] == "Nadia"


async def test_my_data_lists_the_profile_the_consent_and_the_association_that_received_it() -> None:
    scene = await a_scene()
    nadia = scene.person(NADIA)
    await nadia.fill()
    await scene.person(CAMILLE, "Camille").press(only(scene.handoffs()), HandoffVerb.TAKE)

    profile, consent, recipient = details(await nadia.send(ShowMyData()))

    assert isinstance(profile, Text)
    assert profile.msgid == privacy.MY_DATA_PROFILE.msgid
    assert isinstance(consent, Text)
    assert consent.params["kind"] == privacy.CONSENT_KINDS["contact"]
    assert isinstance(recipient, Text)
    assert recipient.params["association"] == "Alpha"
    assert recipient.params["status"] == privacy.HANDOFF_STATES[HandoffStatus.TAKEN]


# --- /delete ------------------------------------------------------------------------------------


async def test_erasing_removes_everything_about_the_person_but_the_anonymous_counts() -> None:
    scene = await a_scene()
    nadia = scene.person(NADIA)
    await nadia.fill()
    await scene.person(INES).choose("mentee")  # someone else, untouched
    started = scene.funnel(Milestone.STARTED)

    reply = await nadia.send(ConfirmErase())

    assert reply.screens == (Notice(privacy.ERASED["tu"]),)
    tables = scene.db.tables
    assert [p.telegram_id for p in tables.people.values()] == [INES]
    assert [c.person_id for c in tables.conversations.values()] == [only(tables.people.values()).id]
    assert (tables.profiles, tables.consents, tables.handoffs) == ({}, {}, {})
    assert scene.funnel(Milestone.STARTED) == started
    assert_outbox_holds_nothing_of_nadia(scene)
    # Her card was never delivered: it will not be either.
    sent_cards = [row for row in tables.outbox.values() if row.key.startswith("handoff:")]
    assert [(c.chat_id, c.status, c.last_error) for c in sent_cards] == [
        (CAMILLE, DEAD, ERASED),
        (BOB, DEAD, ERASED),
    ]


async def test_erasing_turns_every_card_that_showed_the_person_into_the_erased_text() -> None:
    scene = await a_scene()
    nadia = scene.person(NADIA)
    await nadia.fill()
    await scene.deliver()
    handoff_id = only(scene.handoffs()).id
    await scene.person(CAMILLE, "Camille").press(handoff_id, HandoffVerb.TAKE)

    await nadia.send(ConfirmErase())

    for chat_id in (CAMILLE, BOB):
        card = card_of(scene, chat_id)
        assert card.body == cards.erased(handoff_id)
        assert (card.status, card.buttons) == (None, ())
        assert card.message_id is not None
    # The news for her ("Camille takes care of it") was still on its way: it will not go.
    assert [row.message for row in scene.db.tables.outbox.values() if row.last_error == ERASED]
    assert_outbox_holds_nothing_of_nadia(scene)


async def test_erasing_tells_each_coordinator_to_delete_what_they_kept() -> None:
    scene = await a_scene()
    nadia = scene.person(NADIA)
    await nadia.fill()
    handoff_id = only(scene.handoffs()).id

    await nadia.send(ConfirmErase())

    notices = scene.pending(CoordinatorNotice)
    assert sorted(n.chat_id for n in notices) == [CAMILLE, BOB]
    assert [n.text for n in notices] == [handoffs.ERASED_NOTICE.fmt(id=handoff_id)] * 2


async def test_an_association_with_a_crm_is_sent_the_erasure_too() -> None:
    scene = await a_scene()
    async with scene.unit_of_work() as uow:
        record = await uow.catalog.by_slug("alpha")
        assert record is not None
        record.entry = {
            **record.entry,
            "handoff": {"telegram": True, "webhook_url": WEBHOOK, "webhook_secret": "s" * 20},
        }
        await uow.commit()
    nadia = scene.person(NADIA)
    await nadia.fill()
    handoff_id = only(scene.handoffs()).id

    await nadia.send(ConfirmErase())

    erased = only(scene.pending(AssociationWebhook))
    assert erased.url == WEBHOOK
    assert erased.body == {
        "event": "handoff.erased",
        "handoff_id": handoff_id,
        "association": "alpha",
    }


async def test_a_coordinator_who_erases_their_data_stops_coordinating_and_their_contacts_go_back() -> (
    None
):
    scene = await a_scene()
    await scene.person(NADIA).fill()
    await scene.deliver()
    handoff_id = only(scene.handoffs()).id
    camille = scene.person(CAMILLE, "Camille")
    await camille.press(handoff_id, HandoffVerb.TAKE)

    await camille.send(ConfirmErase())

    assert [c.telegram_id for c in scene.db.tables.coordinators.values()] == [BOB]
    handoff = scene.db.tables.handoffs[handoff_id]
    assert (handoff.status, handoff.taken_by) == (HandoffStatus.DELIVERED, None)
    assert [b.verb for b in card_of(scene, BOB).buttons] == [HandoffVerb.TAKE, HandoffVerb.DECLINE]
    assert CAMILLE not in {p.telegram_id for p in scene.db.tables.people.values()}


async def test_an_erased_person_s_used_invite_no_longer_names_them() -> None:
    scene = await a_scene()
    async with scene.unit_of_work() as uow:
        invitation = await coordinators.invite(uow, "beta", scene.now, timedelta(days=1))
        await uow.commit()
    ines = scene.person(INES, "Inès")
    await ines.send(ConfirmJoin(invitation.token))

    await ines.send(ConfirmErase())

    invite = only(scene.db.tables.invites.values())
    assert invite.used_by is None
    assert invite.used_at is not None  # still used up


# --- retention ----------------------------------------------------------------------------------


async def test_unfinished_questionnaires_go_after_a_while_and_completed_ones_stay() -> None:
    scene = await a_scene()
    await scene.person(NADIA).fill()
    await scene.person(INES).answer_until("mentee", "postal_code")
    scene.later(scene.policy.abandoned_after + timedelta(days=1))
    recent = scene.person(103)
    await recent.choose("mentee")

    purged = await privacy.purge(scene.unit_of_work, scene.now, scene.policy)

    assert purged.conversations == 1
    statuses = sorted(c.status for c in scene.db.tables.conversations.values())
    assert statuses == [Status.ACTIVE, Status.COMPLETED]


async def test_retention_erases_who_never_signed_up_after_a_month_but_keeps_coordinators() -> None:
    scene = await a_scene()
    await scene.person(NADIA).fill()  # a profile: kept for the whole retention period
    await scene.person(INES).start()  # no profile: kept for a month
    await scene.person(CAMILLE, "Camille").start()  # no profile either, but coordinates alpha
    scene.later(scene.policy.abandoned_after + timedelta(days=1))
    await scene.person(103).start()  # seen just now

    purged = await privacy.purge(scene.unit_of_work, scene.now, scene.policy)

    assert purged.people == 1
    assert {p.telegram_id for p in scene.db.tables.people.values()} == {NADIA, CAMILLE, 103}
    assert scene.coordinator_row(CAMILLE).active


async def test_after_the_retention_period_a_sign_up_is_erased_exactly_as_a_delete_would() -> None:
    scene = await a_scene()
    await scene.person(NADIA).fill()
    handoff_id = only(scene.handoffs()).id
    scene.later(scene.policy.retention - timedelta(days=1))
    assert (await privacy.purge(scene.unit_of_work, scene.now, scene.policy)).people == 0
    scene.later(timedelta(days=2))

    purged = await privacy.purge(scene.unit_of_work, scene.now, scene.policy)

    assert purged.people == 1
    assert (scene.db.tables.people, scene.db.tables.profiles) == ({}, {})
    notices = scene.pending(CoordinatorNotice)
    assert [n.text for n in notices] == [handoffs.ERASED_NOTICE.fmt(id=handoff_id)] * 2
    assert_outbox_holds_nothing_of_nadia(scene)
