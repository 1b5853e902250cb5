"""An association's CRM acts on its handoffs by signed requests, under the buttons' rules; and it
hears of the moves made by the association's coordinators."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import pytest

from conversations.entities import Handoff
from conversations.handoff import HandoffStatus, HandoffVerb
from conversations.ports import AssociationWebhook, PersonNotice
from conversations.services import crm, handoffs
from conversations.services.crm import CrmAnswer, CrmRequest, Outcome
from tests.unit.fakes import Scene, a_catalog, an_association, only

NADIA, DORA = 101, 601
SECRET = "a-secret-of-thirty-two-characters"
WEBHOOK = "https://crm.alpha.example/hook"
CRM_ONLY = {"telegram": False, "webhook_url": WEBHOOK, "webhook_secret": SECRET}


async def a_contact_in_a_crm() -> tuple[Scene, Handoff]:
    """Nadia signed up; her contact went to alpha, which has a CRM and no coordinator. Beta
    (Dora, on Telegram) fits her too, next."""
    scene = Scene()
    alpha = an_association("alpha", handoff=CRM_ONLY)
    await scene.import_catalog(a_catalog(alpha, an_association("beta")))
    await scene.coordinator("beta", DORA, "Dora")
    await scene.person(NADIA, "Nadia").fill()
    await scene.deliver()
    handoff = only(scene.handoffs())
    assert scene.slug_of(handoff) == "alpha"
    return scene, handoff


def signed(
    handoff_id: int,
    body: dict[str, Any] | bytes,
    *,
    scene: Scene,
    slug: str = "alpha",
    secret: str = SECRET,
    age: timedelta = timedelta(),
    url_id: int | None = None,
) -> CrmRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    timestamp = str(int((scene.now - age).timestamp()))
    return CrmRequest(
        association=slug,
        handoff_id=url_id if url_id is not None else handoff_id,
        timestamp=timestamp,
        signature=crm.signature(secret, timestamp, raw),
        body=raw,
    )


async def send(scene: Scene, request: CrmRequest) -> CrmAnswer:
    return await crm.receive(scene.unit_of_work, request, scene.now, scene.policy)


async def says(scene: Scene, handoff: Handoff, verb: str, **more: Any) -> CrmAnswer:
    body = {"handoff_id": handoff.id, "verb": verb, **more}
    return await send(scene, signed(handoff.id, body, scene=scene))


def elsewhere(request: CrmRequest, slug: str) -> CrmRequest:
    return CrmRequest(slug, request.handoff_id, request.timestamp, request.signature, request.body)


def current(scene: Scene, handoff: Handoff) -> Handoff:
    return scene.db.tables.handoffs[handoff.id]


def events_of(scene: Scene, handoff: Handoff) -> list[tuple[str, str | None]]:
    rows = scene.db.tables.events.values()
    return [(e.event, e.detail) for e in rows if e.handoff_id == handoff.id]


def crm_events(scene: Scene) -> list[str]:
    return [m.event for m in scene.pending(AssociationWebhook)]


# --- acting -------------------------------------------------------------------------------------


async def test_a_signed_taken_takes_the_contact_and_tells_the_young_person() -> None:
    scene, handoff = await a_contact_in_a_crm()

    answer = await says(scene, handoff, "taken")

    assert (answer.outcome, answer.status) == (Outcome.DONE, "taken")
    assert answer.queued > 0
    taken = current(scene, handoff)
    assert taken.status == HandoffStatus.TAKEN
    assert taken.taken_at == scene.now  # the take delay counts for the CRM too
    assert taken.taken_by is None
    notice = only(scene.pending(PersonNotice))
    assert notice.chat_id == NADIA
    assert notice.text.msgid == handoffs.PERSON_TAKEN_BY_ASSOCIATION["mentee"].msgid
    assert notice.text.params["association"] == "Alpha"
    assert events_of(scene, handoff)[-1] == ("taken", "crm")


async def test_a_crm_goes_through_contacted_to_closed() -> None:
    scene, handoff = await a_contact_in_a_crm()

    for verb in ("taken", "contacted", "closed"):
        assert (await says(scene, handoff, verb)).outcome is Outcome.DONE

    done = current(scene, handoff)
    assert done.status == HandoffStatus.CLOSED
    assert done.contacted_at is not None
    assert done.closed_at is not None
    assert [e for e, _ in events_of(scene, handoff)][-3:] == ["taken", "contacted", "closed"]


async def test_a_retried_request_changes_nothing_twice() -> None:
    scene, handoff = await a_contact_in_a_crm()
    request = signed(handoff.id, {"handoff_id": handoff.id, "verb": "taken"}, scene=scene)
    await send(scene, request)
    queued = len(scene.db.tables.outbox)
    events = len(scene.db.tables.events)

    again = await send(scene, request)

    assert (again.outcome, again.status, again.queued) == (Outcome.UNCHANGED, "taken", 0)
    assert len(scene.db.tables.outbox) == queued
    assert len(scene.db.tables.events) == events


async def test_declined_with_a_reason_sends_the_contact_to_the_next_association() -> None:
    scene, handoff = await a_contact_in_a_crm()

    answer = await says(scene, handoff, "declined", reason="full")

    assert answer.outcome is Outcome.DONE
    declined = current(scene, handoff)
    assert (declined.status, declined.decline_reason) == (HandoffStatus.DECLINED, "full")
    assert events_of(scene, handoff)[-1] == ("declined", "crm:full")
    second = scene.handoffs()[-1]
    assert scene.slug_of(second) == "beta"
    notice = only(scene.pending(PersonNotice))
    assert notice.text.msgid == handoffs.PERSON_REROUTED["mentee", "declined"].msgid
    # A second "declined" (a retry) sends her nowhere else.
    assert (await says(scene, handoff, "declined", reason="full")).outcome is Outcome.UNCHANGED
    assert len(scene.handoffs()) == 2


async def test_the_crm_hears_nothing_back_of_its_own_moves() -> None:
    scene, handoff = await a_contact_in_a_crm()

    await says(scene, handoff, "taken")
    await says(scene, handoff, "declined", reason="scope")

    assert crm_events(scene) == []


async def test_a_contact_that_moved_on_is_too_late_for_a_verb() -> None:
    scene, handoff = await a_contact_in_a_crm()

    early = await says(scene, handoff, "contacted")
    await says(scene, handoff, "declined", reason="scope")
    late = await says(scene, handoff, "taken")

    assert (early.outcome, early.status) == (Outcome.TOO_LATE, "delivered")
    assert (late.outcome, late.status) == (Outcome.TOO_LATE, "declined")
    assert current(scene, handoff).status == HandoffStatus.DECLINED


# --- refusals ------------------------------------------------------------------------------------


async def test_a_wrong_signature_or_an_old_timestamp_changes_nothing() -> None:
    scene, handoff = await a_contact_in_a_crm()
    body = {"handoff_id": handoff.id, "verb": "taken"}
    forged = signed(handoff.id, body, scene=scene, secret="not-the-association-secret")
    old = signed(handoff.id, body, scene=scene, age=timedelta(minutes=6))
    ahead = signed(handoff.id, body, scene=scene, age=-timedelta(minutes=6))
    events = len(scene.db.tables.events)

    answers = [await send(scene, request) for request in (forged, old, ahead)]

    assert [a.outcome for a in answers] == [Outcome.UNSIGNED, Outcome.STALE, Outcome.STALE]
    assert all(a.status is None for a in answers)  # nothing said about the handoff
    assert current(scene, handoff).status == HandoffStatus.DELIVERED
    assert len(scene.db.tables.events) == events
    assert scene.pending(PersonNotice) == []


async def test_a_moved_timestamp_breaks_the_signature() -> None:
    scene, handoff = await a_contact_in_a_crm()
    old = signed(
        handoff.id, {"handoff_id": handoff.id, "verb": "taken"}, scene=scene, age=timedelta(hours=1)
    )
    now = str(int(scene.now.timestamp()))

    answer = await send(
        scene, CrmRequest(old.association, old.handoff_id, now, old.signature, old.body)
    )

    assert answer.outcome is Outcome.UNSIGNED


async def test_an_association_without_a_secret_cannot_act() -> None:
    scene, handoff = await a_contact_in_a_crm()
    request = signed(handoff.id, {"handoff_id": handoff.id, "verb": "taken"}, scene=scene)

    beta = await send(scene, elsewhere(request, "beta"))  # on Telegram only: no secret
    nobody = await send(scene, elsewhere(request, "zeta"))

    assert (beta.outcome, nobody.outcome) == (Outcome.UNSIGNED, Outcome.UNSIGNED)
    assert current(scene, handoff).status == HandoffStatus.DELIVERED


async def test_another_associations_handoff_is_refused() -> None:
    scene, handoff = await a_contact_in_a_crm()
    await says(scene, handoff, "declined", reason="full")
    betas = scene.handoffs()[-1]  # now with beta, whose coordinator is Dora

    answer = await says(scene, betas, "taken")

    assert answer.outcome is Outcome.NOT_FOUND
    assert answer.status is None
    assert current(scene, betas).status != HandoffStatus.TAKEN


async def test_a_request_signed_for_one_handoff_is_good_for_no_other() -> None:
    scene, handoff = await a_contact_in_a_crm()
    body = {"handoff_id": handoff.id, "verb": "taken"}

    answer = await send(scene, signed(handoff.id, body, scene=scene, url_id=handoff.id + 1))

    assert answer.outcome is Outcome.MALFORMED
    assert "handoff_id" in (answer.error or "")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"verb": "adopted"}, "verb must be one of taken, contacted, declined, closed"),
        ({"verb": "declined"}, "declined needs a reason among full, scope, unreachable"),
        ({"verb": "declined", "reason": "bored"}, "declined needs a reason"),
        ({"verb": "taken", "reason": "full"}, "only declined takes a reason"),
        (b"not json", "body is not JSON"),
        (b"[1, 2]", "body is not a JSON object"),
        (b"{" * 100_000, "body over 4096 bytes"),
    ],
)
async def test_an_unknown_verb_or_a_bad_reason_is_refused_and_changes_nothing(
    body: dict[str, Any] | bytes, error: str
) -> None:
    scene, handoff = await a_contact_in_a_crm()
    if isinstance(body, dict):
        body = {"handoff_id": handoff.id, **body}

    answer = await send(scene, signed(handoff.id, body, scene=scene))

    assert answer.outcome is Outcome.MALFORMED
    assert error in (answer.error or "")
    assert current(scene, handoff).status == HandoffStatus.DELIVERED


async def test_refusals_and_moves_log_no_personal_data(caplog: pytest.LogCaptureFixture) -> None:
    scene, handoff = await a_contact_in_a_crm()
    caplog.set_level(logging.DEBUG)

    await says(scene, handoff, "taken")
    await send(scene, signed(handoff.id, b'{"first_name": "Nadia"}', scene=scene, secret="x"))

    assert "by the CRM of alpha" in caplog.text
    assert "refused" in caplog.text
    for secret in ("Nadia", SECRET, str(NADIA)):
        assert secret not in caplog.text


# --- what the CRM hears ---------------------------------------------------------------------------


async def a_contact_with_coordinators_and_a_crm() -> tuple[Scene, Handoff]:
    """Alpha has both: Camille on Telegram, and a CRM that receives every contact."""
    scene = Scene()
    both = {"telegram": True, "webhook_url": WEBHOOK, "webhook_secret": SECRET}
    await scene.import_catalog(a_catalog(an_association("alpha", handoff=both)))
    await scene.coordinator("alpha", 501, "Camille")
    await scene.person(NADIA, "Nadia").fill()
    await scene.deliver()
    return scene, only(scene.handoffs())


async def test_the_crm_hears_when_a_coordinator_takes_declines_or_closes() -> None:
    scene, handoff = await a_contact_with_coordinators_and_a_crm()
    camille = scene.person(501, "Camille")

    await camille.press(handoff, HandoffVerb.TAKE)
    await camille.press(handoff, HandoffVerb.CONTACTED)
    await camille.press(handoff, HandoffVerb.CLOSE)

    sent = scene.pending(AssociationWebhook)
    assert [m.event for m in sent] == ["handoff.taken", "handoff.contacted", "handoff.closed"]
    taken = sent[0].body
    assert (taken["handoff_id"], taken["association"], taken["by"]) == (
        handoff.id,
        "alpha",
        "coordinator",
    )
    assert taken["status"] == "taken"
    assert "Nadia" not in json.dumps([m.body for m in sent])  # the proposal carried the profile


async def test_the_crm_hears_why_a_coordinator_declined() -> None:
    scene, handoff = await a_contact_with_coordinators_and_a_crm()

    await scene.person(501, "Camille").press(handoff, HandoffVerb.DECLINE, "unreachable")

    declined = only(scene.pending(AssociationWebhook))
    assert (declined.event, declined.body["reason"]) == ("handoff.declined", "unreachable")


async def test_the_crm_hears_when_silence_sends_its_contact_elsewhere() -> None:
    scene, handoff = await a_contact_in_a_crm()

    await handoffs.chase_silence(scene.unit_of_work, scene.later(timedelta(days=8)), scene.policy)

    expired = only(scene.pending(AssociationWebhook))
    assert (expired.event, expired.body["by"]) == ("handoff.expired", "silence")
    assert current(scene, handoff).status == HandoffStatus.EXPIRED
