"""Hostile tests of "the summary sent becomes the thanks in one edit" (88cc3b8): double and
triple taps on "C'est bon", stale copies of the summary, forged presses on the merged message,
the under-15, referral, mentor and English paths, texts too long to merge, Telegram failing or
timing out on the edit, SIGKILLs around the send (polling and webhook), /mydata and /delete
right after. The person must get the thanks exactly once, never twice, never none.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.app import TelegramBot, build_bot
from bot.polling import running
from bot.sandbox.emulator import BotApiEmulator, EmulatedUser
from bot.sandbox.models import ChatMessage
from tests.e2e.conftest import Chat, settings_for
from tests.e2e.crowd import (
    BotProcess,
    Stored,
    free_port,
    stored,
    until,
    update_of,
    webhook_server,
)
from tests.e2e.test_issue10_hostile import a_child_alone, forge
from tests.e2e.test_questionnaire import (
    sign_up_as_17_year_old_in_saint_denis,
    sign_up_as_45_year_old_mentor_in_lyon,
    stored_profiles,
)
from tests.e2e.test_who_fills_in import a_parent_signs_up

THANKS = "Merci Inès, c'est envoyé"
ALREADY = "Cette question a déjà une réponse 🙂"
# PTB's read timeout towards the Bot API (bot/transport.py): a call slower than this times out.
READ_TIMEOUT = 5.0
LINK = re.compile(r"https://t\.me/\w+\?start=pc_[A-Za-z0-9_-]+")


# --- helpers ---------------------------------------------------------------------------------


def ever_said(emulator: BotApiEmulator, user: EmulatedUser, fragment: str) -> set[int]:
    """The bot messages of the chat that ever read `fragment`, sent so or edited into it."""
    return {
        e.message.message_id
        for e in emulator.chat_events(user.id)
        if e.message.from_bot and fragment in (e.message.text or "")
    }


def now_saying(user: EmulatedUser, fragment: str) -> list[ChatMessage]:
    return [m for m in user.messages if m.from_bot and fragment in (m.text or "")]


def with_confirm(user: EmulatedUser) -> list[ChatMessage]:
    """The bot messages that still offer "C'est bon, j'envoie"."""
    return [m for m in user.messages if any("C'est bon" in b for b in m.button_texts)]


async def at_the_summary(chat: Chat) -> ChatMessage:
    chat.user.phone_number = "+33612345678"
    await sign_up_as_17_year_old_in_saint_denis(chat)
    summary = chat.user.last_message
    assert summary is not None
    assert "Tes réponses" in (summary.text or "")
    return summary


def press_confirm(chat: Chat, summary: ChatMessage) -> int:
    return chat.user.press(chat.button("C'est bon"), message_id=summary.message_id)


async def thanked(chat: Chat, timeout: float = 10) -> ChatMessage:  # noqa: ASYNC109
    return await chat.user.wait_for_message(
        lambda m: THANKS in (m.text or ""), include_edits=True, timeout=timeout
    )


def toasts_on(user: EmulatedUser, message: ChatMessage) -> list[str | None]:
    """The toasts of the presses on `message`, in order."""
    return [t.text for t in user.toasts if t.message_id == message.message_id]


# --- taps ------------------------------------------------------------------------------------


@pytest.mark.parametrize("presses", [2, 3])
async def test_a_double_or_triple_tap_on_send_thanks_once_and_stores_one_profile(
    bot: TelegramBot,
    person: Callable[..., Chat],
    emulator: BotApiEmulator,
    sqlite_url: str,
    presses: int,
) -> None:
    chat = person(3101, "Inès")
    summary = await at_the_summary(chat)
    sent_before = len(emulator.calls("sendMessage", chat_id=chat.user.id))
    for _ in range(presses):
        press_confirm(chat, summary)
    thanks = await thanked(chat)
    await chat.user.presses_answered()
    # (The first toast on that message is the consent's: the consent question became it.)
    assert toasts_on(chat.user, summary)[-presses:] == [None] + [ALREADY] * (presses - 1)
    assert thanks.message_id == summary.message_id
    assert ever_said(emulator, chat.user, THANKS) == {summary.message_id}
    assert len(emulator.calls("sendMessage", chat_id=chat.user.id)) == sent_before
    # Only the first press edited: the others found nothing to answer.
    edits = [c for c in emulator.calls("editMessageText", chat_id=chat.user.id) if c.status]
    assert sum(THANKS in str(c.params.get("text")) for c in edits) == 1
    assert (thanks.text or "").count("C'est bon ✅") == 1
    assert with_confirm(chat.user) == []
    assert len(await stored_profiles(sqlite_url)) == 1


async def test_a_press_on_send_after_it_became_the_thanks_changes_nothing(
    bot: TelegramBot, person: Callable[..., Chat], emulator: BotApiEmulator
) -> None:
    chat = person(3102, "Inès")
    summary = await at_the_summary(chat)
    press_confirm(chat, summary)
    merged = await thanked(chat)
    await chat.user.presses_answered()
    text = merged.text
    # A client that kept the old keyboard (or a slow one) sends the old button's data again.
    forge(emulator, chat.user, "c")
    await chat.user.presses_answered()
    await asyncio.sleep(0.3)
    assert chat.user.messages[-1].text == text
    assert ever_said(emulator, chat.user, THANKS) == {summary.message_id}


# --- copies of the summary -------------------------------------------------------------------


async def test_send_pressed_on_an_older_copy_of_the_summary_records_what_was_sent(
    bot: TelegramBot, person: Callable[..., Chat], emulator: BotApiEmulator, sqlite_url: str
) -> None:
    chat = person(3103, "Inès")
    old = await at_the_summary(chat)
    # /start at the summary shows it again, in a new message: two copies with "C'est bon".
    again = await chat.starts(expect="Tes réponses")
    assert again.message_id != old.message_id
    chat.user.press(chat.button("Prénom"), message_id=again.message_id)
    await chat.user.wait_for_message(
        lambda m: "prénom" in (m.text or "") and m.message_id == again.message_id,
        include_edits=True,
    )
    newest = await chat.says("Léa", expect="Tes réponses")
    assert "Léa" in (newest.text or "")
    chat.user.press(chat.button("C'est bon"), message_id=old.message_id)
    merged = await chat.user.wait_for_message(
        lambda m: "Merci Léa" in (m.text or ""), include_edits=True
    )
    await chat.user.presses_answered()
    [profile] = await stored_profiles(sqlite_url)
    assert profile.answers["first_name"] == "Léa"
    # The record is what was sent, whatever the pressed copy showed. (The newer copy keeps
    # a live "C'est bon", which only toasts: copies shown by /start are not tracked.)
    record = (merged.text or "").split("C'est bon ✅")[0]
    assert "Léa" in record
    assert "Inès" not in record


async def test_editing_an_answer_from_the_summary_then_sending_the_new_one_thanks_once(
    bot: TelegramBot, person: Callable[..., Chat], emulator: BotApiEmulator, sqlite_url: str
) -> None:
    chat = person(3104, "Inès")
    summary = await at_the_summary(chat)
    # The summary becomes the question; the answer typed brings a new summary.
    await chat.taps("✏️ Prénom", expect="prénom")
    newest = await chat.says("Léa", expect="Tes réponses")
    assert newest.message_id != summary.message_id
    # The old summary's "C'est bon" is gone with its keyboard: pressing it is impossible, so
    # a modified client sends its data on the old message.
    assert [m.message_id for m in with_confirm(chat.user)] == [newest.message_id]
    emulator._push_callback_query(chat.user, summary, "c")
    merged = await chat.user.wait_for_message(
        lambda m: "Merci Léa" in (m.text or ""), include_edits=True
    )
    await chat.user.presses_answered()
    await asyncio.sleep(0.3)
    assert ever_said(emulator, chat.user, "Merci Léa") == {merged.message_id}
    [profile] = await stored_profiles(sqlite_url)
    assert profile.answers["first_name"] == "Léa"


# --- forged presses on the merged message ----------------------------------------------------


@pytest.mark.parametrize(
    "data",
    ["c", "e|first_name", "o|first_name", "s|situation|vocational_high_school", "r", "b|consent"],
)
async def test_a_forged_answer_on_the_merged_message_leaves_it_as_it_is(
    bot: TelegramBot,
    person: Callable[..., Chat],
    emulator: BotApiEmulator,
    sqlite_url: str,
    data: str,
) -> None:
    chat = person(3105, "Inès")
    summary = await at_the_summary(chat)
    press_confirm(chat, summary)
    merged = await thanked(chat)
    await chat.user.presses_answered()
    text = merged.text
    forge(emulator, chat.user, data)
    await chat.user.presses_answered()
    await asyncio.sleep(0.3)
    assert next(m for m in chat.user.messages if m.message_id == summary.message_id).text == text
    assert len(await stored_profiles(sqlite_url)) == 1


@pytest.mark.parametrize("data", ["k", "jn", "rk|mentee"])
async def test_a_forged_unrelated_button_on_the_merged_message_keeps_the_record(
    bot: TelegramBot,
    person: Callable[..., Chat],
    emulator: BotApiEmulator,
    data: str,
) -> None:
    chat = person(3106, "Inès")
    summary = await at_the_summary(chat)
    press_confirm(chat, summary)
    await thanked(chat)
    await chat.user.presses_answered()
    forge(emulator, chat.user, data)
    await chat.user.presses_answered()
    await asyncio.sleep(0.3)
    shown = next(m for m in chat.user.messages if m.message_id == summary.message_id)
    assert THANKS in (shown.text or "")
    assert "Tes réponses" in (shown.text or "")


# --- other ways in -----------------------------------------------------------------------------


async def test_the_parental_link_after_the_send_still_works_from_the_merged_message(
    bot: TelegramBot, person: Callable[..., Chat], emulator: BotApiEmulator
) -> None:
    young = person(3201, "Léo")
    payload = await a_child_alone(young)
    [asked] = now_saying(young.user, "Dernière étape")
    # No button lands on it: the link is text, to forward.
    assert asked.buttons == []
    assert with_confirm(young.user) == []
    parent = person(3202, "Samia")
    await parent.starts(payload, expect="Êtes-vous d'accord")
    await parent.taps("Oui, je suis d'accord", expect="c'est confirmé")
    told = await young.reads(expect="Ton parent a donné son accord")
    assert "Je te propose" in (told.text or "")
    assert len(ever_said(emulator, young.user, "Dernière étape")) == 1


async def test_the_message_an_under_15_is_told_to_forward_holds_the_link_not_their_answers(
    bot: TelegramBot, person: Callable[..., Chat]
) -> None:
    young = person(3203, "Léo")
    await a_child_alone(young)
    [to_forward] = [m for m in young.user.messages if LINK.search(m.text or "")]
    text = to_forward.text or ""
    assert "transfère ce message" in text
    assert "leo@exemple.fr" not in text
    assert "Samia Benali" not in text
    assert "Tes réponses" not in text


async def test_a_parent_signing_up_a_child_gets_the_record_and_the_thanks_in_one_message(
    bot: TelegramBot, person: Callable[..., Chat], emulator: BotApiEmulator
) -> None:
    parent = person(3204, "Samia")
    await a_parent_signs_up(parent, "8")
    summary = parent.user.last_message
    assert summary is not None
    sent_before = len(emulator.calls("sendMessage", chat_id=parent.user.id))
    sent = await parent.taps("C'est bon", expect="Pour Nina")
    await parent.user.presses_answered()
    assert sent.message_id == summary.message_id
    text = sent.text or ""
    assert text.startswith("Vos réponses")
    assert text.index("Vos réponses") < text.index("C'est bon ✅") < text.index("Merci")
    assert len(emulator.calls("sendMessage", chat_id=parent.user.id)) == sent_before
    assert with_confirm(parent.user) == []


@pytest.mark.parametrize("english", [False, True], ids=["fr", "en"])
async def test_a_mentor_gets_the_record_and_the_thanks_in_one_message(
    bot: TelegramBot, person: Callable[..., Chat], emulator: BotApiEmulator, english: bool
) -> None:
    chat = person(3205, "Karim", language_code="en" if english else "fr")
    await sign_up_as_45_year_old_mentor_in_lyon(chat, english=english)
    summary = chat.user.last_message
    assert summary is not None
    sent_before = len(emulator.calls("sendMessage", chat_id=chat.user.id))
    confirm = "Looks good, send it" if english else "C'est bon, j'envoie"
    label = chat.button("✅")
    assert confirm in label, label
    chat.user.press(label, message_id=summary.message_id)
    sent = await chat.user.wait_for_message(
        lambda m: "Karim" in (m.text or "").split("→")[-1], include_edits=True
    )
    await chat.user.presses_answered()
    text = sent.text or ""
    assert sent.message_id == summary.message_id
    assert text.startswith("Your answers" if english else "Vos réponses")
    assert "Karim" in text.split("→")[0]
    assert ("Thank you" if english else "Merci Karim") in text
    assert ("Merci" in text) is not english
    assert len(emulator.calls("sendMessage", chat_id=chat.user.id)) == sent_before


# --- too long to merge -----------------------------------------------------------------------


LONG_NAME = "A'" * 24 + "Ab"  # 50 characters, the most a first name may have
LONG_EMPLOYER = "A" + "&" * 99  # 100, the most: each "&" is "&amp;" in HTML
LONG_EMAIL = "&" * 64 + "@" + "a" * 63 + "." + "b" * 63 + "." + "c" * 50 + ".org"


async def a_mentor_with_the_longest_answers(chat: Chat) -> ChatMessage:
    await chat.starts()
    await chat.taps("Je veux devenir mentor·e", expect="Question 1 ·")
    await chat.says(LONG_NAME, expect="Question 2 ·")
    await chat.taps("41 à 60 ans", expect="Question 3 ·")
    await chat.says("69003", expect="Question 4 ·")
    await chat.taps("Salarié·e du privé", expect="Question 5 ·")
    await chat.says(LONG_EMPLOYER, expect="Question 6 ·")
    for label in chat.user.messages[-1].button_texts:
        if "⬜" in label:
            await chat.toggles(label)
    await chat.taps("Valider", expect="Question 7 ·")
    for label in chat.user.messages[-1].button_texts:
        if "⬜" in label:
            await chat.toggles(label)
    await chat.taps("Valider", expect="Question 8 ·")
    await chat.taps("2 h par mois", expect="Question 9 ·")
    await chat.taps("Oui", expect="Question 10 ·")
    await chat.taps("À distance", expect="Question 11 ·")
    await chat.taps("Par e-mail", expect="Question 12 ·")
    await chat.says(LONG_EMAIL, expect="Question 13 ·")
    return await chat.taps("Oui, j'accepte", expect="Vos réponses")


async def test_the_longest_summary_is_sent_and_thanked_once_merged_or_not(
    bot: TelegramBot, person: Callable[..., Chat], emulator: BotApiEmulator, sqlite_url: str
) -> None:
    chat = person(3301, "Karim")
    summary = await a_mentor_with_the_longest_answers(chat)
    assert LONG_EMPLOYER in (summary.text or "")
    press_confirm(chat, summary)
    thanks = await chat.user.wait_for_message(
        lambda m: "c'est envoyé" in (m.text or ""), include_edits=True
    )
    await chat.user.presses_answered()
    await asyncio.sleep(0.3)
    print(f"summary {len(summary.text or '')} characters, thanks {len(thanks.text or '')}")
    assert len(ever_said(emulator, chat.user, "c'est envoyé")) == 1
    assert len(now_saying(chat.user, "c'est envoyé")) == 1
    assert with_confirm(chat.user) == []
    assert [c.method for c in emulator.requests if c.status == 400] == []
    [profile] = await stored_profiles(sqlite_url)
    assert profile.answers["employer"] == LONG_EMPLOYER


# --- Telegram failing on the edit ----------------------------------------------------------


FAULTS: dict[str, dict[str, Any]] = {
    # 5xx on every try of the edit (three quick retries), then it works again.
    "502 three times": {"status": 502, "times": 3},
    # Telegram applied the edit but the answer was lost: the retry is "not modified".
    "500 after applying": {"status": 500, "after_processing": True},
    # The flood limit once: the rate limiter waits and tries again.
    "429 once": {"status": 429, "retry_after": 1},
    # The flood limit on every edit: the thanks goes as a new message.
    "429 always": {"status": 429, "retry_after": 1, "times": None},
    # Refused (an edit Telegram will not make): frozen fails too, the thanks is sent anew.
    "400 can't be edited": {
        "status": 400,
        "description": "Bad Request: message can't be edited",
        "times": None,
    },
}


@pytest.mark.parametrize("fault", list(FAULTS), ids=list(FAULTS))
async def test_telegram_failing_on_the_edit_still_thanks_exactly_once(
    bot: TelegramBot,
    person: Callable[..., Chat],
    emulator: BotApiEmulator,
    sqlite_url: str,
    fault: str,
) -> None:
    chat = person(3401, "Inès")
    summary = await at_the_summary(chat)
    emulator.faults.add(method="editMessageText", chat_id=chat.user.id, **FAULTS[fault])
    press_confirm(chat, summary)
    await thanked(chat, timeout=20)
    await chat.user.presses_answered(timeout=20)
    # Whatever retry or fallback was still on its way has arrived by now.
    await asyncio.sleep(1.0)
    emulator.faults.clear()
    assert len(ever_said(emulator, chat.user, THANKS)) == 1
    assert len(now_saying(chat.user, THANKS)) == 1
    assert len(await stored_profiles(sqlite_url)) == 1


async def test_an_edit_that_times_out_and_is_lost_still_tells_the_person_once(
    emulator: BotApiEmulator, sqlite_url: str
) -> None:
    """Nobody can tell whether a timed-out edit was applied: the inbox's recovery sends the
    person where they stand (their request was sent), once, rather than nothing."""
    settings = settings_for(emulator, sqlite_url).model_copy(update={"inbox_takeover_seconds": 1.5})
    async with running(build_bot(settings)):
        chat = Chat(emulator.user(3402, "Inès", language_code="fr"))
        summary = await at_the_summary(chat)
        # Past the read timeout, then a 5xx: the bot gave up waiting, Telegram did nothing.
        emulator.faults.add(
            method="editMessageText", chat_id=chat.user.id, status=500, delay=READ_TIMEOUT + 1.5
        )
        press_confirm(chat, summary)
        await chat.user.presses_answered(timeout=15)
        told = await chat.user.wait_for_message(
            lambda m: "bien été envoyée" in (m.text or ""), timeout=20
        )
        await asyncio.sleep(3)
        assert len(await stored_profiles(sqlite_url)) == 1
        assert len(ever_said(emulator, chat.user, "bien été envoyée")) == 1
        assert told.message_id != summary.message_id
        assert ever_said(emulator, chat.user, THANKS) == set()


# --- right after -----------------------------------------------------------------------------


async def test_mydata_then_delete_right_after_the_send_leave_the_merged_message_alone(
    bot: TelegramBot, person: Callable[..., Chat], emulator: BotApiEmulator, sqlite_url: str
) -> None:
    chat = person(3501, "Inès")
    summary = await at_the_summary(chat)
    press_confirm(chat, summary)
    # No wait: /mydata is queued behind the press, in the chat's order.
    chat.user.send_command("mydata")
    data = await chat.reads(expect="Tes données")
    document = await chat.user.next_document()
    merged = next(m for m in chat.user.messages if m.message_id == summary.message_id)
    assert THANKS in (merged.text or "")
    assert "Proxité" in (data.text or "")
    assert "Proxité" in json.dumps(json.loads(document.document_file or b"{}"), ensure_ascii=False)
    ask = await chat.says("/delete", expect="effacer")
    await chat.taps("Oui, tout effacer", expect="effacé")
    await chat.user.presses_answered()
    erased = next(m for m in chat.user.messages if m.message_id == ask.message_id)
    assert "effacé" in (erased.text or "")
    # The erase answered its own question: the merged message was not touched.
    after = next(m for m in chat.user.messages if m.message_id == summary.message_id)
    assert after.text == merged.text
    assert await stored_profiles(sqlite_url) == []


# --- webhook mode --------------------------------------------------------------------------


async def posted(base: str, update: dict[str, Any], emulator: BotApiEmulator) -> int:
    """POSTs as Telegram does, and runs the method given in the response, as Telegram would."""
    import aiohttp

    from bot.web import SECRET_HEADER
    from tests.e2e.crowd import SECRET

    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/telegram", json=update, headers={SECRET_HEADER: SECRET}) as response,
    ):
        await emulator.webhook_response(
            response.status, response.content_type, await response.read()
        )
        return response.status


class Forwarder:
    """Telegram in webhook mode: each new update of the emulator is POSTed to `base`, in order."""

    def __init__(self, emulator: BotApiEmulator, base: str) -> None:
        self.emulator = emulator
        self.base = base
        self.done: set[int] = set()
        self.failed: list[int] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Forwarder:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        import aiohttp

        while True:
            for update in list(self.emulator.pending_updates):
                update_id = update["update_id"]
                if update_id in self.done:
                    continue
                self.done.add(update_id)
                try:
                    if await posted(self.base, update, self.emulator) != 200:
                        self.failed.append(update_id)
                except aiohttp.ClientError:
                    self.failed.append(update_id)
            await asyncio.sleep(0.02)


async def test_in_webhook_mode_the_send_is_one_edit_and_the_answer_rides_in_the_response(
    emulator: BotApiEmulator, person: Callable[..., Chat], sqlite_url: str
) -> None:
    async with (
        webhook_server(settings_for(emulator, sqlite_url)) as base,
        Forwarder(emulator, base),
    ):
        chat = person(3601, "Inès")
        summary = await at_the_summary(chat)
        await chat.user.presses_answered()
        calls_before = len(emulator.requests)
        presses = [press_confirm(chat, summary), press_confirm(chat, summary)]
        await thanked(chat)
        await chat.user.presses_answered()
        await asyncio.sleep(0.3)
        ids = {str(update_of(emulator, p)["callback_query"]["id"]) for p in presses}
        made = [
            (c.method, c.in_webhook_response)
            for c in emulator.requests[calls_before:]
            if c.method != "getUpdates"
            and (c.method != "answerCallbackQuery" or c.params.get("callback_query_id") in ids)
        ]
    assert made == [
        ("editMessageText", False),
        ("answerCallbackQuery", True),
        ("answerCallbackQuery", True),
    ]
    assert ever_said(emulator, chat.user, THANKS) == {summary.message_id}
    assert toasts_on(chat.user, summary)[-2:] == [None, ALREADY]
    assert len(await stored_profiles(sqlite_url)) == 1


# --- SIGKILL around the send ---------------------------------------------------------------


async def signed_up_and_killed_during_the_send(
    bot: BotProcess, emulator: BotApiEmulator, chat: Chat, hang: str
) -> ChatMessage:
    """At the summary, "C'est bon" pressed while Telegram hangs on `hang` (the merged edit, or
    the press's answer after it), and the bot SIGKILLed right then; started again."""
    summary = await at_the_summary(chat)
    before = len(emulator.calls(hang))
    emulator.faults.add(method=hang, status=500, delay=8)
    press_confirm(chat, summary)
    await until(lambda: len(emulator.calls(hang)) > before, 20, f"the {hang}")
    await bot.kill()
    emulator.faults.clear()
    await bot.start_ready()
    return summary


def told_it_was_sent(user: EmulatedUser) -> list[ChatMessage]:
    """Messages that tell the person their request went to its association."""
    return [
        m
        for m in user.messages
        if m.from_bot and (THANKS in (m.text or "") or "bien été envoyée à" in (m.text or ""))
    ]


@pytest.mark.parametrize("hang", ["editMessageText", "answerCallbackQuery"])
async def test_a_polling_bot_killed_during_the_send_tells_the_person_once(
    emulator: BotApiEmulator, sqlite_url: str, tmp_path: Path, hang: str
) -> None:
    process = BotProcess(emulator, sqlite_url, tmp_path)
    await process.start_ready()
    chat = Chat(emulator.user(3701, "Inès"))
    try:
        await signed_up_and_killed_during_the_send(process, emulator, chat, hang)
        # The update's effect was committed; the one taking the row over owes the reply.
        await until(lambda: len(told_it_was_sent(chat.user)) >= 1, 20, "a word about the send")
        await asyncio.sleep(2 * 2.0 + 1)
        now = await stored(sqlite_url)
    finally:
        await process.kill()
        print(process.log_tail())
    check_sent_and_told_once(now, chat)


def check_sent_and_told_once(now: Stored, chat: Chat) -> None:
    """One profile, one handoff, one word about it to the person, and no apology."""
    assert sum(len(v) for v in now.profiles.values()) == 1
    assert sum(now.handoffs.values()) == 1
    assert len(told_it_was_sent(chat.user)) == 1
    assert not any("Oups" in (m.text or "") for m in chat.user.messages)


# In webhook mode the press is answered in the HTTP response: only the edit can hang.
@pytest.mark.parametrize("hang", ["editMessageText"])
async def test_a_webhook_bot_killed_during_the_send_tells_the_person_once(
    emulator: BotApiEmulator, sqlite_url: str, tmp_path: Path, hang: str
) -> None:
    process = BotProcess(emulator, sqlite_url, tmp_path, webhook_port=free_port())
    await process.start_ready()
    chat = Chat(emulator.user(3702, "Inès"))
    try:
        async with Forwarder(emulator, process.base) as telegram:
            await signed_up_and_killed_during_the_send(process, emulator, chat, hang)
            # Telegram sends again what got no answer.
            [press] = telegram.failed[-1:]
            assert await posted(process.base, update_of(emulator, press), emulator) == 200
            await until(lambda: len(told_it_was_sent(chat.user)) >= 1, 20, "a word about it")
            await asyncio.sleep(2 * 2.0 + 1)
        now = await stored(sqlite_url)
    finally:
        await process.kill()
        print(process.log_tail())
    check_sent_and_told_once(now, chat)
