"""The association catalogue: importing the YAML file, and reading it back for matching."""

from __future__ import annotations

from conversations.services import catalogue
from conversations.services.actions import PauseAssociation
from tests.unit.fakes import (
    SAMPLE_CATALOG,
    Scene,
    a_catalog,
    an_association,
    only,
    sample_catalog,
)

SAMPLE_SLUGS = tuple(sorted(entry.slug for entry in sample_catalog().associations))


async def test_importing_the_same_catalogue_twice_changes_nothing_the_second_time() -> None:
    scene = Scene()

    first = await scene.import_catalog(sample_catalog())
    second = await scene.import_catalog(sample_catalog())

    assert first.added == SAMPLE_SLUGS
    assert (second.added, second.changed, second.unchanged) == ((), (), SAMPLE_SLUGS)
    assert len(scene.db.tables.associations) == len(SAMPLE_SLUGS)


async def test_a_dry_run_says_what_would_change_and_keeps_nothing() -> None:
    scene = Scene()

    changes = await catalogue.import_catalog(
        scene.unit_of_work, sample_catalog(), scene.now, dry_run=True
    )

    assert changes.added == SAMPLE_SLUGS
    assert scene.db.tables.associations == {}


async def test_an_association_left_out_of_the_file_is_kept_and_reported() -> None:
    scene = Scene()
    await scene.import_catalog(a_catalog(an_association("alpha"), an_association("beta")))

    changes = await scene.import_catalog(a_catalog(an_association("alpha")))

    assert changes.not_in_file == ("beta",)
    assert sorted(r.slug for r in scene.db.tables.associations.values()) == ["alpha", "beta"]


async def test_a_coordinator_s_pause_survives_a_re_import_unless_the_file_changes_it() -> None:
    scene = Scene()
    await scene.import_catalog(a_catalog(an_association("alpha")))
    camille = await scene.coordinator("alpha", 501, "Camille")
    await camille.send(PauseAssociation(True))

    renamed = await scene.import_catalog(a_catalog(an_association("alpha", name="Alpha Mentorat")))
    assert renamed.changed == ("alpha",)
    assert scene.association("alpha").name == "Alpha Mentorat"
    assert scene.association("alpha").paused

    await scene.import_catalog(a_catalog(an_association("alpha", paused=True)))
    await scene.import_catalog(a_catalog(an_association("alpha", paused=False)))
    assert not scene.association("alpha").paused


async def test_matching_reads_the_pause_a_coordinator_set() -> None:
    scene = Scene()
    await scene.import_catalog(a_catalog(an_association("alpha"), an_association("beta")))
    camille = await scene.coordinator("alpha", 501, "Camille")
    await camille.send(PauseAssociation(True))

    associations = await catalogue.listing(scene.unit_of_work)

    assert [(a.slug, a.paused) for a in associations] == [("alpha", True), ("beta", False)]


async def test_the_sample_catalogue_is_imported_into_an_empty_database_only() -> None:
    scene = Scene()

    assert await catalogue.import_sample_if_empty(scene.unit_of_work, scene.now, SAMPLE_CATALOG)
    assert len(scene.db.tables.associations) == len(SAMPLE_SLUGS)

    other = Scene()
    await other.import_catalog(a_catalog(an_association("alpha")))
    assert not await catalogue.import_sample_if_empty(other.unit_of_work, other.now, SAMPLE_CATALOG)
    assert only(other.db.tables.associations.values()).slug == "alpha"


async def test_a_catalogue_with_a_crm_webhook_still_matches_sign_ups() -> None:
    scene = Scene()
    crm = {"telegram": False, "webhook_url": "https://crm.beta.example/hook"}
    secret = "a-secret-of-thirty-two-characters"
    beta = an_association("beta", handoff={**crm, "webhook_secret": secret})
    await scene.import_catalog(a_catalog(an_association("alpha"), beta))

    await scene.person(101).fill()

    assert len(scene.handoffs()) == 1
    assert scene.association("beta").entry["handoff"]["webhook_secret"] == secret
