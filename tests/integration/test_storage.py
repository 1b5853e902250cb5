"""Storage on SQLite and PostgreSQL: state survives, conflicts are detected, erasure is complete."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from conversations.entities import Consent, Handoff, Person, Profile
from conversations.model import ConversationState, Status
from conversations.ports import Conflict
from storage.db import create_engine, session_factory
from storage.tables import consents, conversations, funnel_events, people, profiles
from storage.uow import UnitOfWork

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)


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
        row.save(a_state("needs", age=17, needs=("orientation", "job")), NOW)
        await uow.commit()
    async with uow_factory() as uow:
        person = await uow.people.seen(1001, "fr", NOW)
        row = await uow.conversations.active_for(person)
        assert row is not None
        state = row.state()
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
        rows[0].save(a_state("postal_code", age=17), NOW)
        await first.commit()
        rows[1].save(a_state("postal_code", age=18), NOW)
        with pytest.raises(Conflict) as raised:
            await second.commit()
        assert isinstance(raised.value.__cause__, StaleDataError)
    async with uow_factory() as uow:
        person = await uow.people.by_telegram_id(1001)
        row = await uow.conversations.active_for(person)
        assert row.state().answers["age"] == 17


async def test_an_update_id_is_recorded_once(uow_factory) -> None:  # type: ignore[no-untyped-def]
    async with uow_factory() as uow:
        assert not await uow.updates.seen(42)
        uow.updates.record(42, NOW)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.updates.seen(42)
        uow.updates.record(42, NOW)
        with pytest.raises(Conflict) as raised:
            await uow.commit()
        assert isinstance(raised.value.__cause__, IntegrityError)


async def test_erasing_a_person_removes_their_data_but_keeps_anonymous_counts(uow_factory) -> None:  # type: ignore[no-untyped-def]
    conversation_id = await a_person_with_conversation(uow_factory)
    async with uow_factory() as uow:
        person = await uow.people.by_telegram_id(1001)
        profile = uow.profiles.add(
            Profile(
                person_id=person.id,
                conversation_id=conversation_id,
                role="mentee",
                flow="mentee",
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
        for table in (people, conversations, profiles, consents):
            assert await uow.session.scalar(select(func.count()).select_from(table)) == 0
        assert await uow.session.scalar(select(func.count()).select_from(funnel_events)) == 1
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
    carry: `bench/bench_e2e.py` (flood limit lifted) is what reproduces it."""

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
        with pytest.raises(Conflict) as raised:
            await uow.commit()
    assert "+33612345678" not in str(raised.value)
    assert "+33612345678" not in str(raised.value.__cause__)
    await engine.dispose()


async def a_handoff(uow_factory, telegram_id: int = 1001) -> tuple[int, int, int, int]:  # type: ignore[no-untyped-def]
    """A person's profile proposed to an association: (person, profile, association, handoff) ids."""
    conversation_id = await a_person_with_conversation(uow_factory, telegram_id)
    async with uow_factory() as uow:
        person = await uow.people.by_telegram_id(telegram_id)
        profile = uow.profiles.add(
            Profile(
                person_id=person.id,
                conversation_id=conversation_id,
                role="mentee",
                flow="mentee",
                answers={"first_name": "Inès"},
                language="fr",
                submitted_at=NOW,
            )
        )
        await uow.catalog.upsert({"afev": ("Afev", {"slug": "afev"})}, NOW)
        await uow.flush()
        association = await uow.catalog.by_slug("afev")
        handoff = uow.handoffs.add(
            Handoff(
                profile_id=profile.id,
                association_id=association.id,
                status="proposed",
                created_at=NOW,
            )
        )
        await uow.commit()
        return person.id, profile.id, association.id, handoff.id


async def test_two_units_of_work_changing_one_handoff_the_second_commit_is_a_conflict(
    uow_factory,
) -> None:  # type: ignore[no-untyped-def]
    *_, handoff_id = await a_handoff(uow_factory)
    async with uow_factory() as first:
        mine = await first.handoffs.get(handoff_id)
        assert mine.version == 1
        # Ends the read (SQLite holds its write lock from BEGIN on); `mine` stays as it was read.
        await first.commit()
        async with uow_factory() as second:
            theirs = await second.handoffs.get(handoff_id)
            theirs.status, theirs.taken_at = "taken", NOW
            await second.commit()
        mine.status, mine.decline_reason = "declined", "full"
        with pytest.raises(Conflict) as raised:
            await first.commit()
        assert isinstance(raised.value.__cause__, StaleDataError)
    async with uow_factory() as uow:
        handoff = await uow.handoffs.get(handoff_id)
        assert (handoff.status, handoff.decline_reason, handoff.version) == ("taken", None, 2)


async def test_two_coordinators_taking_one_handoff_at_once_one_of_them_wins(
    uow_factory, database_url
) -> None:  # type: ignore[no-untyped-def]
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite takes the write lock at BEGIN: the second writer waits for the first")
    *_, handoff_id = await a_handoff(uow_factory)
    first, second = uow_factory(), uow_factory()
    async with first, second:
        mine, theirs = [await uow.handoffs.get(handoff_id) for uow in (first, second)]
        mine.status = theirs.status = "taken"
        await first.commit()
        with pytest.raises(Conflict):
            await second.commit()


async def test_a_duplicate_update_id_is_refused_by_the_claim_itself(uow_factory) -> None:  # type: ignore[no-untyped-def]
    async with uow_factory() as uow:
        assert await uow.updates.claim(42, NOW)
        await uow.commit()
    async with uow_factory() as uow:
        # ON CONFLICT DO NOTHING: no error, nothing inserted, and the transaction goes on.
        assert not await uow.updates.claim(42, NOW)
        assert await uow.updates.claim(43, NOW)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.updates.seen(42)
        assert await uow.updates.seen(43)


async def test_a_claim_rolled_back_leaves_the_update_to_handle(uow_factory) -> None:  # type: ignore[no-untyped-def]
    async with uow_factory() as uow:
        assert await uow.updates.claim(42, NOW)
    async with uow_factory() as uow:
        assert await uow.updates.claim(42, NOW)


async def test_a_second_process_claiming_an_update_waits_for_the_first(
    postgres_url: str,
) -> None:
    engine = create_engine(postgres_url)
    sessions = session_factory(engine)
    try:
        for first_commits in (True, False):
            update_id = 50 + first_commits
            async with UnitOfWork(sessions) as first:
                assert await first.updates.claim(update_id, NOW)

                async def second_claims(update_id: int = update_id) -> bool:
                    async with UnitOfWork(sessions) as second:
                        claimed = await second.updates.claim(update_id, NOW)
                        await second.commit()
                        return claimed

                second = asyncio.create_task(second_claims())
                await asyncio.sleep(0.3)
                assert not second.done(), "the second claim must wait for the first's end"
                if first_commits:
                    await first.commit()
            # Committed: the second is a duplicate; rolled back: the update is the second's.
            assert await second is not first_commits
    finally:
        await engine.dispose()


async def test_a_conflict_found_by_an_autoflush_leaves_the_block_as_a_conflict(
    uow_factory,
) -> None:  # type: ignore[no-untyped-def]
    async with uow_factory() as uow:
        uow.updates.record(42, NOW)
        await uow.commit()

    async def record_then_query() -> None:
        async with uow_factory() as uow:
            uow.updates.record(42, NOW)
            await uow.people.by_telegram_id(1)  # the query flushes first

    with pytest.raises(Conflict) as raised:
        await record_then_query()
    assert isinstance(raised.value.__cause__, IntegrityError)
    async with uow_factory() as uow:
        uow.updates.record(42, NOW)
        with pytest.raises(Conflict):
            await uow.flush()

    # Other errors leave the block as they are.
    async def fail() -> None:
        async with uow_factory():
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        await fail()


async def test_new_rows_get_ids_and_a_first_version(uow_factory) -> None:  # type: ignore[no-untyped-def]
    person_id, profile_id, association_id, handoff_id = await a_handoff(uow_factory)
    async with uow_factory() as uow:
        person = await uow.people.get(person_id)
        profile = await uow.profiles.get(profile_id)
        association = await uow.catalog.get(association_id)
        handoff = await uow.handoffs.get(handoff_id)
        conversation = await uow.conversations.active_for(person)
        assert (person.telegram_id, profile.person_id, association.slug) == (
            1001,
            person_id,
            "afev",
        )
        assert (profile.status, profile.match, association.paused) == ("matched", None, False)
        assert (handoff.version, conversation.version) == (1, 1)
        handoff.status = "delivered"
        await uow.commit()
        assert handoff.version == 2
        assert await uow.people.get(999) is None
        assert await uow.profiles.get(999) is None
        assert await uow.catalog.get(999) is None
    async with uow_factory() as uow:
        # No match yet is SQL NULL, not the JSON value null.
        nulls = await uow.session.scalar(
            select(func.count()).select_from(profiles).where(profiles.c.match.is_(None))
        )
        assert nulls == 1


async def test_handoff_counts_by_status(uow_factory) -> None:  # type: ignore[no-untyped-def]
    *_, first = await a_handoff(uow_factory, 1001)
    await a_handoff(uow_factory, 1002)
    async with uow_factory() as uow:
        assert await uow.handoffs.counts_by_status() == {"proposed": 2}
        (await uow.handoffs.get(first)).status = "taken"
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.handoffs.counts_by_status() == {"proposed": 1, "taken": 1}


async def test_unfinished_conversations_are_purged_and_counted(uow_factory) -> None:  # type: ignore[no-untyped-def]
    await a_person_with_conversation(uow_factory, 1001)
    await a_person_with_conversation(uow_factory, 1002)
    async with uow_factory() as uow:
        person = await uow.people.by_telegram_id(1002)
        row = await uow.conversations.active_for(person)
        row.save(ConversationState("mentee", None, {}, Status.COMPLETED), NOW)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.conversations.purge_unfinished_before(NOW) == 0
        assert await uow.conversations.purge_unfinished_before(NOW + timedelta(seconds=1)) == 1
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.session.scalar(select(func.count()).select_from(conversations)) == 1


async def test_a_unit_of_work_pings_its_database(uow_factory) -> None:  # type: ignore[no-untyped-def]
    async with uow_factory() as uow:
        await uow.ping()


async def test_last_seen_moves_by_the_hour_not_at_every_answer(uow_factory) -> None:  # type: ignore[no-untyped-def]
    """Retention counts in days; an UPDATE of `people` on each answer would buy nothing."""
    for moment in (NOW, NOW + timedelta(minutes=59), NOW + timedelta(minutes=61)):
        async with uow_factory() as uow:
            await uow.people.seen(3003, "fr", moment)
            await uow.commit()
        async with uow_factory() as uow:
            person = await uow.people.by_telegram_id(3003)
            assert person is not None
            seen = person.last_seen_at
        expected = NOW if moment < NOW + timedelta(hours=1) else moment
        assert seen == expected


async def test_a_step_answered_again_after_back_counts_its_person_once(uow_factory) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    async with uow_factory() as uow:
        for journey in ("aaaa", "aaaa", "bbbb"):
            uow.funnel.record("mentee", "first_name", "answered", now, journey=journey)
        # Recorded before journeys existed: each event is its own person.
        uow.funnel.record("mentee", "first_name", "answered", now)
        uow.funnel.record("mentee", "first_name", "answered", now)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.funnel.answered_by_step() == {("mentee", "first_name"): 4}
