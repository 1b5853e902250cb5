"""Faults under load: bot processes SIGKILLed while people answer, several processes on one fresh
PostgreSQL, poison updates. Nothing is lost, nothing is stored or sent twice, everyone gets to the
end of the questionnaire without typing /start again.

The randomness is seeded (FAULTS_SEED replays a run; each test prints its seed).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from bot.app import TelegramBot
from bot.runtime import Services
from bot.sandbox.emulator import BotApiEmulator
from bot.settings import Settings
from conversations.services import coordinators
from tests.e2e.conftest import TOKEN, Chat, settings_for
from tests.e2e.crowd import (
    TAKEOVER_SECONDS,
    BotProcess,
    WebhookTelegram,
    all_of,
    check_each_person_signed_up_once,
    check_nothing_lost,
    crowd,
    free_port,
    inbox_empty,
    kill_under_load,
    post,
    progress,
    prompt,
    repeats,
    resumed_updates,
    seeded,
    stored,
    transcript,
    until,
    update_of,
    webhook_server,
)

KILLS = 10
# Seconds a person takes to answer, at most. A questionnaire then takes each person about
# 15 × THINK / 2 seconds of thinking plus the restarts they wait through, while the ten kills
# need about 3.5 s each (a restart, then 3 to 10 answers): the people must still be at it at
# the tenth. At 3.0 s a faster bot had everyone done before it.
THINK = 6.0
OOPS = "Oups, un souci de mon côté"


# --- 1 and 2: ten kills under load -------------------------------------------------------------


async def test_twenty_people_sign_up_through_ten_kills_of_the_polling_bot(
    emulator: BotApiEmulator, sqlite_url: str, tmp_path: Path
) -> None:
    rng = seeded(20261126)
    people = crowd(emulator, 20, rng, think=THINK)
    bot = BotProcess(emulator, sqlite_url, tmp_path)
    started = time.monotonic()
    await bot.start_ready()
    try:
        signing = [asyncio.create_task(p.sign_up()) for p in people]
        killing = asyncio.create_task(kill_under_load(bot, people, rng, KILLS))
        await all_of([*signing, killing], 100, "sign-ups and kills")
        moments = killing.result()
        now = await inbox_empty(sqlite_url)
    finally:
        await bot.kill()
        print(bot.log_tail())
    print(f"kills at answers {moments} of {progress(people)}; {time.monotonic() - started:.1f} s")
    print(f"most times one question was shown: {sorted(Counter(repeats(people).values()).items())}")
    assert len(moments) == KILLS
    assert all(p.finished for p in people)
    check_nothing_lost(now, people)
    check_each_person_signed_up_once(now, people)
    assert not any(OOPS in (m.text or "") for p in people for m in p.user.messages)


async def test_twenty_people_sign_up_through_ten_kills_of_the_webhook_bot(
    emulator: BotApiEmulator, sqlite_url: str, tmp_path: Path
) -> None:
    rng = seeded(20261127)
    bot = BotProcess(emulator, sqlite_url, tmp_path, webhook_port=free_port())
    started = time.monotonic()
    await bot.start_ready()
    try:
        async with WebhookTelegram(emulator, [bot.base], rng) as telegram:
            people = crowd(emulator, 20, rng, sent=telegram.deliver, think=THINK)
            signing = [asyncio.create_task(p.sign_up()) for p in people]
            killing = asyncio.create_task(kill_under_load(bot, people, rng, KILLS))
            await all_of([*signing, killing], 100, "sign-ups and kills")
            moments = killing.result()
            await telegram.drained()
        now = await inbox_empty(sqlite_url)
    finally:
        await bot.kill()
        print(bot.log_tail())
    statuses = Counter(d.status for d in telegram.deliveries)
    print(f"kills at answers {moments} of {progress(people)}; {time.monotonic() - started:.1f} s")
    print(f"POST results: {dict(statuses)}")
    print(f"most times one question was shown: {sorted(Counter(repeats(people).values()).items())}")
    assert len(moments) == KILLS
    assert all(p.finished for p in people)
    sent = {u for p in people for u in p.update_ids}
    assert telegram.acknowledged == sent
    check_nothing_lost(now, people)
    check_each_person_signed_up_once(now, people)
    assert not any(OOPS in (m.text or "") for p in people for m in p.user.messages)


# --- what a crash in the middle of one update leaves ------------------------------------------


async def answered_up_to_the_first_question(user: Any, base: str, emulator: BotApiEmulator) -> None:
    """/start and "Je cherche un·e mentor·e", POSTed as Telegram would."""
    assert await post(base, update_of(emulator, user.send_command("start"))) == 200
    chat = Chat(user)
    assert await post(base, update_of(emulator, user.press(chat.button("Je cherche")))) == 200
    # The welcome becomes the intro and the first question.
    await user.wait_for_message(lambda m: "Question 1 ·" in (m.text or ""), include_edits=True)


async def killed_after_commit_before_reply(
    bot: BotProcess, emulator: BotApiEmulator, chat_id: int, send: Callable[[], Any]
) -> Any:
    """The next reply to `chat_id` hangs at Telegram, so the update's effect is committed but its
    reply not shown, and the bot is SIGKILLed right then. Returns what `send` returned."""
    before = len(emulator.calls("sendMessage", chat_id=chat_id))
    emulator.faults.add(method="sendMessage", chat_id=chat_id, status=500, delay=8)
    result = send()
    # Polled: the emulator tells its waiters about a call only once it is answered.
    await until(
        lambda: len(emulator.calls("sendMessage", chat_id=chat_id)) > before, 20, "the reply"
    )
    await bot.kill()
    emulator.faults.clear()
    return result


async def test_a_row_left_by_a_killed_webhook_process_is_taken_over_by_another_within_the_setting(
    emulator: BotApiEmulator, sqlite_url: str, tmp_path: Path
) -> None:
    """Also shows that INBOX_TAKEOVER_SECONDS (2 s here, 30 s by default) takes effect."""
    dying = BotProcess(emulator, sqlite_url, tmp_path, name="dying", webhook_port=free_port())
    other = BotProcess(emulator, sqlite_url, tmp_path, name="other", webhook_port=free_port())
    await asyncio.gather(dying.start_ready(), other.start_ready())
    try:
        user = emulator.user(7201, "Inès")
        await answered_up_to_the_first_question(user, dying.base, emulator)
        answer = update_of(emulator, user.send_text("Inès"))
        posting = asyncio.create_task(post(dying.base, answer))
        await killed_after_commit_before_reply(dying, emulator, user.id, lambda: None)
        killed = time.monotonic()
        with pytest.raises(aiohttp.ClientError):  # the connection dies with the process
            await posting
        # Nobody sends the update again: the other process finds the row and owes the reply.
        question = await Chat(user).reads(expect="Question 2 ·")
        taken_over = time.monotonic() - killed
        now = await inbox_empty(sqlite_url)
    finally:
        await asyncio.gather(dying.kill(), other.kill())
    print(f"taken over {taken_over:.1f} s after the kill")
    assert "âge" in (question.text or "")
    # Stale after TAKEOVER_SECONDS, found by the next pass of a job that runs that often.
    assert TAKEOVER_SECONDS <= taken_over <= 2 * TAKEOVER_SECONDS + 3
    assert now.inbox == []


async def test_telegram_sending_an_update_again_soon_after_a_kill_still_gets_its_reply(
    emulator: BotApiEmulator, sqlite_url: str, tmp_path: Path
) -> None:
    takeover = 5
    bot = BotProcess(
        emulator,
        sqlite_url,
        tmp_path,
        webhook_port=free_port(),
        env={"INBOX_TAKEOVER_SECONDS": str(takeover)},
    )
    await bot.start_ready()
    try:
        user = emulator.user(7202, "Inès")
        await answered_up_to_the_first_question(user, bot.base, emulator)
        answer = update_of(emulator, user.send_text("Inès"))
        posting = asyncio.create_task(post(bot.base, answer))
        await killed_after_commit_before_reply(bot, emulator, user.id, lambda: None)
        with pytest.raises(aiohttp.ClientError):  # the connection dies with the process
            await posting
        await bot.start_ready()
        # Telegram sends it again as soon as the bot answers again, within the takeover delay.
        assert await post(bot.base, answer) == 200
        # Waiting past the takeover delay: no later recovery sends it either.
        question = await Chat(user).user.wait_for_message(
            lambda m: "Question 2 ·" in (m.text or ""), timeout=2 * takeover + 3
        )
    finally:
        await bot.kill()
    assert "âge" in (question.text or "")


async def test_one_update_posted_to_two_processes_gets_its_reply_though_the_one_handling_it_dies(
    emulator: BotApiEmulator, sqlite_url: str, tmp_path: Path
) -> None:
    """Telegram sends an update again while the first try is slow (here: the other process
    stores it first, then waits for the chat's previous update). The first process handles it
    and dies before its reply; the other, finding it handled, must not call it done."""
    other = BotProcess(emulator, sqlite_url, tmp_path, name="other", webhook_port=free_port())
    dying = BotProcess(emulator, sqlite_url, tmp_path, name="dying", webhook_port=free_port())
    await asyncio.gather(other.start_ready(), dying.start_ready())
    try:
        user = emulator.user(7204, "Inès")
        await answered_up_to_the_first_question(user, other.base, emulator)
        replies = len(emulator.calls("sendMessage", chat_id=user.id))
        # The reply to the first answer is slow: the other process holds the chat meanwhile.
        emulator.faults.add(method="sendMessage", chat_id=user.id, delay=4)
        # The dying process's reply to the second answer hangs until it is killed.
        emulator.faults.add(method="sendMessage", chat_id=user.id, status=500, delay=8)
        first = update_of(emulator, user.send_text("Inès"))
        second = update_of(emulator, user.send_text("17"))
        posting = [asyncio.create_task(post(other.base, first))]
        await until(
            lambda: len(emulator.calls("sendMessage", chat_id=user.id)) > replies, 20, "reply 1"
        )
        posting.append(asyncio.create_task(post(other.base, second)))
        await until_async(
            lambda: inbox_holds(sqlite_url, second["update_id"]), 10, "the second stored"
        )
        posting.append(asyncio.create_task(post(dying.base, second)))
        await until(
            lambda: len(emulator.calls("sendMessage", chat_id=user.id)) > replies + 1,
            20,
            "the dying process's reply",
        )
        await dying.kill()
        results = await asyncio.gather(*posting, return_exceptions=True)
        question = await user.wait_for_message(
            lambda m: "Question 3 ·" in (m.text or ""), timeout=4 + 3 * TAKEOVER_SECONDS + 5
        )
        now = await inbox_empty(sqlite_url)
    finally:
        await asyncio.gather(other.kill(), dying.kill())
    assert results[:2] == [200, 200]
    assert "code postal" in (question.text or "")
    assert [n for m in user.messages if (n := prompt(m)) == 3] == [3]
    assert now.inbox == []


async def inbox_holds(database_url: str, update_id: int) -> bool:
    return any(row[0] == update_id for row in (await stored(database_url)).inbox)


async def until_async(
    condition: Callable[[], Any],
    timeout: float,  # noqa: ASYNC109
    what: str,
) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s")
        await asyncio.sleep(0.05)


async def test_a_welcome_lost_in_a_crash_is_sent_after_the_restart(
    emulator: BotApiEmulator, sqlite_url: str, tmp_path: Path
) -> None:
    bot = BotProcess(emulator, sqlite_url, tmp_path)
    await bot.start_ready()
    user = emulator.user(7203, "Inès")
    try:
        await killed_after_commit_before_reply(
            bot, emulator, user.id, lambda: user.send_command("start")
        )
        await bot.start_ready()
        welcome = await user.wait_for_message(
            lambda m: "Qui êtes-vous" in (m.text or ""), timeout=10
        )
    finally:
        await bot.kill()
    assert "Collectif Mentorat" in (welcome.text or "")


# --- 4: poison updates --------------------------------------------------------------------------


@pytest.fixture
def poison(monkeypatch: pytest.MonkeyPatch) -> tuple[set[int], Counter[int]]:
    """Update ids whose handling raises, and how many times each update was handled."""
    from conversations.services import updates

    original = updates.handle
    poisoned: set[int] = set()
    tries: Counter[int] = Counter()

    async def handle(unit_of_work: Any, sender: Any, *rest: Any) -> Any:
        tries[sender.update_id] += 1
        if sender.update_id in poisoned:
            raise RuntimeError("a poison update")
        return await original(unit_of_work, sender, *rest)

    monkeypatch.setattr(updates, "handle", handle)
    return poisoned, tries


def kind_messages(user: Any) -> list[Any]:
    return [m for m in user.messages if OOPS in (m.text or "")]


async def test_a_poison_update_posted_five_times_gets_one_kind_message_then_the_person_goes_on(
    emulator: BotApiEmulator, sqlite_url: str, poison: tuple[set[int], Counter[int]]
) -> None:
    poisoned, tries = poison
    async with webhook_server(settings_for(emulator, sqlite_url)) as base:
        user = emulator.user(7301, "Inès")
        await answered_up_to_the_first_question(user, base, emulator)
        update_id = user.send_text("Inès")
        poisoned.add(update_id)
        answer = update_of(emulator, update_id)
        statuses = []
        for delivery in range(5):
            statuses.append(await post(base, answer))
            if delivery == 2:
                sent_when_given_up = len(user.messages)
        # Telegram sends it again while tries remain; given up, it is acknowledged for good.
        assert statuses == [500, 500, 200, 200, 200]
        assert tries[update_id] == 3
        [kind] = kind_messages(user)
        # She chose the young person's questionnaire: spoken to as "tu".
        assert "Tes réponses sont bien gardées" in (kind.text or "")
        assert len(user.messages) == sent_when_given_up
        # The person types their answer again: answered as if nothing happened.
        assert await post(base, update_of(emulator, user.send_text("Inès"))) == 200
        question = await Chat(user).reads(expect="Question 2 ·")
        assert "âge" in (question.text or "")
        now = await stored(sqlite_url)
    assert now.inbox == [(update_id, 3, True)]
    assert len(kind_messages(user)) == 1


async def test_a_poison_update_in_polling_mode_gets_one_kind_message_and_the_bot_goes_on(
    bot: TelegramBot,
    emulator: BotApiEmulator,
    person: Callable[..., Chat],
    sqlite_url: str,
    poison: tuple[set[int], Counter[int]],
) -> None:
    poisoned, tries = poison
    ines, karim = person(7302, "Inès"), person(7303, "Karim")
    await ines.starts()
    await ines.taps("Je cherche", expect="Question 1 ·")
    update_id = ines.user.send_text("Inès")
    poisoned.add(update_id)
    # While the bot tries the poison update again, another person is answered.
    await karim.starts(expect="Qui êtes-vous")
    kind = await ines.reads(expect=OOPS)
    assert tries[update_id] == 3
    # Telegram sending it again changes nothing: it was given up.
    emulator.redeliver(update_id)
    emulator.redeliver(update_id)
    await ines.says("Inès", expect="Question 2 ·")
    await karim.taps("Je cherche", expect="Question 1 ·")
    assert "réessaie" in (kind.text or "")
    assert len(kind_messages(ines.user)) == 1
    assert tries[update_id] == 3
    assert kind_messages(karim.user) == []

    # Karim's press is marked done a moment after its reply (the marks are batched).
    async def only_the_poison_left() -> bool:
        return (await stored(sqlite_url)).inbox == [(update_id, 3, True)]

    await until_async(only_the_poison_left, 5, "inbox holding only the given-up update")


# --- 3: three webhook processes on one fresh PostgreSQL -----------------------------------------

PEOPLE_AT_ONCE = 100
PROCESSES = 3
# A hundred people at once on two shared cores keep each bot's event loop seconds behind: a row
# a live process holds must not look abandoned meanwhile (its person would be asked again).
CROWD_TAKEOVER_SECONDS = 6.0


async def invites_for_every_association(database_url: str) -> list[str]:
    from conversations.services import catalogue

    settings = Settings(telegram_bot_token=SecretStr(TOKEN), database_url=database_url)
    services = Services.from_settings(settings)
    try:
        async with services.unit_of_work() as uow:
            now = services.clock()
            slugs = [a.slug for a in await catalogue.listing(services.unit_of_work)]
            tokens = [
                (await coordinators.invite(uow, slug, now, timedelta(days=1))).token
                for slug in slugs
            ]
            await uow.commit()
    finally:
        await services.dispose()
    return tokens


async def started_but_for_the_catalogue_race(processes: list[BotProcess]) -> list[str]:
    """Waits for every process; one that died of the known race between first starts importing
    the sample catalogue (see the xfail test below) is started again, and named. Any other
    failure to start fails the test."""
    results = await asyncio.gather(*(p.ready() for p in processes), return_exceptions=True)
    again = []
    for process, result in zip(processes, results, strict=True):
        if isinstance(result, BaseException):
            log = process.log_tail(20_000)
            if "import_catalog" not in log or "Conflict" not in log:
                raise result
            again.append(process.name)
            await process.start_ready()
    return again


async def test_three_processes_importing_the_sample_catalogue_at_once_all_start(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.settings import SAMPLE_CATALOG
    from conversations.catalog import load_catalog
    from conversations.services import catalogue

    original = catalogue.import_catalog
    found_it_empty = asyncio.Barrier(PROCESSES)

    async def together(*args: Any, **kwargs: Any) -> Any:
        # What happens when the three starts are close enough: each saw an empty catalogue.
        await found_it_empty.wait()
        return await original(*args, **kwargs)

    monkeypatch.setattr(catalogue, "import_catalog", together)
    settings = Settings(telegram_bot_token=SecretStr(TOKEN), database_url=postgres_url)
    services = [Services.from_settings(settings) for _ in range(PROCESSES)]
    try:
        results = await asyncio.gather(
            *(
                catalogue.import_sample_if_empty(s.unit_of_work, s.clock(), SAMPLE_CATALOG)
                for s in services
            ),
            return_exceptions=True,
        )
        imported = await catalogue.listing(services[0].unit_of_work)
    finally:
        await asyncio.gather(*(s.dispose() for s in services))
    assert [type(r).__name__ for r in results if isinstance(r, BaseException)] == []
    assert len(imported) == len(load_catalog(SAMPLE_CATALOG).associations)


async def test_a_hundred_people_over_three_webhook_processes_on_a_fresh_postgresql(
    emulator: BotApiEmulator, empty_postgres_url: str, tmp_path: Path
) -> None:
    rng = seeded(20261128)
    url = empty_postgres_url
    processes = [
        BotProcess(
            emulator,
            url,
            tmp_path,
            name=f"bot{n}",
            webhook_port=free_port(),
            # INFO: each process logs the updates whose person it sent their screen again.
            env={
                "INBOX_TAKEOVER_SECONDS": str(CROWD_TAKEOVER_SECONDS),
                "LOG_LEVEL": os.environ.get("FAULTS_LOG_LEVEL", "INFO"),
            },
        )
        for n in range(PROCESSES)
    ]
    started = time.monotonic()
    try:
        # At the same moment, each migrating the empty database and importing the catalogue.
        await asyncio.gather(*(p.start() for p in processes))
        failed_at_start = await started_but_for_the_catalogue_race(processes)
        print(f"{PROCESSES} processes ready after {time.monotonic() - started:.1f} s")
        async with WebhookTelegram(
            emulator,
            [p.base for p in processes],
            rng,
            twice_rate=0.1,
            retry_unreachable=CROWD_TAKEOVER_SECONDS + 0.5,
        ) as telegram:
            camille = Chat(emulator.user(900001, "Camille"))
            for token in await invites_for_every_association(url):
                telegram.deliver(camille.user.id, camille.user.send_command("start", token))
                await camille.reads(expect="coordinat")
                telegram.deliver(camille.user.id, camille.user.press(camille.button("Oui")))
                # The invitation's message becomes the welcome.
                await camille.user.wait_for_message(
                    lambda m: "Bienvenue" in (m.text or ""), include_edits=True
                )
            people = crowd(emulator, PEOPLE_AT_ONCE, rng, sent=telegram.deliver, think=1.0)
            signing = [asyncio.create_task(p.sign_up()) for p in people]
            victim = rng.choice(processes)
            expected = PEOPLE_AT_ONCE * 16
            kill_at = rng.randint(expected * 35 // 100, expected * 60 // 100)

            async def kill_one() -> None:
                await until(lambda: progress(people) >= kill_at, 90, f"{kill_at} answers")
                await victim.kill()
                # The load balancer's health check notices a second later.
                await asyncio.sleep(1)
                telegram.targets.remove(victim.base)

            killing = asyncio.create_task(kill_one())
            await all_of([*signing, killing], 110, "sign-ups and the kill")
            await telegram.drained()
            print(f"{victim.name} killed at {kill_at} answers of {progress(people)}")
            # One message per association joined (the invitation became the welcome), then
            # the cards.
            await until(lambda: len(camille.user.messages) >= 8 + PEOPLE_AT_ONCE, 30, "cards")
            now = await inbox_empty(url)
            await asyncio.sleep(1)  # a card sent twice would arrive by now
            alive = [p.name for p in processes if p.alive]
    finally:
        await asyncio.gather(*(p.kill() for p in processes))
        telegram.write_log(tmp_path / "deliveries.log")
        print(f"logs in {tmp_path}; Telegram's errors: {telegram.errors}")
        print(f"slowest answered POST: {telegram.slowest():.1f} s")
        for p in processes:
            print(f"--- {p.name}\n{p.log_tail(1500)}")
    print(
        f"{time.monotonic() - started:.1f} s; POST results: "
        f"{dict(Counter(d.status for d in telegram.deliveries))}"
    )
    print(f"most times one question was shown: {sorted(Counter(repeats(people).values()).items())}")
    print(f"started again after the catalogue race: {failed_at_start}")
    assert alive == [p.name for p in processes if p is not victim]
    assert all(p.finished for p in people)
    check_nothing_lost(now, people)
    check_each_person_signed_up_once(now, people)
    # The outbox: every card sent, none twice.
    assert {status for _chat, status, _payload in now.outbox} == {"sent"}
    contents = Counter((chat, repr(payload)) for chat, _status, payload in now.outbox)
    assert [c for c, n in contents.items() if n > 1] == []
    # What Camille got: one card per person, each once, and nothing else sent to her.
    cards = [m.text for m in camille.user.messages if "Nouveau contact" in (m.text or "")]
    assert len(cards) == PEOPLE_AT_ONCE
    assert len(set(cards)) == PEOPLE_AT_ONCE
    delivered = [
        r for r in emulator.calls("sendMessage", chat_id=camille.user.id) if r.status == 200
    ]
    assert len(delivered) == len(camille.user.messages)
    # What the people got: no notice twice, no prompt (the welcome, a question, the summary) more
    # than twice: a reply lost with the killed process is sent again by the one taking over.
    for person in people:
        notices = Counter(m.text for m in person.user.messages if prompt(m) is None)
        assert [t for t, n in notices.items() if n > 1] == [], person.name
    # A prompt shows once more for each update of that person a process took over after the
    # kill (or from a live process it thought dead): never more, never for another reason.
    resumed = resumed_updates(processes)
    print(f"screens sent again after a takeover: {len(resumed)}")
    worst = repeats(people)
    unexplained = []
    for person in people:
        allowed = 1 + len(resumed & set(person.update_ids))
        if worst[person.user.id] > allowed:
            unexplained.append(person.name)
            print(f"--- {person.name}\n" + "\n".join(transcript(person.user)))
    assert unexplained == []
    assert len(resumed) <= PEOPLE_AT_ONCE // 2
