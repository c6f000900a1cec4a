"""SQL for the `jobs` table's rows: recording a new job, the fields that change outside the state
machines (the reply's message, the interaction token, a kept file, the charge, a deletion), and the
queries. Each function runs on a connection whose transaction (or read lock) the caller holds.

The job's state machine is lifecycle.py's; its delivery's, deliveries.py's.
"""

from __future__ import annotations

from bot.store.db import Conn, Row, execute, fetch_all, fetch_one, fetch_value, insert
from bot.store.records import Job, JobNotFound, JobState, NewJob

# The partial indexes' expression, so the planner can use them.
ACTIVE = "state IN ('creating', 'queued_local', 'running')"


def to_job(row: Row) -> Job:
    return Job.model_validate(dict(row))


async def get(conn: Conn, job_id: int) -> Job | None:
    row = await fetch_one(conn, "SELECT * FROM jobs WHERE id = ?", (job_id,))
    return None if row is None else to_job(row)


async def require(conn: Conn, job_id: int) -> Job:
    job = await get(conn, job_id)
    if job is None:
        raise JobNotFound(job_id)
    return job


async def insert_job(
    conn: Conn,
    new: NewJob,
    state: JobState,
    now: float,
    *,
    spend_limits: str | None = None,
    lease: tuple[str, float] | None = None,
) -> Job:
    if state not in ("creating", "queued_local"):
        raise ValueError(f"a new job starts as creating or queued_local, not {state}")
    if new.source_job_id is not None:
        # The foreign key would refuse it too, but with a bare IntegrityError.
        await require(conn, new.source_job_id)
    job_id = await insert(
        conn,
        """
        INSERT INTO jobs (
            kind, source_job_id, user_id, guild_id, channel_id, interaction_id,
            interaction_token, token_expires_at, application_id, prompt, model, seconds, size,
            has_reference, cost_micros, upload_limit, deadline_at, state, created_at, updated_at,
            negative_prompt, seed, audio, spend_limits, locale, lease_owner, lease_expires_at
        ) VALUES (
            ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
        )
        """,
        (
            new.kind,
            new.source_job_id,
            new.user_id,
            new.guild_id,
            new.channel_id,
            new.interaction_id,
            new.interaction_token,
            new.token_expires_at,
            new.application_id,
            new.prompt,
            new.model,
            new.seconds,
            new.size,
            int(new.has_reference),
            new.cost_micros,
            new.upload_limit,
            new.deadline_at,
            state,
            now,
            now,
            new.negative_prompt,
            new.seed,
            None if new.audio is None else int(new.audio),
            spend_limits,
            new.locale,
            None if lease is None else lease[0],
            None if lease is None else lease[1],
        ),
    )
    return await require(conn, job_id)


# ---------------------------------------------------------------------- fields


async def update_existing(conn: Conn, job_id: int, sql: str, params: tuple[object, ...]) -> None:
    if await execute(conn, sql, params) == 0:
        raise JobNotFound(job_id)


async def set_response_message(conn: Conn, job_id: int, message_id: int, now: float) -> None:
    await update_existing(
        conn,
        job_id,
        "UPDATE jobs SET response_message_id = ?, updated_at = ? WHERE id = ?",
        (message_id, now, job_id),
    )


async def clear_token(conn: Conn, job_id: int, now: float) -> None:
    await update_existing(
        conn,
        job_id,
        "UPDATE jobs SET interaction_token = NULL, updated_at = ? WHERE id = ?",
        (now, job_id),
    )


async def clear_expired_tokens(conn: Conn, now: float) -> int:
    return await execute(
        conn,
        """
        UPDATE jobs SET interaction_token = NULL, updated_at = ?
        WHERE interaction_token IS NOT NULL AND token_expires_at <= ?
        """,
        (now, now),
    )


async def set_local_path(conn: Conn, job_id: int, path: str | None, now: float) -> None:
    await update_existing(
        conn,
        job_id,
        "UPDATE jobs SET local_path = ?, updated_at = ? WHERE id = ?",
        (path, now, job_id),
    )


async def record_charge(conn: Conn, job_id: int, charged: int, uncharged: int, now: float) -> None:
    """A delivered job settled at its reported cost: `cost_micros` becomes what was charged,
    `uncharged_micros` what of the reported cost was over the member's limits."""
    await update_existing(
        conn,
        job_id,
        "UPDATE jobs SET cost_micros = ?, uncharged_micros = ?, updated_at = ? WHERE id = ?",
        (charged, uncharged, now, job_id),
    )


async def record_deletion(conn: Conn, job_id: int, by_user_id: int, now: float) -> Job | None:
    """The job's video was deleted at the service by `by_user_id`; the job, or None if its
    deletion was recorded already (the first record stands)."""
    changed = await execute(
        conn,
        """
        UPDATE jobs SET deleted_at = ?, deleted_by = ?, updated_at = ?
        WHERE id = ? AND deleted_at IS NULL
        """,
        (now, by_user_id, now, job_id),
    )
    job = await require(conn, job_id)
    return job if changed else None


# ---------------------------------------------------------------------- queries


async def active(conn: Conn) -> list[Job]:
    rows = await fetch_all(conn, f"SELECT * FROM jobs WHERE {ACTIVE} ORDER BY id")  # noqa: S608 (constant)
    return [to_job(r) for r in rows]


async def with_local_files(conn: Conn) -> list[Job]:
    """Jobs with a file kept on disk (see set_local_path); few, through a partial index."""
    rows = await fetch_all(conn, "SELECT * FROM jobs WHERE local_path IS NOT NULL ORDER BY id")
    return [to_job(r) for r in rows]


async def recent(conn: Conn, user_id: int, limit: int, offset: int) -> list[Job]:
    rows = await fetch_all(
        conn,
        """
        SELECT * FROM jobs WHERE user_id = ? ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?
        """,
        (user_id, limit, offset),
    )
    return [to_job(r) for r in rows]


async def count(conn: Conn, user_id: int) -> int:
    return int(await fetch_value(conn, "SELECT COUNT(*) FROM jobs WHERE user_id = ?", (user_id,)))


async def oldest_charge_since(conn: Conn, user_id: int, since: float) -> float | None:
    """When the user's oldest job created since `since` that still counts was created: one
    that costs and has not failed (a failure refunds it; its charges are dated at creation)."""
    value = await fetch_value(
        conn,
        "SELECT MIN(created_at) FROM jobs WHERE user_id = ? AND created_at >= ?"
        " AND state != 'failed' AND cost_micros > 0",
        (user_id, since),
    )
    return None if value is None else float(value)


async def count_active(conn: Conn, user_id: int) -> int:
    value = await fetch_value(
        conn,
        f"SELECT COUNT(*) FROM jobs WHERE user_id = ? AND {ACTIVE}",  # noqa: S608 (constant)
        (user_id,),
    )
    return int(value)


async def last_request_at(conn: Conn, user_id: int) -> float | None:
    value = await fetch_value(
        conn, "SELECT MAX(created_at) FROM jobs WHERE user_id = ?", (user_id,)
    )
    return None if value is None else float(value)


async def count_working(conn: Conn, exclude_id: int | None) -> int:
    """Jobs being sent or running at the service (what the concurrency cap counts)."""
    value = await fetch_value(
        conn,
        "SELECT COUNT(*) FROM jobs"
        " WHERE state IN ('creating', 'running') AND id IS DISTINCT FROM ?",
        (exclude_id,),
    )
    return int(value)


async def queue_position(conn: Conn, job_id: int) -> int | None:
    state = await fetch_value(conn, "SELECT state FROM jobs WHERE id = ?", (job_id,))
    if state != "queued_local":
        return None
    value = await fetch_value(
        conn,
        f"SELECT COUNT(*) FROM jobs WHERE {ACTIVE} AND state = 'queued_local' AND id <= ?",  # noqa: S608 (constant)
        (job_id,),
    )
    return int(value)


async def known_video_ids(conn: Conn, since: float | None) -> set[str]:
    if since is None:
        rows = await fetch_all(conn, "SELECT api_video_id FROM jobs WHERE api_video_id IS NOT NULL")
    else:
        rows = await fetch_all(
            conn,
            "SELECT api_video_id FROM jobs WHERE api_video_id IS NOT NULL AND created_at >= ?",
            (since,),
        )
    return {str(r[0]) for r in rows}
