"""The association catalogue file: the sample loads, and each mistake is reported where it is."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from conversations.catalog import (
    AssociationEntry,
    CatalogError,
    load_catalog,
    parse_catalog,
    to_association,
)
from conversations.matching import Association

SAMPLE = Path(__file__).resolve().parents[2] / "bot" / "data" / "catalog.sample.yaml"
FOUNDERS = {
    "afev",
    "article-1",
    "chemins-d-avenirs",
    "entraide-scolaire-amicale",
    "nqt",
    "proxite",
    "socrate",
    "telemaque",
}

VALID: dict[str, Any] = {
    "slug": "afev",
    "name": "Afev",
    "description": {"fr": "Des étudiant·es accompagnent des enfants.", "en": "Students mentor."},
    "website": "https://afev.org",
    "national": True,
    "departments": ["75"],
    "mentee_ages": {"min": 5, "max": 18},
    "mentee_situations": ["primary_school", "middle_school"],
    "themes": ["school_support"],
    "mentor_profiles": ["university_student"],
    "mentor_groups": ["children"],
    "roles": ["mentee", "mentor"],
    "formats": ["in_person"],
    "weekly_capacity": 20,
}


def entry(**changes: Any) -> dict[str, Any]:
    """A valid association, with some fields changed (None removes a field)."""
    data = copy.deepcopy(VALID)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def catalog_text(*entries: dict[str, Any]) -> str:
    return yaml.safe_dump({"associations": list(entries)}, allow_unicode=True, sort_keys=False)


def problems_of(text: str) -> tuple[str, ...]:
    with pytest.raises(CatalogError) as raised:
        parse_catalog(text, "catalog.yaml")
    return raised.value.problems


def test_the_sample_loads_with_the_eight_founding_associations_and_more() -> None:
    catalog = load_catalog(SAMPLE)

    assert {entry.slug for entry in catalog.associations} >= FOUNDERS
    assert len(catalog.associations) > len(FOUNDERS)
    for association in catalog.associations:
        assert association.handoff.telegram
        assert association.handoff.webhook_url is None
        assert 10 <= association.weekly_capacity <= 50
        assert not association.paused


def test_the_sample_says_it_is_a_sample_to_replace() -> None:
    header = SAMPLE.read_text(encoding="utf-8").split("\nversion:")[0]

    assert "SAMPLE" in header
    assert "public pages" in header
    assert "replaced by the" in header


def test_a_bad_age_names_the_association_and_the_field() -> None:
    text = catalog_text(entry(mentee_ages={"min": 3, "max": 18}))

    with pytest.raises(CatalogError) as raised:
        parse_catalog(text, "catalog.yaml")

    assert str(raised.value) == 'catalog.yaml: association "afev": mentee_ages: min 3 is below 5'


def test_an_association_without_a_slug_is_named_by_its_position() -> None:
    problems = problems_of(catalog_text(entry(), entry(slug=None)))

    assert problems == ("association #2: slug: missing",)


def test_every_mistake_of_a_file_is_reported_at_once() -> None:
    bad = entry(slug="nqt", weekly_capacity=-1, themes=["jobs"], website="http://nqt.fr")

    problems = problems_of(catalog_text(entry(), bad))

    assert problems[0] == 'association "nqt": website: "http://nqt.fr" is not an https URL'
    assert problems[1].startswith('association "nqt": themes: unknown "jobs"; expected any of')
    assert problems[2] == (
        'association "nqt": weekly_capacity: input should be greater than or equal to 0'
    )
    assert len(problems) == 3


def test_duplicate_slugs_are_refused() -> None:
    problems = problems_of(catalog_text(entry(), entry(name="Afev bis")))

    assert problems == ('association "afev" (#2): slug: already used by association #1',)


def test_a_webhook_url_without_a_secret_is_refused() -> None:
    text = catalog_text(
        entry(handoff={"telegram": False, "webhook_url": "https://crm.afev.org/in"})
    )

    assert problems_of(text) == ('association "afev": handoff: webhook_url needs a webhook_secret',)


def test_a_webhook_with_its_secret_is_accepted_and_the_secret_stays_hidden() -> None:
    secret = "s3cret-s3cret-s3cret"
    handoff = {"telegram": False, "webhook_url": "http://crm.local/in", "webhook_secret": secret}

    catalog = parse_catalog(catalog_text(entry(handoff=handoff)), "catalog.yaml")

    received = catalog.associations[0].handoff
    assert received.webhook_secret is not None
    assert received.webhook_secret.get_secret_value() == secret
    assert secret not in repr(catalog)


def test_an_association_nobody_can_reach_is_refused() -> None:
    text = catalog_text(entry(handoff={"telegram": False}))

    assert problems_of(text) == (
        'association "afev": handoff: no channel: set telegram: true or a webhook_url',
    )


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"typo_field": 1}, "typo_field: unknown field"),
        ({"departments": [75]}, 'departments: write department codes in quotes, e.g. "75": got 75'),
        ({"departments": ["20"]}, 'departments: "20" is not a department code'),
        ({"departments": ["75", "75"]}, "departments: 75 listed twice"),
        (
            {"national": False, "departments": []},
            "departments: list the departments served, or set national: true",
        ),
        ({"mentee_ages": {"min": 12, "max": 31}}, "mentee_ages: max 31 is above 30"),
        ({"mentee_ages": {"min": 18, "max": 12}}, "mentee_ages: min 18 is above max 12"),
        ({"remote": True}, 'remote: true needs "remote" among the formats'),
        ({"mentor_groups": []}, "mentor_groups: needed when roles include mentor"),
        ({"roles": []}, "roles: list at least one of mentee, mentor"),
        ({"roles": ["coordinator"]}, 'roles: unknown "coordinator"'),
        ({"formats": ["either"]}, 'formats: unknown "either"'),
        ({"paused": "maybe"}, "paused: input should be a valid boolean"),
        ({"response_days": 0}, "response_days: input should be greater than or equal to 1"),
        ({"description": {"fr": "Deux\nlignes", "en": "x"}}, "description.fr: must fit on one"),
        ({"description": {"fr": "x" * 201, "en": "x"}}, "description.fr: has 201 characters"),
    ],
    ids=lambda value: str(value)[:40] if isinstance(value, dict) else None,
)
def test_a_mistake_in_a_field_is_reported_on_that_field(
    changes: dict[str, Any], problem: str
) -> None:
    problems = problems_of(catalog_text(entry(**changes)))

    assert len(problems) == 1
    assert problems[0].startswith(f'association "afev": {problem}')


def test_a_slug_that_breaks_the_rules_is_reported_as_written() -> None:
    problems = problems_of(catalog_text(entry(slug="Afev!")))

    assert problems == (
        'association "Afev!": slug: "Afev!" must be 2 to 40 lowercase letters, digits or hyphens',
    )


def test_a_key_written_twice_is_refused_rather_than_silently_overwritten() -> None:
    lines = catalog_text(entry()).splitlines()
    where = lines.index("  weekly_capacity: 20") + 1
    lines.insert(where, "  weekly_capacity: 0")

    assert problems_of("\n".join(lines)) == (
        f"line {where + 1}: 'weekly_capacity' is written twice",
    )


def test_broken_yaml_is_reported_with_its_line() -> None:
    problems = problems_of("associations:\n  - slug: afev\n    name: [Afev\n")

    assert len(problems) == 1
    assert problems[0].startswith("line 4: ")


@pytest.mark.parametrize("text", ["", "- afev\n", "associations: []\n"])
def test_a_file_without_associations_is_refused(text: str) -> None:
    assert problems_of(text)


def test_a_missing_file_is_reported_by_its_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"

    with pytest.raises(CatalogError, match=r"nowhere\.yaml: cannot be read"):
        load_catalog(path)


def test_the_catalogue_is_frozen() -> None:
    catalog = load_catalog(SAMPLE)

    with pytest.raises(ValidationError):
        catalog.associations[0].paused = True


def test_an_entry_becomes_the_plain_association_matching_uses() -> None:
    parsed = AssociationEntry.model_validate(
        entry(departments=["2A", "971"], remote=True, formats=["remote", "in_person"])
    )

    association = to_association(parsed)

    assert association == Association(
        slug="afev",
        name="Afev",
        roles=frozenset({"mentee", "mentor"}),
        national=True,
        departments=frozenset({"2A", "971"}),
        remote=True,
        formats=("remote", "in_person"),
        mentee_min_age=5,
        mentee_max_age=18,
        mentee_situations=frozenset({"primary_school", "middle_school"}),
        themes=frozenset({"school_support"}),
        mentor_profiles=frozenset({"university_student"}),
        mentor_groups=frozenset({"children"}),
        weekly_capacity=20,
        website="https://afev.org",
        description_fr="Des étudiant·es accompagnent des enfants.",
        description_en="Students mentor.",
    )


def test_the_sample_gives_one_association_per_entry_for_matching() -> None:
    associations = load_catalog(SAMPLE).to_associations()

    assert {a.slug for a in associations} >= FOUNDERS
    socrate = next(a for a in associations if a.slug == "socrate")
    assert socrate.departments == {"75", "93", "31"}
    assert socrate.mentor_profiles == {"high_school_student"}


# --- what a programme requires or favours, and where it meets --------------------------------------


def test_an_association_meeting_only_in_person_without_departments_is_refused_naming_the_field() -> (
    None
):
    problems = problems_of(catalog_text(entry(national=True, departments=None)))

    assert problems == (
        'association "afev": departments: it meets only in person, so list the departments '
        "where its pairs meet (national: true alone does not say where)",
    )


def test_a_national_network_meeting_remotely_needs_no_department() -> None:
    text = catalog_text(entry(departments=None, formats=["remote", "in_person"]))

    [association] = parse_catalog(text, "catalog.yaml").to_associations()
    assert association.remote_anywhere
    assert association.departments == frozenset()


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"mentee_diplomas": {"min": "bac_8"}}, 'mentee_diplomas.min: unknown "bac_8"'),
        (
            {"mentee_diplomas": {"min": "bac_5", "max": "bac"}},
            "mentee_diplomas: min bac_5 is above max bac",
        ),
        ({"priority_publics": ["refugees"]}, 'priority_publics: unknown "refugees"'),
        (
            {"made_for": {"situations": ["job_seeker"]}},
            "made_for: situations job_seeker not in mentee_situations",
        ),
        ({"made_for": {"themes": ["job"]}}, "made_for: themes job not in themes"),
    ],
)
def test_a_mistake_in_the_new_criteria_names_the_field(
    change: dict[str, Any], problem: str
) -> None:
    [found] = problems_of(catalog_text(entry(**change)))

    assert found.startswith(f'association "afev": {problem}'), found


def test_the_new_criteria_reach_matching_and_the_old_priority_areas_still_count() -> None:
    text = catalog_text(
        entry(
            priority_areas=["rural"],
            priority_publics=["scholarship"],
            mentee_diplomas={"min": "bac_3"},
            made_for={"situations": ["primary_school"], "themes": ["school_support"]},
        )
    )

    [association] = parse_catalog(text, "catalog.yaml").to_associations()
    assert association.priority_publics == {"rural", "scholarship"}
    assert (association.diploma_min, association.diploma_max) == ("bac_3", None)
    assert association.takes_diploma("bac_5")
    assert not association.takes_diploma("bac")
    assert association.made_for_situations == {"primary_school"}
    assert association.made_for_themes == {"school_support"}
