"""A parent's consent that a child cannot fake (Loi Informatique et Libertés, art. 45).

A young person under 15 who fills in alone gets a single-use link to forward to a parent. The
parent opens it in their own Telegram account, sees what will be sent and to whom, and agrees or
refuses; nothing is handed off before. The child's own account cannot answer the link, the link
expires, and the young person hears once if the parent has not answered yet.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime

from conversations.entities import (
    Consent,
    ConsentKind,
    ConsentMethod,
    ParentalLink,
    Person,
    Profile,
    ProfileStatus,
    answers_from_json,
)
from conversations.flows import CONSENT_VERSION
from conversations.ports import Conflict, Localize, PersonNotice, UnitOfWork, UnitOfWorkFactory
from conversations.services.access import hash_token
from conversations.services.actions import AnswerParental
from conversations.services.announce import announce_match
from conversations.services.handoffs import ranking
from conversations.services.policy import Policy
from conversations.services.privacy import answers_text
from conversations.services.replies import Button, Notice, Reply, Screen, Sender
from conversations.text import Lines, Text, _

log = logging.getLogger(__name__)

# /start payloads of parental links: "pc_" and 32 URL-safe characters (Telegram allows 64).
LINK_PREFIX = "pc_"
LINKS_PER_RUN = 200

ASK_PARENT = _(
    "Merci %(name)s, tes réponses sont enregistrées ✅\n\n"
    "<b>Dernière étape :</b> comme tu as moins de 15 ans, ton parent doit confirmer, depuis son "
    "propre compte Telegram. Envoie-lui ce lien (transfère ce message, ou copie le lien) :\n\n"
    "%(link)s\n\n"
    "Le lien marche une seule fois, pendant %(days)s jours. Rien n'est envoyé à une association "
    "avant son accord, et je te préviens dès qu'il ou elle a répondu."
)
NEW_LINK = _(
    "Ta demande attend l'accord de ton parent. Voici un nouveau lien à lui envoyer (l'ancien ne "
    "marche plus), valable %(days)s jours :\n\n%(link)s"
)
NOT_CONFIRMED = _(
    "Ta dernière demande n'a pas reçu l'accord de ton parent : elle n'a été envoyée à aucune "
    "association."
)
OWN_LINK = _(
    "Ce lien est pour ton parent 🙂 Envoie-le-lui : il doit l'ouvrir depuis son propre compte "
    "Telegram."
)
LINK_INVALID = _(
    "Ce lien n'est plus valable (déjà utilisé, ou expiré). Le ou la jeune peut en obtenir un "
    "nouveau en m'écrivant /start."
)
PARENT_ASKED = _(
    "Bonjour ! <b>%(name)s</b> (%(age)s ans) aimerait être accompagné·e par un·e mentor·e, "
    "bénévole d'une association du Collectif Mentorat.\n\n"
    "Si vous êtes d'accord, ses réponses seront transmises à <b>%(association)s</b>, qui "
    "vous appellera d'abord (au %(phone)s) :\n%(answers)s\n\n"
    "Êtes-vous d'accord, comme parent (ou responsable légal) ? Qui garde quoi, et pourquoi : "
    "/privacy (texte de l'accord : version %(version)s)."
)
# The parent sees what the association will read about the child, not their own details again.
PARENT_NOT_SHOWN = frozenset({"consent", "parent_name", "parent_phone"})
NO_ASSOCIATION_YET = _("l'association du Collectif qui lui correspond (aucune pour l'instant)")
AGREE = _("Oui, je suis d'accord")
REFUSE = _("Non")
PARENT_THANKS = _(
    "Merci, c'est confirmé ✅ %(name)s est prévenu·e. L'association vous appellera bientôt."
)
PARENT_THANKS_WAITING = _(
    "Merci, c'est confirmé ✅ %(name)s est prévenu·e. Aucune association ne peut l'accompagner "
    "pour l'instant : la demande attend sur la liste d'attente, et %(name)s sera prévenu·e dès "
    "qu'une association la prend."
)
ALREADY_ANSWERED = _("Ce lien a déjà reçu sa réponse 🙂")
# Those who may receive the child's contact cannot speak for the parent.
NOT_FOR_STAFF = _(
    "Ce lien est pour le parent du ou de la jeune : un compte de coordinateur ou coordinatrice "
    "d'association ne peut pas donner cet accord."
)
PARENT_REFUSED = _("C'est noté : rien ne sera transmis. %(name)s est prévenu·e.")
CHILD_CONFIRMED = _("Ton parent a donné son accord ✅")
CHILD_REFUSED = _(
    "Ton parent n'a pas donné son accord : rien n'a été envoyé à une association. Parlez-en "
    "ensemble ; tu pourras recommencer quand tu veux avec /start."
)
REMINDER = _(
    "Ton parent n'a pas encore confirmé ta demande. Envoie-lui le lien que je t'ai donné plus "
    "haut, ou tape /start pour en avoir un nouveau."
)
EXPIRED = _(
    "Le lien pour ton parent a expiré sans réponse : ta demande n'a été envoyée à aucune "
    "association. Tu peux recommencer quand tu veux avec /start."
)


def _link(sender: Sender, token: str) -> str:
    return f"https://t.me/{sender.bot_username}?start={LINK_PREFIX}{token}"


def _name(profile: Profile) -> str:
    return str(profile.answers.get("first_name") or "")


async def ask_parent(
    uow: UnitOfWork, profile: Profile, sender: Sender, policy: Policy
) -> tuple[Screen, ...]:
    """The profile waits for a parent: a fresh link, and what to do with it."""
    profile.status = ProfileStatus.AWAITING_PARENT
    token = secrets.token_urlsafe(24)
    uow.parental_links.add(
        ParentalLink(
            profile_id=profile.id,
            token_hash=hash_token(token),
            created_at=sender.now,
            expires_at=sender.now + policy.parental_link_valid,
        )
    )
    log.info("profile %s waits for a parent's confirmation", profile.id)
    text = ASK_PARENT.fmt(
        name=_name(profile), link=_link(sender, token), days=policy.parental_link_valid.days
    )
    return (Notice(text, to_forward=True),)


async def status_notice(uow: UnitOfWork, profile: Profile, sender: Sender | None) -> Notice:
    """Where a request that needs a parent stands; at /start, with a new link to forward."""
    if profile.status == ProfileStatus.NOT_CONFIRMED:
        return Notice(NOT_CONFIRMED)
    link = await uow.parental_links.of_profile(profile.id)
    if sender is None or link is None or link.answered_at is not None:
        return Notice(REMINDER)
    # Only the hash is kept: the old link cannot be shown again, so a new one replaces it,
    # with a whole new delay: a link given on the last day must not die within the hour. (The
    # one reminder stays one: if it was sent, the new link gets none.)
    span = link.expires_at - link.created_at
    token = secrets.token_urlsafe(24)
    link.token_hash = hash_token(token)
    link.created_at = sender.now
    link.expires_at = sender.now + span
    text = NEW_LINK.fmt(link=_link(sender, token), days=str(max(1, span.days)))
    return Notice(text, to_forward=True)


async def _open(
    uow: UnitOfWork, link: ParentalLink | None, now: datetime
) -> tuple[ParentalLink, Profile] | None:
    """The link and its profile, if the link can still be answered."""
    if link is None or link.answered_at is not None or link.expires_at <= now:
        return None
    profile = await uow.profiles.get(link.profile_id)
    if profile is None or profile.status != ProfileStatus.AWAITING_PARENT:
        return None
    return link, profile


async def open_link(
    uow: UnitOfWork,
    person: Person,
    payload: str,
    sender: Sender,
    language: str,
    localize: Localize,
) -> Reply:
    """A parent opened the link: what will be sent, to whom, and the two buttons."""
    token = payload.removeprefix(LINK_PREFIX)
    found = await _open(uow, await uow.parental_links.by_hash(hash_token(token)), sender.now)
    if found is None:
        return Reply(language, screens=(Notice(LINK_INVALID),))
    link, profile = found
    if profile.person_id == person.id:
        # The child's own account: forwarding is the only way on.
        return Reply(language, screens=(Notice(OWN_LINK),))
    if await uow.coordinators.of_person(sender.telegram_id):
        # A coordinator would read the child's answers before any parent agreed.
        return Reply(language, screens=(Notice(NOT_FOR_STAFF),))
    if person.address is None:
        person.address = "vous"
    result = await ranking(uow, profile, sender.now)
    answers = answers_from_json(profile.answers)
    lines = answers_text(profile.flow, profile.answers, PARENT_NOT_SHOWN)
    association: Text | str = (
        result.best.association.name if result.best is not None else NO_ASSOCIATION_YET
    )
    text = PARENT_ASKED.fmt(
        name=_name(profile),
        age=str(answers.get("age", "?")),
        association=association,
        phone=str(answers.get("parent_phone") or "?"),
        answers=Lines(lines),
        version=CONSENT_VERSION,
    )
    buttons = (
        Button(AGREE, AnswerParental(token, agreed=True)),
        Button(REFUSE, AnswerParental(token, agreed=False)),
    )
    log.info("parental link %s opened", link.id)
    return Reply(language, screens=(Notice(text, buttons),))


async def answer(
    uow: UnitOfWork,
    person: Person,
    sender: Sender,
    token: str,
    agreed: bool,
    language: str,
    localize: Localize,
    policy: Policy,
) -> Reply:
    """The parent's yes (the profile is handed off now) or no (it goes nowhere)."""
    known = await uow.parental_links.by_hash(hash_token(token))
    found = await _open(uow, known, sender.now)
    if found is None:
        if known is not None and known.answered_at is not None:
            # A double tap, or a second look: the answer given stands, the screen stays.
            return Reply(language, toast=ALREADY_ANSWERED)
        # A new message, the pressed one left as it is: it did not become this.
        return Reply(language, screens=(Notice(LINK_INVALID),))
    link, profile = found
    if profile.person_id == person.id:
        return Reply(language, screens=(Notice(OWN_LINK),))
    if await uow.coordinators.of_person(sender.telegram_id):
        return Reply(language, screens=(Notice(NOT_FOR_STAFF),))
    child = await uow.people.get(profile.person_id)
    link.answered_at = sender.now
    link.agreed = agreed
    name = _name(profile)
    if not agreed:
        profile.status = ProfileStatus.NOT_CONFIRMED
        if child is not None:
            await _tell_child(
                uow, f"parental-no:{profile.id}", child, profile, CHILD_REFUSED, sender.now
            )
        log.info("profile %s: the parent refused", profile.id)
        return Reply(language, screens=(Notice(PARENT_REFUSED.fmt(name=name)),), echo=REFUSE)
    uow.profiles.add_consent(
        Consent(
            person_id=profile.person_id,
            profile_id=profile.id,
            kind=ConsentKind.PARENTAL,
            text_version=CONSENT_VERSION,
            given_at=sender.now,
            method=ConsentMethod.PARENT_ACCOUNT,
        )
    )
    profile.status = ProfileStatus.MATCHED
    news = await announce_match(uow, profile, None, sender.now, localize, policy)
    if child is not None:
        text = Text("%(lines)s").fmt(lines=Lines((CHILD_CONFIRMED, news.text)))
        await _tell_child(uow, f"parental-ok:{profile.id}", child, profile, text, sender.now)
    log.info("profile %s: the parent agreed", profile.id)
    thanks = PARENT_THANKS if profile.status == ProfileStatus.MATCHED else PARENT_THANKS_WAITING
    return Reply(language, screens=(Notice(thanks.fmt(name=name)),), echo=AGREE)


async def _tell_child(
    uow: UnitOfWork, key: str, child: Person, profile: Profile, text: Text, now: datetime
) -> None:
    if child.blocked_at is not None:
        return
    notice = PersonNotice(child.telegram_id, profile.language, text)
    await uow.outbox.enqueue(key, notice, now, person_id=child.id)


async def chase(unit_of_work: UnitOfWorkFactory, now: datetime, policy: Policy) -> int:
    """One reminder to the young person half-way through the link's life; at its end, the
    request goes nowhere and they are told. Read from the database, so restarts lose nothing."""
    remind_before = now - policy.parental_link_valid / 2
    async with unit_of_work() as uow:
        due = await uow.parental_links.due(now, remind_before, LINKS_PER_RUN)
    handled = 0
    for link_id in due:
        for _attempt in range(3):
            try:
                handled += await _chase_one(unit_of_work, link_id, now, remind_before)
                break
            except Conflict:
                continue
    return handled


async def _chase_one(
    unit_of_work: UnitOfWorkFactory, link_id: int, now: datetime, remind_before: datetime
) -> int:
    async with unit_of_work() as uow:
        link = await uow.parental_links.get(link_id)
        if link is None or link.answered_at is not None:
            return 0
        profile = await uow.profiles.get(link.profile_id)
        if profile is None:
            return 0
        child = await uow.people.get(profile.person_id)
        if link.expires_at <= now:
            link.answered_at = now
            if profile.status == ProfileStatus.AWAITING_PARENT:
                profile.status = ProfileStatus.NOT_CONFIRMED
                if child is not None:
                    await _tell_child(
                        uow, f"parental-expired:{profile.id}", child, profile, EXPIRED, now
                    )
            log.info("parental link %s expired", link.id)
        elif link.reminded_at is None and link.created_at <= remind_before:
            link.reminded_at = now
            if child is not None and profile.status == ProfileStatus.AWAITING_PARENT:
                await _tell_child(
                    uow, f"parental-remind:{profile.id}", child, profile, REMINDER, now
                )
        else:
            return 0
        await uow.commit()
        return 1
