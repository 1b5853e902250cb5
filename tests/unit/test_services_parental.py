"""Who fills the questionnaire in, and a parent's consent a child cannot fake (issue 10)."""

from __future__ import annotations

import re
from datetime import timedelta

from conversations.entities import ConsentKind, ConsentMethod, ProfileStatus
from conversations.model import Ask, TextInput
from conversations.ports import ContactCard, PersonNotice
from conversations.services import announce, cards, onboarding, parental
from conversations.services.actions import AnswerParental, Reopen, Start
from conversations.services.replies import Notice, Reply
from tests.unit.fakes import Scene, a_catalog, an_association, only
from tests.unit.helpers import pick, tick

CHILD, PARENT = 101, 202
LINK = re.compile(r"https://t\.me/\w*\?start=(pc_[A-Za-z0-9_-]+)")


def link_in(reply: Reply) -> str:
    """The /start payload of the parental link the reply shows."""
    for screen in reply.screens:
        if isinstance(screen, Notice):
            found = LINK.search(_plain(screen.text))
            if found:
                return found.group(1)
    raise AssertionError(f"no parental link in {reply!r}")


def _plain(text: object) -> str:
    params = getattr(text, "params", {})
    return getattr(text, "msgid", "") + " " + " ".join(str(v) for v in params.values())


async def a_child_of_13_alone(scene: Scene) -> Reply:
    await scene.import_catalog(a_catalog(an_association("alpha")))
    await scene.coordinator("alpha", 501, "Camille")
    return await scene.person(CHILD).fill(age="13", needs=tick("needs", "school_support"))


async def test_a_child_under_15_alone_is_not_handed_off_before_the_parent_confirms() -> None:
    scene = Scene()
    reply = await a_child_of_13_alone(scene)

    profile = only(scene.db.tables.profiles.values())
    assert profile.status == ProfileStatus.AWAITING_PARENT
    assert scene.handoffs() == []
    assert scene.pending(ContactCard) == []
    assert link_in(reply).startswith(parental.LINK_PREFIX)
    # Only the child's own consent: their "yes" is never the parent's.
    assert [c.kind for c in scene.db.tables.consents.values()] == [ConsentKind.CONTACT]
    # Only the hash of the link is kept.
    token = link_in(reply).removeprefix(parental.LINK_PREFIX)
    assert token not in repr(scene.db.tables.parental_links)


async def test_the_child_s_own_account_cannot_answer_the_link() -> None:
    scene = Scene()
    payload = link_in(await a_child_of_13_alone(scene))
    child = scene.person(CHILD)

    opened = await child.start(payload)
    pressed = await child.send(AnswerParental(payload.removeprefix("pc_"), agreed=True))

    assert opened.screens == (Notice(parental.OWN_LINK),)
    assert pressed.screens == (Notice(parental.OWN_LINK),)
    assert only(scene.db.tables.profiles.values()).status == ProfileStatus.AWAITING_PARENT
    assert scene.handoffs() == []


async def test_the_parent_sees_what_is_sent_to_whom_then_agrees_and_it_is_handed_off() -> None:
    scene = Scene()
    payload = link_in(await a_child_of_13_alone(scene))
    parent = scene.person(PARENT)

    opened = await parent.start(payload)
    notice = only(opened.screens)
    assert isinstance(notice, Notice)
    assert notice.text.msgid == parental.PARENT_ASKED.msgid
    assert notice.text.params["association"] == "Alpha"
    assert notice.text.params["name"] == "Nadia"
    agree, refuse = notice.buttons
    assert agree.action == AnswerParental(payload.removeprefix("pc_"), agreed=True)
    assert refuse.action == AnswerParental(payload.removeprefix("pc_"), agreed=False)

    thanks = await parent.send(agree.action)

    assert thanks.screens == (Notice(parental.PARENT_THANKS.fmt(name="Nadia")),)
    profile = only(scene.db.tables.profiles.values())
    assert profile.status == ProfileStatus.MATCHED
    handoff = only(scene.handoffs())
    assert scene.slug_of(handoff) == "alpha"
    parental_consent = only(
        c for c in scene.db.tables.consents.values() if c.kind == ConsentKind.PARENTAL
    )
    assert parental_consent.method == ConsentMethod.PARENT_ACCOUNT
    assert parental_consent.person_id == profile.person_id
    card = only(scene.pending(ContactCard))
    assert cards.CONSENT_HOW[ConsentMethod.PARENT_ACCOUNT].msgid in repr(card.body)
    # The child hears that the parent agreed, and where the request went.
    told = only(n for n in scene.pending(PersonNotice) if n.chat_id == CHILD)
    assert parental.CHILD_CONFIRMED.msgid in repr(told.text)
    # The parent is addressed as "vous", and the link is used up.
    again = await parent.start(payload)
    assert again.screens == (Notice(parental.LINK_INVALID),)
    assert again.address == "vous"


async def test_a_parent_who_refuses_sends_nothing_and_the_child_is_told() -> None:
    scene = Scene()
    payload = link_in(await a_child_of_13_alone(scene))

    await scene.person(PARENT).send(AnswerParental(payload.removeprefix("pc_"), agreed=False))

    assert only(scene.db.tables.profiles.values()).status == ProfileStatus.NOT_CONFIRMED
    assert scene.handoffs() == []
    told = only(n for n in scene.pending(PersonNotice) if n.chat_id == CHILD)
    assert told.text == parental.CHILD_REFUSED


async def test_one_reminder_then_expiry_and_nothing_is_handed_off() -> None:
    scene = Scene()
    payload = link_in(await a_child_of_13_alone(scene))
    valid = scene.policy.parental_link_valid

    scene.later(valid / 2 + timedelta(minutes=1))
    assert await parental.chase(scene.unit_of_work, scene.now, scene.policy) == 1
    assert await parental.chase(scene.unit_of_work, scene.now, scene.policy) == 0
    scene.later(valid / 2)
    assert await parental.chase(scene.unit_of_work, scene.now, scene.policy) == 1

    texts = [n.text for n in scene.pending(PersonNotice) if n.chat_id == CHILD]
    assert texts == [parental.REMINDER, parental.EXPIRED]
    assert only(scene.db.tables.profiles.values()).status == ProfileStatus.NOT_CONFIRMED
    opened = await scene.person(PARENT).start(payload)
    assert opened.screens == (Notice(parental.LINK_INVALID),)
    assert scene.handoffs() == []


async def test_start_while_waiting_for_the_parent_gives_a_new_link_and_the_old_one_dies() -> None:
    scene = Scene()
    old = link_in(await a_child_of_13_alone(scene))

    reply = await scene.person(CHILD).start()

    new = link_in(reply)
    assert new != old
    assert (await scene.person(PARENT).start(old)).screens == (Notice(parental.LINK_INVALID),)
    opened = await scene.person(PARENT).start(new)
    assert only(opened.screens).text.msgid == parental.PARENT_ASKED.msgid  # type: ignore[union-attr]


async def test_a_parent_filling_in_consents_in_the_chat_and_is_handed_off_at_once() -> None:
    scene = Scene()
    await scene.import_catalog(a_catalog(an_association("alpha")))

    reply = await scene.person(PARENT).fill("referral")

    profile = only(scene.db.tables.profiles.values())
    assert (profile.role, profile.flow, profile.status) == ("mentee", "referral", "matched")
    methods = {(c.kind, c.method) for c in scene.db.tables.consents.values()}
    assert methods == {
        (ConsentKind.CONTACT, ConsentMethod.IN_CHAT),
        (ConsentKind.PARENTAL, ConsentMethod.IN_CHAT),
    }
    assert only(scene.handoffs())
    assert reply.address == "vous"
    assert only(reply.screens).text.msgid == announce.MATCHED["referral"].msgid  # type: ignore[union-attr]


async def test_a_professional_attests_the_parent_s_consent_and_the_card_says_to_check() -> None:
    scene = Scene()
    await scene.import_catalog(a_catalog(an_association("alpha")))
    await scene.coordinator("alpha", 501, "Camille")

    await scene.person(PARENT).fill("referral", referrer_role=pick("referrer_role", "professional"))

    parental_consent = only(
        c for c in scene.db.tables.consents.values() if c.kind == ConsentKind.PARENTAL
    )
    assert parental_consent.method == ConsentMethod.ATTESTED
    card = only(scene.pending(ContactCard))
    assert cards.CONSENT_HOW[ConsentMethod.ATTESTED].msgid in repr(card.body)
    assert "Collège Jean-Moulin" in repr(card.body)


async def test_a_parent_may_sign_up_two_children_one_after_the_other() -> None:
    scene = Scene()
    await scene.import_catalog(a_catalog(an_association("alpha")))
    parent = scene.person(PARENT)

    await parent.fill("referral")
    await parent.fill("referral", first_name="Lina")

    assert len(scene.db.tables.profiles) == 2
    assert len(scene.handoffs()) == 2


async def test_an_age_typed_wrong_is_undone_with_back_and_start_resumes_there() -> None:
    scene = Scene()
    child = scene.person(CHILD)
    await child.answer_until("mentee", "age")

    ended = await child.answer(TextInput("3"))
    notice = only(ended.screens)
    assert isinstance(notice, Notice)
    assert notice.buttons[0].action == Reopen("age")

    resumed = await child.start()
    assert isinstance(resumed.screens[-1], Ask)
    assert resumed.screens[-1].step.key == "age"
    # The old button is stale now: the question is already open again.
    stale = await child.send(Reopen("age"))
    assert stale.toast is not None

    after = await child.answer(TextInput("13"))
    assert isinstance(after.screens[-1], Ask)
    assert after.screens[-1].step.key == "postal_code"


async def test_back_under_a_refused_consent_asks_the_consent_again() -> None:
    scene = Scene()
    child = scene.person(CHILD)
    await child.answer_until("mentee", "consent")

    await child.answer(pick("consent", "no"))
    reopened = await child.send(Reopen("consent"))

    assert isinstance(reopened.screens[-1], Ask)
    assert reopened.screens[-1].step.key == "consent"
    assert reopened.echo == onboarding.BACK_TO_QUESTION


async def test_start_after_a_link_is_refused_does_not_offer_a_new_link() -> None:
    scene = Scene()
    payload = link_in(await a_child_of_13_alone(scene))
    await scene.person(PARENT).send(AnswerParental(payload.removeprefix("pc_"), agreed=False))

    reply = await scene.person(CHILD).send(Start())

    assert reply.screens[0] == Notice(parental.NOT_CONFIRMED)


async def test_two_accounts_agreeing_at_once_hand_the_request_off_once() -> None:
    scene = Scene()
    token = link_in(await a_child_of_13_alone(scene)).removeprefix("pc_")
    other_parent = scene.person(303)
    # Another process commits the other parent's "yes" just before this one's.
    scene.db.interleave(lambda: other_parent.send(AnswerParental(token, agreed=True)))

    second = await scene.person(PARENT).send(AnswerParental(token, agreed=True))

    # The other account finds it answered: a toast, the screen stays.
    assert second.screens == ()
    assert second.toast == parental.ALREADY_ANSWERED
    assert len(scene.handoffs()) == 1
    parental_consents = [
        c for c in scene.db.tables.consents.values() if c.kind == ConsentKind.PARENTAL
    ]
    assert len(parental_consents) == 1
