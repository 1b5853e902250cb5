"""Who may use the staff dashboard, and how they get in: a single-use link asked for in the chat.

Telegram already knows who is writing, so the bot is the sign-in: an admin (ADMIN_TELEGRAM_IDS) or
an active coordinator sends /dashboard and receives a link that works once, for a few minutes.
Rights are read again at every request (`staff`), so a coordinator removed meanwhile loses access
at once, whatever their browser's session says. Every sign-in and every change is audited, with
staff ids and association slugs only, never a young person's data.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from conversations.entities import AuditEntry, SignInLink
from conversations.ports import UnitOfWork
from conversations.text import _

log = logging.getLogger(__name__)

# Long enough to open the link from the chat; short enough that a forwarded one is soon dead.
LINK_VALID_FOR = timedelta(minutes=10)
# A working day: after it, /dashboard again.
SESSION_VALID_FOR = timedelta(hours=8)
SIGN_IN_PATH = "/admin/sign-in/"

LINK_SENT = _(
    "Voici votre lien vers le tableau de bord, valable 10 minutes et une seule fois :\n"
    '<a href="%(link)s">%(link)s</a>\n'
    "Ne le transférez pas : il ouvre une session à votre nom."
)
NOT_STAFF = _(
    "Le tableau de bord est réservé à l'équipe du Collectif et aux coordinateurs des associations."
)


class Role:
    ADMIN = "admin"
    COORDINATOR = "coordinator"


@dataclass(frozen=True)
class Staff:
    """A signed-in account and what it may see, as read from the settings and the database."""

    telegram_id: int
    admin: bool
    # The associations this account actively coordinates (ids).
    associations: frozenset[int]
    name: str | None
    language: str | None

    @property
    def role(self) -> str:
        return Role.ADMIN if self.admin else Role.COORDINATOR

    def sees(self, association_id: int) -> bool:
        return self.admin or association_id in self.associations


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def staff(uow: UnitOfWork, telegram_id: int, admins: tuple[int, ...]) -> Staff | None:
    """What this account may do now; None if it is neither an admin nor a coordinator."""
    roles = await uow.coordinators.of_person(telegram_id)
    admin = telegram_id in admins
    if not admin and not roles:
        return None
    return Staff(
        telegram_id=telegram_id,
        admin=admin,
        associations=frozenset(role.association_id for role in roles),
        name=roles[0].first_name if roles else None,
        language=roles[0].language if roles else None,
    )


async def new_link(
    uow: UnitOfWork, telegram_id: int, admins: tuple[int, ...], base_url: str, now: datetime
) -> str | None:
    """A sign-in link for this account, or None if it is not staff."""
    if await staff(uow, telegram_id, admins) is None:
        log.info("a /dashboard from an account that is not staff was refused")
        return None
    await uow.sign_ins.forget_before(now)
    token = secrets.token_urlsafe(24)
    uow.sign_ins.add(
        SignInLink(
            token_hash=hash_token(token),
            telegram_id=telegram_id,
            created_at=now,
            expires_at=now + LINK_VALID_FOR,
        )
    )
    return base_url.rstrip("/") + SIGN_IN_PATH + token


@dataclass(frozen=True)
class SignedIn:
    who: Staff
    # The session's id (the link's row): the cookie names it, sign-out ends it.
    session_id: int
    ends_at: datetime


async def sign_in(
    uow: UnitOfWork, token: str, admins: tuple[int, ...], now: datetime
) -> SignedIn | None:
    """The account the link was made for, once: the link is used up and opens a session. None
    when it is unknown, used, expired, or its account is no longer staff."""
    ends_at = now + SESSION_VALID_FOR
    link = await uow.sign_ins.use(hash_token(token), now, ends_at)
    if link is None:
        return None
    who = await staff(uow, link.telegram_id, admins)
    if who is None:
        return None
    record(uow, who, "sign_in", None, now)
    return SignedIn(who, link.id, ends_at)


async def in_session(
    uow: UnitOfWork, session_id: int, telegram_id: int, admins: tuple[int, ...], now: datetime
) -> Staff | None:
    """Who is signed in with this session, if it is still open and they are still staff."""
    link = await uow.sign_ins.session(session_id, now)
    if link is None or link.telegram_id != telegram_id:
        return None
    return await staff(uow, telegram_id, admins)


async def sign_out(uow: UnitOfWork, session_id: int, now: datetime) -> None:
    """Ends the session for every copy of its cookie."""
    link = await uow.sign_ins.session(session_id, now)
    if link is not None:
        link.session_ends_at = now


def record(
    uow: UnitOfWork,
    who: Staff,
    action: str,
    target: str | None,
    now: datetime,
    detail: str | None = None,
) -> None:
    """One line of the audit log. `target` names an association (slug), a coordinator or a
    handoff by id; never a young person's name or contact."""
    uow.audit.record(
        AuditEntry(
            at=now,
            actor=who.telegram_id,
            role=who.role,
            action=action,
            target=target[:120] if target else None,
            detail=detail[:200] if detail else None,
        )
    )
