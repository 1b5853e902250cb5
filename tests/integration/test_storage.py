"""Storage on SQLite and PostgreSQL: state survives, conflicts are detected, erasure is complete."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from conversations.model import ConversationState
from storage.db import create_engine, session_factory
from storage.models import Consent, Conversation, FunnelEvent, Person, Profile
from storage.uow import UnitOfWork

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)


@pytest.fixture
async def uow_factory(database_url: str) -> AsyncIterator[type[UnitOfWork] | object]:
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    yield lambda: UnitOfWork(sessions)
    await engine.dispose()


def a_state(step: str = "age", **answers: object) -> ConversationState:
    return ConversationState(flow="mentee", step=step, answers={"first_name": "Inès", **answers})


async def a_person_with_conversation(uow_factory, telegram_id: int = 1001) -> int:  # type: ignore[no-untyped-def]
    async with uow_factory() as uow:
        person = await uow.people.seen(telegram_id, "fr", NOW)
        row = uow.conversations.start(person, telegram_id, a_state(), "ecole_93", NOW)
        await uow.commit()
        return row.id


async def test_a_conversation_reads_back_as_it_was_saved(uow_factory) -> None:  # type: ignore[no-untyped-def]
    await a_person_with_conversation(uow_factory)
    async with uow_factory() as uow:
        person = await uow.people.seen(1001, "fr", NOW)
        row = await uow.conversations.active_for(person)
        assert row is not None
        uow.conversations.save(row, a_state("needs", age=17, needs=("orientation", "job")), NOW)
        await uow.commit()
    async with uow_factory() as uow:
        person = await uow.people.seen(1001, "fr", NOW)
        row = await uow.conversations.active_for(person)
        assert row is not None
        state = uow.conversations.state_of(row)
        assert row.source == "ecole_93"
        assert row.updated_at == NOW
    assert state.step == "needs"
    assert state.answers == {"first_name": "Inès", "age": 17, "needs": ("orientation", "job")}


async def test_leaving_without_commit_keeps_nothing(uow_factory) -> None:  # type: ignore[no-untyped-def]
    async with uow_factory() as uow:
        person = await uow.people.seen(2002, "fr", NOW)
        uow.conversations.start(person, 2002, a_state(), None, NOW)
        await uow.flush()
    async with uow_factory() as uow:
        assert await uow.people.by_telegram_id(2002) is None


async def test_two_instances_saving_one_conversation_cannot_both_win(
    uow_factory, database_url
) -> None:  # type: ignore[no-untyped-def]
    if database_url.startswith("sqlite"):
        pytest.skip(
            "SQLite takes the write lock at BEGIN (storage.db): a second writer waits for the "
            "first instead of racing it, so there is no conflict to detect"
        )
    await a_person_with_conversation(uow_factory)
    first, second = uow_factory(), uow_factory()
    async with first, second:
        rows = []
        for uow in (first, second):
            person = await uow.people.by_telegram_id(1001)
            row = await uow.conversations.active_for(person)
            rows.append(row)
        first.conversations.save(rows[0], a_state("postal_code", age=17), NOW)
        await first.commit()
        second.conversations.save(rows[1], a_state("postal_code", age=18), NOW)
        with pytest.raises(StaleDataError):
            await second.commit()
    async with uow_factory() as uow:
        person = await uow.people.by_telegram_id(1001)
        row = await uow.conversations.active_for(person)
        assert uow.conversations.state_of(row).answers["age"] == 17


async def test_an_update_id_is_recorded_once(uow_factory) -> None:  # type: ignore[no-untyped-def]
    async with uow_factory() as uow:
        assert not await uow.updates.seen(42)
        uow.updates.record(42, NOW)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.updates.seen(42)
        uow.updates.record(42, NOW)
        with pytest.raises(IntegrityError):
            await uow.commit()


async def test_erasing_a_person_removes_their_data_but_keeps_anonymous_counts(uow_factory) -> None:  # type: ignore[no-untyped-def]
    conversation_id = await a_person_with_conversation(uow_factory)
    async with uow_factory() as uow:
        person = await uow.people.by_telegram_id(1001)
        profile = uow.profiles.add(
            Profile(
                person_id=person.id,
                conversation_id=conversation_id,
                role="mentee",
                answers={"first_name": "Inès"},
                language="fr",
                source=None,
                department="93",
                submitted_at=NOW,
            )
        )
        await uow.flush()
        uow.profiles.add_consent(
            Consent(
                person_id=person.id,
                profile_id=profile.id,
                kind="contact",
                text_version="v1",
                given_at=NOW,
            )
        )
        uow.funnel.record("mentee", None, "completed", NOW)
        await uow.commit()
    async with uow_factory() as uow:
        person = await uow.people.by_telegram_id(1001)
        await uow.people.erase(person)
        await uow.commit()
    async with uow_factory() as uow:
        for table in (Person, Conversation, Profile, Consent):
            assert await uow.session.scalar(select(func.count()).select_from(table)) == 0
        assert await uow.session.scalar(select(func.count()).select_from(FunnelEvent)) == 1
        assert await uow.funnel.counts() == {("mentee", "completed"): 1}


async def test_times_come_back_as_aware_utc(uow_factory) -> None:  # type: ignore[no-untyped-def]
    await a_person_with_conversation(uow_factory)
    async with uow_factory() as uow:
        person = await uow.people.by_telegram_id(1001)
        assert person.created_at == NOW
        assert person.created_at.tzinfo is not None


async def test_old_update_ids_are_forgotten(uow_factory) -> None:  # type: ignore[no-untyped-def]
    async with uow_factory() as uow:
        uow.updates.record(1, datetime(2026, 11, 1, tzinfo=UTC))
        uow.updates.record(2, NOW)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.updates.forget_before(datetime(2026, 11, 20, tzinfo=UTC)) == 1
        await uow.commit()
    async with uow_factory() as uow:
        assert not await uow.updates.seen(1)
        assert await uow.updates.seen(2)


async def test_on_sqlite_64_updates_at_once_all_commit(sqlite_url: str) -> None:
    """A smoke test of the write path under concurrency. The failure it guards against ("database
    is locked" once the waits add up past the busy timeout) needs more load than a test should
    carry: `bench/bench_chat.py` without the flood limit is what reproduced it."""
    import asyncio

    from storage.db import write_lock

    engine = create_engine(sqlite_url)
    sessions = session_factory(engine)
    lock = write_lock(sqlite_url)
    people = range(7000, 7064)
    async with UnitOfWork(sessions, lock) as uow:
        for telegram_id in people:
            await uow.people.seen(telegram_id, "fr", NOW)
        await uow.commit()

    async def next_message(telegram_id: int) -> None:
        async with UnitOfWork(sessions, lock) as uow:
            await uow.people.seen(telegram_id, "fr", NOW)  # reads, then updates last_seen
            await asyncio.sleep(0.01)  # another update's transaction runs meanwhile
            uow.updates.record(telegram_id, NOW)
            await uow.commit()

    await asyncio.gather(*(next_message(telegram_id) for telegram_id in people))
    async with UnitOfWork(sessions, lock) as uow:
        for telegram_id in people:
            assert await uow.updates.seen(telegram_id)
    await engine.dispose()


async def test_a_database_error_does_not_quote_the_answers_it_was_given(database_url: str) -> None:
    """Errors are logged with their traceback: the SQL parameters (answers) must not be in them."""
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    async with UnitOfWork(sessions) as uow:
        await uow.people.seen(31337, "fr", NOW)
        await uow.commit()
    async with UnitOfWork(sessions) as uow:
        # The same Telegram account a second time, with the answer "+33612345678" as its source.
        uow.session.add(
            Person(telegram_id=31337, source="+33612345678", created_at=NOW, last_seen_at=NOW)
        )
        with pytest.raises(IntegrityError) as raised:
            await uow.commit()
    assert "+33612345678" not in str(raised.value)
    await engine.dispose()
