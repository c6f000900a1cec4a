"""The PostgreSQL database: a pool of connections that several bot processes share, with the
same transactions, reads and migrations the store has on SQLite.

Every write transaction first takes one database-wide advisory lock, held until it commits:
the store's transactions check and then write (a member's quota, the bot-wide daily cap, a
job's state), and SQLite's BEGIN IMMEDIATE makes each of them run alone. The lock gives every
process on PostgreSQL the same guarantee, at the same (ample) write rate, without rewriting each
check for another isolation level. Reads and single statements take no lock; a lease claim is
one statement with FOR UPDATE SKIP LOCKED (see leases.py), so processes claiming jobs never
wait on each other."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from urllib.parse import urlsplit

import asyncpg

from bot.store.pgconn import PgConn
from bot.store.pgschema import PG_MIGRATIONS
from bot.store.schema import SchemaTooNew

log = logging.getLogger(__name__)

# Keys of the advisory locks (any 64-bit numbers no other user of the database takes).
WRITE_LOCK = 0x76_69_64_65_6F_62_6F_74  # "videobot"
MIGRATION_LOCK = WRITE_LOCK + 1
POOL_SIZE = 10
# What the server does about a process that stops answering inside a transaction (frozen,
# paused, its host cut off): it would hold the write lock, and every process's writes with it.
# The server ends such a session after IDLE_IN_TRANSACTION, and notices a vanished client by TCP
# keepalives within about half a minute; a write waiting for the lock longer than LOCK_WAIT
# fails (an error for that one operation) instead of hanging. The store's transactions run only
# statements, so none is ever idle for seconds on its own.
SERVER_SETTINGS = {
    "idle_in_transaction_session_timeout": "30s",
    "lock_timeout": "60s",
    "tcp_keepalives_idle": "10",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "3",
}


def redacted(url: str) -> str:
    """The URL without its password, for logs and errors."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}@" if parts.username else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


class PgDatabase:
    """A pool; each transaction or read borrows one connection."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        # One transaction of this process at a time waits for the write lock: the others wait
        # here, not on pool connections, so reads and the requests' single writes always find
        # one free.
        self._write_turn = asyncio.Lock()

    @property
    def shared(self) -> bool:
        return True

    @classmethod
    async def open(cls, url: str, *, pool_size: int = POOL_SIZE) -> PgDatabase:
        try:
            pool = await asyncpg.create_pool(
                url, min_size=1, max_size=pool_size, server_settings=SERVER_SETTINGS
            )
        except (OSError, asyncpg.PostgresError) as exc:
            raise ConnectionError(f"cannot reach PostgreSQL at {redacted(url)}: {exc}") from None
        db = cls(pool)
        try:
            await migrate(db)
        except BaseException:
            await pool.close()
            raise
        return db

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[PgConn]:
        """BEGIN, the write lock, the caller's statements, COMMIT; ROLLBACK on any exception."""
        async with self._write_turn, self.pool.acquire() as raw, raw.transaction():
            await raw.execute("SELECT pg_advisory_xact_lock($1)", WRITE_LOCK)
            yield PgConn(raw)

    @contextlib.asynccontextmanager
    async def claiming(self) -> AsyncIterator[PgConn]:
        """A transaction without the write lock: a lease claim locks only the rows it takes
        (FOR UPDATE SKIP LOCKED), so it neither waits for nor holds up the other writes."""
        async with self.pool.acquire() as raw, raw.transaction():
            yield PgConn(raw)

    @contextlib.asynccontextmanager
    async def single_statements(self, *, urgent: bool = False) -> AsyncIterator[PgConn]:
        """A connection outside any transaction: each statement commits on its own. (`urgent`
        orders turns on SQLite's one connection; the pool needs no turns.)"""
        async with self.pool.acquire() as raw:
            yield PgConn(raw)

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[PgConn]:
        async with self.pool.acquire() as raw:
            yield PgConn(raw)

    async def close(self) -> None:
        await self.pool.close()


async def schema_version(conn: PgConn) -> int:
    await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    rows = await conn.fetch_all("SELECT version FROM schema_version")
    return int(rows[0][0]) if rows else 0


async def migrate(db: PgDatabase, migrations: Sequence[Iterable[str]] = PG_MIGRATIONS) -> int:
    """Bring the schema to len(migrations), each migration in its own transaction with its
    version; refuses a database a newer bot wrote. Processes starting together take turns."""
    target = len(migrations)
    # Up to date (every start but the first): one read, no lock.
    current = 0
    async with db.pool.acquire() as raw:
        if await raw.fetchval("SELECT to_regclass('schema_version') IS NOT NULL"):
            current = int(await raw.fetchval("SELECT max(version) FROM schema_version") or 0)
    if current == target:
        return target
    for version, statements in enumerate(migrations, start=1):
        async with db.pool.acquire() as raw, raw.transaction():
            await raw.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            conn = PgConn(raw)
            current = await schema_version(conn)
            if current > target:
                raise SchemaTooNew(
                    f"database schema is version {current}; this bot knows up to {target}"
                )
            if current >= version:
                continue
            for statement in statements:
                await conn.execute(statement)
            await conn.execute("DELETE FROM schema_version")
            await conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            current = version
        log.info("database migrated to schema version %s", version)
    return current
