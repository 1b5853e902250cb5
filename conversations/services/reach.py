"""Reaching a person who is not in front of the chat: nothing once they blocked the bot, and one
nudge when they stopped half-way through a questionnaire.

Telegram tells a bot it was blocked (a `my_chat_member` update, "kicked") and unblocked
("member"); every later message to a blocked person would be refused with a 403.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from conversations import engine
from conversations.entities import Person
from conversations.flows import FLOWS
from conversations.model import Ask, Summary
from conversations.ports import Conflict, PersonNotice, UnitOfWork, UnitOfWorkFactory
from conversations.services.policy import Policy
from conversations.services.replies import address_of
from conversations.text import _, pick_language

log = logging.getLogger(__name__)

# People nudged per pass, the longest idle first; the next pass takes the rest.
BATCH = 200
NUDGE = {
    "tu": _(
        "Tu t'es arrêté·e à la question « %(title)s ». On reprend ? Tes réponses sont gardées."
    ),
    "vous": _(
        "Vous vous êtes arrêté·e à la question « %(title)s ». On reprend ? Vos réponses sont "
        "gardées."
    ),
}
NUDGE_AT_SUMMARY = {
    "tu": _(
        "Tu y es presque : il ne reste qu'à vérifier tes réponses et à les envoyer. On reprend ?"
    ),
    "vous": _(
        "Vous y êtes presque : il ne reste qu'à vérifier vos réponses et à les envoyer. "
        "On reprend ?"
    ),
}
RESUME = _("Reprendre")


async def chat_member(uow: UnitOfWork, person: Person, blocked: bool, now: datetime) -> None:
    """The person blocked the bot (or unblocked it). Blocked, what was queued for them dies and
    nothing new is queued; unblocked, news reach them again (what died stays dead)."""
    if not blocked:
        if person.blocked_at is not None:
            log.info("person %s unblocked the bot", person.id)
        person.blocked_at = None
        return
    if person.blocked_at is None:
        person.blocked_at = now
        log.info("person %s blocked the bot", person.id)
    await uow.outbox.drop_pending_notices(person.telegram_id)


def reachable(person: Person) -> bool:
    """False once the person blocked the bot: a message to them would only meet a 403."""
    return person.blocked_at is None


async def nudge(unit_of_work: UnitOfWorkFactory, now: datetime, policy: Policy) -> int:
    """Remind, once, whoever stopped mid-questionnaire `policy.nudge_after` ago; returns how many.
    Driven by the database (`nudged_at`): a restart sends no second nudge."""
    after = policy.nudge_after
    if after is None:
        return 0
    async with unit_of_work() as uow:
        stalled = await uow.conversations.stalled(now - after, BATCH)
    nudged = 0
    for person_id in stalled:
        for _attempt in range(3):
            try:
                nudged += await _nudge(unit_of_work, person_id, now, after)
                break
            except Conflict:
                # The person answered at that very moment: read again (no longer idle).
                continue
    if nudged:
        log.info("nudged %s people who stopped mid-questionnaire", nudged)
    return nudged


async def _nudge(
    unit_of_work: UnitOfWorkFactory, person_id: int, now: datetime, after: timedelta
) -> int:
    async with unit_of_work() as uow:
        person = await uow.people.get(person_id)
        if person is None or not reachable(person):
            return 0
        conversation = await uow.conversations.active_for(person)
        if (
            conversation is None
            or conversation.nudged_at is not None
            or conversation.updated_at > now - after
            or conversation.flow not in FLOWS
        ):
            return 0
        you = address_of(person)
        outcome = engine.current(FLOWS[conversation.flow], conversation.state())
        if isinstance(outcome, Ask):
            text = NUDGE[you].fmt(title=outcome.step.title)
        elif isinstance(outcome, Summary):
            text = NUDGE_AT_SUMMARY[you]
        else:
            return 0
        language = pick_language(person.language, person.telegram_language)
        notice = PersonNotice(person.telegram_id, language, text, resume=RESUME)
        conversation.nudged_at = now
        # With the person's id: an erasure before it goes takes it too.
        await uow.outbox.enqueue(f"nudge:{conversation.id}", notice, now, person_id=person.id)
        await uow.commit()
        return 1
