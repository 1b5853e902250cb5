"""The association catalogue: import a validated YAML catalogue, read it back for matching.

The sample catalogue of the eight founding associations is imported automatically into an empty
database, so that a newcomer's first run matches real-looking associations.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from statistics import median
from typing import Any

from conversations.catalog import AssociationEntry, Catalog, load_catalog, to_association
from conversations.entities import AssociationRecord
from conversations.matching import Association, AssociationIndex
from conversations.ports import CatalogChanges, Conflict, UnitOfWork, UnitOfWorkFactory
from conversations.services import access
from conversations.services.access import Staff

log = logging.getLogger(__name__)


async def import_catalog(
    unit_of_work: UnitOfWorkFactory, catalog: Catalog, now: datetime, dry_run: bool = False
) -> CatalogChanges:
    """Upsert every association of the file; with `dry_run`, say what would change and keep nothing."""
    entries = {entry.slug: (entry.name, _stored(entry)) for entry in catalog.associations}
    async with unit_of_work() as uow:
        changes = await uow.catalog.upsert(entries, now)
        if not dry_run:
            await uow.commit()
    return changes


def _stored(entry: AssociationEntry) -> dict[str, Any]:
    """The entry as JSON, its webhook secret in clear: JSON mode would write pydantic's
    "**********" mask, and the relay signs with what is stored."""
    data = entry.model_dump(mode="json")
    if entry.handoff.webhook_secret is not None:
        data["handoff"]["webhook_secret"] = entry.handoff.webhook_secret.get_secret_value()
    return data


async def import_sample_if_empty(
    unit_of_work: UnitOfWorkFactory, now: datetime, path: Path
) -> bool:
    async with unit_of_work() as uow:
        if not await uow.catalog.is_empty():
            return False
    try:
        changes = await import_catalog(unit_of_work, load_catalog(path), now)
    except Conflict:
        # Replicas starting together on an empty database: another one imported it first.
        return False
    log.info("empty catalogue: imported %s associations", len(changes.added))
    return True


async def listing(unit_of_work: UnitOfWorkFactory) -> list[Association]:
    async with unit_of_work() as uow:
        return associations_of(await uow.catalog.records())


def associations_of(records: Iterable[AssociationRecord]) -> list[Association]:
    """Domain associations from stored entries; the `paused` column wins (coordinators' /pause)."""
    associations = []
    for record in records:
        overrides: dict[str, object] = {"paused": record.paused}
        if record.weekly_capacity is not None:
            overrides["weekly_capacity"] = record.weekly_capacity
        entry = AssociationEntry.model_validate({**record.entry, **overrides})
        associations.append(to_association(entry))
    return associations


# --- for matching: the prepared index and the measured response speed --------------------------

# Recent behaviour is what a person will meet: older take delays no longer count.
SPEED_WINDOW = timedelta(days=90)
_indexes: dict[tuple[tuple[Any, ...], ...], AssociationIndex] = {}


def index_of(records: Iterable[AssociationRecord]) -> AssociationIndex:
    """The matching index of this catalogue version, built once and reused for every profile.

    A version is what matching reads of each record: its entry (changed by an import), its paused
    flag and its dashboard capacity; any change gives a new version, hence a new index.
    """
    records = list(records)
    version = tuple(
        (r.slug, r.updated_at, r.paused, r.weekly_capacity, repr(sorted(r.entry.items())))
        for r in sorted(records, key=lambda r: r.slug)
    )
    index = _indexes.get(version)
    if index is None:
        # One catalogue at a time in practice: keep the last few versions only.
        if len(_indexes) >= 4:
            _indexes.clear()
        index = _indexes[version] = AssociationIndex(associations_of(records))
    return index


async def response_hours(uow: UnitOfWork, now: datetime) -> dict[str, float]:
    """Each association's median proposed-to-taken delay, in hours, by slug: the handoffs taken
    in the last 90 days.

    Measured from the stored handoffs, it replaces the catalogue's promised `response_days` in the
    score once an association has taken contacts.
    """
    hours: dict[str, list[float]] = {}
    for slug, created, taken in await uow.handoffs.take_delays():
        if taken >= now - SPEED_WINDOW:
            hours.setdefault(slug, []).append((taken - created).total_seconds() / 3600)
    return {slug: median(values) for slug, values in hours.items()}


# --- from the staff dashboard --------------------------------------------------------------------

# A week's capacity set from the dashboard: what an association could plausibly take.
CAPACITY_MAX = 10_000


async def set_paused(
    uow: UnitOfWork, who: Staff, association_id: int, paused: bool, now: datetime
) -> AssociationRecord | None:
    """Pause or resume an association this account may see; None when it may not."""
    record = await uow.catalog.get(association_id)
    if record is None or not who.sees(association_id):
        return None
    if record.paused != paused:
        record.paused = paused
        access.record(uow, who, "pause" if paused else "resume", record.slug, now)
        log.info("%s %s from the dashboard", record.slug, "paused" if paused else "resumed")
    return record


async def set_capacity(
    uow: UnitOfWork, who: Staff, association_id: int, capacity: int | None, now: datetime
) -> AssociationRecord | None:
    """A weekly capacity that wins over the catalogue's (None goes back to the catalogue's)."""
    record = await uow.catalog.get(association_id)
    if record is None or not who.sees(association_id):
        return None
    if capacity is not None and not 0 <= capacity <= CAPACITY_MAX:
        raise ValueError(f"a weekly capacity is between 0 and {CAPACITY_MAX}")
    if record.weekly_capacity != capacity:
        record.weekly_capacity = capacity
        shown = "catalogue" if capacity is None else str(capacity)
        access.record(uow, who, "capacity", record.slug, now, shown)
    return record
