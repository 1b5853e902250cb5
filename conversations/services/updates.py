"""One update, one use-case, once: the entry point the chat edges call for everything a person does.

The update id is recorded in the same transaction as the state change, so a redelivered update
changes nothing; a conflict with another process is retried from a fresh read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from conversations.entities import Conversation, Person
from conversations.ports import Conflict, Localize, UnitOfWork, UnitOfWorkFactory
from conversations.services import (
    access,
    coordinators,
    handoffs,
    onboarding,
    parental,
    privacy,
    reach,
)
from conversations.services.actions import (
    Action,
    ActOnHandoff,
    Answer,
    AnswerParental,
    AskDashboard,
    AskErase,
    Cancel,
    ChatMemberChanged,
    ChooseFlow,
    ChooseLanguage,
    ConfirmErase,
    ConfirmJoin,
    DeclineJoin,
    Help,
    KeepData,
    KeepRequest,
    PauseAssociation,
    Reopen,
    ReplaceRequest,
    Restart,
    ResumeQuestionnaire,
    ShowLanguages,
    ShowMyData,
    ShowPrivacy,
    ShowQueue,
    Start,
)
from conversations.services.cards import CANCEL
from conversations.services.policy import Policy
from conversations.services.replies import (
    Button,
    CardKeyboard,
    Notice,
    Reply,
    Sender,
    address_of,
)
from conversations.text import Text, pick_language

log = logging.getLogger(__name__)

# Telegram keeps an unconfirmed update for 24 h; after that its id can never come back.
UPDATE_IDS_KEPT = timedelta(days=2)
ATTEMPTS = 3


async def handle(
    unit_of_work: UnitOfWorkFactory,
    sender: Sender,
    action: Action,
    policy: Policy,
    localize: Localize,
    on_outbox: Callable[[], None] = lambda: None,
) -> Reply:
    """Run `action` once for this update, whatever the redeliveries and concurrent processes.

    `on_outbox` is called after a commit that queued messages for others (it wakes the relay)."""
    for attempt in range(ATTEMPTS):
        try:
            async with unit_of_work() as uow:
                # The update id first: a redelivery costs one statement and runs nothing.
                if not await uow.updates.claim(sender.update_id, sender.now):
                    log.info("update %s already handled", sender.update_id)
                    return Reply(language="fr", duplicate=True)
                person, conversation = await uow.people.arrived(
                    sender.telegram_id, sender.telegram_language, sender.now
                )
                reply = await _dispatch(uow, person, conversation, sender, action, policy, localize)
                # After the use-case: choosing a questionnaire sets how the person is addressed.
                reply = replace(reply, address=address_of(person))
                await uow.commit()
                if uow.outbox.enqueued:
                    on_outbox()
                return reply
        except Conflict:
            # Another process (or a redelivery) won the race: read again and decide again.
            log.warning("update %s conflicted (attempt %s), retrying", sender.update_id, attempt)
    raise RuntimeError(f"update {sender.update_id} kept conflicting")


async def resume(unit_of_work: UnitOfWorkFactory, telegram_id: int) -> Reply:
    """The reply a person is owed after a crash (their update was handled, its answer lost)."""
    async with unit_of_work() as uow:
        person = await uow.people.by_telegram_id(telegram_id)
        if person is None or person.blocked_at is not None:
            # Nobody, or somebody who blocked the bot: nothing to send (it would be refused).
            return Reply(language="fr")
        language = pick_language(person.language, person.telegram_language)
        conversation = await uow.conversations.active_for(person)
        reply = await onboarding.resume(uow, person, conversation, language)
        return replace(reply, address=address_of(person))


async def forget_old_updates(unit_of_work: UnitOfWorkFactory, now: datetime) -> int:
    async with unit_of_work() as uow:
        removed = await uow.updates.forget_before(now - UPDATE_IDS_KEPT)
        await uow.commit()
        return removed


async def _dispatch(
    uow: UnitOfWork,
    person: Person,
    conversation: Conversation | None,
    sender: Sender,
    action: Action,
    policy: Policy,
    localize: Localize,
) -> Reply:
    language = pick_language(person.language, person.telegram_language)
    if person.blocked_at is not None and not isinstance(action, ChatMemberChanged):
        # They write again: they unblocked the bot, even if that update was lost.
        person.blocked_at = None
    match action:
        case Start(payload) if payload and payload.startswith(coordinators.INVITE_PREFIX):
            return await _invited(uow, payload, sender.now, language)
        case Start(payload) if payload and payload.startswith(parental.LINK_PREFIX):
            return await parental.open_link(uow, person, payload, sender, language, localize)
        case Start(payload):
            return await onboarding.start(uow, person, conversation, payload, language, sender)
        case ChooseFlow(flow):
            return await onboarding.choose_flow(uow, person, conversation, sender, flow, language)
        case ReplaceRequest(flow, profile_id):
            return await onboarding.replace_request(
                uow, person, conversation, sender, flow, profile_id, language, policy
            )
        case KeepRequest(flow):
            return onboarding.keep_request(flow, language)
        case Answer(given):
            return await onboarding.answer(
                uow, person, conversation, sender, given, language, localize, policy
            )
        case Restart():
            return onboarding.restart(uow, person, conversation, sender, language)
        case Cancel():
            return onboarding.cancel(uow, person, conversation, sender, language)
        case Reopen(step):
            return await onboarding.reopen(uow, person, conversation, sender, step, language)
        case ResumeQuestionnaire():
            return await onboarding.resume(uow, person, conversation, language)
        case Help():
            return onboarding.help_(person, language)
        case ShowPrivacy():
            return privacy.privacy_notice(person, language, policy)
        case AnswerParental(token, agreed):
            return await parental.answer(
                uow, person, sender, token, agreed, language, localize, policy
            )
        case ChatMemberChanged(blocked):
            await reach.chat_member(uow, person, blocked, sender.now)
            return Reply(language)
        case ShowLanguages():
            return onboarding.show_languages(person, language)
        case ChooseLanguage(chosen):
            return onboarding.choose_language(person, conversation, chosen, language)
        case ShowMyData():
            return Reply(
                language, screens=await privacy.my_data(uow, person, conversation, sender.now)
            )
        case AskErase():
            you = address_of(person)
            buttons = (
                Button(privacy.ERASE_YES, ConfirmErase()),
                Button(privacy.ERASE_NO, KeepData()),
            )
            return Reply(language, screens=(Notice(privacy.ASK_ERASE[you], buttons),))
        case ConfirmErase():
            you = address_of(person)
            await privacy.erase(uow, person, sender.now, policy)
            return Reply(language, screens=(Notice(privacy.ERASED[you]),), echo=privacy.ERASE_YES)
        case KeepData():
            you = address_of(person)
            return Reply(language, screens=(Notice(privacy.KEPT[you]),), echo=privacy.ERASE_NO)
        case ActOnHandoff(handoff_id):
            pressed = await handoffs.act(uow, sender.telegram_id, action, sender.now, policy)
            keyboard = (
                None if pressed.buttons is None else CardKeyboard(handoff_id, pressed.buttons)
            )
            return Reply(language, toast=pressed.toast, card_keyboard=keyboard)
        case ConfirmJoin(token):
            record = await coordinators.join(
                uow, token, sender.telegram_id, sender.first_name, language, sender.now
            )
            if record is None:
                # A new message: the pressed one did not become this (a double tap keeps its
                # welcome).
                return Reply(language, screens=(Notice(coordinators.INVITE_INVALID),))
            return Reply(
                language,
                screens=(Notice(coordinators.JOINED.fmt(association=record.name)),),
                echo=coordinators.JOIN_YES.fmt(association=record.name),
            )
        case DeclineJoin():
            return Reply(language, screens=(Notice(coordinators.JOIN_DECLINED),), echo=CANCEL)
        case ShowQueue():
            texts = await coordinators.queue(uow, sender.telegram_id)
            return _notices(language, texts)
        case PauseAssociation(paused):
            texts = await coordinators.set_paused(uow, sender.telegram_id, paused)
            return _notices(language, texts)
        case AskDashboard():
            link = await access.new_link(
                uow, sender.telegram_id, policy.admins, policy.dashboard_url, sender.now
            )
            text = access.NOT_STAFF if link is None else access.LINK_SENT.fmt(link=link)
            return Reply(language, screens=(Notice(text),))
    return Reply(language, toast=onboarding.FORGED)


async def _invited(uow: UnitOfWork, token: str, now: datetime, language: str) -> Reply:
    found = await coordinators.usable_invite(uow, token, now)
    if found is None:
        return Reply(language, screens=(Notice(coordinators.INVITE_INVALID),))
    _invite, record = found
    buttons = (
        Button(coordinators.JOIN_YES.fmt(association=record.name), ConfirmJoin(token)),
        Button(CANCEL, DeclineJoin()),
    )
    confirm = coordinators.JOIN_CONFIRM.fmt(association=record.name)
    return Reply(language, screens=(Notice(confirm, buttons),))


def _notices(language: str, texts: list[Text] | None) -> Reply:
    """A coordinator command's answer; anyone else is told the command is for coordinators."""
    shown = texts or [coordinators.NOT_A_COORDINATOR]
    return Reply(language, screens=tuple(Notice(text) for text in shown))
