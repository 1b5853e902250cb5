"""The labelled evaluation set of matching: load it, match every profile, print the table.

Shared by tests/unit/test_matching_eval.py (which fails below the target) and `make bench`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from conversations.catalog import load_catalog
from conversations.matching import AssociationIndex, facts_from_answers, match
from conversations.model import Answer

ROOT = Path(__file__).resolve().parents[2]
EVALUATION_SET = ROOT / "tests" / "data" / "matching_eval.yaml"
SAMPLE = ROOT / "bot" / "data" / "catalog.sample.yaml"
TARGET = 0.9


@dataclass(frozen=True)
class Outcome:
    id: str
    acceptable: tuple[str, ...]
    chosen: str | None
    why: str

    @property
    def hit(self) -> bool:
        # An empty acceptable list means nobody should take the profile.
        return self.chosen in self.acceptable if self.acceptable else self.chosen is None


def _answers(raw: dict[str, Any]) -> dict[str, Answer]:
    # The flows store multi-choice answers as tuples.
    return {key: tuple(value) if isinstance(value, list) else value for key, value in raw.items()}


def evaluate(
    evaluation_set: Path = EVALUATION_SET, catalogue: Path = SAMPLE
) -> tuple[Outcome, ...]:
    profiles = yaml.safe_load(evaluation_set.read_text(encoding="utf-8"))["profiles"]
    index = AssociationIndex(load_catalog(catalogue).to_associations())
    outcomes = []
    for profile in profiles:
        facts = facts_from_answers(profile["role"], _answers(profile["answers"]))
        best = match(facts, index, {}).best
        outcomes.append(
            Outcome(
                id=profile["id"],
                acceptable=tuple(profile["acceptable"]),
                chosen=best.association.slug if best else None,
                why=profile["why"],
            )
        )
    return tuple(outcomes)


def top1(outcomes: tuple[Outcome, ...]) -> float:
    return sum(outcome.hit for outcome in outcomes) / len(outcomes)


def table(outcomes: tuple[Outcome, ...]) -> str:
    """One line per profile (misses marked), then the top-1 rate."""
    width = max(len(outcome.id) for outcome in outcomes)
    lines = []
    for outcome in outcomes:
        mark = "ok  " if outcome.hit else "MISS"
        wanted = ", ".join(outcome.acceptable) or "(nobody)"
        lines.append(
            f"{mark} {outcome.id:<{width}}  got {outcome.chosen or '(nobody)':<26} want {wanted}"
        )
    hits = sum(outcome.hit for outcome in outcomes)
    lines.append(f"top-1 in the acceptable set: {hits}/{len(outcomes)} = {top1(outcomes):.0%}")
    return "\n".join(lines)


def misses(outcomes: tuple[Outcome, ...]) -> str:
    return "\n".join(
        f"{o.id}: got {o.chosen}, want {', '.join(o.acceptable) or 'nobody'} ({o.why})"
        for o in outcomes
        if not o.hit
    )
