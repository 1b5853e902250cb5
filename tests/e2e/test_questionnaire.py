"""A young person and a mentor sign up in the chat, against the real application over HTTP."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from telegram.ext import Application

from bot.sandbox.emulator import BotApiEmulator
from storage.db import create_engine, session_factory
from storage.models import Consent, Conversation, Profile
from tests.e2e.conftest import Chat


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
    question = await chat.taps("Je cherche un·e mentor·e", expect="Question 1/")
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
    bot: Application, person: Callable[..., Chat], sqlite_url: str  # type: ignore[type-arg]
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


async def test_dump_for_review(bot, person, sqlite_url):  # type: ignore[no-untyped-def]
    chat = person(1001, "Inès")
    chat.user.phone_number = "+33612345678"
    await sign_up_as_17_year_old_in_saint_denis(chat)
    await chat.taps("C'est bon", expect="Merci")
    for m in chat.user.history:
        print("----", "BOT" if m.from_bot else "USER", m.html_source or m.text, m.button_texts if m.from_bot else "", m.keyboard_markup or "")
