"""The migrations describe `storage.tables` exactly, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from storage.db import create_engine
from storage.tables import map_entities, mapper_registry, metadata


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "target_metadata": metadata}
    )
    return list(compare_metadata(context, metadata))


async def test_autogenerate_finds_nothing_to_migrate(database_url: str) -> None:
    # `database_url` is migrated to head by its fixture.
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(_differences)
    finally:
        await engine.dispose()
    assert differences == []


def test_entities_are_mapped_once_however_often_it_is_asked() -> None:
    import storage.uow  # noqa: F401  (maps on import)

    mapped = len(mapper_registry.mappers)
    map_entities()
    map_entities()
    assert len(mapper_registry.mappers) == mapped == 14
