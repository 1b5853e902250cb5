"""The waiting list: profiles no association could take get another chance every quarter of an
hour, now that capacity may have freed up, an association resumed or the catalogue grew."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from conversations.entities import ProfileStatus
from conversations.ports import UnitOfWorkFactory
from conversations.services.handoffs import route, tell_person
from conversations.services.policy import Policy
from conversations.text import _

log = logging.getLogger(__name__)

# Places do not open by the minute.
EVERY = timedelta(minutes=15)
# Waiting profiles retried per pass; the oldest first.
BATCH = 200
PERSON_FOUND = {
    "mentee": _(
        "Bonne nouvelle : une place s'est ouverte ! Ta demande est transmise à "
        "<b>%(association)s</b>, qui va te contacter."
    ),
    "referral": _(
        "Bonne nouvelle : une place s'est ouverte ! Votre demande pour %(name)s est transmise à "
        "<b>%(association)s</b>, qui va vous contacter."
    ),
    "mentor": _(
        "Bonne nouvelle : une association peut maintenant vous accueillir ! Votre inscription "
        "est transmise à <b>%(association)s</b>, qui va vous contacter."
    ),
}


async def retry_waiting(unit_of_work: UnitOfWorkFactory, now: datetime, policy: Policy) -> int:
    """Match every waiting profile again; returns how many found an association."""
    async with unit_of_work() as uow:
        waiting = await uow.profiles.waiting_ids(BATCH)
    found = 0
    for profile_id in waiting:
        async with unit_of_work() as uow:
            profile = await uow.profiles.get(profile_id)
            if profile is None or profile.status != ProfileStatus.WAITING:
                continue
            best = (await route(uow, profile, now, policy)).best
            person = await uow.people.get(profile.person_id)
            if best is None or person is None:
                continue  # still nothing: leave without committing
            text = PERSON_FOUND[profile.flow].fmt(
                association=best.association.name,
                name=str(profile.answers.get("first_name") or ""),
            )
            key = f"found:{profile.id}:{best.association.slug}"
            await tell_person(uow, key, person, profile, text, now)
            await uow.commit()
            found += 1
    if found:
        log.info("waiting list: %s profiles found an association", found)
    return found
