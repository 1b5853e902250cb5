"""Alembic environment: migrations run on the async engine of the configured URL."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from storage.db import create_engine
from storage.tables import metadata

target_metadata = metadata


# Any constant shared by every process of the bot: pg_advisory_xact_lock(key) serialises migrations.
MIGRATION_LOCK = 0x6D656E746F726174  # "mentorat"


def _run(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Several replicas starting at once would race on CREATE TABLE alembic_version; the
        # first takes the lock and migrates, the others wait, then find nothing left to do.
        # Transaction-scoped, so it goes with the commit (or with a crashed connection).
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things: batch mode rebuilds tables when a migration needs it.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is not set"
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=context.config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
