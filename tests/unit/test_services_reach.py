"""Reaching people: nothing goes to a person who blocked the bot, and one nudge goes to a person
who stopped half-way through a questionnaire."""

from __future__ import annotations

from datetime import timedelta

from conversations.entities import Conversation, Person, ProfileStatus
from conversations.flows import FLOWS
from conversations.handoff import HandoffVerb
from conversations.model import Ask, Status, TextInput
from conversations.ports import CoordinatorNotice, PersonNotice
from conversations.services import handoffs, reach, waiting_list
from conversations.services.actions import (
    Answer,
    Cancel,
    ChatMemberChanged,
    ConfirmErase,
    ResumeQuestionnaire,
)
from conversations.services.policy import Policy
from tests.unit.fakes import (
    ADMINS,
    BLOCKED,
    DEAD,
    T0,
    Chat,
    Scene,
    a_catalog,
    an_association,
    only,
)

NADIA, MARC, CAMILLE = 101, 102, 501
DAY = timedelta(hours=24)


def person(scene: Scene, telegram_id: int) -> Person:
    return only(p for p in scene.db.tables.people.values() if p.telegram_id == telegram_id)


def conversation_of(scene: Scene, telegram_id: int) -> Conversation:
    person_id = person(scene, telegram_id).id
    rows = scene.db.tables.conversations.values()
    return max((c for c in rows if c.person_id == person_id), key=lambda c: c.id)


async def nudge(scene: Scene) -> int:
    return await reach.nudge(scene.unit_of_work, scene.now, scene.policy)


async def nadia_signed_up_to_alpha() -> tuple[Scene, Chat]:
    """Nadia's contact reached Camille, alpha's coordinator."""
    scene = Scene()
    await scene.import_catalog(a_catalog(an_association("alpha")))
    await scene.coordinator("alpha", CAMILLE, "Camille")
    nadia = scene.person(NADIA)
    await nadia.fill()
    await scene.deliver()
    return scene, nadia


# --- a blocked bot --------------------------------------------------------------------------------


async def test_blocking_the_bot_is_recorded_and_unblocking_clears_it() -> None:
    scene = Scene()
    nadia = scene.person(NADIA)
    await nadia.start()

    reply = await nadia.send(ChatMemberChanged(blocked=True))
    assert reply.screens == ()
    assert reply.toast is None
    assert person(scene, NADIA).blocked_at == T0

    scene.later(timedelta(hours=3))
    await nadia.send(ChatMemberChanged(blocked=False))
    assert person(scene, NADIA).blocked_at is None


async def test_a_person_who_blocked_the_bot_is_not_told_their_contact_was_taken() -> None:
    scene, nadia = await nadia_signed_up_to_alpha()
    await nadia.send(ChatMemberChanged(blocked=True))

    handoff = only(scene.handoffs())
    reply = await scene.person(CAMILLE, "Camille").press(handoff, HandoffVerb.TAKE)

    assert scene.db.tables.handoffs[handoff.id].status == "taken"
    assert scene.pending(PersonNotice) == []
    # The coordinator knows not to wait for the person to answer in the chat.
    assert reply.toast == handoffs.TOAST_TAKEN_BLOCKED


async def test_a_person_who_did_not_block_the_bot_is_told_and_the_coordinator_hears_so() -> None:
    scene, _nadia = await nadia_signed_up_to_alpha()

    reply = await scene.person(CAMILLE, "Camille").press(only(scene.handoffs()), HandoffVerb.TAKE)

    assert only(scene.pending(PersonNotice)).chat_id == NADIA
    assert reply.toast == handoffs.TOAST_TAKEN


async def test_news_queued_before_the_block_do_not_go_but_the_same_account_s_cards_do() -> None:
    scene, nadia = await nadia_signed_up_to_alpha()
    await scene.person(CAMILLE, "Camille").press(only(scene.handoffs()), HandoffVerb.TAKE)
    # Nadia also coordinates an association: what she gets as its coordinator still goes.
    async with scene.unit_of_work() as uow:
        reminder = CoordinatorNotice(NADIA, "fr", handoffs.TOAST_DONE)
        await uow.outbox.enqueue("remind:other", reminder, scene.now)
        await uow.commit()

    await nadia.send(ChatMemberChanged(blocked=True))

    [(row, _notice)] = scene.rows(PersonNotice, status=None)
    assert (row.status, row.last_error) == (DEAD, BLOCKED)
    assert only(scene.pending(CoordinatorNotice)) == reminder


async def test_after_unblocking_the_news_reach_the_person_again() -> None:
    scene, nadia = await nadia_signed_up_to_alpha()
    await nadia.send(ChatMemberChanged(blocked=True))
    await nadia.send(ChatMemberChanged(blocked=False))

    reply = await scene.person(CAMILLE, "Camille").press(only(scene.handoffs()), HandoffVerb.TAKE)

    assert only(scene.pending(PersonNotice)).chat_id == NADIA
    assert reply.toast == handoffs.TOAST_TAKEN


async def test_a_blocked_person_on_the_waiting_list_is_handed_off_without_a_word() -> None:
    scene = Scene()
    mentors_only = an_association("alpha", roles=["mentor"])
    await scene.import_catalog(a_catalog(mentors_only))
    nadia = scene.person(NADIA)
    await nadia.fill()
    await nadia.send(ChatMemberChanged(blocked=True))
    await scene.import_catalog(a_catalog(mentors_only, an_association("beta")))
    scene.later(waiting_list.EVERY)

    found = await waiting_list.retry_waiting(scene.unit_of_work, scene.now, scene.policy)

    assert found == 1
    assert only(scene.db.tables.profiles.values()).status == ProfileStatus.MATCHED
    assert scene.pending(PersonNotice) == []


# --- one nudge ------------------------------------------------------------------------------------


async def test_one_nudge_a_day_later_says_where_the_person_stopped() -> None:
    scene = Scene()
    nadia = scene.person(NADIA)
    stopped = await nadia.answer_until("mentee", "postal_code")
    ask = stopped.screens[-1]
    assert isinstance(ask, Ask)

    scene.later(DAY - timedelta(minutes=1))
    assert await nudge(scene) == 0
    scene.later(timedelta(minutes=1))
    assert await nudge(scene) == 1

    [(row, notice)] = scene.rows(PersonNotice)
    assert row.key == f"nudge:{conversation_of(scene, NADIA).id}"
    assert row.person_id == person(scene, NADIA).id
    assert notice.chat_id == NADIA
    assert notice.language == "fr"
    assert notice.text == reach.NUDGE["tu"].fmt(title=ask.step.title)
    assert notice.resume == reach.RESUME
    assert conversation_of(scene, NADIA).nudged_at == scene.now

    # Once: neither the next pass nor another day of silence sends a second one.
    scene.later(DAY)
    assert await nudge(scene) == 0
    assert len(scene.rows(PersonNotice, status=None)) == 1


async def test_the_nudge_button_shows_the_question_the_person_stopped_at() -> None:
    scene = Scene()
    nadia = scene.person(NADIA)
    await nadia.answer_until("mentee", "postal_code")
    scene.later(DAY)
    await nudge(scene)

    reply = await nadia.send(ResumeQuestionnaire())

    ask = reply.screens[-1]
    assert isinstance(ask, Ask)
    assert ask.step.key == "postal_code"


async def test_the_nudge_says_vous_to_whom_the_questionnaire_says_vous() -> None:
    scene = Scene()
    await scene.person(MARC).answer_until("mentor", "postal_code")
    scene.later(DAY)

    assert await nudge(scene) == 1

    notice = only(scene.pending(PersonNotice))
    title = FLOWS["mentor"].step("postal_code").title
    assert notice.text == reach.NUDGE["vous"].fmt(title=title)


async def test_a_person_at_the_summary_is_nudged_to_send_their_answers() -> None:
    scene = Scene()
    await scene.person(NADIA).answer_until("mentee", "_summary")
    scene.later(DAY)

    assert await nudge(scene) == 1

    assert only(scene.pending(PersonNotice)).text == reach.NUDGE_AT_SUMMARY["tu"]


async def test_the_nudge_follows_the_language_the_person_chose() -> None:
    scene = Scene()
    nadia = scene.person(NADIA)
    await nadia.answer_until("mentee", "postal_code")
    async with scene.unit_of_work() as uow:
        found = await uow.people.by_telegram_id(NADIA)
        assert found is not None
        found.language = "en"
        await uow.commit()
    scene.later(DAY)

    await nudge(scene)

    assert only(scene.pending(PersonNotice)).language == "en"


async def test_no_nudge_after_cancel() -> None:
    scene = Scene()
    nadia = scene.person(NADIA)
    await nadia.answer_until("mentee", "postal_code")
    await nadia.send(Cancel())
    scene.later(DAY)

    assert await nudge(scene) == 0
    assert scene.pending(PersonNotice) == []
    assert conversation_of(scene, NADIA).status == Status.CANCELLED


async def test_no_nudge_after_the_person_erased_their_data() -> None:
    scene = Scene()
    nadia = scene.person(NADIA)
    await nadia.answer_until("mentee", "postal_code")
    await nadia.send(ConfirmErase())
    scene.later(DAY)

    assert await nudge(scene) == 0
    assert scene.pending(PersonNotice) == []


async def test_no_nudge_to_a_person_who_blocked_the_bot() -> None:
    scene = Scene()
    nadia = scene.person(NADIA)
    await nadia.answer_until("mentee", "postal_code")
    await nadia.send(ChatMemberChanged(blocked=True))
    scene.later(DAY)

    assert await nudge(scene) == 0
    assert scene.pending(PersonNotice) == []


async def test_no_nudge_once_the_questionnaire_is_sent() -> None:
    scene = Scene()
    await scene.import_catalog(a_catalog(an_association("alpha")))
    await scene.person(NADIA).fill()
    scene.later(DAY)

    assert await nudge(scene) == 0
    assert scene.pending(PersonNotice) == []


async def test_no_nudge_when_the_setting_turns_it_off() -> None:
    scene = Scene(Policy(admins=ADMINS, nudge_after=None))
    await scene.person(NADIA).answer_until("mentee", "postal_code")
    scene.later(DAY * 30)

    assert await nudge(scene) == 0
    assert scene.pending(PersonNotice) == []


async def test_a_person_who_answers_as_the_nudge_is_written_is_not_nudged() -> None:
    scene = Scene()
    nadia = scene.person(NADIA)
    await nadia.answer_until("mentee", "postal_code")
    scene.later(DAY)
    # Nadia comes back at that very moment: the nudge's transaction loses, reads again, and
    # finds her busy.
    scene.db.interleave(lambda: nadia.send(Answer(TextInput("75011"))))

    assert await nudge(scene) == 0
    assert scene.pending(PersonNotice) == []
