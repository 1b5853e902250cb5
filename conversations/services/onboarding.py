"""The questionnaire: start a flow, answer it one step at a time, submit it, or stop.

The conversation's state is read and written in the unit of work of the update, so a crash or a
restart resumes at the same question; the submitted profile is matched and handed off at once.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from datetime import datetime, timedelta

from conversations import engine
from conversations.entities import (
    AssociationRecord,
    Consent,
    ConsentKind,
    ConsentMethod,
    Conversation,
    Milestone,
    Person,
    Profile,
    ProfileStatus,
    answers_from_json,
    answers_to_json,
)
from conversations.flows import CONSENT_VERSION, FLOWS, ROLE_OF
from conversations.flows.mentee import needs_parent
from conversations.flows.referral import PARENT
from conversations.geography import department_of
from conversations.handoff import OPEN_REQUEST, HandoffStatus
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
from conversations.services import parental
from conversations.services.actions import (
    ChooseFlow,
    ChooseLanguage,
    KeepRequest,
    Reopen,
    ReplaceRequest,
)
from conversations.services.announce import announce_match
from conversations.services.handoffs import withdraw
from conversations.services.policy import Policy
from conversations.services.privacy import HANDOFF_STATES
from conversations.services.replies import Button, Notice, Reply, Screen, Sender, address_of
from conversations.text import LANGUAGES, Text, _

log = logging.getLogger(__name__)

# Telegram deep links allow these characters, 64 at most (Bot API: "start" parameter).
DEEP_LINK_PAYLOAD = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

ALREADY_ANSWERED = _("Cette question a déjà une réponse 🙂")
WELCOME = _(
    "Bonjour ! 👋 Je suis le bot du <b>Collectif Mentorat</b>.\n\n"
    "En quelques questions, je mets en relation les jeunes de 5 à 30 ans et les futur·es "
    "mentor·es avec l'association du Collectif qui leur correspond.\n\nQui êtes-vous ?"
)
# The choices again, to someone the bot already speaks to as "tu" (a young person back).
WELCOME_AGAIN = {
    "tu": _("Tu veux faire une nouvelle demande ? Choisis :"),
    "vous": _("Vous voulez faire une nouvelle demande ? Choisissez :"),
}
WELCOME_BACK = _("Rebonjour ! On reprend là où on s'était arrêté.")
FLOW_BUTTONS = (
    Button(_("Je cherche un·e mentor·e"), ChooseFlow("mentee")),
    Button(_("J'inscris un·e jeune (parent, pro)"), ChooseFlow("referral")),
    Button(_("Je veux devenir mentor·e"), ChooseFlow("mentor")),
)
# The counts are the flow's real ones (engine.question_range): a promise the questionnaire keeps.
INTRO = {
    "mentee": _(
        "Super ! Je vais te poser %(fewest)s à %(most)s questions selon tes réponses, cela prend "
        "3 minutes. Tu peux revenir en arrière à tout moment avec le bouton « Retour »."
    ),
    "referral": _(
        "Merci d'inscrire un·e jeune ! %(fewest)s à %(most)s questions selon vos réponses, "
        "3 minutes environ. Vous pouvez revenir en arrière à tout moment avec « Retour »."
    ),
    "mentor": _(
        "Merci de vouloir devenir mentor·e ! %(fewest)s à %(most)s questions selon vos réponses, "
        "3 minutes environ. Vous pouvez revenir en arrière à tout moment avec « Retour »."
    ),
}
SENT = _("C'est bon ✅")
BECOME_MENTOR = _("Devenir mentor·e")
BACK_TO_QUESTION = _("↩️ Retour")
ALREADY_IN_PROGRESS = _("Un questionnaire est déjà en cours : reprenons-le.")
# Two presses of one button this close together are a double tap, not a second intention.
DOUBLE_TAP = timedelta(seconds=5)
CANCELLED = {
    "tu": _(
        "C'est arrêté : tes réponses n'ont été envoyées à personne. Pour recommencer, tape /start."
    ),
    "vous": _(
        "C'est arrêté : vos réponses n'ont été envoyées à personne. Pour recommencer, tapez /start."
    ),
}
NOTHING_TO_CANCEL = {
    "tu": _("Il n'y a aucun questionnaire en cours. Pour commencer, tape /start."),
    "vous": _("Il n'y a aucun questionnaire en cours. Pour commencer, tapez /start."),
}
RESTARTED = _("C'est reparti depuis le début.")
REOPENED = _("Pas de souci, on corrige :")
HELP = {
    "tu": _(
        "Je t'aide à trouver une association du Collectif Mentorat, "
        "en répondant à quelques questions.\n\n"
        "/start – commencer ou reprendre\n"
        "/restart – recommencer le questionnaire\n"
        "/cancel – arrêter le questionnaire\n"
        "/language – changer de langue\n"
        "/privacy – qui garde tes données, et pourquoi\n"
        "/mydata – voir tes données\n"
        "/delete – effacer tes données\n"
        "/help – cette aide"
    ),
    "vous": _(
        "Je vous aide à trouver une association du Collectif Mentorat, "
        "en répondant à quelques questions.\n\n"
        "/start – commencer ou reprendre\n"
        "/restart – recommencer le questionnaire\n"
        "/cancel – arrêter le questionnaire\n"
        "/language – changer de langue\n"
        "/privacy – qui garde vos données, et pourquoi\n"
        "/mydata – voir vos données\n"
        "/delete – effacer vos données\n"
        "/help – cette aide"
    ),
}
CHOOSE_LANGUAGE = {
    "tu": _("Dans quelle langue veux-tu continuer ?"),
    "vous": _("Dans quelle langue voulez-vous continuer ?"),
}
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
# Only a young person alone waits for a parent: "tu".
ALREADY_AWAITING_PARENT = _(
    "Ta demande attend encore l'accord de ton parent (avec le lien que je t'ai donné). Veux-tu "
    "la remplacer par une nouvelle ?"
)
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
    "referral": _("Votre demande a bien été envoyée à <b>%(association)s</b> : %(status)s."),
    "mentor": _("Votre inscription a bien été envoyée à <b>%(association)s</b> : %(status)s."),
}
REQUEST_WAITING = {
    "mentee": _(
        "Ta demande est bien enregistrée, sur la liste d'attente : l'équipe du Collectif cherche "
        "une association qui peut t'accompagner."
    ),
    "referral": _(
        "Votre demande est bien enregistrée, sur la liste d'attente : l'équipe du Collectif "
        "cherche une association qui peut accompagner ce ou cette jeune."
    ),
    "mentor": _(
        "Votre inscription est bien enregistrée, sur la liste d'attente : l'équipe du Collectif "
        "cherche une association qui peut vous accueillir."
    ),
}


def welcome(language: str, person: Person | None = None) -> Reply:
    return Reply(language, screens=(_choices(person),))


def _choices(person: Person | None) -> Notice:
    """The three ways in: with the greeting for a newcomer, shorter for someone known."""
    if person is None or person.address is None:
        return Notice(WELCOME, FLOW_BUTTONS)
    return Notice(WELCOME_AGAIN[address_of(person)], FLOW_BUTTONS)


async def start(
    uow: UnitOfWork,
    person: Person,
    conversation: Conversation | None,
    payload: str | None,
    language: str,
    sender: Sender,
) -> Reply:
    """/start: the welcome, or the question where the person stopped."""
    if payload and DEEP_LINK_PAYLOAD.match(payload):
        person.source = payload
    roles = await uow.coordinators.of_person(person.telegram_id)
    if roles and conversation is None:
        return Reply(language, screens=(Notice(COORDINATOR_HELLO), _choices(person)))
    if conversation is not None:
        outcome = engine.current(FLOWS[conversation.flow], conversation.state())
        return Reply(language, screens=(Notice(WELCOME_BACK), *_screens(outcome)))
    ended = await _ended_early(uow, person)
    if ended is not None:
        # The questionnaire stopped on one answer (an age typed wrong, a "Non"): /start takes
        # the person back to that question rather than to question 1.
        asked = _reopen(uow, ended, sender.now, language)
        if asked is not None:
            return Reply(language, screens=(Notice(WELCOME_BACK), asked))
    status = await request_status(uow, person, sender)
    if status is not None:
        # Already signed up: where the request stands first, then the usual choices.
        return Reply(language, screens=(status, _choices(person)))
    return welcome(language, person)


async def request_status(
    uow: UnitOfWork, person: Person, sender: Sender | None = None
) -> Notice | None:
    """Where the person's latest request stands: which association has it, and what became of it."""
    # A withdrawn request was replaced: it is no one's request any more.
    profiles = [
        p for p in await uow.profiles.for_person(person) if p.status != ProfileStatus.WITHDRAWN
    ]
    if not profiles:
        return None
    profile = profiles[-1]
    if profile.status in (ProfileStatus.AWAITING_PARENT, ProfileStatus.NOT_CONFIRMED):
        return await parental.status_notice(uow, profile, sender)
    handoffs = await uow.handoffs.of_profile(profile.id)
    record = await uow.catalog.get(handoffs[-1].association_id) if handoffs else None
    if profile.status == ProfileStatus.WAITING or not handoffs or record is None:
        return Notice(REQUEST_WAITING[profile.flow])
    status = HANDOFF_STATES[HandoffStatus(handoffs[-1].status)]
    return Notice(REQUEST_SENT[profile.flow].fmt(association=record.name, status=status))


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
        return welcome(language, person)
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
        return _in_progress(conversation, sender.now, language)
    # A parent may sign up two children, a teacher a whole class: one open request per person
    # and role is for the people who sign themselves up.
    found = None if flow.name == "referral" else await open_request(uow, person, flow.name)
    if found is not None:
        # One open request per person and role: two would go to two associations at once.
        profile, record = found
        buttons = (
            Button(REPLACE_REQUEST, ReplaceRequest(flow.name, profile.id)),
            Button(KEEP_REQUEST, KeepRequest(flow.name)),
        )
        if profile.status == ProfileStatus.AWAITING_PARENT:
            return Reply(language, screens=(Notice(ALREADY_AWAITING_PARENT, buttons),))
        if record is None:
            return Reply(language, screens=(Notice(ALREADY_WAITING[flow.name], buttons),))
        text = ALREADY_REQUESTED[flow.name].fmt(association=record.name)
        return Reply(language, screens=(Notice(text, buttons),))
    # The welcome pressed becomes the intro and the first question: its choice is made.
    chosen = next(b.label for b in FLOW_BUTTONS if b.action == ChooseFlow(flow.name))
    return replace(_begin(uow, person, sender, flow, language), echo=chosen)


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


async def _ended_early(uow: UnitOfWork, person: Person) -> Conversation | None:
    """The person's last questionnaire, if it ended early on an answer (and nothing since)."""
    latest = await uow.conversations.latest_for(person)
    if latest is None or latest.status != Status.EXITED or not latest.step:
        return None
    return latest


def _in_progress(conversation: Conversation, now: datetime, language: str) -> Reply:
    """A press that would begin a questionnaire while one runs. Just after it began, it is the
    same press twice (a double tap): the toast only, the question is on screen already. Later,
    an old button: the question where the person is, again."""
    if now - conversation.updated_at < DOUBLE_TAP:
        return Reply(language, toast=ALREADY_IN_PROGRESS)
    outcome = engine.current(FLOWS[conversation.flow], conversation.state())
    return Reply(language, toast=ALREADY_IN_PROGRESS, screens=_screens(outcome))


def _reopen(
    uow: UnitOfWork, conversation: Conversation, now: datetime, language: str
) -> Ask | None:
    flow = FLOWS.get(conversation.flow)
    if flow is None:
        return None
    asked = engine.reopen(flow, conversation.state())
    if not isinstance(asked, Ask):
        return None
    conversation.save(asked.state, now)
    _milestone(uow, conversation, asked.step.key, Milestone.REACHED, now, language)
    return asked


async def reopen(
    uow: UnitOfWork,
    person: Person,
    conversation: Conversation | None,
    sender: Sender,
    step: str,
    language: str,
) -> Reply:
    """ "Retour" under an early end: the question that ended the questionnaire, again."""
    if conversation is not None:
        return _in_progress(conversation, sender.now, language)
    ended = await _ended_early(uow, person)
    if ended is None or ended.step != step:
        # An older end, or one already undone (a double tap): nothing to go back to.
        return Reply(language, toast=ALREADY_ANSWERED)
    asked = _reopen(uow, ended, sender.now, language)
    if asked is None:
        return Reply(language, toast=ALREADY_ANSWERED)
    return Reply(language, screens=(Notice(REOPENED), asked), echo=BACK_TO_QUESTION)


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
    profiles = [p for p in await uow.profiles.for_person(person) if p.flow == role]
    for profile in reversed(profiles):
        if profile.status in (ProfileStatus.WAITING, ProfileStatus.AWAITING_PARENT):
            return profile, None
        if profile.status != ProfileStatus.MATCHED:
            continue
        handoffs = await uow.handoffs.of_profile(profile.id)
        if handoffs and handoffs[-1].status in OPEN_REQUEST:
            return profile, await uow.catalog.get(handoffs[-1].association_id)
    return None


def _begin(uow: UnitOfWork, person: Person, sender: Sender, flow: Flow, language: str) -> Reply:
    # From now on help, errors and /mydata speak to the person as this questionnaire does.
    person.address = flow.address
    first = engine.begin(flow)
    started = uow.conversations.start(
        person, sender.chat_id, first.state, person.source, sender.now
    )
    _milestone(uow, started, first.state.step, Milestone.STARTED, sender.now, language)
    _milestone(uow, started, first.state.step, Milestone.REACHED, sender.now, language)
    log.info("conversation started: flow=%s", flow.name)
    return Reply(language, screens=(Notice(intro(flow)), first))


def intro(flow: Flow) -> Text:
    fewest, most = engine.question_range(flow)
    return INTRO[flow.name].fmt(fewest=fewest, most=most)


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
            return welcome(language, person)
        return Reply(language, toast=ALREADY_ANSWERED)
    flow = FLOWS[conversation.flow]
    state = conversation.state()
    outcome = engine.advance(flow, state, given, lambda text: localize(language, text))
    if isinstance(outcome, Stale):
        return Reply(language, toast=ALREADY_ANSWERED)
    conversation.save(outcome.state, sender.now)
    asked = next((s for s in flow.steps if s.key == state.step), None)
    # Only a question that showed the "share my number" keyboard has one to close.
    answered_phone = (
        asked is not None
        and asked.kind is StepKind.PHONE
        and asked.own_number
        and outcome.state.step != state.step
    )
    _answer_milestones(uow, conversation, asked, state, given, outcome, sender.now, language)
    if isinstance(outcome, Ask) and outcome.in_place:
        return Reply(language, in_place=outcome)
    if isinstance(outcome, Completed):
        result = await _submit(
            uow, person, conversation, outcome.state, language, sender, localize, policy
        )
        record = engine.submitted(flow, outcome.state)
        return Reply(language, screens=result, echo=SENT, record=record)
    if isinstance(outcome, Exited):
        _milestone(uow, conversation, state.step, Milestone.EXITED, sender.now, language)
        offer = outcome.offer_flow
        # One slip must not end it all: "Retour" asks the question that ended it again.
        back = Button(BACK_TO_QUESTION, Reopen(state.step or ""))
        buttons = (back, Button(BECOME_MENTOR, ChooseFlow(offer))) if offer else (back,)
        return Reply(
            language,
            screens=(Notice(outcome.reason, buttons),),
            close_reply_keyboard=answered_phone,
            replaces_pressed=True,
        )
    # A press on the question shown: it becomes what follows (the next question, the same one
    # with what was wrong, the previous one for "Retour", the summary).
    return Reply(
        language,
        screens=_screens(outcome),
        echo=outcome.answered,
        close_reply_keyboard=answered_phone,
        replaces_pressed=True,
    )


async def _submit(
    uow: UnitOfWork,
    person: Person,
    conversation: Conversation,
    state: ConversationState,
    language: str,
    sender: Sender,
    localize: Localize,
    policy: Policy,
) -> tuple[Screen, ...]:
    """Store the profile and its consents, match it, and say what happens next. A young person
    under 15 alone is not handed off: their parent confirms first, from their own account."""
    now = sender.now
    postal_code = state.answers.get("postal_code")
    profile = uow.profiles.add(
        Profile(
            person_id=person.id,
            conversation_id=conversation.id,
            role=ROLE_OF[state.flow],
            flow=state.flow,
            answers=answers_to_json(state.answers),
            language=language,
            source=conversation.source,
            department=department_of(postal_code) if isinstance(postal_code, str) else None,
            submitted_at=now,
        )
    )
    await uow.flush()
    # An account that said it is an under-15 cannot then say it is the parent: the parent's
    # agreement comes through the link, from the parent's own account.
    self_declared = await _parent_in_name_only(uow, person, state)
    for kind, method in _consents_given(state):
        if self_declared and kind is ConsentKind.PARENTAL:
            continue
        uow.profiles.add_consent(
            Consent(
                person_id=person.id,
                profile_id=profile.id,
                kind=kind,
                text_version=CONSENT_VERSION,
                given_at=now,
                method=method,
            )
        )
    _milestone(uow, conversation, None, Milestone.COMPLETED, now, language)
    if (state.flow == "mentee" and needs_parent(state.answers)) or self_declared:
        return await parental.ask_parent(uow, profile, sender, policy)
    return (await announce_match(uow, profile, conversation, now, localize, policy),)


async def _parent_in_name_only(uow: UnitOfWork, person: Person, state: ConversationState) -> bool:
    """A referral "as the parent" of an under-15, from an account that filled in the young
    person's own questionnaire as an under-15 (a refused child trying again, say)."""
    if state.flow != "referral" or not needs_parent(state.answers):
        return False
    if state.answers.get("referrer_role") != PARENT:
        return False
    return any(
        p.flow == "mentee" and needs_parent(answers_from_json(p.answers))
        for p in await uow.profiles.for_person(person)
    )


def _consents_given(state: ConversationState) -> list[tuple[ConsentKind, ConsentMethod]]:
    """What the questionnaire's answers consent to, and how. A child's own "yes" is only ever
    their own consent: the parent's comes from the parent (filling in, or through the link)."""
    given = [(ConsentKind.CONTACT, ConsentMethod.IN_CHAT)]
    if state.flow != "referral" or not needs_parent(state.answers):
        return given
    if state.answers.get("referrer_role") == PARENT:
        given.append((ConsentKind.PARENTAL, ConsentMethod.IN_CHAT))
    elif state.answers.get("parent_consent") is True:
        given.append((ConsentKind.PARENTAL, ConsentMethod.ATTESTED))
    return given


def restart(
    uow: UnitOfWork,
    person: Person,
    conversation: Conversation | None,
    sender: Sender,
    language: str,
) -> Reply:
    if conversation is None:
        return welcome(language, person)
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
    uow: UnitOfWork,
    person: Person,
    conversation: Conversation | None,
    sender: Sender,
    language: str,
) -> Reply:
    you = address_of(person)
    if conversation is None:
        return Reply(language, screens=(Notice(NOTHING_TO_CANCEL[you]),))
    state = conversation.state()
    conversation.save(
        ConversationState(state.flow, None, state.answers, Status.CANCELLED), sender.now
    )
    _milestone(uow, conversation, state.step, Milestone.CANCELLED, sender.now, language)
    return Reply(language, screens=(Notice(CANCELLED[you]),), close_reply_keyboard=True)


def show_languages(person: Person, language: str) -> Reply:
    buttons = tuple(Button(LANGUAGE_NAMES[code], ChooseLanguage(code)) for code in LANGUAGES)
    return Reply(language, screens=(Notice(CHOOSE_LANGUAGE[address_of(person)], buttons),))


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


def help_(person: Person, language: str) -> Reply:
    return Reply(language, screens=(Notice(HELP[address_of(person)]),))


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
