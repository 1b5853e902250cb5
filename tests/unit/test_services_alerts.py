"""Messages to the Collectif's admins: what only a person at the Collectif can fix."""

from __future__ import annotations

from conversations.ports import AdminAlert, Claimed, PersonNotice
from conversations.services import alerts
from conversations.text import Text
from tests.unit.fakes import ADMINS, DEAD, Scene, only


async def a_claimed(scene: Scene, message: PersonNotice | AdminAlert) -> Claimed:
    """A message the relay holds, as it does while it tries to send it."""
    async with scene.unit_of_work() as uow:
        await uow.outbox.enqueue("some:key", message, scene.now)
        await uow.commit()
    return only(await scene.claim())


async def dead_lettered(scene: Scene, claimed: Claimed, reason: str) -> None:
    async with scene.unit_of_work() as uow:
        await alerts.dead_lettered(uow, scene.policy.admins, claimed, reason, scene.now)
        await uow.commit()


async def test_a_message_no_retry_will_deliver_stops_and_each_admin_hears_of_it() -> None:
    scene = Scene()
    claimed = await a_claimed(scene, PersonNotice(101, "fr", Text("Bonne nouvelle")))

    await dead_lettered(scene, claimed, "Forbidden: bot was blocked by the user")

    row = scene.db.tables.outbox[claimed.id]
    assert (row.status, row.attempts, row.claimed_until) == (DEAD, 1, None)
    assert row.last_error == "Forbidden: bot was blocked by the user"
    sent_to = scene.pending(AdminAlert)
    assert sorted(a.chat_id for a in sent_to) == sorted(ADMINS)
    expected = alerts.DEAD_LETTER.fmt(
        id=claimed.id, kind="PersonNotice", reason="Forbidden: bot was blocked by the user"
    )
    assert [a.text for a in sent_to] == [expected] * len(ADMINS)


async def test_an_alert_that_cannot_be_delivered_does_not_alert_the_admins_again() -> None:
    scene = Scene()
    claimed = await a_claimed(scene, AdminAlert(ADMINS[0], Text("Profil sans association")))

    await dead_lettered(scene, claimed, "Forbidden: bot was blocked by the user")

    assert scene.db.tables.outbox[claimed.id].status == DEAD
    assert scene.pending(AdminAlert) == []


async def test_the_same_dead_message_reported_twice_alerts_the_admins_once() -> None:
    scene = Scene()
    claimed = await a_claimed(scene, PersonNotice(101, "fr", Text("Bonne nouvelle")))

    await dead_lettered(scene, claimed, "Forbidden")
    await dead_lettered(scene, claimed, "Forbidden")

    assert len(scene.pending(AdminAlert)) == len(ADMINS)
