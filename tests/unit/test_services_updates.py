"""One update, one use-case, once: redeliveries and races through `updates.handle`."""

from __future__ import annotations

from datetime import timedelta

import pytest

from conversations.entities import Milestone
from conversations.handoff import HandoffStatus, HandoffVerb
from conversations.model import TextInput
from conversations.ports import PersonNotice
from conversations.services import handoffs, privacy, updates
from conversations.services.actions import (
    Answer,
    AskErase,
    ChooseFlow,
    ConfirmErase,
    Help,
    KeepData,
    Restart,
)
from conversations.services.replies import Notice
from tests.unit.fakes import Scene, a_catalog, an_association, only


async def test_a_redelivered_update_changes_nothing_and_is_answered_as_a_duplicate() -> None:
    scene = Scene()
    nadia = scene.person(101)
    await nadia.choose("mentee")
    await nadia.send(Restart(), update_id=50)
    seen_at = only(scene.db.tables.people.values()).last_seen_at
    scene.later(timedelta(minutes=5))

    again = await nadia.send(Restart(), update_id=50)

    assert again.duplicate
    assert again.screens == ()
    # Handled twice, a restart would have cancelled the second questionnaire too.
    assert len(scene.db.tables.conversations) == 2
    assert scene.funnel(Milestone.RESTARTED) == 1
    assert only(scene.db.tables.people.values()).last_seen_at == seen_at


async def test_a_redelivery_racing_the_first_delivery_is_handled_once() -> None:
    scene = Scene()
    nadia = scene.person(101)
    scene.db.interleave(lambda: nadia.send(ChooseFlow("mentee"), update_id=7))

    # The interleaved copy commits first: this one conflicts, reads again, and sees it handled.
    reply = await nadia.send(ChooseFlow("mentee"), update_id=7)

    assert reply.duplicate
    assert len(scene.db.tables.conversations) == 1
    assert scene.funnel(Milestone.STARTED) == 1


async def test_a_take_that_loses_the_race_is_decided_again_and_names_the_winner() -> None:
    scene = Scene()
    await scene.import_catalog(a_catalog(an_association("alpha")))
    camille = await scene.coordinator("alpha", 501, "Camille")
    bob = await scene.coordinator("alpha", 502, "Bob")
    await scene.person(101).fill()
    await scene.deliver()
    handoff = only(scene.handoffs())
    scene.db.interleave(lambda: bob.press(handoff, HandoffVerb.TAKE))

    reply = await camille.press(handoff, HandoffVerb.TAKE)

    assert reply.toast == handoffs.TOAST_ALREADY_TAKEN.fmt(coordinator="Bob")
    taken = only(scene.handoffs())
    assert taken.status == HandoffStatus.TAKEN
    assert taken.taken_by == scene.coordinator_row(502).id
    assert only(scene.pending(PersonNotice)).text.params["coordinator"] == "Bob"


async def test_an_update_that_loses_every_race_gives_up_and_keeps_nothing() -> None:
    scene = Scene()
    nadia = scene.person(101)
    await nadia.choose("mentee")

    async def another_process_moves_the_conversation() -> None:
        async with scene.unit_of_work() as uow:
            person = await uow.people.by_telegram_id(101)
            assert person is not None
            conversation = await uow.conversations.active_for(person)
            assert conversation is not None
            conversation.updated_at += timedelta(seconds=1)
            await uow.commit()

    for _attempt in range(updates.ATTEMPTS):
        scene.db.interleave(another_process_moves_the_conversation)

    with pytest.raises(RuntimeError, match="kept conflicting"):
        await nadia.send(Answer(TextInput("Nadia")), update_id=77)

    assert only(scene.db.tables.conversations.values()).step == "first_name"
    # Not recorded either: Telegram's redelivery of it will be handled.
    assert 77 not in scene.db.tables.updates


async def test_the_relay_is_woken_only_when_a_message_waits_for_someone_else() -> None:
    scene = Scene()
    await scene.import_catalog(a_catalog(an_association("alpha")))
    await scene.coordinator("alpha", 501, "Camille")
    nadia = scene.person(101)

    await nadia.answer_until("mentee", "_summary")
    assert scene.relay_woken == 0

    scene.later(timedelta(minutes=1))
    await nadia.fill()
    assert scene.relay_woken == 1


async def test_update_ids_are_forgotten_after_two_days_and_recent_ones_still_block_a_redelivery() -> (
    None
):
    scene = Scene()
    nadia = scene.person(101)
    await nadia.send(Help(), update_id=1)
    scene.later(timedelta(days=3))
    await nadia.send(Help(), update_id=2)

    forgotten = await updates.forget_old_updates(scene.unit_of_work, scene.now)

    assert forgotten == 1
    assert (await nadia.send(Help(), update_id=2)).duplicate
    assert set(scene.db.tables.updates) == {2}


async def test_asking_to_erase_offers_to_confirm_or_keep_and_keeping_erases_nothing() -> None:
    scene = Scene()
    nadia = scene.person(101)
    await nadia.choose("mentee")

    asked = await nadia.send(AskErase())
    kept = await nadia.send(KeepData())

    notice = only(asked.screens)
    assert isinstance(notice, Notice)
    assert notice.text == privacy.ASK_ERASE["tu"]
    assert [b.action for b in notice.buttons] == [ConfirmErase(), KeepData()]
    assert kept.screens == (Notice(privacy.KEPT["tu"]),)
    assert len(scene.db.tables.conversations) == 1
