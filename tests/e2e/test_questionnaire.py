"""A young person and a mentor sign up in the chat, against the real application over HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable

from sqlalchemy import select

from bot.app import TelegramBot
from bot.sandbox.emulator import BotApiEmulator
from conversations.entities import Consent, Conversation, Profile
from storage.db import create_engine, session_factory
from storage.uow import map_entities
from tests.e2e.conftest import Chat

map_entities()


async def stored_profiles(database_url: str) -> list[Profile]:
    engine = create_engine(database_url)
    async with session_factory(engine)() as session:
        profiles = list(await session.scalars(select(Profile).order_by(Profile.id)))
    await engine.dispose()
    return profiles


async def stored_consents(database_url: str) -> list[Consent]:
    engine = create_engine(database_url)
    async with session_factory(engine)() as session:
        consents = list(await session.scalars(select(Consent).order_by(Consent.id)))
    await engine.dispose()
    return consents


async def active_conversation(database_url: str) -> Conversation | None:
    engine = create_engine(database_url)
    async with session_factory(engine)() as session:
        row = await session.scalar(select(Conversation).where(Conversation.status == "active"))
    await engine.dispose()
    return row


async def sign_up_as_17_year_old_in_saint_denis(chat: Chat) -> None:
    welcome = await chat.starts("ecole_93")
    assert "Collectif Mentorat" in (welcome.text or "")
    question = await chat.taps("Je cherche un·e mentor·e", expect="Question 1 ·")
    assert "prénom" in (question.text or "")
    assert "âge" in (await chat.says("Inès", expect="Question")).text  # type: ignore[operator]
    assert "code postal" in (await chat.says("17", expect="Question")).text  # type: ignore[operator]
    situation = await chat.says("93200", expect="Question")
    assert "Lycée professionnel" in situation.button_texts
    assert "École primaire" not in situation.button_texts
    needs = await chat.taps("Lycée professionnel", expect="Question")
    assert "accompagné" in (needs.text or "")
    await chat.toggles("Orientation")
    await chat.toggles("Trouver un stage")
    await chat.taps("Valider", expect="Question")
    await chat.taps("Les deux me vont", expect="Question")
    await chat.taps("Quartier prioritaire", expect="Question")
    await chat.taps("Par téléphone", expect="Question")
    phone = chat.user.last_message
    assert phone is not None
    assert phone.keyboard_markup is not None  # the "share my number" reply keyboard
    chat.user.press("📱 Partager mon numéro")
    consent = await chat.reads(expect="Question")
    assert "une seule" in (consent.text or "")
    summary = await chat.taps("Oui, je suis d'accord", expect="Tes réponses")
    assert "Inès" in (summary.text or "")
    assert "Orientation" in (summary.text or "")


async def test_a_17_year_old_in_saint_denis_signs_up_in_french(
    bot: TelegramBot,
    person: Callable[..., Chat],
    sqlite_url: str,  # type: ignore[type-arg]
) -> None:
    chat = person(1001, "Inès")
    chat.user.phone_number = "+33612345678"
    await sign_up_as_17_year_old_in_saint_denis(chat)
    thanks = await chat.taps("C'est bon", expect="Merci")
    assert "Inès" in (thanks.text or "")
    [profile] = await stored_profiles(sqlite_url)
    assert profile.role == "mentee"
    assert profile.department == "93"
    assert profile.source == "ecole_93"
    assert profile.answers["age"] == 17
    assert profile.answers["situation"] == "vocational_high_school"
    assert profile.answers["needs"] == ["orientation", "internship"]
    assert profile.answers["phone"] == "+33612345678"
    assert [c.kind for c in await stored_consents(sqlite_url)] == ["contact"]


async def sign_up_as_45_year_old_mentor_in_lyon(chat: Chat, english: bool = False) -> None:
    t = (lambda fr, en: en) if english else (lambda fr, en: fr)
    await chat.starts()
    await chat.taps(
        t("Je veux devenir mentor·e", "I want to become a mentor"), expect="Question 1 ·"
    )
    await chat.says("Karim", expect="Question 2 ·")
    await chat.taps(t("41 à 60 ans", "41 to 60"), expect="Question 3 ·")
    situation = await chat.says("69003", expect="Question 4 ·")
    assert t("Retraité·e", "Retired") in situation.button_texts
    assert t("Lycéen·ne", "High-school student") not in situation.button_texts
    await chat.taps(t("Salarié·e du privé", "Private-sector employee"), expect="Question 5 ·")
    await chat.says("Banque Populaire", expect="Question 6 ·")
    await chat.toggles(t("Des lycéen·nes", "High-school students"))
    await chat.taps(t("Valider", "Done"), expect="Question 7 ·")
    await chat.toggles(t("Orientation", "Orientation"))
    await chat.toggles(t("Trouver un emploi", "Finding a job"))
    await chat.taps(t("Valider", "Done"), expect="Question 8 ·")
    await chat.taps(t("2 h par mois", "2 hours a month"), expect="Question 9 ·")
    await chat.taps(t("Oui", "Yes"), expect="Question 10 ·")
    await chat.taps(t("À distance", "Remotely"), expect="Question 11 ·")
    await chat.taps(t("Par e-mail", "By e-mail"), expect="Question 12 ·")
    await chat.says("karim.b@example.org", expect="Question 13 ·")
    await chat.taps(t("Oui, j'accepte", "Yes, I agree"), expect=t("Vos réponses", "Your answers"))


async def test_a_45_year_old_employee_in_lyon_signs_up_as_a_mentor(
    bot: TelegramBot,
    person: Callable[..., Chat],
    sqlite_url: str,  # type: ignore[type-arg]
) -> None:
    chat = person(2002, "Karim")
    await sign_up_as_45_year_old_mentor_in_lyon(chat)
    thanks = await chat.taps("C'est bon", expect="Merci Karim")
    assert "vous" in (thanks.text or "")
    [profile] = await stored_profiles(sqlite_url)
    assert profile.role == "mentor"
    assert profile.department == "69"
    assert profile.answers["situation"] == "private_employee"
    assert profile.answers["employer"] == "Banque Populaire"
    assert profile.answers["themes"] == ["orientation", "job"]
    assert profile.answers["email"] == "karim.b@example.org"


async def test_a_mentor_signs_up_in_english(
    bot: TelegramBot,
    person: Callable[..., Chat],
    sqlite_url: str,  # type: ignore[type-arg]
) -> None:
    chat = person(2003, "Karen", language_code="en")
    await sign_up_as_45_year_old_mentor_in_lyon(chat, english=True)
    summary = chat.user.last_message
    assert summary is not None
    assert "First name" in (summary.text or "")
    thanks = await chat.taps("Looks good", expect="Thank you Karim")
    assert "will contact you" in (thanks.text or "")
    [profile] = await stored_profiles(sqlite_url)
    assert profile.language == "en"


async def test_garbage_at_every_question_is_asked_again_until_the_answer_is_valid(
    bot: TelegramBot,
    person: Callable[..., Chat],
    sqlite_url: str,  # type: ignore[type-arg]
) -> None:
    chat = person(3003, "Léa")
    await chat.starts()
    await chat.taps("Je cherche un·e mentor·e", expect="Question 1 ·")
    assert "lettres" in (await chat.says("1234", expect="Question 1 ·")).text  # type: ignore[operator]
    await chat.says("Léa", expect="Question 2 ·")
    assert "chiffres" in (await chat.says("beaucoup", expect="Question 2 ·")).text  # type: ignore[operator]
    await chat.says("17", expect="Question 3 ·")
    assert "5 chiffres" in (await chat.says("abc", expect="Question 3 ·")).text  # type: ignore[operator]
    await chat.says("93200", expect="Question 4 ·")
    assert "boutons" in (await chat.says("xyz", expect="Question 4 ·")).text  # type: ignore[operator]
    assert "boutons" in (await chat.says("lycée", expect="Question 4 ·")).text  # type: ignore[operator]
    await chat.says("lycée pro", expect="Question 5 ·")
    assert "boutons" in (await chat.says("blabla", expect="Question 5 ·")).text  # type: ignore[operator]
    assert "au moins une" in (await chat.taps("Valider", expect="Question 5 ·")).text  # type: ignore[operator]
    await chat.toggles("Confiance en soi")
    await chat.taps("Valider", expect="Question 6 ·")
    await chat.says("???", expect="Question 6 ·")
    await chat.says("2", expect="Question 7 ·")
    await chat.says("hmm", expect="Question 7 ·")
    await chat.taps("Passer", expect="Question 8 ·")
    chat.user.send_sticker()
    assert "boutons" in (await chat.reads(expect="Question 8 ·")).text  # type: ignore[operator]
    await chat.says("e-mail", expect="Question 9 ·")
    assert "e-mail" in (await chat.says("pas-un-email", expect="Question 9 ·")).text  # type: ignore[operator]
    await chat.says("lea@example.fr", expect="Question 10 ·")
    await chat.says("peut-être", expect="Question 10 ·")
    await chat.says("oui", expect="Tes réponses")
    await chat.taps("C'est bon", expect="Merci Léa")
    [profile] = await stored_profiles(sqlite_url)
    assert profile.answers == {
        "first_name": "Léa",
        "age": 17,
        "postal_code": "93200",
        "situation": "vocational_high_school",
        "needs": ["confidence"],
        "format": "remote",
        "area": None,
        "contact_method": "email",
        "email": "lea@example.fr",
        "consent": True,
    }


async def test_two_answers_edited_from_the_summary_are_the_ones_stored(
    bot: TelegramBot,
    person: Callable[..., Chat],
    sqlite_url: str,  # type: ignore[type-arg]
) -> None:
    chat = person(4004, "Inès")
    chat.user.phone_number = "+33612345678"
    await sign_up_as_17_year_old_in_saint_denis(chat)
    await chat.taps("✏️ Âge", expect="Quel âge")
    summary = await chat.says("16", expect="Tes réponses")
    assert "16" in (summary.text or "")
    await chat.taps("✏️ Code postal", expect="code postal")
    summary = await chat.says("75011", expect="Tes réponses")
    assert "75011" in (summary.text or "")
    await chat.taps("C'est bon", expect="Merci")
    [profile] = await stored_profiles(sqlite_url)
    assert profile.answers["age"] == 16
    assert profile.answers["postal_code"] == "75011"
    assert profile.department == "75"


async def test_back_returns_to_the_previous_question(
    bot: TelegramBot, person: Callable[..., Chat]
) -> None:
    chat = person(5005, "Noé")
    await chat.starts()
    await chat.taps("Je cherche un·e mentor·e", expect="Question 1 ·")
    await chat.says("Noé", expect="Question 2 ·")
    again = await chat.taps("Retour", expect="Question 1 ·")
    assert "prénom" in (again.text or "")
    await chat.says("Noé", expect="Question 2 ·")


async def test_a_31_year_old_is_told_kindly_and_offered_the_mentor_flow(
    bot: TelegramBot, person: Callable[..., Chat]
) -> None:
    chat = person(6006, "Sam")
    await chat.starts()
    await chat.taps("Je cherche un·e mentor·e", expect="Question 1 ·")
    await chat.says("Sam", expect="Question 2 ·")
    ending = await chat.says("31", expect="30 ans")
    assert "Devenir mentor·e" in ending.button_texts
    await chat.taps("Devenir mentor·e", expect="votre prénom")


async def test_a_sticker_at_a_text_question_is_asked_again_kindly(
    bot: TelegramBot, person: Callable[..., Chat]
) -> None:
    chat = person(7007, "Nina")
    await chat.starts()
    await chat.taps("Je cherche un·e mentor·e", expect="Question 1 ·")
    for send in (chat.user.send_sticker, chat.user.send_photo, chat.user.send_voice):
        send()
        again = await chat.reads(expect="Question 1 ·")
        assert "que du texte" in (again.text or "")
    chat.user.send_location(48.85, 2.35)
    assert "que du texte" in ((await chat.reads(expect="Question 1 ·")).text or "")


async def test_a_message_in_a_group_gets_a_one_line_invitation_to_write_in_private(
    bot: TelegramBot, emulator: BotApiEmulator
) -> None:
    user = emulator.user(8008, "Alex")
    user.send_text_in_group(-100123, "/start")
    reply = await emulator.wait_for_call("sendMessage", chat_id=-100123)
    assert "message privé" in str(reply.params["text"])
    assert "\n" not in str(reply.params["text"])


async def test_multi_choice_toggles_edit_the_keyboard_instead_of_sending_messages(
    bot: TelegramBot, person: Callable[..., Chat], emulator: BotApiEmulator
) -> None:
    chat = person(9009, "Yanis")
    await chat.starts()
    await chat.taps("Je cherche un·e mentor·e", expect="Question 1 ·")
    await chat.says("Yanis", expect="Question 2 ·")
    await chat.says("17", expect="Question 3 ·")
    await chat.says("93200", expect="Question 4 ·")
    await chat.taps("Lycée professionnel", expect="Question 5 ·")
    sent_before = len(emulator.calls("sendMessage"))
    edited = await chat.toggles("Confiance en soi")
    assert "☑️ Confiance en soi" in edited.button_texts
    edited = await chat.toggles("Confiance en soi")
    assert "⬜ Confiance en soi" in edited.button_texts
    assert len(emulator.calls("sendMessage")) == sent_before


async def test_the_same_update_delivered_twice_advances_the_conversation_once(
    bot: TelegramBot, person: Callable[..., Chat], emulator: BotApiEmulator
) -> None:
    chat = person(1111, "Inès")
    await chat.starts()
    await chat.taps("Je cherche un·e mentor·e", expect="Question 1 ·")
    update_id = chat.user.send_text("Inès")
    await chat.reads(expect="Question 2 ·")
    emulator.redeliver(update_id)
    # In-order processing per chat: once "17" is answered, the redelivery was handled before it.
    await chat.says("17", expect="Question 3 ·")
    questions = [m.text or "" for m in chat.user.messages if "Question" in (m.text or "")]
    headers = [
        next(line for line in q.split("\n") if line.startswith("Question")) for q in questions
    ]
    assert [header.partition(" · ")[0] for header in headers] == [
        "Question 1",
        "Question 2",
        "Question 3",
    ]


async def test_a_double_tap_on_one_button_answers_once(
    bot: TelegramBot, person: Callable[..., Chat], emulator: BotApiEmulator
) -> None:
    chat = person(1212, "Inès")
    await chat.starts()
    await chat.taps("Je cherche un·e mentor·e", expect="Question 1 ·")
    await chat.says("Inès", expect="Question 2 ·")
    await chat.says("17", expect="Question 3 ·")
    await chat.says("93200", expect="Question 4 ·")
    label = chat.button("Lycée professionnel")
    question = chat.user.last_message
    assert question is not None
    chat.user.press(label, message_id=question.message_id)
    chat.user.press(label, message_id=question.message_id)
    # The pressed question becomes the next one.
    await chat.user.wait_for_message(lambda m: "Question 5 ·" in (m.text or ""), include_edits=True)
    toasts = []
    while len(toasts) < 2:
        toast = await chat.user.next_toast()
        if toast.message_id == question.message_id:
            toasts.append(toast)
    assert [t.text for t in toasts] == [None, "Cette question a déjà une réponse 🙂"]
    await chat.toggles("Orientation")
    fives = [m for m in chat.user.messages if "Question 5 ·" in (m.text or "")]
    assert len(fives) == 1


async def test_a_start_payload_is_kept_only_when_telegram_would_allow_it(
    bot: TelegramBot,
    person: Callable[..., Chat],
    sqlite_url: str,  # type: ignore[type-arg]
) -> None:
    chat = person(1313, "Inès")
    await chat.starts("bad payload!")
    await chat.taps("Je cherche un·e mentor·e", expect="Question 1 ·")
    row = await active_conversation(sqlite_url)
    assert row is not None
    assert row.source is None


async def test_cancel_stops_and_start_offers_a_new_questionnaire(
    bot: TelegramBot,
    person: Callable[..., Chat],
    sqlite_url: str,  # type: ignore[type-arg]
) -> None:
    chat = person(1414, "Inès")
    await chat.starts()
    await chat.taps("Je cherche un·e mentor·e", expect="Question 1 ·")
    await chat.says("Inès", expect="Question 2 ·")
    chat.user.send_command("cancel")
    assert "arrêté" in ((await chat.reads(expect="arrêté")).text or "")
    assert await active_conversation(sqlite_url) is None
    # Known now, the young person is offered the three ways in again, spoken to as "tu".
    welcome = await chat.starts(expect="nouvelle demande")
    assert "Choisis" in (welcome.text or "")
    assert "Je veux devenir mentor·e" in welcome.button_texts


async def test_restart_begins_the_same_questionnaire_again(
    bot: TelegramBot, person: Callable[..., Chat]
) -> None:
    chat = person(1515, "Inès")
    await chat.starts()
    await chat.taps("Je cherche un·e mentor·e", expect="Question 1 ·")
    await chat.says("Inès", expect="Question 2 ·")
    chat.user.send_command("restart")
    first = await chat.reads(expect="Question 1 ·")
    assert "prénom" in (first.text or "")


async def test_a_person_sees_their_data_then_erases_it(
    bot: TelegramBot,
    person: Callable[..., Chat],
    sqlite_url: str,  # type: ignore[type-arg]
) -> None:
    chat = person(1616, "Inès")
    chat.user.phone_number = "+33612345678"
    await sign_up_as_17_year_old_in_saint_denis(chat)
    await chat.taps("C'est bon", expect="Merci")
    chat.user.send_command("mydata")
    data = await chat.reads(expect="Tes données")
    assert "+33612345678" in (data.text or "")
    export = await chat.user.wait_for_message(lambda m: m.document is not None)
    assert export.document is not None
    assert export.document["file_name"] == "mentorat-data.json"
    assert export.document["mime_type"] == "application/json"
    assert export.document_file is not None
    stored = json.loads(export.document_file)
    assert stored["questionnaires_sent"][0]["answers"]["phone"] == "+33612345678"
    assert stored["consents"][0]["method"] == "in_chat"
    assert "Inès" in (data.text or "")
    chat.user.send_command("delete")
    await chat.reads(expect="effacer")
    await chat.taps("Oui, tout effacer", expect="effacées")
    assert await stored_profiles(sqlite_url) == []
    chat.user.send_command("mydata")
    assert "aucune donnée" in ((await chat.reads()).text or "")


async def test_english_follows_telegram_language_then_the_language_command(
    bot: TelegramBot, person: Callable[..., Chat]
) -> None:
    chat = person(1717, "Emma", language_code="en")
    welcome = await chat.starts()
    assert "I want to become a mentor" in welcome.button_texts
    chat.user.send_command("language")
    await chat.reads()
    switched = await chat.taps("Français")
    assert "français" in (switched.text or "")
    welcome = await chat.starts()
    assert "Je veux devenir mentor·e" in welcome.button_texts


async def test_chatter_in_a_group_that_is_not_addressed_to_the_bot_gets_no_answer(
    bot: TelegramBot,
    emulator: BotApiEmulator,
) -> None:
    user = emulator.user(8009, "Alex")
    user.send_text_in_group(-100124, "on se voit demain ?")
    user.send_text_in_group(-100124, "@mentorat_sandbox_bot bonjour")
    reply = await emulator.wait_for_call("sendMessage", chat_id=-100124)
    assert "message privé" in str(reply.params["text"])
    assert len(emulator.calls("sendMessage", chat_id=-100124)) == 1


async def test_what_a_person_types_is_shown_back_escaped_never_as_markup(
    bot: TelegramBot,
    person: Callable[..., Chat],
    sqlite_url: str,
) -> None:
    chat = person(1818, "Karim")
    await chat.starts()
    await chat.taps("Je veux devenir mentor·e", expect="Question 1 ·")
    await chat.says("Karim", expect="Question 2 ·")
    await chat.taps("41 à 60 ans", expect="Question 3 ·")
    await chat.says("69003", expect="Question 4 ·")
    await chat.taps("Salarié·e du privé", expect="Question 5 ·")
    # Telegram refuses a bare "&" or "<" in HTML: the emulator does too, so this fails loudly
    # if the employer is not escaped in the next message, the summary or the card.
    await chat.says("AT&T <Lyon> & Co", expect="Question 6 ·")
    await chat.toggles("Des lycéen·nes")
    await chat.taps("Valider", expect="Question 7 ·")
    await chat.toggles("Orientation")
    await chat.taps("Valider", expect="Question 8 ·")
    await chat.taps("2 h par mois", expect="Question 9 ·")
    await chat.taps("Oui", expect="Question 10 ·")
    await chat.taps("À distance", expect="Question 11 ·")
    await chat.taps("Par e-mail", expect="Question 12 ·")
    await chat.says("karim@example.org", expect="Question 13 ·")
    summary = await chat.taps("Oui, j'accepte", expect="Vos réponses")
    assert "AT&T <Lyon> & Co" in (summary.text or "")
    assert summary.entities  # the summary's own bold titles are still markup


async def test_sending_the_summary_turns_it_into_the_thanks_in_one_edit(
    bot: TelegramBot,
    person: Callable[..., Chat],
    emulator: BotApiEmulator,
) -> None:
    chat = person(1019, "Inès")
    chat.user.phone_number = "+33612345678"
    await sign_up_as_17_year_old_in_saint_denis(chat)
    summary = chat.user.last_message
    assert summary is not None
    sent_before = len(emulator.calls("sendMessage"))
    edits_before = len(emulator.calls("editMessageText"))
    thanks = await chat.taps("C'est bon", expect="Merci")
    await chat.user.presses_answered()
    # The record of what was sent, its answer, then what happens next: one message, one edit.
    assert thanks.message_id == summary.message_id
    text = thanks.text or ""
    assert text.startswith("Tes réponses")
    assert "Prénom : Inès" in text
    assert text.index("Prénom") < text.index("C'est bon ✅") < text.index("Merci Inès")
    assert text.index("Merci Inès") < text.index("Proxité")
    assert not thanks.buttons
    assert len(emulator.calls("sendMessage")) == sent_before
    assert len(emulator.calls("editMessageText")) == edits_before + 1
