"""How well and how fast matching works: the labelled evaluation set against the sample
catalogue (top-1 in the acceptable set), then 10,000 profiles against a synthetic 500-association
catalogue.

Run with `python bench/bench_matching.py`; prints the table, the best of 3 runs and the cost per
profile.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

# Run as a plain script from anywhere: the project root is the parent of bench/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conversations.matching import (
    FORMATS,
    MENTEE_GROUPS,
    MENTEE_SITUATIONS,
    MENTOR_AGE_BRACKETS,
    MENTOR_SITUATIONS,
    PRIORITY_PUBLICS,
    THEMES,
    Association,
    AssociationIndex,
    AssociationLoad,
    ProfileFacts,
    match,
)
from tests.data.matching_eval import evaluate, table

ASSOCIATIONS = 500
PROFILES = 10_000
RUNS = 3
SEED = 20261126

# Metropolitan and overseas department codes, as conversations.geography returns them.
DEPARTMENTS = [
    *(f"{n:02d}" for n in range(1, 96) if n != 20),
    "2A",
    "2B",
    *(f"97{n}" for n in range(1, 7)),
]


def _some(rng: random.Random, codes: frozenset[str], low: int, high: int) -> frozenset[str]:
    ordered = sorted(codes)
    return frozenset(rng.sample(ordered, rng.randint(low, min(high, len(ordered)))))


def synthetic_catalogue(rng: random.Random) -> list[Association]:
    """Mostly local associations (1-6 departments), about one in ten national, as in the Collectif."""
    catalogue = []
    for i in range(ASSOCIATIONS):
        low = rng.randint(5, 22)
        formats = rng.choice([("in_person",), ("remote",), ("in_person", "remote")])
        catalogue.append(
            Association(
                slug=f"association-{i:03d}",
                name=f"Association {i}",
                roles=rng.choice([frozenset({"mentee"}), frozenset({"mentor"}), frozenset(ROLES)]),
                national=rng.random() < 0.1,
                departments=frozenset(rng.sample(DEPARTMENTS, rng.randint(1, 6))),
                remote="remote" in formats and rng.random() < 0.5,
                formats=formats,
                mentee_min_age=low,
                mentee_max_age=rng.randint(low, 30),
                mentee_situations=_some(rng, MENTEE_SITUATIONS, 1, 5),
                themes=_some(rng, THEMES, 1, 5),
                mentor_profiles=_some(rng, MENTOR_SITUATIONS, 1, 5),
                mentor_groups=_some(rng, MENTEE_GROUPS, 1, 3),
                weekly_capacity=rng.randint(10, 50),
                priority_publics=_some(rng, PRIORITY_PUBLICS, 0, 2),
                paused=rng.random() < 0.05,
                response_days=rng.randint(3, 14),
                recruits_through_schools=rng.random() < 0.3,
            )
        )
    return catalogue


ROLES = frozenset({"mentee", "mentor"})


def synthetic_profiles(rng: random.Random) -> list[ProfileFacts]:
    profiles = []
    brackets = sorted(MENTOR_AGE_BRACKETS)
    for _ in range(PROFILES):
        department = rng.choice(DEPARTMENTS)
        preference = rng.choice([*sorted(FORMATS), "either"])
        if rng.random() < 0.7:
            age = rng.randint(5, 30)
            profiles.append(
                ProfileFacts(
                    role="mentee",
                    min_age=age,
                    max_age=age,
                    department=department,
                    situation=rng.choice(sorted(MENTEE_SITUATIONS)),
                    themes=_some(rng, THEMES, 1, 3),
                    format=preference,
                    area=rng.choice(["qpv", "rural", "neither", "unknown", None]),
                )
            )
        else:
            bracket = rng.choice(brackets)
            low, high = MENTOR_AGE_BRACKETS[bracket]
            profiles.append(
                ProfileFacts(
                    role="mentor",
                    min_age=low,
                    max_age=high,
                    department=department,
                    situation=rng.choice(sorted(MENTOR_SITUATIONS)),
                    themes=_some(rng, THEMES, 1, 3),
                    format=preference,
                    mentee_groups=_some(rng, MENTEE_GROUPS, 1, 2),
                    age_bracket=bracket,
                )
            )
    return profiles


def main() -> None:
    print(table(evaluate()))
    rng = random.Random(SEED)
    catalogue = synthetic_catalogue(rng)
    profiles = synthetic_profiles(rng)
    loads = {
        a.slug: AssociationLoad(
            handed_off_this_week=rng.randint(0, a.weekly_capacity),
            waiting=rng.randint(0, 20),
            median_response_hours=rng.choice([None, rng.uniform(1, 400)]),
        )
        for a in catalogue
    }

    started = time.perf_counter()
    index = AssociationIndex(catalogue)
    indexing = time.perf_counter() - started

    best = float("inf")
    matched = candidates = 0
    for _run in range(RUNS):
        matched = candidates = 0
        # Count as we go rather than keep 10,000 results: the bot matches one profile at a time,
        # and holding them all would time the garbage collector instead of matching.
        started = time.perf_counter()
        for facts in profiles:
            ranked = match(facts, index, loads).ranked
            matched += bool(ranked)
            candidates += len(ranked)
        best = min(best, time.perf_counter() - started)

    print(f"catalogue: {ASSOCIATIONS} associations, indexed in {indexing * 1000:.1f} ms")
    print(
        f"profiles: {PROFILES}, {matched} matched, "
        f"{candidates / PROFILES:.1f} candidates per profile on average"
    )
    print(
        f"match all (best of {RUNS}): {best * 1000:.0f} ms, "
        f"{best / PROFILES * 1e6:.1f} µs per profile"
    )


if __name__ == "__main__":
    main()
