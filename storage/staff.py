"""The dashboard's own rows: single-use sign-in links and the audit log of staff changes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from conversations.entities import AuditEntry, SignInLink
from storage.tables import audit_log, sign_in_links


class SignInRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def add(self, link: SignInLink) -> None:
        self._session.add(link)

    async def use(
        self, token_hash: str, now: datetime, session_ends_at: datetime
    ) -> SignInLink | None:
        """Marks the link used (its session open until `session_ends_at`) and returns it, if it
        is unused and unexpired; one statement, so two tabs opening one link cannot both sign in."""
        used = await self._session.execute(
            update(SignInLink)
            .where(
                sign_in_links.c.token_hash == token_hash,
                sign_in_links.c.used_at.is_(None),
                sign_in_links.c.expires_at > now,
            )
            .values(used_at=now, session_ends_at=session_ends_at)
            .execution_options(synchronize_session=False)
        )
        if getattr(used, "rowcount", 0) != 1:
            return None
        return await self._session.scalar(
            select(SignInLink).where(sign_in_links.c.token_hash == token_hash)
        )

    async def session(self, link_id: int, now: datetime) -> SignInLink | None:
        """The session this link opened, while it lasts."""
        return await self._session.scalar(
            select(SignInLink).where(
                sign_in_links.c.id == link_id,
                sign_in_links.c.used_at.is_not(None),
                sign_in_links.c.session_ends_at > now,
            )
        )

    async def forget_before(self, moment: datetime) -> int:
        """Links never used and sessions ended before `moment`."""
        ended = func.coalesce(sign_in_links.c.session_ends_at, sign_in_links.c.expires_at)
        result = await self._session.execute(delete(SignInLink).where(ended < moment))
        return int(getattr(result, "rowcount", 0) or 0)


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def record(self, entry: AuditEntry) -> None:
        self._session.add(entry)

    async def recent(self, limit: int) -> list[AuditEntry]:
        rows = await self._session.scalars(
            select(AuditEntry).order_by(audit_log.c.at.desc(), audit_log.c.id.desc()).limit(limit)
        )
        return list(rows)
