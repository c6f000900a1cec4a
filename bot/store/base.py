"""The Store's foundation: the database connection, the clock, and turns on the connection
(transactions and reads) for the parts of the Store's API (see store.py)."""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import TracebackType
from typing import Self

from bot.store.db import Conn, Database, Engine, Synchronous, connect
from bot.store.pg import PgDatabase
from bot.store.records import Job
from bot.store.schema import migrate

DEFAULT_LEASE_SECONDS = 30.0
PG_SCHEMES = ("postgresql://", "postgres://")
SQLITE_SCHEME = "sqlite:///"


def sqlite_path(target: Path | str) -> Path | None:
    """The file a target names, or None for a PostgreSQL URL. `sqlite:///` is followed by the
    path, relative unless it starts with '/' (so an absolute one has four slashes)."""
    if isinstance(target, Path):
        return target
    if target.startswith(PG_SCHEMES):
        return None
    if target.startswith(SQLITE_SCHEME):
        return Path(target[len(SQLITE_SCHEME) :])
    raise ValueError("DATABASE_URL must start with sqlite:/// or postgresql://")


class StoreBase:
    """The connection and the clock every part of the Store shares."""

    def __init__(self, db: Engine, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self.clock = clock
        # This process, as the owner of the leases it holds on jobs (see leases.py); unique
        # per start, so a restarted process never mistakes a dead one's leases for its own.
        self.worker = f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"
        self.lease_seconds = DEFAULT_LEASE_SECONDS
        # Until when this process's leases last, as of its last renewal: past it (renewals
        # failing, or held up) another process may have taken its jobs, so it acts on none.
        self.held_until = math.inf

    @classmethod
    async def open(
        cls,
        target: Path | str,
        *,
        clock: Callable[[], float] = time.time,
        synchronous: Synchronous = "FULL",
    ) -> Self:
        """Open and migrate the database `target` names: a SQLite file (a Path, or a
        sqlite:/// URL; created owner-only if needed) or a postgresql:// URL."""
        path = sqlite_path(target)
        if path is None:
            return cls(await PgDatabase.open(str(target)), clock)
        conn = await connect(path, synchronous=synchronous)
        try:
            await migrate(conn)
        except BaseException:
            await conn.close()
            raise
        return cls(Database(conn), clock)

    def lease_until(self, now: float) -> float:
        return now + self.lease_seconds

    def _new_lease(self, now: float) -> tuple[str, float]:
        """A new job or request is this process's from the start."""
        return (self.worker, self.lease_until(now))

    def looks_after(self, job: Job) -> bool:
        """Whether this process looks after `job`: on SQLite (one process) every job; on a
        shared database the jobs it holds the lease of (see leases.py), while its leases last."""
        if not self.shared:
            return True
        return job.lease_owner == self.worker and self.clock() < self.held_until

    @property
    def shared(self) -> bool:
        """Whether other bot processes may use this database at the same time (PostgreSQL)."""
        return self._db.shared

    async def close(self) -> None:
        await self._db.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Conn]:
        """One transaction that runs alone: SQLite's BEGIN IMMEDIATE, PostgreSQL's write lock
        (store package only)."""
        return self._db.transaction()

    @contextlib.asynccontextmanager
    async def _read(self) -> AsyncIterator[Conn]:
        async with self._db.reading() as conn:
            yield conn
