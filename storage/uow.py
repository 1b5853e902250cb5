"""The unit of work: one transaction per update. Leaving the block without `commit()` rolls back."""

from __future__ import annotations

import asyncio
from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.handoffs import CoordinatorRepository, HandoffRepository, InviteRepository
from storage.outbox import OutboxRepository
from storage.repositories import (
    CatalogRepository,
    ConversationRepository,
    FunnelRepository,
    PeopleRepository,
    ProfileRepository,
    UpdateLog,
)


class UnitOfWork:
    people: PeopleRepository
    conversations: ConversationRepository
    profiles: ProfileRepository
    updates: UpdateLog
    funnel: FunnelRepository
    catalog: CatalogRepository
    outbox: OutboxRepository
    coordinators: CoordinatorRepository
    invites: InviteRepository
    handoffs: HandoffRepository

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
        assert self._session is not None, "use the unit of work inside `async with`"
        return self._session

    async def __aenter__(self) -> UnitOfWork:
        if self._lock is not None:
            await self._lock.acquire()
        self._session = self._sessions()
        self.people = PeopleRepository(self._session)
        self.conversations = ConversationRepository(self._session)
        self.profiles = ProfileRepository(self._session)
        self.updates = UpdateLog(self._session)
        self.funnel = FunnelRepository(self._session)
        self.catalog = CatalogRepository(self._session)
        self.outbox = OutboxRepository(self._session)
        self.coordinators = CoordinatorRepository(self._session)
        self.invites = InviteRepository(self._session)
        self.handoffs = HandoffRepository(self._session)
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

    async def commit(self) -> None:
        await self.session.commit()

    async def flush(self) -> None:
        await self.session.flush()
