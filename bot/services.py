"""Use-cases: each runs one person's action inside one unit of work and says what to show them.

Handlers call `Services.handle` with plain values; nothing here touches Telegram. The update id is
recorded in the same transaction as the state change, so a redelivered update changes nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeAlias

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from bot import privacy
from bot.actions import (
    Action,
    ActOnHandoff,
    Answer,
    AskErase,
    Cancel,
    ChooseFlow,
    ChooseLanguage,
    ConfirmErase,
    ConfirmJoin,
    DeclineJoin,
    Help,
    KeepData,
    PauseAssociation,
    Restart,
    ShowLanguages,
    ShowMyData,
    ShowQueue,
    Start,
)
from bot.cards import CANCEL
from bot.handoffs import (
    INVITE_INVALID,
    INVITE_PREFIX,
    JOIN_CONFIRM,
    JOIN_DECLINED,
    JOIN_YES,
    JOINED,
    NOT_A_COORDINATOR,
    HandoffService,
)
from bot.i18n import LANGUAGES, Translator, pick_language
from bot.privacy import ASK_ERASE, ERASE_NO, ERASE_YES, ERASED, KEPT
from conversations import engine
from conversations.engine import Echo
from conversations.flows import CONSENT_VERSION, FLOWS
from conversations.geography import department_of
from conversations.matching import MatchResult
from conversations.model import (
    Ask,
    Completed,
    ConversationState,
    Exited,
    Input,
    Outcome,
    Stale,
    Status,
    StepKind,
    Summary,
    TextInput,
)
from conversations.text import Lines, Text, _
from storage.models import Consent, Conversation, Person, Profile
from storage.repositories import ConversationRepository, answers_to_json
from storage.uow import UnitOfWork

log = logging.getLogger(__name__)

# Telegram deep links allow these characters, 64 at most (Bot API: "start" parameter).
DEEP_LINK_PAYLOAD = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Telegram keeps an unconfirmed update for 24 h; after that its id can never come back.
UPDATE_IDS_KEPT = timedelta(days=2)


@dataclass(frozen=True)
class Button:
    label: Text
    action: Action


@dataclass(frozen=True)
class Notice:
    """A message that is not a question: a welcome, a thank-you, help, a confirmation."""

    text: Text
    buttons: tuple[Button, ...] = ()


Screen: TypeAlias = Ask | Summary | Notice


@dataclass(frozen=True)
class Reply:
    """What the person sees after one update; rendered by the edge."""

    language: str
    screens: tuple[Screen, ...] = ()
    toast: Text | None = None
    # The answer a pressed button gave, shown on that message in place of its keyboard.
    echo: Echo = None
    # A new keyboard for the pressed message (multi-choice toggles).
    in_place: Ask | None = None
    # The step just answered was a phone number: the "share my number" keyboard must go.
    close_reply_keyboard: bool = False
    # A coordinator asked to decline this handoff: show the reasons on the pressed message.
    reasons_for: int | None = None
    # The pressed card's own buttons, back after a cancelled decline (Bot API markup).
    card_markup: dict[str, object] | None = None
    duplicate: bool = False


@dataclass(frozen=True)
class Sender:
    """Who sent an update, and which one: the plain values a use-case needs."""

    update_id: int
    telegram_id: int
    chat_id: int
    telegram_language: str | None
    now: datetime
    # Kept only when the person joins as a coordinator (shown to colleagues and to contacts).
    first_name: str = ""


ALREADY_ANSWERED = _("Cette question a déjà une réponse 🙂")
WELCOME = _(
    "Bonjour ! 👋 Je suis le bot du <b>Collectif Mentorat</b>.\n\n"
    "En quelques questions, je mets en relation les jeunes de 5 à 30 ans et les futur·es "
    "mentor·es avec l'association du Collectif qui leur correspond.\n\nQui êtes-vous ?"
)
WELCOME_BACK = _("Rebonjour ! On reprend là où on s'était arrêté.")
FLOW_BUTTONS = (
    Button(_("Je cherche un·e mentor·e"), ChooseFlow("mentee")),
    Button(_("J'inscris un·e jeune (parent, pro)"), ChooseFlow("mentee")),
    Button(_("Je veux devenir mentor·e"), ChooseFlow("mentor")),
)
INTRO = {
    "mentee": _(
        "Super ! Je vais te poser une dizaine de questions, cela prend 3 minutes. "
        "Tu peux revenir en arrière à tout moment avec le bouton « Retour »."
    ),
    "mentor": _(
        "Merci de vouloir devenir mentor·e ! Une dizaine de questions, 3 minutes environ. "
        "Vous pouvez revenir en arrière à tout moment avec le bouton « Retour »."
    ),
}
MATCHED = {
    "mentee": _(
        "Merci %(name)s, c'est envoyé ! ✅\n\n"
        "Je te propose <b>%(association)s</b> : %(description)s\n\n"
        "<b>Pourquoi elle ?</b>\n%(reasons)s\n\n"
        "<b>Et maintenant ?</b>\n%(next)s"
    ),
    "mentor": _(
        "Merci %(name)s, c'est envoyé ! ✅\n\n"
        "Je vous propose <b>%(association)s</b> : %(description)s\n\n"
        "<b>Pourquoi elle ?</b>\n%(reasons)s\n\n"
        "<b>Et maintenant ?</b>\n%(next)s"
    ),
}
BULLET = _("• %(item)s")
NO_MATCH = {
    "mentee": _(
        "Merci %(name)s, tes réponses sont bien enregistrées. ✅\n\n"
        "Pour être honnête : aucune association du Collectif ne peut t'accompagner tout de suite "
        "là où tu vis et pour ce que tu cherches. Ta demande reste sur la liste d'attente, et "
        "l'équipe du Collectif est prévenue pour trouver une solution."
    ),
    "mentor": _(
        "Merci %(name)s, vos réponses sont bien enregistrées. ✅\n\n"
        "Pour être honnête : aucune association du Collectif ne recrute aujourd'hui de mentors "
        "dans votre situation et près de chez vous. Votre inscription reste sur la liste d'attente, "
        "et l'équipe du Collectif est prévenue pour trouver une solution."
    ),
}

BECOME_MENTOR = _("Devenir mentor·e")
ALREADY_IN_PROGRESS = _("Un questionnaire est déjà en cours : reprenons-le.")
CANCELLED = _(
    "C'est arrêté : vos réponses n'ont été envoyées à personne. Pour recommencer, tapez /start."
)
NOTHING_TO_CANCEL = _("Il n'y a aucun questionnaire en cours. Pour commencer, tapez /start.")
RESTARTED = _("C'est reparti depuis le début.")
HELP = _(
    "Je vous aide à trouver une association du Collectif Mentorat, "
    "en répondant à quelques questions.\n\n"
    "/start – commencer ou reprendre\n"
    "/restart – recommencer le questionnaire\n"
    "/cancel – arrêter le questionnaire\n"
    "/language – changer de langue\n"
    "/mydata – voir vos données\n"
    "/delete – effacer vos données\n"
    "/help – cette aide"
)
CHOOSE_LANGUAGE = _("Dans quelle langue voulez-vous continuer ?")
LANGUAGE_NAMES = {"fr": _("Français"), "en": _("English")}
LANGUAGE_SET = _("C'est noté, je continue en français.")
FORGED = _("Ce bouton n'est plus valable.")
COORDINATOR_HELLO = _(
    "Vous êtes coordinateur·rice : /queue pour les contacts qui attendent, /pause et /resume "
    "pour arrêter ou reprendre les nouveaux contacts."
)


class Services:
    def __init__(
        self,
        unit_of_work: Callable[[], UnitOfWork],
        translator: Translator,
        handoffs: HandoffService,
        on_outbox: Callable[[], None] = lambda: None,
    ) -> None:
        self._uow = unit_of_work
        self._translator = translator
        self._handoffs = handoffs
        # Wakes the outbox dispatcher after a commit that queued messages for others.
        self._on_outbox = on_outbox

    async def handle(self, sender: Sender, action: Action) -> Reply:
        """Run `action` once for this update, whatever the redeliveries and concurrent instances."""
        for attempt in range(3):
            try:
                async with self._uow() as uow:
                    if await uow.updates.seen(sender.update_id):
                        log.info("update %s already handled", sender.update_id)
                        return Reply(language="fr", duplicate=True)
                    person = await uow.people.seen(
                        sender.telegram_id, sender.telegram_language, sender.now
                    )
                    reply = await self._dispatch(uow, person, sender, action)
                    uow.updates.record(sender.update_id, sender.now)
                    await uow.commit()
                    if uow.outbox.enqueued:
                        self._on_outbox()
                    return reply
            except (StaleDataError, IntegrityError):
                # Another instance (or a redelivery) won the race: read again and decide again.
                log.warning(
                    "update %s conflicted (attempt %s), retrying", sender.update_id, attempt
                )
        raise RuntimeError(f"update {sender.update_id} kept conflicting")

    async def forget_old_updates(self, now: datetime) -> int:
        async with self._uow() as uow:
            removed = await uow.updates.forget_before(now - UPDATE_IDS_KEPT)
            await uow.commit()
            return removed

    # --- dispatch -------------------------------------------------------------------------

    async def _dispatch(
        self, uow: UnitOfWork, person: Person, sender: Sender, action: Action
    ) -> Reply:
        language = pick_language(person.language, person.telegram_language)
        conversation = await uow.conversations.active_for(person)
        match action:
            case Start(payload) if payload and payload.startswith(INVITE_PREFIX):
                return await self._invited(uow, payload, sender.now, language)
            case Start(payload):
                return await self._start(uow, person, conversation, payload, language)
            case ChooseFlow(flow):
                return self._choose_flow(uow, person, conversation, sender, flow, language)
            case Answer(given):
                if conversation is None:
                    if isinstance(given, TextInput):
                        return Reply(language, screens=(Notice(WELCOME, FLOW_BUTTONS),))
                    return Reply(language, toast=ALREADY_ANSWERED)
                return await self._answer(uow, person, conversation, sender, given, language)
            case Restart():
                return self._restart(uow, person, conversation, sender, language)
            case Cancel():
                return self._cancel(uow, conversation, sender, language)
            case Help():
                return Reply(language, screens=(Notice(HELP),))
            case ShowLanguages():
                buttons = tuple(
                    Button(LANGUAGE_NAMES[code], ChooseLanguage(code)) for code in LANGUAGES
                )
                return Reply(language, screens=(Notice(CHOOSE_LANGUAGE, buttons),))
            case ChooseLanguage(chosen):
                return self._choose_language(person, conversation, chosen)
            case ShowMyData():
                details = await privacy.my_data(uow, person, conversation)
                return Reply(language, screens=(Notice(details),))
            case AskErase():
                buttons = (Button(ERASE_YES, ConfirmErase()), Button(ERASE_NO, KeepData()))
                return Reply(language, screens=(Notice(ASK_ERASE, buttons),))
            case ConfirmErase():
                await self._handoffs.forget(uow, person, sender.now)
                await uow.people.erase(person)
                log.info("person erased their data")
                return Reply(language, screens=(Notice(ERASED),), echo=ERASE_YES)
            case KeepData():
                return Reply(language, screens=(Notice(KEPT),), echo=ERASE_NO)
            case ActOnHandoff():
                result = await self._handoffs.act(uow, sender.telegram_id, action, sender.now)
                return Reply(
                    language,
                    toast=result.toast,
                    reasons_for=result.reasons_for,
                    card_markup=result.card_markup,
                )
            case ConfirmJoin(token):
                record = await self._handoffs.join(
                    uow, token, sender.telegram_id, sender.first_name, language, sender.now
                )
                if record is None:
                    return Reply(language, screens=(Notice(INVITE_INVALID),), echo="—")
                return Reply(
                    language,
                    screens=(Notice(JOINED.fmt(association=record.name)),),
                    echo=JOIN_YES.fmt(association=record.name),
                )
            case DeclineJoin():
                return Reply(language, screens=(Notice(JOIN_DECLINED),), echo=CANCEL)
            case ShowQueue():
                texts = await self._handoffs.queue(uow, sender.telegram_id, language)
                return Reply(
                    language, screens=tuple(Notice(t) for t in texts or [NOT_A_COORDINATOR])
                )
            case PauseAssociation(paused):
                texts = await self._handoffs.set_paused(uow, sender.telegram_id, paused)
                return Reply(
                    language, screens=tuple(Notice(t) for t in texts or [NOT_A_COORDINATOR])
                )
        return Reply(language, toast=FORGED)

    async def _invited(self, uow: UnitOfWork, token: str, now: datetime, language: str) -> Reply:
        found = await self._handoffs.usable_invite(uow, token, now)
        if found is None:
            return Reply(language, screens=(Notice(INVITE_INVALID),))
        _invite, record = found
        buttons = (
            Button(JOIN_YES.fmt(association=record.name), ConfirmJoin(token)),
            Button(CANCEL, DeclineJoin()),
        )
        return Reply(
            language, screens=(Notice(JOIN_CONFIRM.fmt(association=record.name), buttons),)
        )

    async def _start(
        self,
        uow: UnitOfWork,
        person: Person,
        conversation: Conversation | None,
        payload: str | None,
        language: str,
    ) -> Reply:
        if payload and DEEP_LINK_PAYLOAD.match(payload):
            person.source = payload
        roles = await uow.coordinators.of_person(person.telegram_id)
        if roles and conversation is None:
            return Reply(
                language, screens=(Notice(COORDINATOR_HELLO), Notice(WELCOME, FLOW_BUTTONS))
            )
        if conversation is not None:
            outcome = engine.current(
                FLOWS[conversation.flow], uow.conversations.state_of(conversation)
            )
            return Reply(language, screens=(Notice(WELCOME_BACK), *_screens(outcome)))
        return Reply(language, screens=(Notice(WELCOME, FLOW_BUTTONS),))

    def _choose_flow(
        self,
        uow: UnitOfWork,
        person: Person,
        conversation: Conversation | None,
        sender: Sender,
        flow_name: str,
        language: str,
    ) -> Reply:
        flow = FLOWS.get(flow_name)
        if flow is None:
            return Reply(language, toast=FORGED)
        if conversation is not None:
            outcome = engine.current(
                FLOWS[conversation.flow], uow.conversations.state_of(conversation)
            )
            return Reply(language, toast=ALREADY_IN_PROGRESS, screens=_screens(outcome))
        first = engine.begin(flow)
        uow.conversations.start(person, sender.chat_id, first.state, person.source, sender.now)
        uow.funnel.record(flow.name, first.state.step, "started", sender.now)
        log.info("conversation started: flow=%s", flow.name)
        return Reply(language, screens=(Notice(INTRO[flow.name]), first))

    async def _answer(
        self,
        uow: UnitOfWork,
        person: Person,
        conversation: Conversation,
        sender: Sender,
        given: Input,
        language: str,
    ) -> Reply:
        flow = FLOWS[conversation.flow]
        state = uow.conversations.state_of(conversation)

        def localize(text: Text) -> str:
            return self._translator.plain(language, text)

        outcome = engine.advance(flow, state, given, localize)
        if isinstance(outcome, Stale):
            return Reply(language, toast=ALREADY_ANSWERED)
        uow.conversations.save(conversation, outcome.state, sender.now)
        asked = next((s for s in flow.steps if s.key == state.step), None)
        answered_phone = (
            asked is not None and asked.kind is StepKind.PHONE and outcome.state.step != state.step
        )
        # Counted once, when a question gets its first answer: not on Back, not on an edit.
        if (
            asked is not None
            and asked.key in outcome.state.answers
            and asked.key not in state.answers
        ):
            uow.funnel.record(flow.name, asked.key, "answered", sender.now)
        if isinstance(outcome, Ask) and outcome.in_place:
            return Reply(language, in_place=outcome)
        if isinstance(outcome, Completed):
            result = await self._submit(
                uow, person, conversation, outcome.state, language, sender.now
            )
            return Reply(language, screens=(result,), echo=_("C'est bon ✅"))
        if isinstance(outcome, Exited):
            uow.funnel.record(flow.name, state.step, "exited", sender.now)
            buttons = (
                (Button(BECOME_MENTOR, ChooseFlow(outcome.offer_flow)),)
                if outcome.offer_flow
                else ()
            )
            return Reply(
                language,
                screens=(Notice(outcome.reason, buttons),),
                close_reply_keyboard=answered_phone,
            )
        echo = outcome.answered
        return Reply(
            language, screens=_screens(outcome), echo=echo, close_reply_keyboard=answered_phone
        )

    async def _submit(
        self,
        uow: UnitOfWork,
        person: Person,
        conversation: Conversation,
        state: ConversationState,
        language: str,
        now: datetime,
    ) -> Notice:
        """Store the profile and its consents, match it, and say what happens next."""
        postal_code = state.answers.get("postal_code")
        profile = uow.profiles.add(
            Profile(
                person_id=person.id,
                conversation_id=conversation.id,
                role=state.flow,
                answers=answers_to_json(state.answers),
                language=language,
                source=conversation.source,
                department=department_of(postal_code) if isinstance(postal_code, str) else None,
                submitted_at=now,
            )
        )
        await uow.flush()
        consents = ["contact"] + (["parental"] if state.answers.get("parent_consent") else [])
        for kind in consents:
            uow.profiles.add_consent(
                Consent(
                    person_id=person.id,
                    profile_id=profile.id,
                    kind=kind,
                    text_version=CONSENT_VERSION,
                    given_at=now,
                )
            )
        result = await self._handoffs.route(uow, profile, now)
        profile.match = self._match_record(result, language)
        name = str(state.answers.get("first_name") or "")
        best = result.best
        uow.funnel.record(state.flow, None, "completed", now)
        if best is None:
            uow.funnel.record(state.flow, None, "no_match", now, detail=profile.department)
            log.info("profile %s submitted: flow=%s, no association fits", profile.id, state.flow)
            return Notice(NO_MATCH[state.flow].fmt(name=name))
        log.info("profile %s matched to %s", profile.id, best.association.slug)
        association = best.association
        description = association.description_en if language == "en" else association.description_fr
        return Notice(
            MATCHED[state.flow].fmt(
                name=name,
                association=association.name,
                description=description,
                reasons=Lines(tuple(BULLET.fmt(item=reason) for reason in best.reasons)),
                next=Lines(best.notes),
            )
        )

    def _match_record(self, result: MatchResult, language: str) -> dict[str, object]:
        """The ranking as the person was told it, kept with the profile."""
        return {
            "ranked": [
                {
                    "slug": candidate.association.slug,
                    "score": round(candidate.score, 2),
                    "reasons": [self._translator.plain(language, r) for r in candidate.reasons],
                }
                for candidate in result.ranked
            ],
            "gap": self._translator.plain("fr", result.gap) if result.gap else None,
        }

    def _restart(
        self,
        uow: UnitOfWork,
        person: Person,
        conversation: Conversation | None,
        sender: Sender,
        language: str,
    ) -> Reply:
        if conversation is None:
            return Reply(language, screens=(Notice(WELCOME, FLOW_BUTTONS),))
        state = uow.conversations.state_of(conversation)
        cancelled = ConversationState(state.flow, None, state.answers, status=Status.CANCELLED)
        uow.conversations.save(conversation, cancelled, sender.now)
        uow.funnel.record(state.flow, state.step, "restarted", sender.now)
        first = engine.begin(FLOWS[state.flow])
        uow.conversations.start(
            person, sender.chat_id, first.state, conversation.source, sender.now
        )
        return Reply(language, screens=(Notice(RESTARTED), first))

    def _cancel(
        self,
        uow: UnitOfWork,
        conversation: Conversation | None,
        sender: Sender,
        language: str,
    ) -> Reply:
        if conversation is None:
            return Reply(language, screens=(Notice(NOTHING_TO_CANCEL),))
        state = uow.conversations.state_of(conversation)
        uow.conversations.save(
            conversation,
            ConversationState(state.flow, None, state.answers, Status.CANCELLED),
            sender.now,
        )
        uow.funnel.record(state.flow, state.step, "cancelled", sender.now)
        return Reply(language, screens=(Notice(CANCELLED),), close_reply_keyboard=True)

    def _choose_language(
        self, person: Person, conversation: Conversation | None, chosen: str
    ) -> Reply:
        if chosen not in LANGUAGES:
            return Reply(pick_language(person.language, person.telegram_language), toast=FORGED)
        person.language = chosen
        screens: tuple[Screen, ...] = (Notice(LANGUAGE_SET),)
        if conversation is not None:
            state = ConversationRepository.state_of(conversation)
            screens = (*screens, *_screens(engine.current(FLOWS[state.flow], state)))
        return Reply(chosen, screens=screens, echo=LANGUAGE_NAMES[chosen])


def _screens(outcome: Outcome) -> tuple[Screen, ...]:
    if isinstance(outcome, (Ask, Summary)):
        return (outcome,)
    return ()
