"""The SQLite connection (file creation, pragmas, serialised transactions), what both engines'
databases offer the store (`Engine`), and the helpers every statement goes through, on SQLite
or PostgreSQL (pgconn.py) alike. The schemas and their migrations are schema.py's and
pgschema.py's; the PostgreSQL database is pg.py's."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import aiosqlite
import asyncpg

from bot.files import PRIVATE_FILE, private_dir
from bot.store.pgconn import PgConn
from bot.store.turns import Turns

log = logging.getLogger(__name__)

Params = Sequence[Any]
Synchronous = Literal["NORMAL", "FULL"]
# A connection the store's statements run on: SQLite's, or one lent from PostgreSQL's pool.
Conn = aiosqlite.Connection | PgConn
# A result row: sqlite3.Row or asyncpg.Record, both read by column name or position.
Row = Any
# A constraint refused a write (a unique index, a CHECK, a foreign key, an append-only trigger).
IntegrityErrors: tuple[type[Exception], ...] = (
    sqlite3.IntegrityError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.RaiseError,
)


def dialect(conn: Conn) -> Literal["sqlite", "postgresql"]:
    """Which engine a statement runs on, for the few clauses that differ."""
    return "postgresql" if isinstance(conn, PgConn) else "sqlite"


class Engine(Protocol):
    """What the store needs of a database, whichever the engine."""

    @property
    def shared(self) -> bool:
        """Whether other processes may use this database at the same time."""
        ...

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Conn]: ...

    def single_statements(
        self, *, urgent: bool = False
    ) -> contextlib.AbstractAsyncContextManager[Conn]: ...

    def reading(self) -> contextlib.AbstractAsyncContextManager[Conn]: ...

    def claiming(self) -> contextlib.AbstractAsyncContextManager[Conn]:
        """A transaction whose writes lock only the rows they touch (lease claims)."""
        ...

    async def close(self) -> None: ...


BUSY_TIMEOUT_MS = 5000


def create_private_file(path: Path) -> None:
    """Create the database file owner-only before SQLite does (it would honour only the umask),
    and tighten an existing one: it holds interaction tokens, which are credentials. SQLite gives
    the -wal and -shm files the main file's permissions."""
    private_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
    try:
        # Whatever the umask took off, or whatever mode an older file had.
        os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)


async def connect(path: Path, *, synchronous: Synchronous = "FULL") -> aiosqlite.Connection:
    create_private_file(path)
    # isolation_level=None: the sqlite3 module must not open transactions behind our back;
    # every transaction here is an explicit BEGIN IMMEDIATE.
    conn = await aiosqlite.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        conn.row_factory = aiosqlite.Row
        row = await _enable_wal(conn)
        if row is None or str(row[0]).lower() != "wal":
            log.warning("SQLite could not use WAL for %s; running with %s", path, row and row[0])
        # FULL, not NORMAL: in WAL mode NORMAL may lose the last commits on power loss, and the
        # last commit may be the "create was sent" mark that stops a second paid create.
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
        await execute(conn, f"PRAGMA synchronous={synchronous}")
        await execute(conn, "PRAGMA foreign_keys=ON")
        await execute(conn, f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    except BaseException:
        await conn.close()
        raise
    return conn


async def _enable_wal(conn: aiosqlite.Connection) -> Any:
    # Switching the journal mode takes a lock SQLite does not wait for (the busy handler is not
    # consulted), so two processes opening a new database at once may see "locked": retry briefly.
    for attempt in range(50):
        try:
            async with conn.execute("PRAGMA journal_mode=WAL") as cur:
                return await cur.fetchone()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 49:
                raise
            await asyncio.sleep(0.02)
    return None


async def rollback(conn: aiosqlite.Connection) -> None:
    # Shielded so a second cancellation cannot skip the rollback; aiosqlite runs operations in
    # order, so anything queued after it (the next BEGIN) sees a clean connection.
    with contextlib.suppress(sqlite3.OperationalError):  # no transaction open (any more)
        await asyncio.shield(execute(conn, "ROLLBACK"))


class Database:
    """One connection per process. Coroutines interleave on it, and SQLite transactions belong
    to the connection, not the coroutine, so every use takes a turn (one at a time): a read can
    never see another coroutine's uncommitted writes, and a write can never land in someone
    else's transaction. Other processes are serialised by BEGIN IMMEDIATE plus busy_timeout."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn
        self._turns = Turns()

    @property
    def shared(self) -> bool:
        # One process per data folder (bot/services.py holds a lock on it).
        return False

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception (cancellation included).
        IMMEDIATE takes the write lock up front, so the checks inside see the state the writes
        commit against (no read-then-upgrade race between processes)."""
        async with self._turns.turn():
            try:
                # BEGIN inside the try: if the caller is cancelled while BEGIN is queued, the
                # worker thread still runs it, and without the ROLLBACK below the connection
                # would stay inside a transaction that every later BEGIN trips over.
                await execute(self.conn, "BEGIN IMMEDIATE")
                yield self.conn
                # A failed COMMIT (disk full, I/O error) leaves the transaction open: roll back.
                await execute(self.conn, "COMMIT")
            except BaseException:
                await rollback(self.conn)
                raise

    def claiming(self) -> contextlib.AbstractAsyncContextManager[aiosqlite.Connection]:
        # SQLite has no row locks: every writing transaction runs alone.
        return self.transaction()

    @contextlib.asynccontextmanager
    async def single_statements(
        self, *, urgent: bool = False
    ) -> AsyncIterator[aiosqlite.Connection]:
        """The connection, outside any transaction, for writes that are each one statement:
        SQLite makes every such statement atomic and durable on its own, at a third of the
        round trips of BEGIN ... COMMIT. `urgent` goes before every waiting ordinary turn."""
        async with self._turns.turn(urgent=urgent):
            yield self.conn

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[aiosqlite.Connection]:
        """The connection for reads (each statement its own snapshot) while no transaction of
        this process is open."""
        async with self._turns.turn():
            yield self.conn

    async def close(self) -> None:
        async with self._turns.turn():
            with contextlib.suppress(sqlite3.Error):
                await execute(self.conn, "PRAGMA optimize")
            await self.conn.close()


# Every statement takes one trip to the connection's thread: aiosqlite's helpers run it and
# collect its result there (a cursor costs three trips: execute, fetch, close). Under a burst
# every trip waits for a turn of the busy event loop, and a transaction holds the connection for
# all of its trips.


async def fetch_one(conn: Conn, sql: str, params: Params = ()) -> Row | None:
    """The first row (the queries here return at most one)."""
    rows = await fetch_all(conn, sql, params)
    return rows[0] if rows else None


async def fetch_all(conn: Conn, sql: str, params: Params = ()) -> list[Row]:
    if isinstance(conn, PgConn):
        return await conn.fetch_all(sql, params)
    return list(await conn.execute_fetchall(sql, params))


async def fetch_value(conn: Conn, sql: str, params: Params = ()) -> Any:
    row = await fetch_one(conn, sql, params)
    return None if row is None else row[0]


async def execute(conn: Conn, sql: str, params: Params = ()) -> int:
    """Run one statement; the number of rows it changed. On SQLite the count is the connection's
    change counter before and after (read without a trip to the thread): whoever runs a statement
    has the connection to itself (see Database), and the schema's triggers only refuse, so every
    change counted is this statement's own."""
    if isinstance(conn, PgConn):
        return await conn.execute(sql, params)
    before = conn.total_changes
    await conn.execute_fetchall(sql, params)
    return conn.total_changes - before


async def insert(conn: Conn, sql: str, params: Params = ()) -> int:
    """Run one INSERT into a table with an `id` column; the new id."""
    if isinstance(conn, PgConn):
        return await conn.insert(sql, params)
    row = await conn.execute_insert(sql, params)
    assert row is not None
    return int(row[0])
