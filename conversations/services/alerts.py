"""Messages to the Collectif's admins: what only a person at the Collectif can fix."""

from __future__ import annotations

from datetime import datetime

from conversations.ports import AdminAlert, Claimed, UnitOfWork
from conversations.text import Text, _

DEAD_LETTER = _(
    "⚠️ Un message n'a pas pu être remis après plusieurs essais (n° %(id)s, %(kind)s) : %(reason)s"
)


async def alert_admins(
    uow: UnitOfWork, admins: tuple[int, ...], key: str, text: Text, now: datetime
) -> None:
    """One alert per admin; `key` makes a repeated cause alert once."""
    for admin in admins:
        await uow.outbox.enqueue(f"{key}:{admin}", AdminAlert(admin, text), now)


async def dead_lettered(
    uow: UnitOfWork, admins: tuple[int, ...], claimed: Claimed, reason: str, now: datetime
) -> None:
    """A message no retry will deliver: it stops, and the admins hear of it."""
    await uow.outbox.mark_dead(claimed.id, claimed.attempts + 1, reason)
    # An alert about a dead alert would loop: admins hear about other messages only.
    if isinstance(claimed.message, AdminAlert):
        return
    kind = type(claimed.message).__name__
    text = DEAD_LETTER.fmt(id=claimed.id, kind=kind, reason=reason)
    await alert_admins(uow, admins, f"dead:{claimed.id}", text, now)
