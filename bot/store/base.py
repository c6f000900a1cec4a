"""The Store's foundation: the database connection, the clock, and turns on the connection
(transactions and reads) for the parts of the Store's API (see store.py)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import TracebackType
from typing import Self

import aiosqlite

from bot.store.db import Database, Synchronous, connect
from bot.store.schema import migrate


class StoreBase:
    """The connection and the clock every part of the Store shares."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self.clock = clock

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        clock: Callable[[], float] = time.time,
        synchronous: Synchronous = "FULL",
    ) -> Self:
        """Open (creating if needed, owner-only) and migrate the database at `path`."""
        conn = await connect(path, synchronous=synchronous)
        try:
            await migrate(conn)
        except BaseException:
            await conn.close()
            raise
        return cls(Database(conn), clock)

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

    def transaction(self) -> contextlib.AbstractAsyncContextManager[aiosqlite.Connection]:
        """BEGIN IMMEDIATE ... COMMIT under the process-wide lock (store package only)."""
        return self._db.transaction()

    @contextlib.asynccontextmanager
    async def _read(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._db.reading() as conn:
            yield conn
