"""The inbox's storage on SQLite and PostgreSQL: what a redelivery finds, who takes a row over."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from storage.uow import UnitOfWork

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
STALE = timedelta(seconds=30)
UowFactory = Callable[[], UnitOfWork]


def body(update_id: int) -> dict[str, object]:
    return {"update_id": update_id, "message": {"text": "17"}}


async def test_a_redelivery_finds_its_row_and_a_new_update_does_not(
    uow_factory: UowFactory,
) -> None:
    async with uow_factory() as uow:
        assert await uow.inbox.store([(1, body(1))], NOW) == ({}, set())
        await uow.commit()
    async with uow_factory() as uow:
        known, answered = await uow.inbox.store([(1, body(1)), (2, body(2))], NOW)
        await uow.commit()
    assert (list(known), answered) == ([1], set())
    assert (known[1].body, known[1].attempts, known[1].failed) == (body(1), 0, False)


async def test_batches_of_every_size_are_kept_whole_and_once(uow_factory: UowFactory) -> None:
    """A batch is padded to a few fixed sizes (its last update repeated): every update is
    kept once, with its own body, and the padding shows nowhere."""
    start = 1
    for size in (1, 3, 5, 17, 37, 64, 99, 100):
        batch = [(n, body(n)) for n in range(start, start + size)]
        async with uow_factory() as uow:
            assert await uow.inbox.store(batch, NOW) == ({}, set())
            await uow.commit()
        async with uow_factory() as uow:
            known, answered = await uow.inbox.store(batch, NOW)
        assert sorted(known) == [n for n, _ in batch]
        assert answered == set()
        assert all(known[n].body == body(n) for n, _ in batch)
        start += size


async def test_only_an_update_handled_and_done_counts_as_answered_and_is_not_kept_again(
    uow_factory: UowFactory,
) -> None:
    """Handled with its row still there: its reply may not have gone, so it is not answered."""
    async with uow_factory() as uow:
        await uow.inbox.store([(1, body(1)), (2, body(2)), (3, body(3))], NOW)
        uow.updates.record(1, NOW)
        uow.updates.record(2, NOW)
        await uow.commit()
    async with uow_factory() as uow:
        await uow.inbox.done([1])
        await uow.commit()
    async with uow_factory() as uow:
        known, answered = await uow.inbox.store([(n, body(n)) for n in (1, 2, 3, 4)], NOW)
        await uow.commit()
    assert (sorted(known), answered) == ([2, 3], {1})
    async with uow_factory() as uow:
        # Update 4 is new and kept; update 1 is not kept again.
        known, answered = await uow.inbox.store([(1, body(1)), (4, body(4))], NOW)
    assert (sorted(known), answered) == ([4], {1})


async def test_a_stale_row_is_taken_over_once(uow_factory: UowFactory) -> None:
    async with uow_factory() as uow:
        await uow.inbox.store([(1, body(1)), (2, body(2))], NOW)
        await uow.commit()
    later = NOW + STALE + timedelta(seconds=1)
    async with uow_factory() as uow:
        await uow.inbox.touch([2], NOW + STALE)  # still held by its process
        assert await uow.inbox.take_over(1, later - STALE, later)
        assert not await uow.inbox.take_over(1, later - STALE, later)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.inbox.claim_stale(later - STALE, later, 10) == []
    much_later = later + STALE * 2
    async with uow_factory() as uow:
        taken = await uow.inbox.claim_stale(much_later - STALE, much_later, 10)
        await uow.commit()
    assert [(e.update_id, e.body) for e in taken] == [(1, body(1)), (2, body(2))]


async def test_a_given_up_row_keeps_no_body_and_is_never_replayed(uow_factory: UowFactory) -> None:
    async with uow_factory() as uow:
        await uow.inbox.store([(1, body(1))], NOW)
        assert await uow.inbox.attempt_failed(1, NOW) == 1
        assert await uow.inbox.attempt_failed(1, NOW) == 2
        await uow.inbox.give_up(1, NOW)
        await uow.commit()
    later = NOW + STALE * 3
    async with uow_factory() as uow:
        known, _answered = await uow.inbox.store([(1, body(1))], later)
        assert await uow.inbox.claim_stale(later, later, 10) == []
        assert await uow.inbox.forget_before(later) == 1
        await uow.commit()
    assert (known[1].body, known[1].failed) == (None, True)


async def test_a_backlog_larger_than_a_statement_takes_is_touched_and_done(
    uow_factory: UowFactory,
) -> None:
    """40,000 held ids: more parameters than one statement may carry on either backend."""
    many = list(range(1, 40_001))
    async with uow_factory() as uow:
        await uow.inbox.store([(n, {"update_id": n}) for n in many[:3]], NOW)
        await uow.commit()
    later = NOW + STALE * 2
    async with uow_factory() as uow:
        await uow.inbox.touch(many, later)
        assert await uow.inbox.claim_stale(later - STALE, later, 10) == []
        await uow.inbox.done(many)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.inbox.claim_stale(later + STALE, later + STALE, 10) == []
        assert await uow.inbox.store([(1, body(1))], later) == ({}, set())
