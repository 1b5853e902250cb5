"""The questionnaire: start a flow, answer it one step at a time, submit it, or stop.

The conversation's state is read and written in the unit of work of the update, so a crash or a
restart resumes at the same question; the submitted profile is matched and handed off at once.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from datetime import datetime

from conversations import engine
from conversations.entities import (
    AssociationRecord,
    Consent,
    ConsentKind,
    Conversation,
    Milestone,
    Person,
    Profile,
    ProfileStatus,
    answers_to_json,
)
from conversations.flows import CONSENT_VERSION, FLOWS
from conversations.geography import department_of
from conversations.handoff import OPEN_REQUEST, HandoffStatus
from conversations.matching import MatchResult
from conversations.model import (
    Ask,
    BackInput,
    Completed,
    ConversationState,
    Exited,
    Flow,
    Input,
    Outcome,
    Stale,
    Status,
    Step,
    StepKind,
    Summary,
    TextInput,
)
from conversations.ports import Localize, UnitOfWork
from conversations.services.actions import ChooseFlow, ChooseLanguage, KeepRequest, ReplaceRequest
from conversations.services.handoffs import route, withdraw
from conversations.services.policy import Policy
from conversations.services.privacy import HANDOFF_STATES
from conversations.services.replies import Button, Notice, Reply, Screen, Sender
from conversations.text import LANGUAGES, Lines, _

log = logging.getLogger(__name__)

# Telegram deep links allow these characters, 64 at most (Bot API: "start" parameter).
DEEP_LINK_PAYLOAD = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

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
SENT = _("C'est bon ✅")
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


ALREADY_REQUESTED = {
    "mentee": _(
        "Tu as déjà une demande en cours auprès de <b>%(association)s</b>. Veux-tu la remplacer "
        "par une nouvelle ? L'association sera prévenue que tu la retires."
    ),
    "mentor": _(
        "Vous avez déjà une inscription en cours auprès de <b>%(association)s</b>. Voulez-vous la "
        "remplacer par une nouvelle ? L'association sera prévenue que vous la retirez."
    ),
}
ALREADY_WAITING = {
    "mentee": _(
        "Tu as déjà une demande sur la liste d'attente. Veux-tu la remplacer par une nouvelle ?"
    ),
    "mentor": _(
        "Vous avez déjà une inscription sur la liste d'attente. Voulez-vous la remplacer par une "
        "nouvelle ?"
    ),
}
REPLACE_REQUEST = _("Oui, la remplacer")
KEEP_REQUEST = _("Non, la garder")
REPLACED = {
    "mentee": _("C'est noté : ta demande précédente est retirée. On recommence !"),
    "mentor": _("C'est noté : votre inscription précédente est retirée. On recommence !"),
}
KEPT_REQUEST = {
    "mentee": _("D'accord, ta demande continue. 🙂 /start te dira où elle en est."),
    "mentor": _("D'accord, votre inscription continue. /start vous dira où elle en est."),
}
REQUEST_SENT = {
    "mentee": _("Ta demande a bien été envoyée à <b>%(association)s</b> : %(status)s."),
    "mentor": _("Votre inscription a bien été envoyée à <b>%(association)s</b> : %(status)s."),
}
REQUEST_WAITING = {
    "mentee": _(
        "Ta demande est bien enregistrée, sur la liste d'attente : l'équipe du Collectif cherche "
        "une association qui peut t'accompagner."
    ),
    "mentor": _(
        "Votre inscription est bien enregistrée, sur la liste d'attente : l'équipe du Collectif "
        "cherche une association qui peut vous accueillir."
    ),
}


def welcome(language: str) -> Reply:
    return Reply(language, screens=(Notice(WELCOME, FLOW_BUTTONS),))


async def start(
    uow: UnitOfWork,
    person: Person,
    conversation: Conversation | None,
    payload: str | None,
    language: str,
) -> Reply:
    """/start: the welcome, or the question where the person stopped."""
    if payload and DEEP_LINK_PAYLOAD.match(payload):
        person.source = payload
    roles = await uow.coordinators.of_person(person.telegram_id)
    if roles and conversation is None:
        return Reply(language, screens=(Notice(COORDINATOR_HELLO), Notice(WELCOME, FLOW_BUTTONS)))
    if conversation is not None:
        outcome = engine.current(FLOWS[conversation.flow], conversation.state())
        return Reply(language, screens=(Notice(WELCOME_BACK), *_screens(outcome)))
    status = await request_status(uow, person)
    if status is not None:
        # Already signed up: where the request stands first, then the usual choices.
        return Reply(language, screens=(status, Notice(WELCOME, FLOW_BUTTONS)))
    return welcome(language)


async def request_status(uow: UnitOfWork, person: Person) -> Notice | None:
    """Where the person's latest request stands: which association has it, and what became of it."""
    # A withdrawn request was replaced: it is no one's request any more.
    profiles = [
        p for p in await uow.profiles.for_person(person) if p.status != ProfileStatus.WITHDRAWN
    ]
    if not profiles:
        return None
    profile = profiles[-1]
    handoffs = await uow.handoffs.of_profile(profile.id)
    record = await uow.catalog.get(handoffs[-1].association_id) if handoffs else None
    if profile.status == ProfileStatus.WAITING or not handoffs or record is None:
        return Notice(REQUEST_WAITING[profile.role])
    status = HANDOFF_STATES[HandoffStatus(handoffs[-1].status)]
    return Notice(REQUEST_SENT[profile.role].fmt(association=record.name, status=status))


async def resume(
    uow: UnitOfWork, person: Person, conversation: Conversation | None, language: str
) -> Reply:
    """What the person should be looking at now, for a reply lost in a crash: the question they
    are at, where their request stands, or the welcome."""
    if conversation is not None:
        outcome = engine.current(FLOWS[conversation.flow], conversation.state())
        return Reply(language, screens=_screens(outcome))
    status = await request_status(uow, person)
    if status is None:
        # Not started yet (the lost reply was the welcome, or help): the welcome, again.
        return welcome(language)
    return Reply(language, screens=(status,))


async def choose_flow(
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
        outcome = engine.current(FLOWS[conversation.flow], conversation.state())
        return Reply(language, toast=ALREADY_IN_PROGRESS, screens=_screens(outcome))
    found = await open_request(uow, person, flow.name)
    if found is not None:
        # One open request per person and role: two would go to two associations at once.
        profile, record = found
        buttons = (
            Button(REPLACE_REQUEST, ReplaceRequest(flow.name, profile.id)),
            Button(KEEP_REQUEST, KeepRequest(flow.name)),
        )
        if record is None:
            return Reply(language, screens=(Notice(ALREADY_WAITING[flow.name], buttons),))
        text = ALREADY_REQUESTED[flow.name].fmt(association=record.name)
        return Reply(language, screens=(Notice(text, buttons),))
    return _begin(uow, person, sender, flow, language)


async def replace_request(
    uow: UnitOfWork,
    person: Person,
    conversation: Conversation | None,
    sender: Sender,
    flow_name: str,
    profile_id: int,
    language: str,
    policy: Policy,
) -> Reply:
    """The person chose to replace their open request: it is withdrawn, and the new one begins."""
    flow = FLOWS.get(flow_name)
    if flow is None:
        return Reply(language, toast=FORGED)
    if conversation is not None:
        outcome = engine.current(FLOWS[conversation.flow], conversation.state())
        return Reply(language, toast=ALREADY_IN_PROGRESS, screens=_screens(outcome))
    found = await open_request(uow, person, flow.name)
    if found is None or found[0].id != profile_id:
        # An old offer (a double tap, a button from before): the request it named is gone.
        return Reply(language, toast=FORGED)
    await withdraw(uow, found[0], sender.now, policy)
    begun = _begin(uow, person, sender, flow, language)
    return replace(
        begun, screens=(Notice(REPLACED[flow.name]), *begun.screens), echo=REPLACE_REQUEST
    )


def keep_request(flow_name: str, language: str) -> Reply:
    text = KEPT_REQUEST.get(flow_name)
    if text is None:
        return Reply(language, toast=FORGED)
    return Reply(language, screens=(Notice(text),), echo=KEEP_REQUEST)


async def open_request(
    uow: UnitOfWork, person: Person, role: str
) -> tuple[Profile, AssociationRecord | None] | None:
    """The person's request of this role still in an association's hands (with it), or on the
    waiting list (None for the association); None when there is none."""
    profiles = [p for p in await uow.profiles.for_person(person) if p.role == role]
    for profile in reversed(profiles):
        if profile.status == ProfileStatus.WAITING:
            return profile, None
        if profile.status != ProfileStatus.MATCHED:
            continue
        handoffs = await uow.handoffs.of_profile(profile.id)
        if handoffs and handoffs[-1].status in OPEN_REQUEST:
            return profile, await uow.catalog.get(handoffs[-1].association_id)
    return None


def _begin(uow: UnitOfWork, person: Person, sender: Sender, flow: Flow, language: str) -> Reply:
    first = engine.begin(flow)
    started = uow.conversations.start(
        person, sender.chat_id, first.state, person.source, sender.now
    )
    _milestone(uow, started, first.state.step, Milestone.STARTED, sender.now, language)
    _milestone(uow, started, first.state.step, Milestone.REACHED, sender.now, language)
    log.info("conversation started: flow=%s", flow.name)
    return Reply(language, screens=(Notice(INTRO[flow.name]), first))


async def answer(
    uow: UnitOfWork,
    person: Person,
    conversation: Conversation | None,
    sender: Sender,
    given: Input,
    language: str,
    localize: Localize,
    policy: Policy,
) -> Reply:
    """One answer (typed, a button, a shared contact) to the current step."""
    if conversation is None:
        if isinstance(given, TextInput):
            return welcome(language)
        return Reply(language, toast=ALREADY_ANSWERED)
    flow = FLOWS[conversation.flow]
    state = conversation.state()
    outcome = engine.advance(flow, state, given, lambda text: localize(language, text))
    if isinstance(outcome, Stale):
        return Reply(language, toast=ALREADY_ANSWERED)
    conversation.save(outcome.state, sender.now)
    asked = next((s for s in flow.steps if s.key == state.step), None)
    answered_phone = (
        asked is not None and asked.kind is StepKind.PHONE and outcome.state.step != state.step
    )
    _answer_milestones(uow, conversation, asked, state, given, outcome, sender.now, language)
    if isinstance(outcome, Ask) and outcome.in_place:
        return Reply(language, in_place=outcome)
    if isinstance(outcome, Completed):
        result = await _submit(
            uow, person, conversation, outcome.state, language, sender.now, localize, policy
        )
        return Reply(language, screens=(result,), echo=SENT)
    if isinstance(outcome, Exited):
        _milestone(uow, conversation, state.step, Milestone.EXITED, sender.now, language)
        offer = outcome.offer_flow
        buttons = (Button(BECOME_MENTOR, ChooseFlow(offer)),) if offer else ()
        return Reply(
            language,
            screens=(Notice(outcome.reason, buttons),),
            close_reply_keyboard=answered_phone,
        )
    return Reply(
        language,
        screens=_screens(outcome),
        echo=outcome.answered,
        close_reply_keyboard=answered_phone,
    )


async def _submit(
    uow: UnitOfWork,
    person: Person,
    conversation: Conversation,
    state: ConversationState,
    language: str,
    now: datetime,
    localize: Localize,
    policy: Policy,
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
    kinds = [ConsentKind.CONTACT]
    if state.answers.get("parent_consent"):
        kinds.append(ConsentKind.PARENTAL)
    for kind in kinds:
        uow.profiles.add_consent(
            Consent(
                person_id=person.id,
                profile_id=profile.id,
                kind=kind,
                text_version=CONSENT_VERSION,
                given_at=now,
            )
        )
    result = await route(uow, profile, now, policy)
    profile.match = match_record(result, language, localize)
    name = str(state.answers.get("first_name") or "")
    best = result.best
    _milestone(uow, conversation, None, Milestone.COMPLETED, now, language)
    if best is None:
        _milestone(uow, conversation, None, Milestone.NO_MATCH, now, language, profile.department)
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


def match_record(result: MatchResult, language: str, localize: Localize) -> dict[str, object]:
    """The ranking as the person was told it, kept with the profile."""
    return {
        "ranked": [
            {
                "slug": candidate.association.slug,
                "score": round(candidate.score, 2),
                "reasons": [localize(language, r) for r in candidate.reasons],
            }
            for candidate in result.ranked
        ],
        "gap": localize("fr", result.gap) if result.gap else None,
    }


def restart(
    uow: UnitOfWork,
    person: Person,
    conversation: Conversation | None,
    sender: Sender,
    language: str,
) -> Reply:
    if conversation is None:
        return welcome(language)
    state = conversation.state()
    cancelled = ConversationState(state.flow, None, state.answers, status=Status.CANCELLED)
    conversation.save(cancelled, sender.now)
    _milestone(uow, conversation, state.step, Milestone.RESTARTED, sender.now, language)
    first = engine.begin(FLOWS[state.flow])
    # A new conversation, so a new journey: the old one ended here.
    again = uow.conversations.start(
        person, sender.chat_id, first.state, conversation.source, sender.now
    )
    _milestone(uow, again, first.state.step, Milestone.REACHED, sender.now, language)
    return Reply(language, screens=(Notice(RESTARTED), first))


def cancel(
    uow: UnitOfWork, conversation: Conversation | None, sender: Sender, language: str
) -> Reply:
    if conversation is None:
        return Reply(language, screens=(Notice(NOTHING_TO_CANCEL),))
    state = conversation.state()
    conversation.save(
        ConversationState(state.flow, None, state.answers, Status.CANCELLED), sender.now
    )
    _milestone(uow, conversation, state.step, Milestone.CANCELLED, sender.now, language)
    return Reply(language, screens=(Notice(CANCELLED),), close_reply_keyboard=True)


def show_languages(language: str) -> Reply:
    buttons = tuple(Button(LANGUAGE_NAMES[code], ChooseLanguage(code)) for code in LANGUAGES)
    return Reply(language, screens=(Notice(CHOOSE_LANGUAGE, buttons),))


def choose_language(
    person: Person, conversation: Conversation | None, chosen: str, language: str
) -> Reply:
    if chosen not in LANGUAGES:
        return Reply(language, toast=FORGED)
    person.language = chosen
    screens: tuple[Screen, ...] = (Notice(LANGUAGE_SET),)
    if conversation is not None:
        state = conversation.state()
        screens = (*screens, *_screens(engine.current(FLOWS[state.flow], state)))
    return Reply(chosen, screens=screens, echo=LANGUAGE_NAMES[chosen])


def help_(language: str) -> Reply:
    return Reply(language, screens=(Notice(HELP),))


def _milestone(
    uow: UnitOfWork,
    conversation: Conversation,
    step: str | None,
    event: Milestone,
    now: datetime,
    language: str,
    detail: str | None = None,
) -> None:
    """A funnel event of this conversation's journey: anonymous, it outlives the conversation."""
    uow.funnel.record(
        conversation.flow,
        step,
        event,
        now,
        detail,
        journey=conversation.journey,
        language=language,
        source=conversation.source,
    )


def _answer_milestones(
    uow: UnitOfWork,
    conversation: Conversation,
    asked: Step | None,
    before: ConversationState,
    given: Input,
    outcome: Outcome,
    now: datetime,
    language: str,
) -> None:
    """What one input to a step tells the funnel: a first answer, a refusal, a step back, and
    the step reached next. The summary is no step: reaching it, or a problem there, counts not."""
    if asked is not None:
        # Counted once, when a question gets its first answer: not on Back, not on an edit.
        if asked.key in outcome.state.answers and asked.key not in before.answers:
            _milestone(uow, conversation, asked.key, Milestone.ANSWERED, now, language)
        if isinstance(given, BackInput):
            _milestone(uow, conversation, asked.key, Milestone.BACK, now, language)
        if isinstance(outcome, Ask) and outcome.step.key == asked.key:
            # The same step again: refused with a reason (a toggle redraws it, with none).
            if outcome.problem is not None and not outcome.in_place:
                _milestone(uow, conversation, asked.key, Milestone.INVALID, now, language)
            return
    if isinstance(outcome, Ask):
        _milestone(uow, conversation, outcome.step.key, Milestone.REACHED, now, language)


def _screens(outcome: Outcome) -> tuple[Screen, ...]:
    if isinstance(outcome, (Ask, Summary)):
        return (outcome,)
    return ()
