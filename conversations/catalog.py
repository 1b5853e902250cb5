"""The association catalogue: a YAML file the Collectif maintains, validated when it is loaded.

Each error names the file, the association (its slug, else its position) and the field, so an
admin can fix the file without reading Python. Matching gets plain `Association` dataclasses.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    StrictInt,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from conversations.matching import (
    DIPLOMAS,
    FORMATS,
    MENTEE_GROUPS,
    MENTEE_MAX_AGE,
    MENTEE_MIN_AGE,
    MENTEE_SITUATIONS,
    MENTOR_SITUATIONS,
    PRIORITY_AREAS,
    PRIORITY_PUBLICS,
    ROLES,
    THEMES,
    Association,
)

_SLUG = re.compile(r"^[a-z0-9-]{2,40}$")
# Department codes as conversations.geography.department_of returns them: 01-95 without 20,
# Corsica as 2A/2B, overseas as 971-978.
_DEPARTMENT = re.compile(r"^(0[1-9]|1[0-9]|2[1-9]|[3-8][0-9]|9[0-5]|2A|2B|97[1-8])$")
_DESCRIPTION_MAX = 200
# A webhook secret signs what we post to an association's CRM: short ones can be guessed.
_SECRET_MIN = 16


class CatalogError(ValueError):
    """The catalogue cannot be used; `problems` holds one line per mistake found."""

    def __init__(self, source_name: str, problems: Sequence[str]) -> None:
        self.source_name = source_name
        self.problems = tuple(problems)
        super().__init__("\n".join(f"{source_name}: {problem}" for problem in self.problems))


# --- field checks: each raises ValueError with a sentence an admin understands -----------------


def _slug(value: str) -> str:
    if not _SLUG.match(value):
        raise ValueError(f'"{value}" must be 2 to 40 lowercase letters, digits or hyphens')
    return value


def _one_line(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    if "\n" in value or "\r" in value:
        raise ValueError("must fit on one line")
    if len(value) > _DESCRIPTION_MAX:
        raise ValueError(f"has {len(value)} characters, at most {_DESCRIPTION_MAX} fit")
    return value


def _url(schemes: frozenset[str]) -> AfterValidator:
    def check(value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in schemes or not parts.netloc or " " in value:
            wanted = " or ".join(sorted(schemes))
            raise ValueError(f'"{value}" is not an {wanted} URL')
        return value

    return AfterValidator(check)


def _codes(allowed: frozenset[str], *, required: bool = False) -> AfterValidator:
    def check(values: tuple[str, ...]) -> tuple[str, ...]:
        if required and not values:
            raise ValueError(f"list at least one of {', '.join(sorted(allowed))}")
        unknown = [value for value in values if value not in allowed]
        if unknown:
            listed = ", ".join(f'"{value}"' for value in unknown)
            raise ValueError(f"unknown {listed}; expected any of {', '.join(sorted(allowed))}")
        repeated = sorted({value for value in values if values.count(value) > 1})
        if repeated:
            raise ValueError(f"{', '.join(repeated)} listed twice")
        return values

    return AfterValidator(check)


def _department_codes(values: object) -> object:
    # YAML reads 75 and 06 as numbers (06 even as octal): ask for quotes rather than guess.
    if isinstance(values, list | tuple):
        for value in values:
            if not isinstance(value, str):
                raise ValueError(f'write department codes in quotes, e.g. "75": got {value!r}')
            if not _DEPARTMENT.match(value):
                raise ValueError(f'"{value}" is not a department code (e.g. "75", "2A", "971")')
        repeated = sorted({value for value in values if list(values).count(value) > 1})
        if repeated:
            raise ValueError(f"{', '.join(repeated)} listed twice")
    return values


Slug = Annotated[str, AfterValidator(_slug)]
OneLine = Annotated[str, AfterValidator(_one_line)]
HttpsUrl = Annotated[str, _url(frozenset({"https"}))]
WebhookUrl = Annotated[str, _url(frozenset({"http", "https"}))]
Departments = Annotated[tuple[str, ...], BeforeValidator(_department_codes)]
Count = Annotated[StrictInt, Field(ge=0)]

MenteeSituations = Annotated[tuple[str, ...], _codes(MENTEE_SITUATIONS)]
MentorProfiles = Annotated[tuple[str, ...], _codes(MENTOR_SITUATIONS)]
MentorGroups = Annotated[tuple[str, ...], _codes(MENTEE_GROUPS)]
PriorityAreas = Annotated[tuple[str, ...], _codes(PRIORITY_AREAS)]
PriorityPublics = Annotated[tuple[str, ...], _codes(PRIORITY_PUBLICS)]
Themes = Annotated[tuple[str, ...], _codes(THEMES, required=True)]
Roles = Annotated[tuple[str, ...], _codes(ROLES, required=True)]
Formats = Annotated[tuple[str, ...], _codes(FORMATS, required=True)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class Description(_Model):
    fr: OneLine
    en: OneLine


class AgeRange(_Model):
    min: StrictInt
    max: StrictInt

    @model_validator(mode="after")
    def _within_the_collectif_range(self) -> Self:
        if self.min < MENTEE_MIN_AGE:
            raise ValueError(f"min {self.min} is below {MENTEE_MIN_AGE}")
        if self.max > MENTEE_MAX_AGE:
            raise ValueError(f"max {self.max} is above {MENTEE_MAX_AGE}")
        if self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


def _diploma(value: str | None) -> str | None:
    if value is not None and value not in DIPLOMAS:
        raise ValueError(f'unknown "{value}"; expected one of {", ".join(DIPLOMAS)}')
    return value


Diploma = Annotated[str | None, AfterValidator(_diploma)]


class DiplomaRange(_Model):
    """The highest diplomas a programme takes, e.g. {min: bac_3} for graduates; no bound by default."""

    min: Diploma = None
    max: Diploma = None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        both = self.min is not None and self.max is not None
        if both and DIPLOMAS.index(self.min or "") > DIPLOMAS.index(self.max or ""):
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class MadeFor(_Model):
    """What a programme is built around, among what it takes: it then beats a generalist there."""

    situations: MenteeSituations = ()
    themes: Annotated[tuple[str, ...], _codes(THEMES)] = ()
    mentor_profiles: MentorProfiles = ()


class Handoff(_Model):
    """Where the association receives its profiles: its coordinators on Telegram, its CRM, or both."""

    telegram: StrictBool = True
    webhook_url: WebhookUrl | None = None
    webhook_secret: Annotated[SecretStr, Field(min_length=_SECRET_MIN)] | None = None

    @model_validator(mode="after")
    def _one_channel_at_least(self) -> Self:
        if self.webhook_url is not None and self.webhook_secret is None:
            raise ValueError("webhook_url needs a webhook_secret")
        if self.webhook_url is None and self.webhook_secret is not None:
            raise ValueError("webhook_secret is set but there is no webhook_url")
        if not self.telegram and self.webhook_url is None:
            raise ValueError("no channel: set telegram: true or a webhook_url")
        return self


class AssociationEntry(_Model):
    """One association of the catalogue, as the Collectif writes it."""

    slug: Slug
    name: Annotated[str, Field(min_length=1, max_length=100)]
    description: Description
    website: HttpsUrl
    # A national network: takes people anywhere in France remotely (needs "remote" among the
    # formats); in person, only in `departments`, where it has local teams.
    national: StrictBool = False
    # Where pairs meet in person (and where the association counts as local).
    departments: Departments = ()
    # Takes people outside its departments when they accept remote mentoring.
    remote: StrictBool = False
    mentee_ages: AgeRange
    mentee_situations: MenteeSituations = ()
    themes: Themes
    mentor_profiles: MentorProfiles = ()
    mentor_groups: MentorGroups = ()
    roles: Roles
    # How its pairs meet, the usual way first.
    formats: Formats
    # The former name of priority_publics, for the areas only: both lists count.
    priority_areas: PriorityAreas = ()
    priority_publics: PriorityPublics = ()
    # Required highest diploma, for the people asked it (students, job seekers, young workers).
    mentee_diplomas: DiplomaRange = DiplomaRange()
    made_for: MadeFor = MadeFor()
    weekly_capacity: Count
    paused: StrictBool = False
    response_days: Annotated[StrictInt, Field(ge=1, le=60)] = 7
    recruits_through_schools: StrictBool = False
    handoff: Handoff = Handoff()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        # Raised as "field: problem" so the error still names the field (pydantic cannot here).
        if not self.national and not self.departments:
            raise ValueError("departments: list the departments served, or set national: true")
        if not self.departments and "remote" not in self.formats:
            raise ValueError(
                "departments: it meets only in person, so list the departments where its pairs "
                "meet (national: true alone does not say where)"
            )
        outside = [s for s in self.made_for.situations if s not in self.mentee_situations]
        if outside:
            raise ValueError(f"made_for: situations {', '.join(outside)} not in mentee_situations")
        outside = [t for t in self.made_for.themes if t not in self.themes]
        if outside:
            raise ValueError(f"made_for: themes {', '.join(outside)} not in themes")
        outside = [m for m in self.made_for.mentor_profiles if m not in self.mentor_profiles]
        if outside:
            raise ValueError(
                f"made_for: mentor_profiles {', '.join(outside)} not in mentor_profiles"
            )
        if self.remote and "remote" not in self.formats:
            raise ValueError('remote: true needs "remote" among the formats')
        if "mentee" in self.roles and not self.mentee_situations:
            raise ValueError("mentee_situations: needed when roles include mentee")
        if "mentor" in self.roles and not self.mentor_profiles:
            raise ValueError("mentor_profiles: needed when roles include mentor")
        if "mentor" in self.roles and not self.mentor_groups:
            raise ValueError("mentor_groups: needed when roles include mentor")
        return self


def _some_associations(value: object) -> object:
    # Checked on the raw list: pydantic's min_length counts only the entries that were valid.
    if isinstance(value, list | tuple) and not value:
        raise ValueError("list at least one association")
    return value


class Catalog(_Model):
    version: Literal[1] = 1
    associations: Annotated[tuple[AssociationEntry, ...], BeforeValidator(_some_associations)]

    @model_validator(mode="after")
    def _unique_slugs(self) -> Self:
        first: dict[str, int] = {}
        for position, entry in enumerate(self.associations, start=1):
            if entry.slug in first:
                raise ValueError(
                    f'association "{entry.slug}" (#{position}): slug: already used by '
                    f"association #{first[entry.slug]}"
                )
            first[entry.slug] = position
        return self

    def to_associations(self) -> tuple[Association, ...]:
        return tuple(to_association(entry) for entry in self.associations)


def to_association(entry: AssociationEntry) -> Association:
    """The plain dataclass matching works with (matching does not depend on pydantic)."""
    return Association(
        slug=entry.slug,
        name=entry.name,
        roles=frozenset(entry.roles),
        national=entry.national,
        departments=frozenset(entry.departments),
        remote=entry.remote,
        formats=entry.formats,
        mentee_min_age=entry.mentee_ages.min,
        mentee_max_age=entry.mentee_ages.max,
        mentee_situations=frozenset(entry.mentee_situations),
        themes=frozenset(entry.themes),
        mentor_profiles=frozenset(entry.mentor_profiles),
        mentor_groups=frozenset(entry.mentor_groups),
        weekly_capacity=entry.weekly_capacity,
        priority_publics=frozenset(entry.priority_areas) | frozenset(entry.priority_publics),
        paused=entry.paused,
        response_days=entry.response_days,
        recruits_through_schools=entry.recruits_through_schools,
        website=entry.website,
        description_fr=entry.description.fr,
        description_en=entry.description.en,
        diploma_min=entry.mentee_diplomas.min,
        diploma_max=entry.mentee_diplomas.max,
        made_for_situations=frozenset(entry.made_for.situations),
        made_for_themes=frozenset(entry.made_for.themes),
        made_for_mentors=frozenset(entry.made_for.mentor_profiles),
    )


# --- reading the file ---------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key written twice (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[object] = set()
        for key_node, _value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key!r} is written twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_catalog(text: str, source_name: str) -> Catalog:
    """The catalogue in `text`; `source_name` (a file name) starts every error line."""
    try:
        # A SafeLoader subclass: YAML tags cannot build Python objects.
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise CatalogError(source_name, [f"{where}{error.problem}"]) from None
    except yaml.YAMLError as error:
        raise CatalogError(source_name, [str(error)]) from None
    if not isinstance(data, dict):
        raise CatalogError(source_name, ["expected a mapping with an 'associations' list"])
    try:
        return Catalog.model_validate(data)
    except ValidationError as error:
        raise CatalogError(source_name, _problems(error.errors(), data)) from None


def load_catalog(path: str | Path) -> Catalog:
    """The catalogue stored at `path` (UTF-8 YAML)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise CatalogError(str(path), [f"cannot be read ({error.strerror})"]) from None
    return parse_catalog(text, str(path))


def _problems(errors: Iterable[ErrorDetails], data: dict[Any, Any]) -> list[str]:
    problems = []
    for error in errors:
        location = error["loc"]
        message = _message(error)
        if len(location) >= 2 and location[0] == "associations" and isinstance(location[1], int):
            who = _who(data, location[1])
            field = ".".join(str(part) for part in location[2:])
            problems.append(f"{who}: {field}: {message}" if field else f"{who}: {message}")
        elif location:
            problems.append(f"{'.'.join(str(part) for part in location)}: {message}")
        else:
            problems.append(message)
    return problems


def _who(data: dict[Any, Any], index: int) -> str:
    entries = data.get("associations")
    entry = entries[index] if isinstance(entries, list) and index < len(entries) else None
    slug = entry.get("slug") if isinstance(entry, dict) else None
    if isinstance(slug, str) and slug.strip():
        return f'association "{slug.strip()}"'
    return f"association #{index + 1}"


def _message(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "missing":
        return "missing"
    if kind == "extra_forbidden":
        return "unknown field"
    context = error.get("ctx") or {}
    if kind in ("value_error", "assertion_error") and "error" in context:
        return str(context["error"])
    message = error["msg"]
    return message[:1].lower() + message[1:]
