"""The SQLite connection: file creation, pragmas, serialised transactions, and the helpers every
statement goes through. The schema and its migrations are schema.py's."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Literal

import aiosqlite

from bot.files import PRIVATE_FILE, private_dir
from bot.store.turns import Turns

log = logging.getLogger(__name__)

Params = Sequence[Any] | dict[str, Any]
Synchronous = Literal["NORMAL", "FULL"]

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


async def fetch_one(
    conn: aiosqlite.Connection, sql: str, params: Params = ()
) -> aiosqlite.Row | None:
    """The first row (the queries here return at most one)."""
    rows = list(await conn.execute_fetchall(sql, params))
    return rows[0] if rows else None


async def fetch_all(
    conn: aiosqlite.Connection, sql: str, params: Params = ()
) -> list[aiosqlite.Row]:
    return list(await conn.execute_fetchall(sql, params))


async def fetch_value(conn: aiosqlite.Connection, sql: str, params: Params = ()) -> Any:
    row = await fetch_one(conn, sql, params)
    return None if row is None else row[0]


async def execute(conn: aiosqlite.Connection, sql: str, params: Params = ()) -> int:
    """Run one statement; the number of rows it changed. The count is the connection's change
    counter before and after (read without a trip to the thread): whoever runs a statement has
    the connection to itself (see Database), and the schema's triggers only refuse, so every
    change counted is this statement's own."""
    before = conn.total_changes
    await conn.execute_fetchall(sql, params)
    return conn.total_changes - before


async def insert(conn: aiosqlite.Connection, sql: str, params: Params = ()) -> int:
    """Run one INSERT; the new rowid."""
    row = await conn.execute_insert(sql, params)
    assert row is not None
    return int(row[0])
