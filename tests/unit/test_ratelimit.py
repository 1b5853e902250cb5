"""The flood limit's order: a person waiting in front of the chat before background sends; a 429
pauses everything for its retry_after, then the request is made again."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from telegram.error import RetryAfter

from bot.ratelimit import BACKGROUND, PriorityRateLimiter


async def through(
    limiter: PriorityRateLimiter, done: list[str], name: str, background: bool = False
) -> Any:
    async def call() -> bool:
        done.append(name)
        return True

    return await limiter.process_request(
        call, (), {}, "sendMessage", {}, BACKGROUND if background else None
    )


async def test_a_reply_overtakes_the_background_sends_already_waiting() -> None:
    limiter = PriorityRateLimiter(max_rate=50)
    await limiter.initialize()
    done: list[str] = []
    # A relay catching up: far more than one second's worth, queued first.
    backlog = [asyncio.create_task(through(limiter, done, f"bg{i}", True)) for i in range(80)]
    await asyncio.sleep(0.05)
    reply = asyncio.create_task(through(limiter, done, "reply"))
    await asyncio.gather(*backlog, reply)
    await limiter.shutdown()
    # The first second's burst went out at once; the reply took the next free slot.
    assert done.index("reply") <= 55
    assert done.index("reply") < done.index("bg79")
    assert sorted(done) == sorted([f"bg{i}" for i in range(80)] + ["reply"])


async def test_without_a_limit_nothing_waits_and_order_is_kept() -> None:
    limiter = PriorityRateLimiter(max_rate=0)
    await limiter.initialize()
    done: list[str] = []
    await asyncio.gather(*(through(limiter, done, str(i), i % 2 == 0) for i in range(20)))
    assert done == [str(i) for i in range(20)]


async def test_a_429_pauses_every_request_then_tries_again() -> None:
    limiter = PriorityRateLimiter(max_rate=0)
    await limiter.initialize()
    loop = asyncio.get_running_loop()
    calls: list[tuple[str, float]] = []
    refused = False

    async def flooded() -> bool:
        nonlocal refused
        calls.append(("flooded", loop.time()))
        if not refused:
            refused = True
            raise RetryAfter(1)
        return True

    async def other() -> bool:
        calls.append(("other", loop.time()))
        return True

    started = loop.time()
    first = asyncio.create_task(limiter.process_request(flooded, (), {}, "sendMessage", {}, None))
    await asyncio.sleep(0.1)
    # Sent while Telegram asked to wait: it waits too.
    second = await limiter.process_request(other, (), {}, "sendMessage", {}, None)
    assert await first is True
    assert second is True
    assert [name for name, _ in calls] == ["flooded", "flooded", "other"] or [
        name for name, _ in calls
    ] == ["flooded", "other", "flooded"]
    assert all(at - started >= 1.0 for name, at in calls[1:])


async def test_a_request_refused_again_and_again_gives_up_with_the_429() -> None:
    limiter = PriorityRateLimiter(max_rate=0, max_retries=2)
    await limiter.initialize()
    tries = 0

    async def flooded() -> bool:
        nonlocal tries
        tries += 1
        raise RetryAfter(0)

    with pytest.raises(RetryAfter):
        await limiter.process_request(flooded, (), {}, "sendMessage", {}, None)
    assert tries == 3


async def test_a_background_send_refused_gives_the_429_back_at_once_and_replies_wait() -> None:
    """The relay reschedules it by its own clock; meanwhile a reply still waits out the pause."""
    limiter = PriorityRateLimiter(max_rate=0)
    await limiter.initialize()
    loop = asyncio.get_running_loop()

    async def flooded() -> bool:
        raise RetryAfter(1)

    started = loop.time()
    with pytest.raises(RetryAfter):
        await limiter.process_request(flooded, (), {}, "sendMessage", {}, BACKGROUND)
    assert loop.time() - started < 1.0
    done: list[str] = []
    await through(limiter, done, "reply")
    assert loop.time() - started >= 1.0
