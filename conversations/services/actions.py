"""What a person asked for, decoded by the edge from an update (a command, a typed answer, a button).

Every action is plain data: the Telegram edge encodes the button ones into callback_data
(`bot.callback_data`), and a press is always authorised again by the use-case it reaches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from conversations.handoff import HandoffVerb
from conversations.model import Input


@dataclass(frozen=True)
class Start:
    payload: str | None = None


@dataclass(frozen=True)
class ChooseFlow:
    flow: str


@dataclass(frozen=True)
class Answer:
    given: Input


@dataclass(frozen=True)
class Restart:
    pass


@dataclass(frozen=True)
class Cancel:
    pass


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class ShowLanguages:
    pass


@dataclass(frozen=True)
class ChooseLanguage:
    language: str


@dataclass(frozen=True)
class ShowMyData:
    pass


@dataclass(frozen=True)
class AskErase:
    pass


@dataclass(frozen=True)
class ConfirmErase:
    pass


@dataclass(frozen=True)
class KeepData:
    pass


@dataclass(frozen=True)
class ActOnHandoff:
    """A coordinator's button on a contact card; authorised on the server, never trusted."""

    handoff_id: int
    verb: HandoffVerb
    reason: str | None = None


@dataclass(frozen=True)
class ConfirmJoin:
    token: str


@dataclass(frozen=True)
class DeclineJoin:
    pass


@dataclass(frozen=True)
class ShowQueue:
    pass


@dataclass(frozen=True)
class PauseAssociation:
    paused: bool


@dataclass(frozen=True)
class ReplaceRequest:
    """A second sign-up of the same role: the open request is withdrawn, a new one begins. It
    names the request it was offered for: an old button never withdraws a newer one."""

    flow: str
    profile_id: int


@dataclass(frozen=True)
class KeepRequest:
    flow: str


@dataclass(frozen=True)
class AskDashboard:
    """/dashboard: a sign-in link for admins and coordinators."""


@dataclass(frozen=True)
class Reopen:
    """ "Retour" under an early end (an age typed wrong, a "Non" pressed by mistake): the
    question that ended the questionnaire is asked again."""

    step: str


@dataclass(frozen=True)
class ResumeQuestionnaire:
    """The button of the one nudge sent to a person who stopped half-way."""


@dataclass(frozen=True)
class ShowPrivacy:
    """/privacy: who keeps what, why, how long, who receives it, and the person's rights."""


@dataclass(frozen=True)
class AnswerParental:
    """A parent's answer to their child's sign-up, from the parent's own chat. It carries the
    link's token: only whoever received the link can answer, never the child's account."""

    token: str
    agreed: bool


@dataclass(frozen=True)
class ChatMemberChanged:
    """The person blocked the bot (Telegram's my_chat_member), or unblocked it."""

    blocked: bool


Action: TypeAlias = (
    Start
    | ChooseFlow
    | Answer
    | Restart
    | Cancel
    | Help
    | ShowLanguages
    | ChooseLanguage
    | ShowMyData
    | AskErase
    | ConfirmErase
    | KeepData
    | ActOnHandoff
    | ConfirmJoin
    | DeclineJoin
    | ShowQueue
    | PauseAssociation
    | AskDashboard
    | ReplaceRequest
    | KeepRequest
    | Reopen
    | ResumeQuestionnaire
    | ShowPrivacy
    | AnswerParental
    | ChatMemberChanged
)
