"""The waiting list: profiles no association could take are matched again every quarter of an hour."""

from __future__ import annotations

from datetime import timedelta

from conversations.entities import ProfileStatus
from conversations.ports import AdminAlert, ContactCard, PersonNotice
from conversations.services import waiting_list
from conversations.services.actions import PauseAssociation
from tests.unit.fakes import Scene, a_catalog, an_association, only

NADIA, DORA, CAMILLE = 101, 601, 501
MENTORS_ONLY = an_association("alpha", roles=["mentor"])


async def retry(scene: Scene) -> int:
    return await waiting_list.retry_waiting(scene.unit_of_work, scene.now, scene.policy)


async def nadia_waiting() -> Scene:
    """Nadia signed up while no association of the catalogue took mentees."""
    scene = Scene()
    await scene.import_catalog(a_catalog(MENTORS_ONLY))
    await scene.person(NADIA).fill()
    assert only(scene.db.tables.profiles.values()).status == ProfileStatus.WAITING
    return scene


async def test_a_waiting_profile_that_now_fits_is_handed_off_and_the_person_told_once() -> None:
    scene = await nadia_waiting()
    await scene.import_catalog(a_catalog(MENTORS_ONLY, an_association("beta")))
    await scene.coordinator("beta", DORA, "Dora")
    scene.later(waiting_list.EVERY)

    found = await retry(scene)

    assert found == 1
    profile = only(scene.db.tables.profiles.values())
    assert (profile.status, profile.association_slug) == (ProfileStatus.MATCHED, "beta")
    handoff = only(scene.handoffs())
    assert scene.slug_of(handoff) == "beta"
    assert only(scene.pending(ContactCard)).chat_id == DORA
    notice = only(scene.pending(PersonNotice))
    assert notice.chat_id == NADIA
    assert notice.text == waiting_list.PERSON_FOUND["mentee"].fmt(association="Beta", name="Nadia")

    scene.later(waiting_list.EVERY)
    assert await retry(scene) == 0
    assert len(scene.pending(PersonNotice)) == 1
    assert len(scene.handoffs()) == 1


async def test_a_profile_that_still_fits_nowhere_waits_and_nobody_hears_of_it_again() -> None:
    scene = await nadia_waiting()
    alerts = len(scene.pending(AdminAlert))
    scene.later(waiting_list.EVERY)

    assert await retry(scene) == 0

    assert only(scene.db.tables.profiles.values()).status == ProfileStatus.WAITING
    assert len(scene.pending(AdminAlert)) == alerts
    assert scene.pending(PersonNotice) == []


async def test_a_profile_waiting_for_a_paused_association_goes_to_it_once_it_resumes() -> None:
    scene = Scene()
    await scene.import_catalog(a_catalog(an_association("alpha")))
    camille = await scene.coordinator("alpha", CAMILLE, "Camille")
    await camille.send(PauseAssociation(True))
    await scene.person(NADIA).fill()
    assert scene.handoffs() == []

    await camille.send(PauseAssociation(False))
    scene.later(timedelta(minutes=15))

    assert await retry(scene) == 1
    assert scene.slug_of(only(scene.handoffs())) == "alpha"
    assert only(scene.pending(ContactCard)).chat_id == CAMILLE
