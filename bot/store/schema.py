"""The database's schema, as the migrations that build it, and bringing a file up to date.

Each migration is a tuple of single statements (not a script: executescript would commit the
surrounding transaction). They run in order, each in one transaction that also bumps PRAGMA
user_version, so a crash mid-migration leaves the previous version intact. Never edit a released
migration; append a new one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import aiosqlite

from bot.store.db import execute, rollback

log = logging.getLogger(__name__)

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
    # 6: a video deleted at the service by its owner (the Delete button): when and by whom, so
    # the job's history can say so, and a second click does not ask the service again.
    (
        "ALTER TABLE jobs ADD COLUMN deleted_at REAL",
        "ALTER TABLE jobs ADD COLUMN deleted_by INTEGER",
    ),
    # 7: members in control. A job its member cancelled keeps who did (`cancelled_by`); it ends
    # 'failed' with code 'cancelled' and is refunded like any failure, so every reader of
    # finished jobs (the tracker, delivery, `/videos`) already knows what to do with it. And how
    # long finished jobs took, per backend, model, size and length (`durations`, the last few of
    # each: see timings.py), for ETAs and for polling no earlier than a job can end.
    (
        "ALTER TABLE jobs ADD COLUMN cancelled_by INTEGER",
        """
        CREATE TABLE durations (
            id      INTEGER PRIMARY KEY,
            backend TEXT    NOT NULL,
            model   TEXT    NOT NULL,
            size    TEXT    NOT NULL,
            seconds TEXT    NOT NULL,
            took    REAL    NOT NULL CHECK (took >= 0),
            -- One sample per job, so recording again (a retry after a crash) adds nothing.
            job_id  INTEGER NOT NULL UNIQUE REFERENCES jobs (id),
            at      REAL    NOT NULL
        )
        """,
        "CREATE INDEX durations_kind ON durations (backend, model, size, seconds, id)",
    ),
    # 8: the language of the member who started a job (a Discord locale such as 'es-ES'), so
    # the job's later messages (progress, the finished video, a failure) speak it too.
    ("ALTER TABLE jobs ADD COLUMN locale TEXT",),
    # 9: the same for a request not yet recorded as a job, so the member told after a restart
    # that it was lost is told in their language.
    ("ALTER TABLE intake ADD COLUMN locale TEXT",),
    # 10: several processes on one database (PostgreSQL; see leases.py). A job, and a request
    # not yet a job, is looked after by the process holding its lease (`lease_owner`) until
    # `lease_expires_at`; a live process renews its own, and takes over those left to expire by
    # a process that died. `request_log` holds when each recent request to the video API
    # started, per backend, so a requests-per-minute ceiling holds across processes.
    (
        "ALTER TABLE jobs ADD COLUMN lease_owner TEXT",
        "ALTER TABLE jobs ADD COLUMN lease_expires_at REAL",
        "ALTER TABLE intake ADD COLUMN lease_owner TEXT",
        "ALTER TABLE intake ADD COLUMN lease_expires_at REAL",
        """
        CREATE TABLE request_log (
            id     INTEGER PRIMARY KEY,
            bucket TEXT    NOT NULL,
            at     REAL    NOT NULL
        )
        """,
        "CREATE INDEX request_log_bucket ON request_log (bucket, at)",
    ),
    # 11: on a database several processes share, a job's reference image is kept in it too, so
    # the process that sends the job need not be the one that took the request (a queued job
    # started where a slot frees; a job taken over from a process that died). Until it is sent.
    (
        """
        CREATE TABLE job_references (
            job_id       INTEGER PRIMARY KEY REFERENCES jobs (id),
            content_type TEXT    NOT NULL,
            data         BLOB    NOT NULL
        )
        """,
        # Forgetting the requests that became jobs (each lease renewal) looks jobs up by it.
        """
        CREATE INDEX jobs_interaction ON jobs (interaction_id)
        WHERE interaction_id IS NOT NULL
        """,
    ),
)


class SchemaTooNew(RuntimeError):
    """The file was written by a newer version of the bot; refusing beats corrupting it."""


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
            await rollback(conn)
            raise
        log.info("database migrated to schema version %s", version)
    current = await user_version(conn)
    if current > target:
        raise SchemaTooNew(f"database schema is version {current}; this bot knows up to {target}")
    return current
