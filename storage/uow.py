"""The unit of work: one transaction per update. Leaving the block without `commit()` rolls back.

It implements `conversations.ports.UnitOfWork`. Importing it maps the core's entities onto the
tables (once). A concurrent change found at flush or commit (a stale `version`, a duplicate key)
comes out as `conversations.ports.Conflict`, with SQLAlchemy's error as its cause.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Self

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from conversations import ports
from storage.figures import Figures
from storage.handoffs import CoordinatorRepository, HandoffRepository, InviteRepository
from storage.inbox import InboxRepository
from storage.outbox import OutboxRepository
from storage.repositories import (
    CatalogRepository,
    ConversationRepository,
    FunnelRepository,
    ParentalLinkRepository,
    PeopleRepository,
    ProfileRepository,
    UpdateLog,
)
from storage.staff import AuditRepository, SignInRepository
from storage.tables import map_entities as map_entities  # re-exported: tests map without a session

map_entities()

# What another transaction (or a redelivery) doing the same thing first looks like.
CONFLICTS = (StaleDataError, IntegrityError)


def _conflict(error: Exception) -> ports.Conflict:
    # Only the error's type: its text quotes SQL, and its cause (kept) has the details.
    return ports.Conflict(f"the rows changed meanwhile ({type(error).__name__})")


class UnitOfWork:
    # Typed as the ports (a protocol's attributes are invariant): assigning storage's
    # repositories to them in __aenter__ is what proves they implement the ports.
    people: ports.PeopleRepository
    conversations: ports.ConversationRepository
    profiles: ports.ProfileRepository
    parental_links: ports.ParentalLinkRepository
    updates: ports.UpdateLog
    funnel: ports.FunnelRepository
    catalog: ports.CatalogRepository
    coordinators: ports.CoordinatorRepository
    invites: ports.InviteRepository
    handoffs: ports.HandoffRepository
    outbox: ports.Outbox
    inbox: ports.InboxRepository
    sign_ins: ports.SignInRepository
    audit: ports.AuditRepository
    figures: ports.Figures

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], lock: asyncio.Lock | None = None
    ) -> None:
        self._sessions = sessions
        self._session: AsyncSession | None = None
        # SQLite has one writer at a time: within a process, transactions queue on this lock
        # instead of piling up on SQLite's busy timeout (see storage.db.write_lock).
        self._lock = lock

    @property
    def session(self) -> AsyncSession:
        """For storage and its tests only: the core sees repositories, never the session."""
        assert self._session is not None, "use the unit of work inside `async with`"
        return self._session

    async def __aenter__(self) -> Self:
        if self._lock is not None:
            await self._lock.acquire()
        self._session = self._sessions()
        self.people = PeopleRepository(self._session)
        self.conversations = ConversationRepository(self._session)
        self.profiles = ProfileRepository(self._session)
        self.parental_links = ParentalLinkRepository(self._session)
        self.updates = UpdateLog(self._session)
        self._funnel = FunnelRepository(self._session)
        self.funnel = self._funnel
        self.catalog = CatalogRepository(self._session)
        self.coordinators = CoordinatorRepository(self._session)
        self.invites = InviteRepository(self._session)
        self.handoffs = HandoffRepository(self._session)
        self.outbox = OutboxRepository(self._session)
        self.inbox = InboxRepository(self._session)
        self.sign_ins = SignInRepository(self._session)
        self.audit = AuditRepository(self._session)
        self.figures = Figures(self._session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Closing without a commit rolls the transaction back; unlike rollback(), it leaves what
        # was read readable after the block (objects are detached, not expired).
        try:
            await self.session.close()
        finally:
            self._session = None
            if self._lock is not None:
                self._lock.release()
        # One escaped the block (an autoflush before a query, say): the caller sees a Conflict.
        if isinstance(exc, CONFLICTS):
            raise _conflict(exc) from exc

    async def commit(self) -> None:
        try:
            await self._funnel.write()
            await self.session.commit()
        except CONFLICTS as error:
            raise _conflict(error) from error

    async def flush(self) -> None:
        try:
            await self._funnel.write()
            await self.session.flush()
        except CONFLICTS as error:
            raise _conflict(error) from error

    async def ping(self) -> None:
        await self.session.execute(text("SELECT 1"))


def unit_of_work_factory(
    sessions: async_sessionmaker[AsyncSession], lock: asyncio.Lock | None = None
) -> ports.UnitOfWorkFactory:
    """What the services take: a new unit of work per call, all on `sessions` (and `lock`)."""
    return lambda: UnitOfWork(sessions, lock)


# mypy proves here that this unit of work is what the core asks for.
_check: type[ports.UnitOfWork] = UnitOfWork
