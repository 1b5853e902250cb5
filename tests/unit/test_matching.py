"""Matching on the sample catalogue: realistic people get a sensible association, with reasons.

Property tests check the hard filters against a plain re-statement of the rules, and determinism.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_file
from hypothesis import given, settings
from hypothesis import strategies as st

from conversations.catalog import load_catalog
from conversations.matching import (
    DIPLOMAS,
    FORMATS,
    MENTEE_GROUPS,
    MENTEE_SITUATIONS,
    MENTOR_AGE_BRACKETS,
    MENTOR_SITUATION_AGES,
    MENTOR_SITUATIONS,
    PRIORITY_PUBLICS,
    THEMES,
    Association,
    AssociationIndex,
    AssociationLoad,
    Candidate,
    MatchResult,
    ProfileFacts,
    facts_from_answers,
    match,
    week_window,
)
from conversations.model import Answer, Completed, ConfirmInput
from conversations.text import Text
from tests.unit.helpers import answer_until, drive

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "bot" / "data" / "catalog.sample.yaml"
NO_LOAD: Mapping[str, AssociationLoad] = {}


@cache
def sample() -> tuple[Association, ...]:
    return load_catalog(SAMPLE).to_associations()


def by_slug(slug: str) -> Association:
    return next(a for a in sample() if a.slug == slug)


# --- small factories: the answers a finished questionnaire holds ---------------------------------


def mentee(
    age: int,
    postal_code: str,
    situation: str,
    *needs: str,
    format: str = "either",
    area: str | None = None,
) -> ProfileFacts:
    answers: dict[str, Answer] = {
        "age": age,
        "postal_code": postal_code,
        "situation": situation,
        "needs": needs,
        "format": format,
        "area": area,
    }
    return facts_from_answers("mentee", answers)


def mentor(
    bracket: str,
    postal_code: str,
    situation: str,
    groups: tuple[str, ...],
    *themes: str,
    format: str = "either",
) -> ProfileFacts:
    answers: dict[str, Answer] = {
        "age_bracket": bracket,
        "postal_code": postal_code,
        "situation": situation,
        "mentee_groups": groups,
        "themes": themes,
        "format": format,
    }
    return facts_from_answers("mentor", answers)


def slugs(result: MatchResult) -> tuple[str, ...]:
    return tuple(candidate.association.slug for candidate in result.ranked)


# --- who goes where ------------------------------------------------------------------------------

# (who, profile, the acceptable best associations, every association that may be offered)
PEOPLE = [
    pytest.param(
        mentee(8, "75018", "primary_school", "school_support", format="in_person"),
        {"entraide-scolaire-amicale", "socrate", "afev"},
        {"entraide-scolaire-amicale", "socrate", "afev"},
        id="8-year-old in Paris needing school support: a local homework association",
    ),
    pytest.param(
        mentee(24, "93200", "job_seeker", "job", "confidence", area="qpv"),
        {"proxite", "nqt"},
        {"proxite", "nqt"},
        id="24-year-old graduate job seeker in Seine-Saint-Denis: employment mentoring",
    ),
    pytest.param(
        mentee(14, "15000", "middle_school", "orientation", "confidence", area="rural"),
        {"chemins-d-avenirs"},
        {"chemins-d-avenirs"},
        id="14-year-old collegien in rural Cantal: the rural association, remotely",
    ),
    pytest.param(
        mentee(
            17, "59000", "vocational_high_school", "orientation", "internship", format="in_person"
        ),
        {"proxite", "telemaque"},
        {"proxite", "telemaque", "afev"},
        id="17-year-old in a lycee pro in Lille: a Nord association",
    ),
    pytest.param(
        mentor("60_plus", "31000", "retiree", ("students",), "orientation", "internship", "job"),
        {"article-1"},
        {"article-1", "chemins-d-avenirs"},
        id="retiree in Toulouse who wants to help students: Article 1",
    ),
    pytest.param(
        mentor("15_17", "75011", "high_school_student", ("children",), "school_support"),
        {"socrate"},
        {"socrate", "afev"},
        id="high-school student in Paris who wants to mentor children: Socrate",
    ),
    pytest.param(
        mentee(
            20,
            "69008",
            "higher_education",
            "orientation",
            "internship",
            format="remote",
            area="qpv",
        ),
        {"article-1"},
        {"article-1", "nqt", "chemins-d-avenirs"},
        id="20-year-old student grant holder in Lyon wanting orientation remotely: Article 1",
    ),
    pytest.param(
        mentee(12, "93000", "middle_school", "culture", "orientation", format="in_person"),
        {"telemaque", "proxite"},
        {"telemaque", "entraide-scolaire-amicale", "socrate", "proxite"},
        id="12-year-old collegienne in Bobigny curious about culture: Telemaque or Proxite",
    ),
    pytest.param(
        mentee(19, "13003", "neet", "job", "daily_life", format="in_person", area="qpv"),
        {"proxite"},
        {"proxite"},
        id="19-year-old neither in school nor employed in Marseille: Proxite",
    ),
    pytest.param(
        mentor(
            "26_40",
            "13008",
            "private_employee",
            ("high_schoolers",),
            "orientation",
            "culture",
            format="in_person",
        ),
        {"telemaque", "proxite"},
        {"telemaque", "proxite"},
        id="employee in Marseille who wants to mentor lyceens: Telemaque or Proxite",
    ),
    pytest.param(
        mentor("41_60", "44000", "private_employee", ("young_job_seekers",), "job", "internship"),
        {"proxite", "nqt"},
        {"proxite", "nqt"},
        id="manager in Nantes who wants to help young job seekers: Proxite or NQT",
    ),
    pytest.param(
        mentee(21, "38000", "higher_education", "entrepreneurship", format="either"),
        {"article-1", "nqt", "chemins-d-avenirs"},
        {"article-1", "nqt", "chemins-d-avenirs"},
        id="21-year-old student in Grenoble with a need nobody lists: still matched by profile",
    ),
]


@pytest.mark.parametrize(("facts", "best", "offered"), PEOPLE)
def test_each_person_is_matched_to_a_fitting_association(
    facts: ProfileFacts, best: set[str], offered: set[str]
) -> None:
    result = match(facts, sample(), NO_LOAD)

    assert result.gap is None
    assert result.ranked[0].association.slug in best
    # The sample grows beyond the founders: these at least are offered (the hard filters' exact
    # outcome is checked by the property test below).
    assert set(slugs(result)) >= offered


NOBODY = [
    pytest.param(
        mentee(35, "75011", "employed", "job"),
        "75",
        id="35-year-old: over every association's range",
    ),
    pytest.param(
        mentee(24, "97600", "employed", "job", format="in_person"),
        "976",
        id="employed 24-year-old in Mayotte wanting in-person: nobody there",
    ),
    pytest.param(
        # Afev is a national network, but it meets in person only where it has local teams.
        mentee(16, "97600", "high_school", "orientation", format="in_person"),
        "976",
        id="16-year-old lyceen in Mayotte wanting in-person only: no national network meets there",
    ),
    pytest.param(
        mentor("15_17", "69003", "high_school_student", ("young_job_seekers",), "job"),
        "69",
        id="high-school student who wants to mentor job seekers: no association takes minors for that",
    ),
]


@pytest.mark.parametrize(("facts", "department"), NOBODY)
def test_nobody_fitting_gives_no_match_and_a_gap_naming_the_department(
    facts: ProfileFacts, department: str
) -> None:
    result = match(facts, sample(), NO_LOAD)

    assert result.ranked == ()
    assert result.best is None
    assert isinstance(result.gap, Text)
    assert "département %(department)s" in result.gap.msgid
    assert result.gap.params["department"] == department


def test_a_mentee_gap_describes_the_profile_for_the_admins() -> None:
    result = match(mentee(24, "97600", "employed", "job", format="in_person"), sample(), NO_LOAD)

    assert result.gap is not None
    assert result.gap.params["age"] == 24
    assert result.gap.params["situation"] == Text("En emploi")
    assert result.gap.params["format"] == Text("En présentiel")


def test_a_gap_caused_by_full_associations_names_them() -> None:
    facts = mentee(19, "13003", "neet", "job", format="in_person")
    full = {"proxite": AssociationLoad(handed_off_this_week=by_slug("proxite").weekly_capacity)}

    result = match(facts, sample(), full)

    assert result.ranked == ()
    assert result.gap is not None
    assert "complètes ou en pause" in result.gap.msgid
    assert result.gap.params["associations"] == ("Proxité",)
    assert result.gap.params["department"] == "13"


def test_a_paused_association_is_never_offered() -> None:
    facts = mentor("15_17", "75011", "high_school_student", ("children",), "school_support")
    catalogue = [dataclasses.replace(a, paused=a.slug == "socrate") for a in sample()]

    result = match(facts, catalogue, NO_LOAD)

    assert "socrate" not in slugs(result)
    assert slugs(result) == ("afev",)


def test_the_eleventh_profile_of_the_week_goes_elsewhere_when_capacity_is_ten() -> None:
    facts = mentor("15_17", "75011", "high_school_student", ("children",), "school_support")
    catalogue = [
        dataclasses.replace(a, weekly_capacity=10) if a.slug == "socrate" else a for a in sample()
    ]
    index = AssociationIndex(catalogue)
    handed_off: dict[str, int] = {}
    chosen = []
    for _profile in range(11):
        loads = {slug: AssociationLoad(handed_off_this_week=n) for slug, n in handed_off.items()}
        best = match(facts, index, loads).ranked[0].association.slug
        handed_off[best] = handed_off.get(best, 0) + 1
        chosen.append(best)

    assert chosen == ["socrate"] * 10 + ["afev"]


def test_a_full_association_is_offered_again_when_a_new_week_starts() -> None:
    facts = mentor("15_17", "75011", "high_school_student", ("children",), "school_support")
    last_week_full = {"socrate": AssociationLoad(handed_off_this_week=0, waiting=3)}

    assert match(facts, sample(), last_week_full).ranked[0].association.slug == "socrate"


def test_fewer_waiting_handoffs_wins_between_equal_associations() -> None:
    facts = mentee(8, "93200", "primary_school", "school_support", format="in_person")
    busy = {"entraide-scolaire-amicale": AssociationLoad(waiting=6)}

    assert slugs(match(facts, sample(), NO_LOAD))[:2] == ("entraide-scolaire-amicale", "socrate")
    assert slugs(match(facts, sample(), busy))[:2] == ("socrate", "entraide-scolaire-amicale")


def test_an_association_that_answers_fast_wins_between_equal_associations() -> None:
    facts = mentee(8, "93200", "primary_school", "school_support", format="in_person")
    history = {
        "entraide-scolaire-amicale": AssociationLoad(median_response_hours=200.0),
        "socrate": AssociationLoad(median_response_hours=24.0),
    }

    assert slugs(match(facts, sample(), history))[:2] == ("socrate", "entraide-scolaire-amicale")


def test_a_local_association_comes_before_a_national_one() -> None:
    facts = mentor("15_17", "75011", "high_school_student", ("children",), "school_support")

    ranked = match(facts, sample(), NO_LOAD).ranked

    assert [c.association.slug for c in ranked] == ["socrate", "afev"]
    assert ranked[0].score > ranked[1].score


def test_someone_outside_the_departments_is_reached_only_if_both_accept_remote() -> None:
    local_only = Association(
        slug="local-only",
        name="Local",
        roles=frozenset({"mentee"}),
        national=False,
        departments=frozenset({"75"}),
        remote=False,
        formats=("in_person", "remote"),
        mentee_min_age=5,
        mentee_max_age=30,
        mentee_situations=MENTEE_SITUATIONS,
        themes=THEMES,
        mentor_profiles=frozenset(),
        mentor_groups=frozenset(),
        weekly_capacity=10,
    )
    reaching = dataclasses.replace(local_only, slug="reaching", remote=True)
    in_lyon = mentee(17, "69003", "high_school", "orientation", format="either")
    in_lyon_in_person = mentee(17, "69003", "high_school", "orientation", format="in_person")

    assert slugs(match(in_lyon, [local_only, reaching], NO_LOAD)) == ("reaching",)
    assert slugs(match(in_lyon_in_person, [local_only, reaching], NO_LOAD)) == ()


# --- reasons, in the person's register ------------------------------------------------------------


def profile_of(param: object) -> ProfileFacts:
    facts = getattr(param, "values", (None,))[0]
    assert isinstance(facts, ProfileFacts)
    return facts


EVERYONE = [profile_of(param) for param in PEOPLE]


@pytest.mark.parametrize("facts", EVERYONE)
def test_every_candidate_comes_with_two_or_three_reasons(facts: ProfileFacts) -> None:
    for candidate in match(facts, sample(), NO_LOAD).ranked:
        assert 2 <= len(candidate.reasons) <= 3, candidate.association.slug
        assert len({text.msgid for text in candidate.reasons}) == len(candidate.reasons)


def _words(text: Text) -> set[str]:
    return set(text.msgid.replace("'", "' ").replace("(", " ").split())


@pytest.mark.parametrize("facts", EVERYONE)
def test_mentees_are_addressed_with_tu_and_mentors_with_vous(facts: ProfileFacts) -> None:
    tu = {"tu", "ton", "ta", "tes", "t'", "te", "tien"}
    vous = {"vous", "votre", "vos"}
    for candidate in match(facts, sample(), NO_LOAD).ranked:
        for text in (*candidate.reasons, *candidate.notes):
            if facts.role == "mentee":
                assert not _words(text) & vous, text.msgid
            else:
                assert not _words(text) & tu, text.msgid


def test_a_reason_says_the_department_and_the_themes_in_common() -> None:
    facts = mentee(17, "59000", "vocational_high_school", "orientation", "internship")

    best = match(facts, sample(), NO_LOAD).ranked[0]

    assert best.reasons[0].msgid == "Elle t'accompagne sur ce que tu cherches : %(themes)s."
    assert best.reasons[0].params["themes"] == (
        Text("Orientation, choix d'études"),
        Text("Trouver un stage ou une alternance"),
    )
    assert Text("Elle intervient dans ton département (%(department)s).", {"department": "59"}) in (
        best.reasons
    )


def test_a_mentee_is_told_when_the_association_calls_and_that_it_may_check_with_the_school() -> (
    None
):
    facts = mentee(8, "75018", "primary_school", "school_support", format="in_person")

    notes = {c.association.slug: c.notes for c in match(facts, sample(), NO_LOAD).ranked}

    socrate = notes["socrate"]
    assert socrate[0].plural == "Elle te contactera sous %(count)s jours."
    assert socrate[0].count == by_slug("socrate").response_days
    assert any("établissements scolaires" in note.msgid for note in socrate)


def test_every_text_matching_shows_is_extracted_by_babel() -> None:
    extracted = {
        message if isinstance(message, str) else message[0]
        for _line, message, _comments, _context in extract_from_file(
            "python", str(ROOT / "conversations" / "matching.py")
        )
    }
    shown: set[str] = set()
    for facts in [*EVERYONE, *(profile_of(param) for param in NOBODY)]:
        result = match(facts, sample(), NO_LOAD)
        if result.gap is not None:
            shown.add(result.gap.msgid)
        for candidate in result.ranked:
            shown.update(text.msgid for text in (*candidate.reasons, *candidate.notes))

    assert shown <= extracted
    assert len(shown) > 10


# --- the facts of a profile ------------------------------------------------------------------------


def test_a_finished_mentee_questionnaire_gives_facts_that_match() -> None:
    summary, _asked = answer_until("mentee")
    completed = drive("mentee", ConfirmInput(), start=summary)
    assert isinstance(completed, Completed)

    facts = facts_from_answers("mentee", completed.state.answers)

    assert (facts.role, facts.min_age, facts.department) == ("mentee", 17, "93")
    assert facts.themes == {"orientation"}
    assert match(facts, sample(), NO_LOAD).ranked


def test_a_finished_mentor_questionnaire_gives_facts_that_match() -> None:
    summary, _asked = answer_until("mentor")
    completed = drive("mentor", ConfirmInput(), start=summary)
    assert isinstance(completed, Completed)

    facts = facts_from_answers("mentor", completed.state.answers)

    assert (facts.min_age, facts.max_age, facts.department) == (26, 40, "69")
    assert facts.mentee_groups == {"high_schoolers"}
    assert facts.format == "remote"
    assert match(facts, sample(), NO_LOAD).ranked


def test_a_mentor_age_bracket_becomes_an_age_range() -> None:
    facts = mentor("60_plus", "20000", "retiree", ("students",), "job")

    assert (facts.min_age, facts.max_age, facts.age_bracket) == (61, 120, "60_plus")
    assert facts.department == "2A"


def test_a_skipped_area_and_an_unknown_format_are_taken_as_no_preference() -> None:
    facts = facts_from_answers(
        "mentee", {"age": 12, "postal_code": "13001", "situation": "middle_school", "area": None}
    )

    assert facts.area is None
    assert facts.format == "either"
    assert facts.themes == frozenset()


@pytest.mark.parametrize(
    ("flow", "answers"),
    [
        ("coordinator", {"age": 17}),
        ("mentee", {"postal_code": "75011"}),
        ("mentor", {"age_bracket": "12_14"}),
    ],
    ids=["no matching for other flows", "mentee without an age", "unknown bracket"],
)
def test_a_profile_matching_cannot_read_is_refused(flow: str, answers: dict[str, Answer]) -> None:
    with pytest.raises(ValueError, match=r"."):
        facts_from_answers(flow, answers)


def test_the_capacity_window_is_the_iso_week() -> None:
    sunday_night = datetime(2026, 11, 29, 23, 59, tzinfo=UTC)
    monday_morning = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)

    assert week_window(sunday_night) == (
        datetime(2026, 11, 23, tzinfo=UTC),
        datetime(2026, 11, 30, tzinfo=UTC),
    )
    assert week_window(monday_morning)[0] == monday_morning


def test_two_associations_with_one_slug_are_refused() -> None:
    with pytest.raises(ValueError, match="socrate"):
        AssociationIndex([*sample(), by_slug("socrate")])


# --- properties ----------------------------------------------------------------------------------

DEPARTMENTS = ["75", "93", "31", "59", "69", "15", "2A", "976", "13", "44"]


def violations(facts: ProfileFacts, a: Association, load: AssociationLoad) -> list[str]:
    """The hard filters, restated plainly: what makes an association unable to take a profile."""
    broken = []
    if facts.role not in a.roles:
        broken.append("role")
    if facts.role == "mentee":
        if not a.mentee_min_age <= facts.min_age <= a.mentee_max_age:
            broken.append("age")
        if facts.situation is not None and facts.situation not in a.mentee_situations:
            broken.append("situation")
        if facts.diploma is not None and not a.takes_diploma(facts.diploma):
            broken.append("diploma")
    else:
        spans = [MENTOR_SITUATION_AGES[p] for p in a.mentor_profiles]
        if not any(low <= facts.max_age and facts.min_age <= high for low, high in spans):
            broken.append("age")
        if facts.situation is not None and facts.situation not in a.mentor_profiles:
            broken.append("situation")
        if facts.mentee_groups and not facts.mentee_groups & a.mentor_groups:
            broken.append("groups")
    accepted = {"in_person", "remote"} if facts.format == "either" else {facts.format}
    # In person only in its departments; remotely anywhere when it is national or says remote.
    served_here = facts.department in a.departments
    reachable = (served_here and bool(accepted & set(a.formats))) or (
        "remote" in accepted and (a.remote or a.national) and "remote" in a.formats
    )
    if not reachable:
        broken.append("place")
    if a.paused:
        broken.append("paused")
    if load.handed_off_this_week >= a.weekly_capacity:
        broken.append("capacity")
    return broken


def codes(values: frozenset[str], min_size: int = 0) -> st.SearchStrategy[frozenset[str]]:
    return st.frozensets(st.sampled_from(sorted(values)), min_size=min_size)


@st.composite
def associations(draw: st.DrawFn, slug: str) -> Association:
    low = draw(st.integers(5, 30))
    return Association(
        slug=slug,
        name=slug.title(),
        roles=draw(codes(frozenset({"mentee", "mentor"}), min_size=1)),
        national=draw(st.booleans()),
        departments=draw(st.frozensets(st.sampled_from(DEPARTMENTS), max_size=4)),
        remote=draw(st.booleans()),
        formats=tuple(draw(st.permutations(sorted(FORMATS)))[: draw(st.integers(1, 2))]),
        mentee_min_age=low,
        mentee_max_age=draw(st.integers(low, 30)),
        mentee_situations=draw(codes(MENTEE_SITUATIONS)),
        themes=draw(codes(THEMES, min_size=1)),
        mentor_profiles=draw(codes(MENTOR_SITUATIONS)),
        mentor_groups=draw(codes(MENTEE_GROUPS)),
        weekly_capacity=draw(st.integers(0, 5)),
        priority_publics=draw(codes(PRIORITY_PUBLICS)),
        diploma_min=draw(st.sampled_from([None, *DIPLOMAS])),
        made_for_situations=draw(codes(MENTEE_SITUATIONS)),
        made_for_themes=draw(codes(THEMES)),
        made_for_mentors=draw(codes(MENTOR_SITUATIONS)),
        paused=draw(st.booleans()),
        response_days=draw(st.integers(1, 14)),
        recruits_through_schools=draw(st.booleans()),
    )


@st.composite
def catalogues(draw: st.DrawFn) -> tuple[Association, ...]:
    count = draw(st.integers(0, 12))
    return tuple(draw(associations(f"assoc-{i:02d}")) for i in range(count))


@st.composite
def profiles(draw: st.DrawFn) -> ProfileFacts:
    role = draw(st.sampled_from(["mentee", "mentor"]))
    department = draw(st.sampled_from([*DEPARTMENTS, None]))
    preference = draw(st.sampled_from(["in_person", "remote", "either"]))
    if role == "mentee":
        age = draw(st.integers(1, 40))
        return ProfileFacts(
            role="mentee",
            min_age=age,
            max_age=age,
            department=department,
            situation=draw(st.sampled_from([*sorted(MENTEE_SITUATIONS), None])),
            themes=draw(codes(THEMES)),
            format=preference,
            area=draw(st.sampled_from(["qpv", "rural", "neither", "unknown", None])),
            diploma=draw(st.sampled_from([None, *DIPLOMAS])),
            grant=draw(st.sampled_from([None, True, False])),
        )
    bracket = draw(st.sampled_from(sorted(MENTOR_AGE_BRACKETS)))
    low, high = MENTOR_AGE_BRACKETS[bracket]
    return ProfileFacts(
        role="mentor",
        min_age=low,
        max_age=high,
        department=department,
        situation=draw(st.sampled_from([*sorted(MENTOR_SITUATIONS), None])),
        themes=draw(codes(THEMES)),
        format=preference,
        mentee_groups=draw(codes(MENTEE_GROUPS)),
        age_bracket=bracket,
    )


@st.composite
def loads_for(draw: st.DrawFn, catalogue: tuple[Association, ...]) -> dict[str, AssociationLoad]:
    loads = {}
    for association in catalogue:
        if draw(st.booleans()):
            loads[association.slug] = AssociationLoad(
                handed_off_this_week=draw(st.integers(0, 6)),
                waiting=draw(st.integers(0, 30)),
                median_response_hours=draw(st.none() | st.floats(0, 1000)),
            )
    return loads


@st.composite
def situations(
    draw: st.DrawFn,
) -> tuple[ProfileFacts, tuple[Association, ...], dict[str, AssociationLoad]]:
    catalogue = draw(catalogues())
    if draw(st.booleans()):
        catalogue = (*catalogue, *sample())
    return draw(profiles()), catalogue, draw(loads_for(catalogue))


@settings(max_examples=250, deadline=None)
@given(situations())
def test_matching_offers_exactly_the_associations_that_pass_every_hard_filter(
    situation: tuple[ProfileFacts, tuple[Association, ...], dict[str, AssociationLoad]],
) -> None:
    facts, catalogue, loads = situation

    result = match(facts, catalogue, loads)

    for candidate in result.ranked:
        load = loads.get(candidate.association.slug, AssociationLoad())
        assert violations(facts, candidate.association, load) == []
    fitting = {
        a.slug for a in catalogue if not violations(facts, a, loads.get(a.slug, AssociationLoad()))
    }
    assert set(slugs(result)) == fitting
    assert (result.gap is None) == bool(fitting)


@settings(max_examples=120, deadline=None)
@given(situations(), st.randoms(use_true_random=False))
def test_matching_is_deterministic_whatever_the_catalogue_order(
    situation: tuple[ProfileFacts, tuple[Association, ...], dict[str, AssociationLoad]],
    shuffler: random.Random,
) -> None:
    facts, catalogue, loads = situation
    shuffled = list(catalogue)
    shuffler.shuffle(shuffled)

    first = match(facts, catalogue, loads)

    assert match(facts, catalogue, loads) == first
    assert match(facts, shuffled, loads) == first
    assert match(facts, AssociationIndex(shuffled), loads) == first
    ranking = [(-c.score, c.association.slug) for c in first.ranked]
    assert ranking == sorted(ranking)


# --- programmes made for the person ---------------------------------------------------------------


def graduate(diploma: str, **changes: Answer) -> ProfileFacts:
    answers: dict[str, Answer] = {
        "age": 24,
        "postal_code": "93000",
        "situation": "job_seeker",
        "diploma": diploma,
        "needs": ("job", "confidence"),
        "format": "either",
        "area": "qpv",
        **changes,
    }
    return facts_from_answers("mentee", answers)


def test_a_graduate_job_seeker_goes_to_the_programme_for_graduates_not_the_generalist_nearby() -> (
    None
):
    ranked = match(graduate("bac_5"), sample(), NO_LOAD).ranked

    assert ranked[0].association.slug == "nqt"
    assert ranked[0].score > next(c.score for c in ranked if c.association.slug == "proxite")
    assert ranked[0].reasons[0].msgid == (
        "Son programme est fait pour les jeunes dans ta situation : %(situation)s."
    )


def test_a_programme_made_for_the_situation_beats_a_local_generalist_even_remotely() -> None:
    in_paris = graduate("bac_3", postal_code="75011", format="either")
    remote_nqt = [
        dataclasses.replace(a, departments=frozenset()) if a.slug == "nqt" else a for a in sample()
    ]

    best = match(in_paris, remote_nqt, NO_LOAD).ranked[0]

    assert best.association.slug == "nqt"
    assert "nqt" not in slugs(
        match(dataclasses.replace(in_paris, format="in_person"), remote_nqt, NO_LOAD)
    )


def test_a_job_seeker_without_the_required_diploma_is_not_offered_a_programme_for_graduates() -> (
    None
):
    ranked = slugs(match(graduate("cap_bep"), sample(), NO_LOAD))

    assert "nqt" not in ranked
    assert ranked[0] == "proxite"


def test_the_diploma_is_read_only_where_it_is_asked() -> None:
    facts = facts_from_answers(
        "mentee", {"age": 17, "postal_code": "93200", "situation": "high_school", "diploma": "bac"}
    )

    assert facts.diploma is None


def test_a_grant_holder_is_favoured_by_programmes_for_grant_holders_and_told_so() -> None:
    answers: dict[str, Answer] = {
        "age": 20,
        "postal_code": "33000",
        "situation": "higher_education",
        "diploma": "bac",
        "needs": ("orientation",),
        "format": "remote",
    }
    without = match(facts_from_answers("mentee", answers), sample(), NO_LOAD).ranked
    with_grant = match(
        facts_from_answers("mentee", {**answers, "grant": "yes"}), sample(), NO_LOAD
    ).ranked

    def article_1(ranked: tuple[Candidate, ...]) -> Candidate:
        return next(c for c in ranked if c.association.slug == "article-1")

    assert article_1(with_grant).score == article_1(without).score + 5
    assert (
        Text("Elle donne la priorité aux étudiant·es boursier·es.") in article_1(with_grant).reasons
    )


def test_a_national_network_meets_in_person_only_where_it_has_local_teams() -> None:
    in_mayotte = mentee(10, "97600", "primary_school", "school_support", format="in_person")
    in_strasbourg = mentee(10, "67000", "primary_school", "school_support", format="in_person")

    assert "afev" not in slugs(match(in_mayotte, sample(), NO_LOAD))
    best = match(in_strasbourg, sample(), NO_LOAD).ranked[0]
    assert best.association.slug == "afev"
    assert Text("Elle intervient partout en France.") not in best.reasons


def test_associations_already_proposed_are_left_out() -> None:
    facts = graduate("bac_5")

    assert "nqt" not in slugs(match(facts, AssociationIndex(sample()), NO_LOAD, ["nqt"]))
