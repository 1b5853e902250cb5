"""Which associations of the Collectif can take a finished profile, best first, and why in words.

Pure: the catalogue, this week's loads and the profile come in; a ranked list (or a gap) comes out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import combinations, pairwise
from typing import Literal, TypeAlias

from conversations.flows.mentee import ASK_DIPLOMA_IN, MAX_AGE, MENTEE, MIN_AGE
from conversations.flows.mentor import AGE_BRACKETS, MENTOR
from conversations.flows.mentor import MENTEE_GROUPS as MENTEE_GROUP_CHOICES
from conversations.flows.options import DIPLOMAS as DIPLOMA_CHOICES
from conversations.flows.options import FORMATS as FORMAT_CHOICES
from conversations.flows.options import THEMES as THEME_CHOICES
from conversations.geography import department_of
from conversations.model import Answers, Choice
from conversations.text import Text, _, ngettext

Role: TypeAlias = Literal["mentee", "mentor"]

# The codes come from the flows' own choices, so the catalogue cannot drift from the questions.
_MENTEE_SITUATION_CHOICES = MENTEE.step("situation").choices_for({})
_MENTOR_SITUATION_CHOICES = MENTOR.step("situation").choices_for({})

ROLES: frozenset[str] = frozenset({"mentee", "mentor"})
MENTEE_SITUATIONS = frozenset(choice.value for choice in _MENTEE_SITUATION_CHOICES)
MENTOR_SITUATIONS = frozenset(choice.value for choice in _MENTOR_SITUATION_CHOICES)
THEMES = frozenset(choice.value for choice in THEME_CHOICES)
MENTEE_GROUPS = frozenset(choice.value for choice in MENTEE_GROUP_CHOICES)
# How pairs meet, as an association offers it; a person may also answer "either".
FORMATS: frozenset[str] = frozenset({"in_person", "remote"})
# The areas an association may give priority to (the mentee's optional "area" answer).
PRIORITY_AREAS: frozenset[str] = frozenset({"qpv", "rural"})
# The publics a programme may favour: the areas, grant holders (the student's optional "grant"
# answer) and the first generation in higher education (not asked: kept for the coordinators).
PRIORITY_PUBLICS: frozenset[str] = PRIORITY_AREAS | {"scholarship", "first_generation"}
# Highest diplomas, lowest first: a programme may require a range of them.
DIPLOMAS: tuple[str, ...] = tuple(choice.value for choice in DIPLOMA_CHOICES)
_DIPLOMA_RANK = {code: rank for rank, code in enumerate(DIPLOMAS)}
MENTEE_MIN_AGE: int = MIN_AGE
MENTEE_MAX_AGE: int = MAX_AGE

_OLDEST = 120
# A mentor answers with a bracket, not an age; "60_plus" starts after "41_60" ends.
MENTOR_AGE_BRACKETS: Mapping[str, tuple[int, int]] = {
    "15_17": (15, 17),
    "18_25": (18, 25),
    "26_40": (26, 40),
    "41_60": (41, 60),
    "60_plus": (61, _OLDEST),
}
# The ages each kind of mentor an association seeks may have: minors (15-17) only mentor where
# high-school (or early university) students are sought, never where only working people are.
MENTOR_SITUATION_AGES: Mapping[str, tuple[int, int]] = {
    "high_school_student": (15, 20),
    "university_student": (17, 30),
    "private_employee": (18, _OLDEST),
    "public_servant": (18, _OLDEST),
    "self_employed": (18, _OLDEST),
    "retiree": (50, _OLDEST),
    "job_seeker": (18, _OLDEST),
    "other": (18, _OLDEST),
}

# Score weights. Shared themes weigh most: they are what the person asked for. A programme made for
# the person's situation (and their diploma, their needs) comes next, before being merely nearby: a
# generalist next door sends a graduate job seeker less far than a programme built for graduates.
# Then being served locally, a favoured public, the usual format; load and response history only
# reorder close calls.
THEME_POINTS = 10.0
MADE_FOR_POINTS = 12.0
# Flat, and below local minus national: a specialty need alone never outweighs being nearby.
MADE_FOR_THEME_POINTS = 3.0
DIPLOMA_POINTS = 6.0
LOCAL_POINTS = 6.0
NATIONAL_POINTS = 2.0
AREA_POINTS = 5.0
FORMAT_POINTS = 3.0
WAITING_PENALTY = 0.5
WAITING_PENALTY_CAP = 8.0
SPEED_POINTS = 3.0


@dataclass(frozen=True)
class Association:
    """One association as matching sees it (built from the catalogue, see conversations.catalog)."""

    slug: str
    name: str
    roles: frozenset[str]
    national: bool
    departments: frozenset[str]
    # Takes people outside its departments when they accept remote mentoring.
    remote: bool
    # How its pairs meet, the usual way first.
    formats: tuple[str, ...]
    mentee_min_age: int
    mentee_max_age: int
    mentee_situations: frozenset[str]
    themes: frozenset[str]
    mentor_profiles: frozenset[str]
    mentor_groups: frozenset[str]
    weekly_capacity: int
    # The publics it favours (PRIORITY_PUBLICS): a bonus, never a filter.
    priority_publics: frozenset[str] = frozenset()
    paused: bool = False
    response_days: int = 7
    recruits_through_schools: bool = False
    website: str = ""
    description_fr: str = ""
    description_en: str = ""
    # The highest diplomas it takes (DIPLOMAS codes), None for no bound: a filter for people who
    # were asked their diploma (students, job seekers, young workers).
    diploma_min: str | None = None
    diploma_max: str | None = None
    # What its programme is built around (subsets of the above): a specialist scores above a
    # generalist for these situations, needs and mentors.
    made_for_situations: frozenset[str] = frozenset()
    made_for_themes: frozenset[str] = frozenset()
    made_for_mentors: frozenset[str] = frozenset()

    def takes_diploma(self, diploma: str) -> bool:
        rank = _DIPLOMA_RANK.get(diploma)
        if rank is None:
            return True
        low = _DIPLOMA_RANK.get(self.diploma_min or "", 0)
        high = _DIPLOMA_RANK.get(self.diploma_max or "", len(DIPLOMAS) - 1)
        return low <= rank <= high

    @property
    def remote_anywhere(self) -> bool:
        """Takes people anywhere in France who accept remote mentoring (in person: departments)."""
        return (self.remote or self.national) and "remote" in self.formats


@dataclass(frozen=True)
class AssociationLoad:
    """What an association has on its plate: counted by storage for the current ISO week."""

    handed_off_this_week: int = 0
    waiting: int = 0
    median_response_hours: float | None = None


_NO_LOAD = AssociationLoad()


@dataclass(frozen=True)
class ProfileFacts:
    """The answers matching needs, in matching's terms: an age range even for a mentor's bracket."""

    role: Role
    min_age: int
    max_age: int
    department: str | None
    situation: str | None
    themes: frozenset[str] = frozenset()
    format: str = "either"
    mentee_groups: frozenset[str] = frozenset()
    area: str | None = None
    age_bracket: str | None = None
    # A mentee's highest diploma (DIPLOMAS), when asked; whether a student holds a grant.
    diploma: str | None = None
    grant: bool | None = None
    # Signed up by a parent or a professional: the reasons speak to them ("vous") about the
    # young person, not to the young person ("tu").
    referred: bool = False

    @property
    def accepted_formats(self) -> frozenset[str]:
        return _ACCEPTED_FORMATS.get(self.format, FORMATS)

    @property
    def publics(self) -> frozenset[str]:
        """The favoured publics this person belongs to, from their optional answers."""
        codes = {self.area} if self.area in PRIORITY_AREAS else set()
        if self.grant:
            codes.add("scholarship")
        return frozenset(codes)


_ACCEPTED_FORMATS = {code: frozenset({code}) for code in FORMATS}


def facts_from_answers(flow_name: str, answers: Answers) -> ProfileFacts:
    """The facts of a completed profile of the "mentee", "referral" or "mentor" flow."""
    role: Role
    if flow_name in ("mentee", "referral"):
        role = "mentee"
        age = answers.get("age")
        if not isinstance(age, int) or isinstance(age, bool):
            raise ValueError("a mentee profile needs an age")
        min_age = max_age = age
        bracket = None
        themes = _codes(answers.get("needs"))
    elif flow_name == "mentor":
        role = "mentor"
        bracket_answer = answers.get("age_bracket")
        if not isinstance(bracket_answer, str) or bracket_answer not in MENTOR_AGE_BRACKETS:
            raise ValueError("a mentor profile needs an age bracket")
        bracket = bracket_answer
        min_age, max_age = MENTOR_AGE_BRACKETS[bracket]
        themes = _codes(answers.get("themes"))
    else:
        raise ValueError(f"no matching for the {flow_name!r} flow")
    postal_code = answers.get("postal_code")
    situation = answers.get("situation")
    preference = answers.get("format")
    area = answers.get("area")
    diploma = answers.get("diploma") if situation in ASK_DIPLOMA_IN else None
    grant = answers.get("grant") if situation == "higher_education" else None
    return ProfileFacts(
        role=role,
        min_age=min_age,
        max_age=max_age,
        department=department_of(postal_code) if isinstance(postal_code, str) else None,
        situation=situation if isinstance(situation, str) else None,
        themes=themes,
        format=preference if isinstance(preference, str) and preference in FORMATS else "either",
        mentee_groups=_codes(answers.get("mentee_groups")) if role == "mentor" else frozenset(),
        area=area if isinstance(area, str) else None,
        age_bracket=bracket,
        diploma=diploma if isinstance(diploma, str) and diploma in _DIPLOMA_RANK else None,
        grant={"yes": True, "no": False}.get(grant) if isinstance(grant, str) else None,
        referred=flow_name == "referral",
    )


def _codes(answer: object) -> frozenset[str]:
    if isinstance(answer, tuple):
        return frozenset(code for code in answer if isinstance(code, str))
    return frozenset()


@dataclass(frozen=True)
class Candidate:
    association: Association
    score: float
    # Why this association, for the person (two or three short sentences).
    reasons: tuple[Text, ...]
    # What happens next: when it calls, and whether it may check with the school first.
    notes: tuple[Text, ...] = ()


@dataclass(frozen=True)
class MatchResult:
    ranked: tuple[Candidate, ...]
    # Set when nothing matched: which department and profile lack an association (for admins).
    gap: Text | None = None

    @property
    def best(self) -> Candidate | None:
        return self.ranked[0] if self.ranked else None


def week_window(now: datetime) -> tuple[datetime, datetime]:
    """The ISO week holding `now` (Monday 00:00 to the next Monday): weekly_capacity's window."""
    start = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=7)


# --- the texts ----------------------------------------------------------------------------------
# The young flow says "tu", the mentor flow "vous": each sentence that addresses the person exists
# in both, and each msgid stays a literal inside _() so that Babel extracts it.

_REACH_NATIONAL = _("Elle intervient partout en France.")
_PUBLIC_REASONS: Mapping[str, Text] = {
    "qpv": _("Elle donne la priorité aux jeunes des quartiers prioritaires."),
    "rural": _("Elle donne la priorité aux jeunes des zones rurales."),
    "scholarship": _("Elle donne la priorité aux étudiant·es boursier·es."),
}
_UNKNOWN_DEPARTMENT = _("inconnu")
# Only mentees are asked their diploma and their needs, so these say "tu".
_MADE_FOR_THEMES = _("C'est sa spécialité : %(themes)s.")
_DIPLOMA_REASON = _("Son programme s'adresse aux jeunes de ton niveau de diplôme : %(diploma)s.")
_REFERRAL_DIPLOMA_REASON = _(
    "Son programme s'adresse aux jeunes de ce niveau de diplôme : %(diploma)s."
)


@dataclass(frozen=True)
class _Wording:
    themes: Text
    local: Text
    remote: Text
    # Reached through a national network's remote mentoring, wherever the person lives.
    national_remote: Text
    # Its programme is built for this situation (a mentee's schooling or work, a mentor's job).
    made_for: Text
    usual_format: Mapping[str, Text]
    school: Text | None


_MENTEE_WORDING = _Wording(
    themes=_("Elle t'accompagne sur ce que tu cherches : %(themes)s."),
    local=_("Elle intervient dans ton département (%(department)s)."),
    remote=_("Elle peut t'accompagner à distance, comme tu l'acceptes."),
    national_remote=_("Ce réseau national t'accompagne à distance, où que tu habites."),
    made_for=_("Son programme est fait pour les jeunes dans ta situation : %(situation)s."),
    usual_format={
        "in_person": _("Ses rencontres se font surtout en présentiel, comme tu le préfères."),
        "remote": _("Ses rencontres se font surtout à distance, comme tu le préfères."),
    },
    school=_(
        "Elle travaille avec les établissements scolaires : elle en parlera peut-être d'abord "
        "avec le tien."
    ),
)
_REFERRAL_WORDING = _Wording(
    themes=_("Elle accompagne les jeunes sur ce que vous cherchez pour lui ou elle : %(themes)s."),
    local=_("Elle intervient dans son département (%(department)s)."),
    remote=_("Elle peut l'accompagner à distance, comme vous l'acceptez."),
    national_remote=_("Ce réseau national accompagne à distance, où que l'on habite."),
    made_for=_("Son programme est fait pour les jeunes dans cette situation : %(situation)s."),
    usual_format={
        "in_person": _("Ses rencontres se font surtout en présentiel, comme vous le préférez."),
        "remote": _("Ses rencontres se font surtout à distance, comme vous le préférez."),
    },
    school=_(
        "Elle travaille avec les établissements scolaires : elle en parlera peut-être d'abord "
        "avec le sien."
    ),
)
_MENTOR_WORDING = _Wording(
    themes=_("Ses mentors aident sur les sujets que vous avez choisis : %(themes)s."),
    local=_("Elle intervient dans votre département (%(department)s)."),
    remote=_("Elle peut vous proposer un mentorat à distance, comme vous l'acceptez."),
    national_remote=_("Ce réseau national propose le mentorat à distance, où que vous habitiez."),
    made_for=_("Son programme cherche justement des mentors comme vous : %(situation)s."),
    usual_format={
        "in_person": _("Ses rencontres se font surtout en présentiel, comme vous le préférez."),
        "remote": _("Ses rencontres se font surtout à distance, comme vous le préférez."),
    },
    school=None,
)


def _contact_note(address: str, days: int) -> Text:
    if address == "tu":
        return ngettext(
            "Elle te contactera sous %(count)s jour.",
            "Elle te contactera sous %(count)s jours.",
            days,
        )
    return ngettext(
        "Elle vous contactera sous %(count)s jour.",
        "Elle vous contactera sous %(count)s jours.",
        days,
    )


def _labels(choices: Iterable[Choice]) -> dict[str, Text]:
    return {choice.value: choice.label for choice in choices}


_THEME_LABELS = _labels(THEME_CHOICES)
_THEME_ORDER = {choice.value: i for i, choice in enumerate(THEME_CHOICES)}
_GROUP_LABELS = _labels(MENTEE_GROUP_CHOICES)
_GROUP_ORDER = {choice.value: i for i, choice in enumerate(MENTEE_GROUP_CHOICES)}
_MENTEE_SITUATION_LABELS = _labels(_MENTEE_SITUATION_CHOICES)
_MENTOR_SITUATION_LABELS = _labels(_MENTOR_SITUATION_CHOICES)
_FORMAT_LABELS = _labels(FORMAT_CHOICES)
_BRACKET_LABELS = _labels(AGE_BRACKETS)
_DIPLOMA_LABELS = _labels(DIPLOMA_CHOICES)


def _listed(
    codes: Iterable[str], labels: Mapping[str, Text], order: Mapping[str, int]
) -> tuple[Text | str, ...]:
    return tuple(labels.get(code, code) for code in sorted(codes, key=lambda c: order.get(c, 99)))


def _by_subset(
    choices: tuple[Choice, ...], template: Text, param: str
) -> dict[frozenset[str], Text]:
    """The template filled with every subset of the choices, in the flow's order.

    There are 255 subsets of the eight themes: filling them once keeps formatting out of the loop
    over candidates, which is where matching spends its time.
    """
    table = {}
    for size in range(1, len(choices) + 1):
        for subset in combinations(choices, size):
            labels = tuple(choice.label for choice in subset)
            table[frozenset(choice.value for choice in subset)] = template.fmt(**{param: labels})
    return table


_GROUPS_REASON = _("Ses mentors accompagnent le public que vous avez choisi : %(groups)s.")
_THEME_REASONS = {
    "mentee": _by_subset(THEME_CHOICES, _MENTEE_WORDING.themes, "themes"),
    "referral": _by_subset(THEME_CHOICES, _REFERRAL_WORDING.themes, "themes"),
    "mentor": _by_subset(THEME_CHOICES, _MENTOR_WORDING.themes, "themes"),
}
_GROUP_REASONS = _by_subset(MENTEE_GROUP_CHOICES, _GROUPS_REASON, "groups")


# --- the index ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Prepared:
    """Texts and sets of one association that do not depend on the profile, computed once."""

    association: Association
    age_reason: Text
    mentee_notes: tuple[Text, ...]
    referral_notes: tuple[Text, ...]
    mentor_notes: tuple[Text, ...]
    # Set when the programme requires a diploma: meeting it is a sign it is made for the person.
    requires_diploma: bool


class AssociationIndex:
    """The catalogue prepared for matching: one bitmask per filter value, built once per catalogue.

    Bit i stands for the i-th association in slug order, so the catalogue's order never matters and
    each hard filter is one integer AND instead of a loop over every association.
    """

    def __init__(self, associations: Iterable[Association]) -> None:
        ordered = sorted(associations, key=lambda a: a.slug)
        for before, after in pairwise(ordered):
            if before.slug == after.slug:
                raise ValueError(f"two associations share the slug {after.slug!r}")
        self.associations: tuple[Association, ...] = tuple(ordered)
        self._slugs = {a.slug: 1 << i for i, a in enumerate(ordered)}
        self._prepared = tuple(_prepare(a) for a in ordered)
        self._role: dict[str, int] = {}
        self._mentee_situation: dict[str, int] = {}
        self._mentor_situation: dict[str, int] = {}
        self._group: dict[str, int] = {}
        self._department: dict[str, int] = {}
        self._offers: dict[str, int] = {}
        self._diploma: dict[str, int] = {}
        self._mentee_age = [0] * (_OLDEST + 1)
        self._mentor_age = [0] * (_OLDEST + 1)
        self._remote = 0
        self._active = 0
        for i, association in enumerate(ordered):
            bit = 1 << i
            _mark(self._role, association.roles, bit)
            _mark(self._mentee_situation, association.mentee_situations, bit)
            _mark(self._mentor_situation, association.mentor_profiles, bit)
            _mark(self._group, association.mentor_groups, bit)
            _mark(self._department, association.departments, bit)
            _mark(self._offers, association.formats, bit)
            _mark(self._diploma, filter(association.takes_diploma, DIPLOMAS), bit)
            for age in range(max(association.mentee_min_age, 0), association.mentee_max_age + 1):
                if age <= _OLDEST:
                    self._mentee_age[age] |= bit
            for profile in association.mentor_profiles:
                low, high = MENTOR_SITUATION_AGES.get(profile, (18, _OLDEST))
                for age in range(low, high + 1):
                    self._mentor_age[age] |= bit
            if association.remote_anywhere:
                self._remote |= bit
            if not association.paused:
                self._active |= bit
        self._age_cache: dict[tuple[Role, int, int], int] = {}

    def _ages(self, role: Role, low: int, high: int) -> int:
        key = (role, low, high)
        cached = self._age_cache.get(key)
        if cached is None:
            table = self._mentee_age if role == "mentee" else self._mentor_age
            cached = 0
            for age in range(max(low, 0), min(high, _OLDEST) + 1):
                cached |= table[age]
            self._age_cache[key] = cached
        return cached

    def eligible(self, facts: ProfileFacts) -> int:
        """The bitmask of associations that pass every hard filter except pause and capacity."""
        mask = self._role.get(facts.role, 0) & self._ages(facts.role, facts.min_age, facts.max_age)
        if facts.situation is not None:
            situations = (
                self._mentee_situation if facts.role == "mentee" else self._mentor_situation
            )
            mask &= situations.get(facts.situation, 0)
        if facts.role == "mentor" and facts.mentee_groups:
            groups = 0
            for group in facts.mentee_groups:
                groups |= self._group.get(group, 0)
            mask &= groups
        if facts.role == "mentee" and facts.diploma is not None:
            mask &= self._diploma.get(facts.diploma, mask)
        if not mask:
            return 0
        accepted = facts.accepted_formats
        offered = 0
        for preference in accepted:
            offered |= self._offers.get(preference, 0)
        # In person only where the association has local teams; remotely, anywhere it says so.
        located = (self._department.get(facts.department, 0) if facts.department else 0) & offered
        if "remote" in accepted:
            located |= self._remote
        return mask & located

    def match(
        self,
        facts: ProfileFacts,
        loads: Mapping[str, AssociationLoad],
        excluded: Iterable[str] = (),
    ) -> MatchResult:
        """Like `match`; `excluded` slugs (already proposed this profile) are left out."""
        eligible = self.eligible(facts)
        for slug in excluded:
            eligible &= ~self._slugs.get(slug, 0)
        open_now = eligible & self._active
        asked = _Asked.of(facts)
        prepared_all = self._prepared
        scored: list[tuple[float, Candidate]] = []
        while open_now:
            low_bit = open_now & -open_now
            open_now ^= low_bit
            prepared = prepared_all[low_bit.bit_length() - 1]
            association = prepared.association
            load = loads.get(association.slug, _NO_LOAD)
            if load.handed_off_this_week >= association.weekly_capacity:
                continue
            candidate = _candidate(asked, prepared, load)
            scored.append((-candidate.score, candidate))
        if scored:
            # Bits are visited in slug order and the sort is stable: equal scores stay by slug.
            scored.sort(key=_first)
            return MatchResult(ranked=tuple(entry[1] for entry in scored))
        blocked = tuple(prepared_all[i].association.name for i in _bits(eligible))
        return MatchResult(ranked=(), gap=_gap(facts, blocked))


def _first(entry: tuple[float, Candidate]) -> float:
    return entry[0]


def _mark(table: dict[str, int], codes: Iterable[str], bit: int) -> None:
    for code in codes:
        table[code] = table.get(code, 0) | bit


def _bits(mask: int) -> Iterable[int]:
    while mask:
        low_bit = mask & -mask
        mask ^= low_bit
        yield low_bit.bit_length() - 1


def _prepare(association: Association) -> _Prepared:
    return _Prepared(
        association=association,
        age_reason=_("Elle accompagne les jeunes de %(min)s à %(max)s ans.").fmt(
            min=association.mentee_min_age, max=association.mentee_max_age
        ),
        mentee_notes=(
            _contact_note("tu", association.response_days),
            *((_MENTEE_WORDING.school,) if association.recruits_through_schools else ()),
        ),
        referral_notes=(
            _contact_note("vous", association.response_days),
            *((_REFERRAL_WORDING.school,) if association.recruits_through_schools else ()),
        ),
        mentor_notes=(_contact_note("vous", association.response_days),),
        requires_diploma=association.diploma_min is not None,
    )


@dataclass(frozen=True, slots=True)
class _Asked:
    """What one profile looks for, worked out once and then read for every candidate."""

    is_mentee: bool
    referred: bool
    themes: frozenset[str]
    department: str | None
    preference: str
    accepted: frozenset[str]
    situation: str | None
    publics: frozenset[str]
    mentee_groups: frozenset[str]
    wording: _Wording
    theme_reasons: Mapping[frozenset[str], Text]
    local_reason: Text
    situation_reason: Text | None
    made_for_reason: Text | None
    diploma_reason: Text | None

    @classmethod
    def of(cls, facts: ProfileFacts) -> _Asked:
        is_mentee = facts.role == "mentee"
        referred = is_mentee and facts.referred
        wording = (
            _REFERRAL_WORDING if referred else _MENTEE_WORDING if is_mentee else _MENTOR_WORDING
        )
        situation_reason = made_for_reason = None
        if facts.situation is not None:
            labels = _MENTEE_SITUATION_LABELS if is_mentee else _MENTOR_SITUATION_LABELS
            label = labels.get(facts.situation, facts.situation)
            made_for_reason = wording.made_for.fmt(situation=label)
            if not is_mentee:
                situation_reason = _(
                    "Elle recherche des mentors dans votre situation (%(situation)s)."
                ).fmt(situation=label)
        diploma_reason = None
        if is_mentee and facts.diploma is not None:
            template = _REFERRAL_DIPLOMA_REASON if referred else _DIPLOMA_REASON
            diploma_reason = template.fmt(diploma=_DIPLOMA_LABELS[facts.diploma])
        return cls(
            is_mentee=is_mentee,
            referred=referred,
            themes=facts.themes,
            department=facts.department,
            preference=facts.format,
            accepted=facts.accepted_formats,
            situation=facts.situation,
            publics=facts.publics,
            mentee_groups=facts.mentee_groups,
            wording=wording,
            theme_reasons=_THEME_REASONS["referral" if referred else facts.role],
            local_reason=(
                wording.local.fmt(department=facts.department)
                if facts.department
                else _REACH_NATIONAL
            ),
            situation_reason=situation_reason,
            made_for_reason=made_for_reason,
            diploma_reason=diploma_reason,
        )


def _candidate(asked: _Asked, prepared: _Prepared, load: AssociationLoad) -> Candidate:
    association = prepared.association
    # The strongest reasons first; the person reads the first three.
    reasons: list[Text] = []
    score = 0.0

    common = asked.themes & association.themes
    specialty = common & association.made_for_themes if asked.is_mentee else frozenset()
    made_for = association.made_for_situations if asked.is_mentee else association.made_for_mentors
    # Made for this situation *and* these needs: a programme for job seekers who want to start a
    # business is not made for a job seeker looking for work.
    needs_fit = (
        not asked.is_mentee
        or bool(specialty)
        or not association.made_for_themes
        or not asked.themes
    )
    if asked.situation is not None and asked.situation in made_for and needs_fit:
        score += MADE_FOR_POINTS
        if asked.made_for_reason is not None:
            reasons.append(asked.made_for_reason)

    if common:
        score += THEME_POINTS * len(common)
        reason = asked.theme_reasons.get(common)
        if reason is None:
            reason = asked.wording.themes.fmt(themes=_listed(common, _THEME_LABELS, _THEME_ORDER))
        reasons.append(reason)
    if specialty:
        score += MADE_FOR_THEME_POINTS
        if len(reasons) < 2:
            reasons.append(
                _MADE_FOR_THEMES.fmt(themes=_listed(specialty, _THEME_LABELS, _THEME_ORDER))
            )

    if asked.diploma_reason is not None and prepared.requires_diploma:
        # The diploma filter already passed: the person holds what the programme asks for.
        score += DIPLOMA_POINTS
        reasons.append(asked.diploma_reason)

    # Before the place: a public the programme favours says more about why it fits.
    favoured = asked.publics & association.priority_publics
    if favoured:
        score += AREA_POINTS * len(favoured)
        reasons.extend(_PUBLIC_REASONS[code] for code in sorted(favoured))

    if asked.department is not None and asked.department in association.departments:
        score += LOCAL_POINTS
        usual = association.formats[0]
        place_reason = asked.local_reason
    else:
        # Reached only because the person accepts remote mentoring: the pair meets remotely.
        usual = "remote"
        if association.national:
            score += NATIONAL_POINTS
            place_reason = asked.wording.national_remote
        else:
            place_reason = asked.wording.remote
    reasons.append(place_reason)

    if asked.preference == usual:
        score += FORMAT_POINTS
        if len(reasons) < 2:
            reasons.append(asked.wording.usual_format[usual])

    if len(reasons) < 2:
        reasons.extend(_fallbacks(asked, prepared))

    if load.waiting > 0:
        score -= min(WAITING_PENALTY * load.waiting, WAITING_PENALTY_CAP)
    if load.median_response_hours is not None:
        promised = max(association.response_days, 1) * 24.0
        late = min(max(load.median_response_hours, 0.0), 2 * promised)
        # +3 for an instant answer, 0 on the promised delay, -3 at twice the promise or later.
        score += SPEED_POINTS * (1.0 - late / promised)

    notes = (
        prepared.referral_notes
        if asked.referred
        else prepared.mentee_notes
        if asked.is_mentee
        else prepared.mentor_notes
    )
    return Candidate(association, score, tuple(reasons[:3]), notes)


def _fallbacks(asked: _Asked, prepared: _Prepared) -> list[Text]:
    """True things to say when little else fits: the ages it takes, or whom its mentors help."""
    if asked.is_mentee:
        return [prepared.age_reason]
    association = prepared.association
    fallbacks = []
    common_groups = asked.mentee_groups & association.mentor_groups
    if common_groups:
        reason = _GROUP_REASONS.get(common_groups)
        if reason is None:
            reason = _GROUPS_REASON.fmt(groups=_listed(common_groups, _GROUP_LABELS, _GROUP_ORDER))
        fallbacks.append(reason)
    if asked.situation_reason is not None:
        fallbacks.append(asked.situation_reason)
    return fallbacks


def _gap(facts: ProfileFacts, blocked: tuple[str, ...]) -> Text:
    department: Text | str = facts.department or _UNKNOWN_DEPARTMENT
    preference = _FORMAT_LABELS.get(facts.format, facts.format)
    if facts.role == "mentee":
        situation: Text | str = _MENTEE_SITUATION_LABELS.get(facts.situation or "", "?")
        if blocked:
            return _(
                "Aucune place cette semaine pour ce profil de jeune : %(age)s ans, %(situation)s, "
                "département %(department)s, rencontres : %(format)s. Associations complètes ou "
                "en pause : %(associations)s."
            ).fmt(
                age=facts.min_age,
                situation=situation,
                department=department,
                format=preference,
                associations=blocked,
            )
        return _(
            "Aucune association pour ce profil de jeune : %(age)s ans, %(situation)s, "
            "département %(department)s, rencontres : %(format)s."
        ).fmt(age=facts.min_age, situation=situation, department=department, format=preference)
    age: Text | str = _BRACKET_LABELS.get(
        facts.age_bracket or "", f"{facts.min_age}-{facts.max_age}"
    )
    situation = _MENTOR_SITUATION_LABELS.get(facts.situation or "", "?")
    if blocked:
        return _(
            "Aucune place cette semaine pour ce profil de mentor : %(age)s, %(situation)s, "
            "département %(department)s, rencontres : %(format)s. Associations complètes ou "
            "en pause : %(associations)s."
        ).fmt(
            age=age,
            situation=situation,
            department=department,
            format=preference,
            associations=blocked,
        )
    return _(
        "Aucune association pour ce profil de mentor : %(age)s, %(situation)s, "
        "département %(department)s, rencontres : %(format)s."
    ).fmt(age=age, situation=situation, department=department, format=preference)


def match(
    facts: ProfileFacts,
    associations: AssociationIndex | Iterable[Association],
    loads: Mapping[str, AssociationLoad],
    excluded: Iterable[str] = (),
) -> MatchResult:
    """The associations that can take this profile now, best first, each with its reasons.

    Pass an AssociationIndex when matching many profiles against one catalogue: building it is the
    costly part. `loads` maps slugs to this week's load; a missing slug counts as no load.
    `excluded` slugs are left out (the associations this profile was already proposed to).
    """
    if not isinstance(associations, AssociationIndex):
        associations = AssociationIndex(associations)
    return associations.match(facts, loads, excluded)
