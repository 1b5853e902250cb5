"""Telling a person which association their request went to, why, and what happens next.

Shared by the end of the questionnaire and by a parent's confirmation, which hands off later.
"""

from __future__ import annotations

import logging
from datetime import datetime

from conversations.entities import Conversation, Milestone, Profile
from conversations.matching import MatchResult
from conversations.ports import Localize, UnitOfWork
from conversations.services.handoffs import route
from conversations.services.policy import Policy
from conversations.services.replies import Notice
from conversations.text import Lines, _

log = logging.getLogger(__name__)

MATCHED = {
    "mentee": _(
        "Merci %(name)s, c'est envoyé ! ✅\n\n"
        "Je te propose <b>%(association)s</b> : %(description)s\n\n"
        "<b>Pourquoi elle ?</b>\n%(reasons)s\n\n"
        "<b>Et maintenant ?</b>\n%(next)s"
    ),
    "referral": _(
        "Merci, c'est envoyé ! ✅\n\n"
        "Pour %(name)s, je vous propose <b>%(association)s</b> : %(description)s\n\n"
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
    "referral": _(
        "Merci, les réponses pour %(name)s sont bien enregistrées. ✅\n\n"
        "Pour être honnête : aucune association du Collectif ne peut accompagner %(name)s tout "
        "de suite, là où il ou elle vit et pour ce que vous cherchez. La demande reste sur la "
        "liste d'attente, et l'équipe du Collectif est prévenue pour trouver une solution."
    ),
    "mentor": _(
        "Merci %(name)s, vos réponses sont bien enregistrées. ✅\n\n"
        "Pour être honnête : aucune association du Collectif ne recrute aujourd'hui de mentors "
        "dans votre situation et près de chez vous. Votre inscription reste sur la liste d'attente, "
        "et l'équipe du Collectif est prévenue pour trouver une solution."
    ),
}


async def announce_match(
    uow: UnitOfWork,
    profile: Profile,
    conversation: Conversation | None,
    now: datetime,
    localize: Localize,
    policy: Policy,
) -> Notice:
    """Route the profile to its association, and tell its person which one, why, and what next."""
    result = await route(uow, profile, now, policy)
    language = profile.language
    profile.match = match_record(result, language, localize)
    name = str(profile.answers.get("first_name") or "")
    best = result.best
    if best is None:
        if conversation is not None:
            uow.funnel.record(
                conversation.flow,
                None,
                Milestone.NO_MATCH,
                now,
                profile.department,
                journey=conversation.journey,
                language=language,
                source=conversation.source,
            )
        log.info("profile %s submitted: flow=%s, no association fits", profile.id, profile.flow)
        return Notice(NO_MATCH[profile.flow].fmt(name=name))
    log.info("profile %s matched to %s", profile.id, best.association.slug)
    association = best.association
    description = association.description_en if language == "en" else association.description_fr
    return Notice(
        MATCHED[profile.flow].fmt(
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
