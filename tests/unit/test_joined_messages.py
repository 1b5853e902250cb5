"""A notice without buttons travels with what follows it: one Bot API call, the same reading."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, ReplyKeyboardRemove

from bot.render import TEXT_MAX, Message, joined

BUTTONS = InlineKeyboardMarkup([[InlineKeyboardButton("↩️ Retour", callback_data="b|age")]])


def test_an_intro_and_the_first_question_make_one_message_with_the_questions_buttons() -> None:
    intro = Message("Super ! Je vais te poser 9 questions.", leads=True)
    question = Message(
        "<i>Question 1 · ▱▱▱▱▱▱▱▱▱▱ 0 %</i>\n\n<b>Quel est ton prénom ?</b>", BUTTONS
    )
    assert joined([intro, question]) == [
        Message(f"{intro.text}\n\n{question.text}", BUTTONS),
    ]


def test_a_message_with_a_keyboard_of_its_own_or_alone_stays_apart() -> None:
    noted = Message("C'est noté ✅", ReplyKeyboardRemove())
    question = Message("<i>Question 10 · ▰▰▰▰▰▰▰▰▰▱ 90 %</i>", BUTTONS)
    thanks = Message("Merci, c'est envoyé !", leads=True)
    assert joined([noted, question]) == [noted, question]
    assert joined([question, thanks]) == [question, thanks]
    assert joined([thanks]) == [thanks]
    # A question without buttons (free text) never swallows what follows it.
    typed = Message("<i>Question 2 · ▱▱▱▱▱▱▱▱▱▱ 8 %</i>\n\n<b>Quel âge as-tu ?</b>")
    assert joined([typed, thanks]) == [typed, thanks]
    assert joined([]) == []


def test_notices_in_a_row_join_the_next_one_while_the_whole_fits_telegrams_limit() -> None:
    first, second, last = Message("a", leads=True), Message("b", leads=True), Message("c", BUTTONS)
    assert joined([first, second, last]) == [Message("a\n\nb\n\nc", BUTTONS)]
    long_notice = Message("x" * (TEXT_MAX - 2), leads=True)
    assert joined([long_notice, last]) == [long_notice, last]
