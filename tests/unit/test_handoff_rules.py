"""The handoff lifecycle: allowed transitions, who may press what, and when silence acts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from conversations.handoff import HandoffAction, HandoffStatus, SilenceRules, may_act, next_status

A, S = HandoffAction, HandoffStatus
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "action", "expected"),
    [
        (S.PROPOSED, A.DELIVER, S.DELIVERED),
        (S.PROPOSED, A.TAKE, S.TAKEN),
        (S.DELIVERED, A.TAKE, S.TAKEN),
        (S.TAKEN, A.CONTACTED, S.CONTACTED),
        (S.CONTACTED, A.CLOSE, S.CLOSED),
        (S.TAKEN, A.CLOSE, S.CLOSED),
        (S.DELIVERED, A.DECLINE, S.DECLINED),
        (S.TAKEN, A.DECLINE, S.DECLINED),
        (S.DELIVERED, A.EXPIRE, S.EXPIRED),
        (S.CONTACTED, A.ERASE, S.ERASED),
    ],
)
def test_each_step_of_the_lifecycle_leads_where_it_should(
    status: HandoffStatus, action: HandoffAction, expected: HandoffStatus
) -> None:
    assert next_status(status, action) is expected


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (S.TAKEN, A.TAKE),  # the second of two simultaneous presses
        (S.CLOSED, A.TAKE),
        (S.DECLINED, A.DECLINE),
        (S.PROPOSED, A.CONTACTED),
        (S.TAKEN, A.EXPIRE),  # silence never undoes a take
        (S.DELIVERED, A.DELIVER),
        (S.ERASED, A.TAKE),
    ],
)
def test_an_action_that_makes_no_sense_now_changes_nothing(
    status: HandoffStatus, action: HandoffAction
) -> None:
    assert next_status(status, action) is None


def test_an_unknown_stored_status_refuses_every_action() -> None:
    assert next_status("archived", A.TAKE) is None


def test_only_a_coordinator_of_the_association_may_press() -> None:
    assert may_act(A.TAKE, S.DELIVERED, presser_is_coordinator=True, presser_took_it=False)
    assert not may_act(A.TAKE, S.DELIVERED, presser_is_coordinator=False, presser_took_it=False)


def test_once_taken_only_the_taker_may_go_on() -> None:
    assert may_act(A.CONTACTED, S.TAKEN, presser_is_coordinator=True, presser_took_it=True)
    assert not may_act(A.CONTACTED, S.TAKEN, presser_is_coordinator=True, presser_took_it=False)
    assert not may_act(A.DECLINE, S.CONTACTED, presser_is_coordinator=True, presser_took_it=False)


def test_automatic_transitions_cannot_be_pressed() -> None:
    for action in (A.DELIVER, A.EXPIRE, A.ERASE):
        assert not may_act(action, S.PROPOSED, presser_is_coordinator=True, presser_took_it=True)


def test_silence_reminds_after_48_hours_once_then_reroutes_after_7_days() -> None:
    rules = SilenceRules()
    assert rules.due(S.DELIVERED, T0, reminded=False, now=T0 + timedelta(hours=47)) is None
    assert rules.due(S.DELIVERED, T0, reminded=False, now=T0 + timedelta(hours=48)) == "remind"
    assert rules.due(S.DELIVERED, T0, reminded=True, now=T0 + timedelta(hours=100)) is None
    assert rules.due(S.DELIVERED, T0, reminded=True, now=T0 + timedelta(days=7)) == "reroute"
    assert rules.due(S.PROPOSED, T0, reminded=False, now=T0 + timedelta(days=8)) == "reroute"


def test_silence_leaves_a_taken_contact_alone() -> None:
    assert SilenceRules().due(S.TAKEN, T0, reminded=False, now=T0 + timedelta(days=30)) is None


def test_silence_delays_are_settings() -> None:
    rules = SilenceRules(remind_after=timedelta(hours=1), reroute_after=timedelta(hours=2))
    assert rules.due(S.DELIVERED, T0, reminded=False, now=T0 + timedelta(hours=1)) == "remind"
    assert rules.due(S.DELIVERED, T0, reminded=True, now=T0 + timedelta(hours=2)) == "reroute"


def test_a_contact_the_association_took_from_its_crm_names_its_team_on_the_cards() -> None:
    from conversations.entities import Handoff
    from conversations.services import cards

    now = datetime.now(UTC)
    handoff = Handoff(profile_id=1, association_id=1, status=HandoffStatus.TAKEN, created_at=now)
    line = cards.status_line(handoff, None, None, coordinator_id=7, reroute_days=7)
    assert line == cards.STATUS_TAKEN_BY.fmt(coordinator=cards.TEAM)
