"""Telegram handlers: decode the update, run one use-case, render what it says. Nothing more."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from telegram import (
    Bot,
    CallbackQuery,
    InlineKeyboardMarkup,
    InputFile,
    Message,
    ReplyKeyboardRemove,
    Update,
)
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot import callback_data
from bot.render import File, Photo, Renderer, joined
from bot.render import Message as Rendered
from bot.runtime import Services
from conversations.flows import FLOWS
from conversations.model import ContactInput, NonTextInput, Summary, TextInput
from conversations.services import actions, digest, updates
from conversations.services.actions import Action
from conversations.services.replies import Chart, Notice, Reply, Screen, Sender
from conversations.text import _, pick_language

log = logging.getLogger(__name__)

PRIVATE = filters.ChatType.PRIVATE
WRITE_IN_PRIVATE = _("Écrivez-moi en message privé : @%(bot)s 🙂")
SOMETHING_WENT_WRONG = {
    "tu": _(
        "Oups, un souci de mon côté. Tes réponses sont bien gardées : réessaie dans un instant."
    ),
    "vous": _(
        "Oups, un souci de mon côté. Vos réponses sont bien gardées : réessayez dans un instant."
    ),
}
# Telegram may answer 5xx while it recovers: a few quick retries before giving up on a reply.
SEND_ATTEMPTS = 3


class Handlers:
    def __init__(self, services: Services, renderer: Renderer, on_outbox: Callable[[], None]):
        self._services = services
        self._renderer = renderer
        # Wakes the outbox relay after a commit that queued messages for others.
        self._on_outbox = on_outbox
        # Updates whose handling raised: the inbox tries them again, or gives up on them.
        self.failed_updates: set[int] = set()
        # Handled, but their reply could not be sent: the inbox leaves them for the recovery.
        self.owed_replies: set[int] = set()
        # Updates the inbox replays after a crash (shared with it): a duplicate among them was
        # handled but maybe not answered, so its person gets their current question again.
        self.replaying: set[int] = set()
        # Already handled, by this process or another: nothing shown.
        self.duplicates: set[int] = set()
        # Webhook mode: presses being handled for an HTTP request from Telegram, and the toast
        # each gets; the answerCallbackQuery goes back in the response, one Bot API call less.
        self.answered_in_response: set[int] = set()
        self.toasts: dict[int, str | None] = {}

    def take_failure(self, update_id: int) -> bool:
        if update_id in self.failed_updates:
            self.failed_updates.discard(update_id)
            return True
        return False

    def take_duplicate(self, update_id: int) -> bool:
        if update_id in self.duplicates:
            self.duplicates.discard(update_id)
            return True
        return False

    def take_owed(self, update_id: int) -> bool:
        if update_id in self.owed_replies:
            self.owed_replies.discard(update_id)
            return True
        return False

    def register(self, application: Application) -> None:  # type: ignore[type-arg]
        # Order matters: group messages are answered before any private-chat handler sees them.
        # In a group, only what is addressed to the bot (a command, a mention) gets the answer.
        addressed = filters.COMMAND | filters.Entity("mention")
        # An edited message is never an answer nor a command: editing an old /restart must not
        # restart anything.
        fresh = ~filters.UpdateType.EDITED
        application.add_handler(MessageHandler(~PRIVATE & addressed & fresh, self.group))
        commands: dict[str, Callable[[Update], Action]] = {
            "start": lambda update: actions.Start(_payload(update)),
            "help": lambda _update: actions.Help(),
            "language": lambda _update: actions.ShowLanguages(),
            "restart": lambda _update: actions.Restart(),
            "cancel": lambda _update: actions.Cancel(),
            "mydata": lambda _update: actions.ShowMyData(),
            "privacy": lambda _update: actions.ShowPrivacy(),
            "delete": lambda _update: actions.AskErase(),
            "queue": lambda _update: actions.ShowQueue(),
            "pause": lambda _update: actions.PauseAssociation(paused=True),
            "resume": lambda _update: actions.PauseAssociation(paused=False),
            "dashboard": lambda _update: actions.AskDashboard(),
        }
        for name, decode in commands.items():
            application.add_handler(CommandHandler(name, self._command(decode), PRIVATE & fresh))
        # Only reads, so not through updates.handle: its figures open units of work of their own.
        application.add_handler(CommandHandler("stats", self.stats, PRIVATE & fresh))
        application.add_handler(
            MessageHandler(PRIVATE & filters.COMMAND & fresh, self.unknown_command)
        )
        application.add_handler(MessageHandler(PRIVATE & filters.CONTACT & fresh, self.contact))
        application.add_handler(MessageHandler(PRIVATE & filters.TEXT & fresh, self.text))
        # Only things a person sends: service messages (a timer set, a pin) are not answers.
        media = (
            filters.Sticker.ALL
            | filters.PHOTO
            | filters.VOICE
            | filters.VIDEO
            | filters.VIDEO_NOTE
            | filters.AUDIO
            | filters.ANIMATION
            | filters.Document.ALL
            | filters.LOCATION
            | filters.VENUE
            | filters.POLL
            | filters.Dice.ALL
        )
        application.add_handler(MessageHandler(PRIVATE & media & fresh, self.non_text))
        application.add_handler(CallbackQueryHandler(self.button))
        application.add_handler(
            ChatMemberHandler(self.chat_member, ChatMemberHandler.MY_CHAT_MEMBER)
        )
        application.add_error_handler(self.error)

    def _command(
        self, decode: Callable[[Update], Action]
    ) -> Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, None]]:
        async def handle(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            """A slash command in a private chat."""
            await self._run(update, context, decode(update))

        return handle

    async def stats(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/stats: the week's figures and the funnel chart, for admins."""
        services = self._services
        reply = await digest.show_stats(
            services.unit_of_work, self._sender(update), services.policy
        )
        await self._show(update, context, reply)

    async def unknown_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A command we do not know: show the help rather than silence."""
        await self._run(update, context, actions.Help())

    async def text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A typed answer."""
        assert update.effective_message is not None
        typed = update.effective_message.text or ""
        await self._run(update, context, actions.Answer(TextInput(typed)))

    async def contact(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A shared contact: the "share my number" button, or someone else's card."""
        assert update.effective_message is not None
        assert update.effective_user is not None
        contact = update.effective_message.contact
        assert contact is not None
        is_own = contact.user_id == update.effective_user.id
        await self._run(update, context, actions.Answer(ContactInput(contact.phone_number, is_own)))

    async def non_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A sticker, photo, voice note or location where we expect words."""
        message = update.effective_message
        if message is None or update.effective_user is None:
            return
        kind = next(
            (
                name
                for name in (
                    "sticker",
                    "photo",
                    "voice",
                    "video",
                    "video_note",
                    "audio",
                    "animation",
                    "document",
                    "location",
                    "venue",
                    "poll",
                    "dice",
                )
                if getattr(message, name, None)
            ),
            "other",
        )
        await self._run(update, context, actions.Answer(NonTextInput(kind)))

    async def button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A press on an inline button."""
        query = update.callback_query
        assert query is not None
        action = callback_data.decode(query.data or "")
        if action is None or query.message is None or query.message.chat.type != ChatType.PRIVATE:
            await self._answer(update, query, None)
            return
        await self._run(update, context, action)

    async def chat_member(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The person blocked the bot ("kicked") or unblocked it: noted, nothing is sent."""
        member = update.my_chat_member
        if member is None or member.chat.type != ChatType.PRIVATE:
            return
        status = member.new_chat_member.status
        if status == ChatMemberStatus.BANNED:  # "kicked"
            blocked = True
        elif status == ChatMemberStatus.MEMBER:
            blocked = False
        else:
            return
        await self._run(update, context, actions.ChatMemberChanged(blocked))

    async def group(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Questionnaires hold personal data: they happen in private, never in a group."""
        message = update.effective_message
        if message is None or update.effective_user is None:
            return
        language = pick_language(None, update.effective_user.language_code)
        text = self._renderer.notice_text(language, WRITE_IN_PRIVATE.fmt(bot=context.bot.username))
        await self.send(message.get_bot(), message.chat_id, Rendered(text))

    async def error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log without personal data; the inbox tries the update again, or gives it up with one
        kind message to its person."""
        update_id = update.update_id if isinstance(update, Update) else None
        if update_id is not None:
            self.failed_updates.add(update_id)
        log.error(
            "update %s failed: %s",
            update_id,
            type(context.error).__name__,
            exc_info=context.error,
        )

    # --- the three moves: decode, run, render -------------------------------------------------

    async def _run(
        self, update: Update, context: ContextTypes.DEFAULT_TYPE, action: Action
    ) -> None:
        services = self._services
        reply = await updates.handle(
            services.unit_of_work,
            self._sender(update),
            action,
            services.policy,
            services.localize,
            self._on_outbox,
        )
        await self._show(update, context, reply)

    def _sender(self, update: Update) -> Sender:
        user = update.effective_user
        chat = update.effective_chat
        assert user is not None
        assert chat is not None
        return Sender(
            update_id=update.update_id,
            telegram_id=user.id,
            chat_id=chat.id,
            telegram_language=user.language_code,
            now=self._services.clock(),
            first_name=user.first_name,
            bot_username=update.get_bot().username,
        )

    async def _show(self, update: Update, context: ContextTypes.DEFAULT_TYPE, reply: Reply) -> None:
        if reply.duplicate:
            if update.update_id in self.replaying:
                await self._resume(update, context)
            else:
                self.duplicates.add(update.update_id)
            return
        try:
            await self._show_reply(update, context, reply)
        except TimedOut:
            # Telegram may well have shown it: sending again could show it twice.
            log.warning("update %s: the reply timed out", update.update_id)
        except TelegramError as error:
            if isinstance(error, BadRequest):
                raise
            # The answer is committed; the question will be sent again by the inbox's recovery.
            log.warning("update %s: reply not sent (%s)", update.update_id, type(error).__name__)
            self.owed_replies.add(update.update_id)

    async def _resume(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A replayed update was handled before a crash: send the person where they are now."""
        user, chat = update.effective_user, update.effective_chat
        if user is None or chat is None or chat.type != ChatType.PRIVATE:
            return
        log.info(
            "update %s was handled before a crash: its person's screen is sent again",
            update.update_id,
        )
        reply = await updates.resume(self._services.unit_of_work, user.id)
        for message in await self._rendered(reply):
            await self.send(context.bot, chat.id, message)

    async def _rendered(self, reply: Reply) -> list[Rendered | Photo | File]:
        if any(isinstance(screen, Chart) for screen in reply.screens):
            # Drawing is CPU-bound: in a thread, the other chats are answered meanwhile.
            return await asyncio.to_thread(self._rendered_now, reply)
        return self._rendered_now(reply)

    def _rendered_now(self, reply: Reply) -> list[Rendered | Photo | File]:
        return joined([self._render(reply, screen) for screen in reply.screens])

    def _render(self, reply: Reply, screen: Screen) -> Rendered | Photo | File:
        address = FLOWS[screen.state.flow].address if isinstance(screen, Summary) else reply.address
        return self._renderer.screen(reply.language, screen, address)

    async def _show_reply(
        self, update: Update, context: ContextTypes.DEFAULT_TYPE, reply: Reply
    ) -> None:
        bot = context.bot
        chat = update.effective_chat
        assert chat is not None
        query = update.callback_query
        rendered = await self._rendered(reply)
        if query is not None:
            toast = self._renderer.toast(reply.language, reply.toast) if reply.toast else None
            try:
                # A press of a button the message does not have (a modified client): what
                # follows comes anew, the message stays as it is.
                if _offered(query):
                    edited = self._edited(query, reply, rendered)
                    if edited is not None and await self._edit_into(update, query, edited):
                        rendered = rendered[1:]
                    else:
                        await self._update_pressed(query, reply)
            finally:
                # Whatever became of the edit, the spinner stops.
                await self._answer(update, query, toast)
        if reply.close_reply_keyboard:
            rendered = self._closing_reply_keyboard(reply, rendered)
        for message in rendered:
            await self.send(bot, chat.id, message)

    def _closing_reply_keyboard(
        self, reply: Reply, rendered: list[Rendered | Photo | File]
    ) -> list[Rendered | Photo | File]:
        """The "share my number" keyboard goes with the next message when that one has no
        buttons of its own (a message has one keyboard)."""
        first = rendered[0] if rendered else None
        if isinstance(first, Rendered) and first.markup is None:
            return [Rendered(first.text, ReplyKeyboardRemove(), first.leads), *rendered[1:]]
        # Its own message, then: the number as understood, and the keyboard gone (a one-time
        # keyboard only hides; it would stay one tap away at every later question).
        return [self._renderer.noted(reply.language, reply.echo), *rendered]

    async def _answer(self, update: Update, query: CallbackQuery, toast: str | None) -> None:
        """Stops the button's spinner (with a toast, if any); in webhook mode, through the HTTP
        response to Telegram's request."""
        if update.update_id in self.answered_in_response:
            self.toasts[update.update_id] = toast
            return
        try:
            await query.answer(toast)
        except BadRequest as error:
            # Too old to answer (a press replayed after a restart): only the spinner is lost.
            log.warning("could not answer the press: %s", error.message)

    def _edited(
        self, query: CallbackQuery, reply: Reply, rendered: list[Rendered | Photo | File]
    ) -> Rendered | None:
        """What the pressed message can become: the one screen that follows the press on it
        (under the answer it gave; under the record of the summary that was sent), not a
        keyboard Telegram cannot put on an edited message, not a picture, not a message meant
        to be forwarded, not a text that would be too long with the answer above it."""
        if reply.echo is None and not reply.replaces_pressed:
            return None
        if reply.in_place is not None or reply.card_keyboard is not None:
            return None
        if any(isinstance(screen, Notice) and screen.to_forward for screen in reply.screens):
            return None
        if reply.close_reply_keyboard or len(rendered) != 1:
            return None
        following = rendered[0]
        if not isinstance(following, Rendered) or not isinstance(query.message, Message):
            return None
        if following.markup is not None and not isinstance(following.markup, InlineKeyboardMarkup):
            return None
        if reply.record is not None:
            record = self._record(reply.language, reply.record)
            return self._renderer.kept(reply.language, record, reply.echo, following)
        return self._renderer.followed(reply.language, reply.echo, following)

    async def _edit_into(self, update: Update, query: CallbackQuery, edited: Rendered) -> bool:
        """The pressed message edited into what follows; False when that could not be done (the
        old message then only loses its buttons, and what follows is sent anew, with its own
        retries): a person is never left without their next question."""
        message = query.message
        assert isinstance(message, Message)
        markup = edited.markup
        assert markup is None or isinstance(markup, InlineKeyboardMarkup)
        if _same_html(message.text_html, edited.text) and message.reply_markup == markup:
            # It shows that already (the same re-ask twice, a double tap): no call.
            return True
        try:
            await _retrying(lambda: message.edit_text(edited.text, reply_markup=markup))
            return True
        except TimedOut:
            # Applied or lost, nobody can tell: the inbox's recovery sends the person where they
            # are (at worst a second copy of it; never nothing, never the same message twice).
            self.owed_replies.add(update.update_id)
            raise
        except BadRequest as error:
            if "not modified" in error.message:
                # It shows that already (the same re-ask twice, a double tap): nothing to send.
                return True
            log.warning("could not edit the pressed message: %s", error.message)
        except RetryAfter:
            # The rate limiter waited and tried already: send anew rather than wait more.
            log.warning("edit refused by the flood limit: the next screen is sent anew")
        except NetworkError as error:
            log.warning("edit failed (%s): the next screen is sent anew", type(error).__name__)
        return False

    async def _update_pressed(self, query: CallbackQuery, reply: Reply) -> None:
        message = query.message
        if not isinstance(message, Message):
            return
        try:
            if reply.in_place is not None:
                markup = self._renderer.ask_markup(reply.language, reply.in_place)
                await message.edit_reply_markup(reply_markup=markup)  # type: ignore[arg-type]
            elif reply.card_keyboard is not None:
                keyboard = reply.card_keyboard
                markup = self._renderer.card_keyboard(
                    reply.language, keyboard.handoff_id, keyboard.buttons
                )
                await message.edit_reply_markup(reply_markup=markup)
            elif reply.echo is not None:
                shown = message.text_html
                if reply.record is not None:
                    shown = self._record(reply.language, reply.record)
                text = self._renderer.echo(reply.language, shown, reply.echo)
                await message.edit_text(text, reply_markup=None)
        except BadRequest as error:
            # A double tap can ask for an edit identical to the message: harmless. Any other
            # refusal only costs the echo; the next question is still sent.
            if "not modified" not in error.message:
                log.warning("could not update the pressed message: %s", error.message)
        except TelegramError as error:
            log.warning("could not update the pressed message: %s", type(error).__name__)

    def _record(self, language: str, summary: Summary) -> str:
        """The summary as it was sent, without its buttons: what the chat keeps of it."""
        address = FLOWS[summary.state.flow].address
        return self._renderer.summary(language, summary, address).text

    @staticmethod
    async def send(bot: Bot, chat_id: int, message: Rendered | Photo | File) -> None:
        """A message to the person in front of the chat, with a few quick retries on 5xx."""
        await _send(bot, chat_id, message)


def _offered(query: CallbackQuery) -> bool:
    """Whether the pressed message has the pressed button (Telegram sends the message with the
    press); only then may the press change that message."""
    message = query.message
    if not isinstance(message, Message) or message.reply_markup is None:
        return False
    return any(
        button.callback_data == query.data
        for row in message.reply_markup.inline_keyboard
        for button in row
    )


def _same_html(shown: str, rendered: str) -> bool:
    """Whether a message's text, as PTB writes it back in HTML, is the rendered one: PTB
    escapes quotes (`&#x27;`, `&quot;`) where the renderer leaves them, and French is full of
    apostrophes ("C'est fait")."""
    return _unquoted(shown) == _unquoted(rendered)


def _unquoted(html_text: str) -> str:
    return html_text.replace("&#x27;", "'").replace("&quot;", '"')


def _payload(update: Update) -> str | None:
    message = update.effective_message
    if message is None or not message.text:
        return None
    parts = message.text.split(maxsplit=1)
    return parts[1].strip() if len(parts) == 2 else None


async def _send(bot: Bot, chat_id: int, message: Rendered | Photo | File) -> None:
    async def once() -> object:
        if isinstance(message, File):
            document = InputFile(message.data, filename=message.filename)
            return await bot.send_document(chat_id, document, caption=message.caption)
        if isinstance(message, Photo):
            # Uploaded (multipart/form-data) each time: a chart is drawn for this moment.
            picture = InputFile(message.png, filename="chart.png")
            return await bot.send_photo(
                chat_id, picture, caption=message.caption, reply_markup=message.markup
            )
        return await bot.send_message(chat_id, message.text, reply_markup=message.markup)

    await _retrying(once)


async def _retrying(call: Callable[[], Awaitable[object]]) -> None:
    """A call to Telegram, with a few quick retries while it answers 5xx or the network fails.
    Not after a timeout (it may have gone through: twice would show it twice), nor after a
    refusal (400, 403, 429: the rate limiter has waited already)."""
    for attempt in range(1, SEND_ATTEMPTS + 1):
        try:
            await call()
            return
        except TimedOut:
            raise
        except NetworkError as error:
            if isinstance(error, BadRequest) or attempt == SEND_ATTEMPTS:
                raise
            log.warning("Telegram call failed (%s), attempt %s", type(error).__name__, attempt)
            await asyncio.sleep(0.5 * 2**attempt)
