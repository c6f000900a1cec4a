"""The SQLite connection: file creation, pragmas, migrations and serialised transactions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import aiosqlite

from bot.files import PRIVATE_FILE, private_dir
from bot.store.turns import Turns

log = logging.getLogger(__name__)

Params = Sequence[Any] | dict[str, Any]
Synchronous = Literal["NORMAL", "FULL"]

BUSY_TIMEOUT_MS = 5000

# Each migration is a tuple of single statements (not a script: executescript would commit the
# surrounding transaction). They run in order, each in one transaction that also bumps
# PRAGMA user_version, so a crash mid-migration leaves the previous version intact.
# Never edit a released migration; append a new one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE jobs (
            id                   INTEGER PRIMARY KEY,
            kind                 TEXT    NOT NULL
                                 CHECK (kind IN ('create', 'remix', 'edit', 'extend')),
            source_job_id        INTEGER REFERENCES jobs (id),
            user_id              INTEGER NOT NULL,
            guild_id             INTEGER,
            channel_id           INTEGER NOT NULL,
            interaction_id       INTEGER,
            interaction_token    TEXT,
            token_expires_at     REAL,
            application_id       INTEGER,
            response_message_id  INTEGER,
            prompt               TEXT    NOT NULL,
            model                TEXT    NOT NULL,
            seconds              TEXT    NOT NULL,
            size                 TEXT    NOT NULL,
            has_reference        INTEGER NOT NULL DEFAULT 0 CHECK (has_reference IN (0, 1)),
            cost_micros          INTEGER NOT NULL CHECK (cost_micros >= 0),
            upload_limit         INTEGER,
            state                TEXT    NOT NULL CHECK (state IN
                                 ('creating', 'queued_local', 'running', 'succeeded', 'failed')),
            api_video_id         TEXT,
            api_status           TEXT,
            progress             INTEGER,
            error_code           TEXT,
            error_message        TEXT,
            create_attempted_at  REAL,
            created_at           REAL    NOT NULL,
            updated_at           REAL    NOT NULL,
            completed_at         REAL,
            expires_at           REAL,
            deadline_at          REAL,
            delivery_state       TEXT    NOT NULL DEFAULT 'pending'
                                 CHECK (delivery_state IN ('pending', 'claimed', 'done')),
            delivery_claimed_at  REAL,
            delivered_at         REAL,
            delivery_attempts    INTEGER NOT NULL DEFAULT 0,
            delivered_message_id INTEGER,
            local_path           TEXT,
            -- A job known to be at the API always knows its video there.
            CHECK (state NOT IN ('running', 'succeeded') OR api_video_id IS NOT NULL),
            -- Only a finished job is ever delivered.
            CHECK (delivery_state = 'pending' OR state IN ('succeeded', 'failed'))
        )
        """,
        "CREATE UNIQUE INDEX jobs_api_video ON jobs (api_video_id) WHERE api_video_id IS NOT NULL",
        # Partial indexes hold only the few unfinished rows, however long the history grows.
        """
        CREATE INDEX jobs_active ON jobs (id)
        WHERE state IN ('creating', 'queued_local', 'running')
        """,
        """
        CREATE INDEX jobs_user_active ON jobs (user_id)
        WHERE state IN ('creating', 'queued_local', 'running')
        """,
        "CREATE INDEX jobs_undelivered ON jobs (id) WHERE delivery_state != 'done'",
        "CREATE INDEX jobs_user_recent ON jobs (user_id, created_at DESC, id DESC)",
        "CREATE INDEX jobs_guild_recent ON jobs (guild_id, created_at)",
        """
        CREATE TABLE ledger (
            id            INTEGER PRIMARY KEY,
            at            REAL    NOT NULL,
            charged_at    REAL    NOT NULL,
            job_id        INTEGER NOT NULL REFERENCES jobs (id),
            user_id       INTEGER NOT NULL,
            guild_id      INTEGER,
            account       TEXT    NOT NULL CHECK (account IN ('held', 'spent')),
            amount_micros INTEGER NOT NULL,
            reason        TEXT    NOT NULL CHECK (reason IN ('reserve', 'refund', 'settle')),
            -- Each reason moves money one way only, so a sign bug cannot mint budget.
            CHECK (
                (reason = 'reserve' AND account = 'held' AND amount_micros >= 0)
                OR (reason = 'refund' AND account = 'held' AND amount_micros <= 0)
                OR (reason = 'settle' AND account = 'held' AND amount_micros <= 0)
                OR (reason = 'settle' AND account = 'spent' AND amount_micros >= 0)
            )
        )
        """,
        "CREATE INDEX ledger_job ON ledger (job_id)",
        "CREATE INDEX ledger_user ON ledger (user_id, charged_at)",
        "CREATE INDEX ledger_guild ON ledger (guild_id, charged_at)",
        "CREATE INDEX ledger_charged ON ledger (charged_at)",
        # The ledger is the audit trail of money: corrections are new entries, never edits.
        """
        CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
        BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END
        """,
        """
        CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
        BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END
        """,
        """
        CREATE TABLE guild_settings (
            guild_id   INTEGER NOT NULL,
            key        TEXT    NOT NULL,
            value_json TEXT    NOT NULL,
            PRIMARY KEY (guild_id, key)
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE quota_overrides (
            guild_id    INTEGER NOT NULL,
            target_kind TEXT    NOT NULL CHECK (target_kind IN ('user', 'role')),
            target_id   INTEGER NOT NULL,
            limit_name  TEXT    NOT NULL,
            max_micros  INTEGER CHECK (max_micros IS NULL OR max_micros >= 0),
            exempt      INTEGER NOT NULL DEFAULT 0 CHECK (exempt IN (0, 1)),
            PRIMARY KEY (guild_id, target_kind, target_id, limit_name)
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE meta (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL
        ) WITHOUT ROWID
        """,
    ),
    # 2: requests acknowledged to Discord but not yet recorded as jobs. A stop in that window
    # (reference download and fitting, the quota check) would otherwise leave the member
    # looking at "thinking…" with nothing behind it; on start each is answered instead.
    (
        """
        CREATE TABLE intake (
            interaction_id   INTEGER PRIMARY KEY,
            application_id   INTEGER NOT NULL,
            token            TEXT    NOT NULL,
            token_expires_at REAL    NOT NULL,
            user_id          INTEGER NOT NULL,
            received_at      REAL    NOT NULL
        )
        """,
    ),
    # 3: containment of odd jobs. `create_attempts` counts the sends of a job (each recorded
    # before it leaves), so a create proven not to have started is re-sent a bounded number of
    # times; `delivery_retry_at` spaces failed deliveries out; the partial index finds the files
    # kept for a job (an undeliverable video) once their retention has passed; `create_answered`
    # marks a send that the service accepted with an answer the bot could not use.
    (
        "ALTER TABLE jobs ADD COLUMN create_attempts INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE jobs ADD COLUMN delivery_retry_at REAL",
        # A send the service answered with success but in a form the bot cannot use: it made a
        # job, so the request is never sent again.
        """
        ALTER TABLE jobs ADD COLUMN create_answered INTEGER NOT NULL DEFAULT 0
            CHECK (create_answered IN (0, 1))
        """,
        """
        UPDATE jobs SET create_attempts = 1
        WHERE create_attempted_at IS NOT NULL OR api_video_id IS NOT NULL
        """,
        "CREATE INDEX jobs_local_files ON jobs (id) WHERE local_path IS NOT NULL",
    ),
    # 4: the audit of limit changes by server admins and owners (who, when, where, what, before
    # and after), refused attempts included. Written in the change's own transaction, and like
    # the ledger never edited: a record that can be rewritten proves nothing.
    (
        """
        CREATE TABLE audit (
            id          INTEGER PRIMARY KEY,
            at          REAL    NOT NULL,
            guild_id    INTEGER,
            actor_id    INTEGER NOT NULL,
            actor_kind  TEXT    NOT NULL CHECK (actor_kind IN ('admin', 'owner')),
            action      TEXT    NOT NULL,
            target      TEXT,
            before_json TEXT    NOT NULL,
            after_json  TEXT    NOT NULL,
            refused     INTEGER NOT NULL DEFAULT 0 CHECK (refused IN (0, 1)),
            reason      TEXT
        )
        """,
        "CREATE INDEX audit_guild ON audit (guild_id, id)",
        """
        CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END
        """,
        """
        CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END
        """,
    ),
    # 5: per-model options and settling at a reported cost. A job keeps the options it is sent
    # with (its seed is shown so a member can make the same video again); the limits it was
    # reserved under, after overrides (`spend_limits`, JSON), so a job whose service reports what
    # it actually cost is settled at that cost within them; the reported cost, and what of it
    # was over those limits and not charged. The ledger gains two entry kinds for the
    # difference (SQLite cannot alter a CHECK, so the table is rebuilt, entries and ids kept).
    (
        "ALTER TABLE jobs ADD COLUMN negative_prompt TEXT",
        "ALTER TABLE jobs ADD COLUMN seed INTEGER CHECK (seed IS NULL OR seed >= 0)",
        "ALTER TABLE jobs ADD COLUMN audio INTEGER CHECK (audio IS NULL OR audio IN (0, 1))",
        "ALTER TABLE jobs ADD COLUMN spend_limits TEXT",
        """
        ALTER TABLE jobs ADD COLUMN reported_cost_micros INTEGER
            CHECK (reported_cost_micros IS NULL OR reported_cost_micros >= 0)
        """,
        """
        ALTER TABLE jobs ADD COLUMN uncharged_micros INTEGER NOT NULL DEFAULT 0
            CHECK (uncharged_micros >= 0)
        """,
        """
        CREATE TABLE ledger_new (
            id            INTEGER PRIMARY KEY,
            at            REAL    NOT NULL,
            charged_at    REAL    NOT NULL,
            job_id        INTEGER NOT NULL REFERENCES jobs (id),
            user_id       INTEGER NOT NULL,
            guild_id      INTEGER,
            account       TEXT    NOT NULL CHECK (account IN ('held', 'spent')),
            amount_micros INTEGER NOT NULL,
            reason        TEXT    NOT NULL CHECK (reason IN
                          ('reserve', 'refund', 'settle', 'adjust_down', 'adjust_up')),
            -- Each reason moves money one way only, so a sign bug cannot mint budget.
            -- adjust_down / adjust_up bring a settled job's spending to its reported cost.
            CHECK (
                (reason = 'reserve' AND account = 'held' AND amount_micros >= 0)
                OR (reason = 'refund' AND account = 'held' AND amount_micros <= 0)
                OR (reason = 'settle' AND account = 'held' AND amount_micros <= 0)
                OR (reason = 'settle' AND account = 'spent' AND amount_micros >= 0)
                OR (reason = 'adjust_down' AND account = 'spent' AND amount_micros <= 0)
                OR (reason = 'adjust_up' AND account = 'spent' AND amount_micros >= 0)
            )
        )
        """,
        "INSERT INTO ledger_new SELECT * FROM ledger",
        # Dropping a table fires none of its triggers; its indexes and triggers go with it.
        "DROP TABLE ledger",
        "ALTER TABLE ledger_new RENAME TO ledger",
        "CREATE INDEX ledger_job ON ledger (job_id)",
        "CREATE INDEX ledger_user ON ledger (user_id, charged_at)",
        "CREATE INDEX ledger_guild ON ledger (guild_id, charged_at)",
        "CREATE INDEX ledger_charged ON ledger (charged_at)",
        """
        CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
        BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END
        """,
        """
        CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
        BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END
        """,
    ),
)


class SchemaTooNew(RuntimeError):
    """The file was written by a newer version of the bot; refusing beats corrupting it."""


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


async def user_version(conn: aiosqlite.Connection) -> int:
    async with conn.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def migrate(
    conn: aiosqlite.Connection, migrations: Sequence[Iterable[str]] = MIGRATIONS
) -> int:
    """Bring the schema to len(migrations); returns the version. Safe against another process
    migrating the same file at once: the version is re-read inside the write transaction."""
    target = len(migrations)
    for version, statements in enumerate(migrations, start=1):
        try:
            await execute(conn, "BEGIN IMMEDIATE")
            current = await user_version(conn)
            if current > target:
                raise SchemaTooNew(
                    f"database schema is version {current}; this bot knows up to {target}"
                )
            if current >= version:
                await execute(conn, "COMMIT")
                continue
            for statement in statements:
                await execute(conn, statement)
            # PRAGMA takes no parameters; version is our own loop counter.
            await execute(conn, f"PRAGMA user_version = {version}")
            await execute(conn, "COMMIT")
        except BaseException:
            await _rollback(conn)
            raise
        log.info("database migrated to schema version %s", version)
    current = await user_version(conn)
    if current > target:
        raise SchemaTooNew(f"database schema is version {current}; this bot knows up to {target}")
    return current


async def _rollback(conn: aiosqlite.Connection) -> None:
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
                await _rollback(self.conn)
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
