"""Matching on a labelled set of realistic people: at least 90 % go first to an acceptable association."""

from __future__ import annotations

from tests.data.matching_eval import TARGET, evaluate, misses, table, top1


def test_nine_people_in_ten_are_sent_first_to_an_association_made_for_them() -> None:
    outcomes = evaluate()
    print(table(outcomes))

    assert len(outcomes) >= 40
    assert top1(outcomes) >= TARGET, f"top-1 {top1(outcomes):.0%}, misses:\n{misses(outcomes)}"


def test_the_set_covers_every_age_situation_and_mentor_profile() -> None:
    import yaml

    from conversations.matching import MENTEE_SITUATIONS, MENTOR_SITUATIONS
    from tests.data.matching_eval import EVALUATION_SET

    profiles = yaml.safe_load(EVALUATION_SET.read_text(encoding="utf-8"))["profiles"]
    mentees = [p["answers"] for p in profiles if p["role"] == "mentee"]
    mentors = [p["answers"] for p in profiles if p["role"] == "mentor"]
    assert {a["situation"] for a in mentees} == MENTEE_SITUATIONS
    assert {a["situation"] for a in mentors} == MENTOR_SITUATIONS
    ages = {a["age"] for a in mentees}
    assert all(any(low <= age <= low + 4 for age in ages) for low in range(5, 30, 5))
    assert {5, 30} <= ages
    codes = {a["postal_code"][:3] for a in mentees + mentors}
    assert {"971", "972", "973", "974", "976"} <= codes
    assert {a["postal_code"][:2] for a in mentees} >= {"20"}  # Corsica, 2A and 2B
    assert {a.get("area") for a in mentees} >= {"qpv", "rural"}
