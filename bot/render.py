"""Plain results to Telegram messages: the HTML text and the keyboard a person sees, in their language.

Screens of a reply, contact cards and the other outbox messages are rendered here, at send time; a
chart becomes a PNG with its caption.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)

from bot.callback_data import encode
from bot.dashboard.charts import funnel_chart
from bot.i18n import Translator
from conversations.engine import Echo
from conversations.model import (
    Ask,
    BackInput,
    ChoiceInput,
    ConfirmInput,
    DoneInput,
    EditInput,
    SkipInput,
    StepKind,
    Summary,
    ToggleInput,
)
from conversations.ports import CardButton, ChatMessage, ContactCard, PersonNotice
from conversations.services.actions import Action, ActOnHandoff, Answer, ResumeQuestionnaire
from conversations.services.replies import Chart, Document, Notice, Screen
from conversations.text import Text, _

Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove | None

PROGRESS = _("Question %(position)s · %(bar)s %(percent)s %%")
# Cells of the progress bar: one per tenth of the way.
PROGRESS_CELLS = 10
BACK = _("↩️ Retour")
SKIP = _("Passer")
DONE = _("Valider ✅")
SHARE_PHONE = _("📱 Partager mon numéro")
SUMMARY_TITLE = {
    "tu": _("<b>Tes réponses</b> – vérifie-les avant l'envoi :"),
    "vous": _("<b>Vos réponses</b> – vérifiez-les avant l'envoi :"),
}
SUMMARY_LINE = _("<b>%(title)s</b> : %(value)s")
CONFIRM = _("✅ C'est bon, j'envoie")
EDIT = _("✏️ %(title)s")
ANSWERED = _("→ <b>%(answer)s</b>")
# Above the next question, when the pressed message becomes it: what the press answered.
TAKEN = _("✓ <b>%(answer)s</b>")
NOTED = _("C'est noté ✅")
# Telegram rejects longer texts with a 400 ("message is too long").
TEXT_MAX = 4096
# And longer photo captions ("message caption is too long").
CAPTION_MAX = 1024


@dataclass(frozen=True)
class Message:
    text: str
    markup: Markup = None
    # A notice without buttons: it may travel in the same message as the screen after it.
    leads: bool = False


@dataclass(frozen=True)
class Photo:
    """A picture sent with sendPhoto (uploaded as a file), under an HTML caption."""

    png: bytes
    caption: str
    markup: Markup = None


@dataclass(frozen=True)
class File:
    """A document sent with sendDocument (uploaded), under an HTML caption: /mydata's export."""

    data: bytes
    filename: str
    caption: str


class Renderer:
    def __init__(self, translator: Translator) -> None:
        self._t = translator

    def screen(
        self, language: str, screen: Screen, address: str = "vous"
    ) -> Message | Photo | File:
        if isinstance(screen, Document):
            caption = _bounded(self._t.html(language, screen.caption), CAPTION_MAX)
            return File(screen.content, screen.filename, caption)
        if isinstance(screen, Ask):
            return self.ask(language, screen)
        if isinstance(screen, Summary):
            return self.summary(language, screen, address)
        if isinstance(screen, Chart):
            return self.chart(language, screen)
        return self.notice(language, screen)

    def chart(self, language: str, chart: Chart) -> Photo:
        """Drawing takes a CPU-bound moment (matplotlib): call it off the event loop."""
        png = funnel_chart(
            chart.funnel,
            self._t.plain(language, chart.title),
            lambda text: self._t.plain(language, text),
        )
        return Photo(png, _bounded(self._t.html(language, chart.caption), CAPTION_MAX))

    def ask(self, language: str, ask: Ask) -> Message:
        filled = ask.progress.percent * PROGRESS_CELLS // 100
        bar = "▰" * filled + "▱" * (PROGRESS_CELLS - filled)
        progress = PROGRESS.fmt(
            position=ask.progress.position, bar=bar, percent=ask.progress.percent
        )
        question = f"<b>{self._t.html(language, ask.prompt)}</b>"
        if ask.step.hint is not None:
            question += f"\n<i>{self._t.html(language, ask.step.hint)}</i>"
        parts = [f"<i>{self._t.html(language, progress)}</i>"]
        if ask.problem is not None:
            parts.append(f"⚠️ {self._t.html(language, ask.problem)}")
        parts.append(question)
        return Message(_bounded("\n\n".join(parts)), self.ask_markup(language, ask))

    def ask_markup(self, language: str, ask: Ask) -> Markup:
        step = ask.step.key
        if ask.step.kind is StepKind.PHONE and ask.step.own_number:
            # Telegram only offers "share my number" on a reply keyboard, never inline.
            return ReplyKeyboardMarkup(
                [[KeyboardButton(self._t.plain(language, SHARE_PHONE), request_contact=True)]],
                resize_keyboard=True,
                one_time_keyboard=True,
            )
        rows: list[list[InlineKeyboardButton]] = []
        for choice in ask.choices:
            label = self._t.plain(language, choice.label)
            if ask.step.kind is StepKind.MULTI:
                mark = "☑️" if choice.value in ask.selected else "⬜"
                rows.append(
                    [
                        self._button(
                            f"{mark} {label}",
                            Answer(
                                ToggleInput(step, choice.value, choice.value not in ask.selected)
                            ),
                        )
                    ]
                )
            else:
                mark = "✓ " if choice.value in ask.selected else ""
                rows.append(
                    [self._button(f"{mark}{label}", Answer(ChoiceInput(step, choice.value)))]
                )
        for shortcut in ask.step.shortcuts:
            rows.append(
                [
                    self._button(
                        self._t.plain(language, shortcut.label),
                        Answer(ChoiceInput(step, shortcut.value)),
                    )
                ]
            )
        last: list[InlineKeyboardButton] = []
        if ask.can_go_back:
            last.append(self._button(self._t.plain(language, BACK), Answer(BackInput(step))))
        if ask.step.optional:
            last.append(self._button(self._t.plain(language, SKIP), Answer(SkipInput(step))))
        if ask.step.kind is StepKind.MULTI:
            last.append(self._button(self._t.plain(language, DONE), Answer(DoneInput(step))))
        if last:
            rows.append(last)
        return InlineKeyboardMarkup(rows) if rows else None

    def summary(self, language: str, summary: Summary, address: str) -> Message:
        lines = [self._t.html(language, SUMMARY_TITLE[address]), ""]
        if summary.problem is not None:
            lines.insert(0, f"⚠️ {self._t.html(language, summary.problem)}\n")
        for line in summary.lines:
            lines.append(
                self._t.html(language, SUMMARY_LINE.fmt(title=line.title, value=line.value))
            )
        edit_buttons = [
            self._button(
                self._t.plain(language, EDIT.fmt(title=line.title)), Answer(EditInput(line.step))
            )
            for line in summary.lines
        ]
        rows = [edit_buttons[i : i + 2] for i in range(0, len(edit_buttons), 2)]
        rows.append([self._button(self._t.plain(language, CONFIRM), Answer(ConfirmInput()))])
        return Message(_bounded("\n".join(lines)), InlineKeyboardMarkup(rows))

    def notice(self, language: str, notice: Notice) -> Message:
        rows = [[self._button(self._t.plain(language, b.label), b.action)] for b in notice.buttons]
        return Message(
            _bounded(self._t.html(language, notice.text)),
            InlineKeyboardMarkup(rows) if rows else None,
            leads=not rows,
        )

    def notice_text(self, language: str, text: Text) -> str:
        return _bounded(self._t.html(language, text))

    def echo(self, language: str, original_html: str, echo: Echo) -> str:
        """The pressed message, its answer appended, so the chat reads as a record of answers."""
        return _bounded(self._with_answer(language, original_html, echo))

    def followed(self, language: str, echo: Echo, following: Message) -> Message | None:
        """The pressed message turned into what follows it, under the answer it gave (if any):
        one edit instead of an edit and a new message. None when both would be too long."""
        if echo is None:
            return following
        line = self._t.html(language, TAKEN.fmt(answer=echo))
        text = f"{line}\n\n{following.text}"
        return Message(text, following.markup) if len(text) <= TEXT_MAX else None

    def kept(
        self, language: str, original_html: str, echo: Echo, following: Message
    ) -> Message | None:
        """A record kept (the summary that was sent), its answer appended, then what follows
        it: the chat reads the same as a frozen summary and a new message, in one edit. None
        when that would be too long for one message."""
        text = f"{self._with_answer(language, original_html, echo)}\n\n{following.text}"
        return Message(text, following.markup) if len(text) <= TEXT_MAX else None

    def _with_answer(self, language: str, original_html: str, echo: Echo) -> str:
        line = self._t.html(language, ANSWERED.fmt(answer=echo if echo is not None else ""))
        return f"{original_html}\n\n{line}"

    def card_keyboard(
        self, language: str, handoff_id: int, buttons: tuple[CardButton, ...]
    ) -> InlineKeyboardMarkup | None:
        """A contact card's buttons: two to a row, the decline reasons one per row."""
        if not buttons:
            return None
        keys = [
            self._button(
                self._t.plain(language, b.label), ActOnHandoff(handoff_id, b.verb, b.reason)
            )
            for b in buttons
        ]
        if any(b.reason for b in buttons):
            return InlineKeyboardMarkup([[key] for key in keys])
        return InlineKeyboardMarkup([keys])

    def outbox(self, message: ChatMessage) -> Message:
        """A message for someone other than the person in front of the chat, in their language."""
        if isinstance(message, ContactCard):
            text = self._t.html(message.language, message.body)
            if message.status is not None:
                # The status line is redrawn under the card on each change.
                text += f"\n\n— {self._t.html(message.language, message.status)}"
            markup = self.card_keyboard(message.language, message.handoff_id, message.buttons)
            return Message(_bounded(text), markup)
        if isinstance(message, PersonNotice) and message.resume is not None:
            label = self._t.plain(message.language, message.resume)
            resume = InlineKeyboardMarkup([[self._button(label, ResumeQuestionnaire())]])
            return Message(self.notice_text(message.language, message.text), resume)
        return Message(self.notice_text(message.language, message.text))

    def toast(self, language: str, text: Text) -> str:
        # answerCallbackQuery allows 200 characters.
        return self._t.plain(language, text)[:200]

    def noted(self, language: str, echo: Echo = None) -> Message:
        """The number as understood ("✓ 06 12 34 56 78"), closing the share keyboard."""
        text = NOTED if echo is None else TAKEN.fmt(answer=echo)
        return Message(self._t.html(language, text), ReplyKeyboardRemove())

    @staticmethod
    def _button(label: str, action: Action) -> InlineKeyboardButton:
        return InlineKeyboardButton(label, callback_data=encode(action))


def joined(messages: Sequence[Message | Photo | File]) -> list[Message | Photo | File]:
    """A notice without buttons goes in the same message as what follows it (the intro and the
    first question, a confirmation and the next step): one Bot API call instead of two, and
    the person reads the same. Kept apart only when together they would be too long, or when
    what follows is a picture (its caption is short)."""
    out: list[Message | Photo | File] = []
    for message in messages:
        previous = out[-1] if out else None
        if isinstance(previous, Message) and isinstance(message, Message) and previous.leads:
            text = f"{previous.text}\n\n{message.text}"
            if len(text) <= TEXT_MAX:
                out[-1] = Message(text, message.markup, message.leads)
                continue
        out.append(message)
    return out


def _bounded(text: str, longest: int = TEXT_MAX) -> str:
    if len(text) <= longest:
        return text
    # Only reachable through a catalogue bug; cutting plain text at a tag boundary keeps HTML valid.
    cut = text[: longest - 1]
    return cut[: cut.rfind("\n")] + "…" if "\n" in cut else cut + "…"
