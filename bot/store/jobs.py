"""SQL for the `jobs` table. Each function runs on a connection whose transaction (or read
lock) the caller holds; the money side of a transition is in ledger.py and is called by the
Store in the same transaction.

State machine (anything else raises InvalidTransition):

    creating <-> queued_local          (only while no create was ever sent)
    creating (sent) -> creating (unsent)   (release_create_attempt: it reached no server;
                                        retry_create: proven not created, fewer than N sends)
    creating -> running                (attach_video)
    creating | queued_local | running -> failed    (mark_failed; refunds)
    running -> succeeded               (mark_succeeded)
    succeeded -> failed                (expire_undelivered: assets gone before delivery; refunds)

Delivery, for a finished job only:

    pending -> claimed                 (claim_delivery: exactly one concurrent claimer wins)
    claimed -> pending                 (release_claim: the attempt failed, retry at a time)
    claimed -> done                    (finish_delivery; settles or refunds, clears the token)

Repeating a transition that already happened (a retry after a crash) is a no-op that returns
None or False instead of raising.

Every UPDATE of a transition is conditional on the state it was checked against and its row
count is checked, so even outside the Store's serialised transactions a lost race raises
InvalidTransition instead of overwriting someone else's change.
"""

from __future__ import annotations

import sqlite3

import aiosqlite

from bot.store.db import execute, fetch_all, fetch_one, fetch_value, insert
from bot.store.records import (
    InvalidTransition,
    Job,
    JobNotFound,
    JobState,
    NewJob,
)

# The partial indexes' expression, so the planner can use them.
_ACTIVE = "state IN ('creating', 'queued_local', 'running')"

# Statuses the store writes itself, in the API's vocabulary.
COMPLETED_STATUS = "completed"


def _lost_race(job: Job, changed: int, wanted: str) -> None:
    """A conditional UPDATE matched no row: the job moved on since it was read."""
    if changed != 1:
        raise InvalidTransition(job.id, job.state, wanted, "changed concurrently")


def to_job(row: aiosqlite.Row) -> Job:
    return Job.model_validate(dict(row))


async def get(conn: aiosqlite.Connection, job_id: int) -> Job | None:
    row = await fetch_one(conn, "SELECT * FROM jobs WHERE id = ?", (job_id,))
    return None if row is None else to_job(row)


async def require(conn: aiosqlite.Connection, job_id: int) -> Job:
    job = await get(conn, job_id)
    if job is None:
        raise JobNotFound(job_id)
    return job


async def insert_job(
    conn: aiosqlite.Connection,
    new: NewJob,
    state: JobState,
    now: float,
    *,
    spend_limits: str | None = None,
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
            negative_prompt, seed, audio, spend_limits
        ) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
        ),
    )
    return await require(conn, job_id)


# ---------------------------------------------------------------------- transitions


async def set_state(conn: aiosqlite.Connection, job_id: int, state: JobState, now: float) -> bool:
    job = await require(conn, job_id)
    if job.state == state and state in ("creating", "queued_local"):
        return False
    if state == "queued_local" and job.state == "creating":
        # A job whose create may have reached the API must stay where the tracker looks for it.
        if job.create_attempted_at is not None:
            raise InvalidTransition(job_id, job.state, state, "its create was already sent")
    elif not (state == "creating" and job.state == "queued_local"):
        raise InvalidTransition(job_id, job.state, state)
    changed = await execute(
        conn,
        """
        UPDATE jobs SET state = ?, updated_at = ?
        WHERE id = ? AND state = ? AND create_attempted_at IS NULL
        """,
        (state, now, job_id, job.state),
    )
    _lost_race(job, changed, state)
    return True


async def mark_create_attempted(
    conn: aiosqlite.Connection, job_id: int, at: float, now: float
) -> bool:
    """Claim the one send of a job: True for the caller that may send it, False when it was
    attempted already (by another path or before a restart), so no request goes out twice."""
    job = await require(conn, job_id)
    if job.state != "creating":
        raise InvalidTransition(job_id, job.state, "creating", "only a creating job is sent")
    changed = await execute(
        conn,
        """
        UPDATE jobs SET create_attempted_at = ?, create_attempts = create_attempts + 1,
            updated_at = ?
        WHERE id = ? AND state = 'creating' AND create_attempted_at IS NULL
        """,
        (at, now, job_id),
    )
    return changed == 1


async def mark_create_answered(conn: aiosqlite.Connection, job_id: int, now: float) -> bool:
    """The service accepted the job's send (a 2xx) with an answer that could not be used: it
    made a job, so the send is never repeated (see retry_create)."""
    changed = await execute(
        conn,
        """
        UPDATE jobs SET create_answered = 1, updated_at = ?
        WHERE id = ? AND state = 'creating' AND create_attempted_at IS NOT NULL
        """,
        (now, job_id),
    )
    return changed == 1


async def retry_create(
    conn: aiosqlite.Connection, job_id: int, attempted_at: float, max_sends: int, now: float
) -> bool:
    """A send proven not to have started a job (see the tracker): the job is again one that was
    never sent, so it may be sent once more. Only while fewer than `max_sends` sends were made,
    and only for the send made at `attempted_at` (a lost race with another path changes nothing).
    The count of sends is kept, so the cap holds across restarts."""
    changed = await execute(
        conn,
        """
        UPDATE jobs SET create_attempted_at = NULL, updated_at = ?
        WHERE id = ? AND state = 'creating' AND api_video_id IS NULL AND create_answered = 0
              AND create_attempted_at = ? AND create_attempts < ?
        """,
        (now, job_id, attempted_at, max_sends),
    )
    return changed == 1


async def release_create_attempt(conn: aiosqlite.Connection, job_id: int, now: float) -> bool:
    """Undo `mark_create_attempted` for a send that certainly reached no server (the connection
    was refused): the job is again one that was never sent, so it may be sent later."""
    changed = await execute(
        conn,
        """
        UPDATE jobs SET create_attempted_at = NULL,
            create_attempts = MAX(create_attempts - 1, 0), updated_at = ?
        WHERE id = ? AND state = 'creating' AND api_video_id IS NULL
              AND create_attempted_at IS NOT NULL
        """,
        (now, job_id),
    )
    return changed == 1


async def attach_video(
    conn: aiosqlite.Connection,
    job_id: int,
    api_video_id: str,
    api_status: str,
    progress: int | None,
    *,
    now: float,
) -> Job | None:
    job = await require(conn, job_id)
    if job.api_video_id is not None:
        if job.api_video_id == api_video_id:
            return None
        raise InvalidTransition(
            job_id, job.state, "running", f"already attached to video {job.api_video_id}"
        )
    if job.state != "creating":
        raise InvalidTransition(job_id, job.state, "running")
    owner = await fetch_value(conn, "SELECT id FROM jobs WHERE api_video_id = ?", (api_video_id,))
    if owner is not None:
        # Two jobs sharing one paid video would deliver it twice and charge for it twice.
        raise InvalidTransition(job_id, job.state, "running", f"video owned by job {owner}")
    try:
        changed = await execute(
            conn,
            """
            UPDATE jobs SET state = 'running', api_video_id = ?, api_status = ?, progress = ?,
                create_attempted_at = COALESCE(create_attempted_at, ?),
                create_attempts = MAX(create_attempts, 1), updated_at = ?
            WHERE id = ? AND state = 'creating' AND api_video_id IS NULL
            """,
            (api_video_id, api_status, progress, now, now, job_id),
        )
    except sqlite3.IntegrityError as exc:  # another process attached it meanwhile
        raise InvalidTransition(job_id, job.state, "running", str(exc)) from exc
    _lost_race(job, changed, "running")
    return await require(conn, job_id)


async def update_progress(
    conn: aiosqlite.Connection,
    job_id: int,
    api_status: str,
    progress: int | None,
    now: float,
) -> bool:
    changed = await execute(
        conn,
        """
        UPDATE jobs SET api_status = ?, progress = ?, updated_at = ?
        WHERE id = ? AND state = 'running' AND (api_status IS NOT ? OR progress IS NOT ?)
        """,
        (api_status, progress, now, job_id, api_status, progress),
    )
    return changed > 0


async def mark_succeeded(
    conn: aiosqlite.Connection,
    job_id: int,
    completed_at: float,
    expires_at: float | None,
    now: float,
    *,
    reported_cost_micros: int | None = None,
) -> Job | None:
    job = await require(conn, job_id)
    if job.state == "succeeded":
        return None
    if job.state != "running":
        raise InvalidTransition(job_id, job.state, "succeeded")
    changed = await execute(
        conn,
        """
        UPDATE jobs SET state = 'succeeded', api_status = ?, progress = 100, completed_at = ?,
            expires_at = ?, reported_cost_micros = ?, updated_at = ?
        WHERE id = ? AND state = 'running'
        """,
        (COMPLETED_STATUS, completed_at, expires_at, reported_cost_micros, now, job_id),
    )
    _lost_race(job, changed, "succeeded")
    return await require(conn, job_id)


async def mark_failed(
    conn: aiosqlite.Connection, job_id: int, code: str, message: str | None, now: float
) -> Job | None:
    """Only the job row; the Store refunds in the same transaction."""
    job = await require(conn, job_id)
    if job.state == "failed":
        return None
    if job.state == "succeeded":
        raise InvalidTransition(job_id, job.state, "failed")
    changed = await execute(
        conn,
        f"""
        UPDATE jobs SET state = 'failed', error_code = ?, error_message = ?, completed_at = ?,
            updated_at = ?
        WHERE id = ? AND {_ACTIVE}
        """,  # noqa: S608 (constant)
        (code, message, now, now, job_id),
    )
    _lost_race(job, changed, "failed")
    return await require(conn, job_id)


async def expire_undelivered(
    conn: aiosqlite.Connection, job_id: int, code: str, message: str, now: float
) -> Job | None:
    job = await require(conn, job_id)
    if job.state == "failed":
        return None
    if job.state != "succeeded" or job.delivery_state == "done":
        raise InvalidTransition(job_id, job.state, "failed", "only an undelivered success expires")
    changed = await execute(
        conn,
        """
        UPDATE jobs SET state = 'failed', error_code = ?, error_message = ?, updated_at = ?
        WHERE id = ? AND state = 'succeeded' AND delivery_state != 'done'
        """,
        (code, message, now, job_id),
    )
    _lost_race(job, changed, "failed")
    return await require(conn, job_id)


async def _update_existing(
    conn: aiosqlite.Connection, job_id: int, sql: str, params: tuple[object, ...]
) -> None:
    if await execute(conn, sql, params) == 0:
        raise JobNotFound(job_id)


async def set_response_message(
    conn: aiosqlite.Connection, job_id: int, message_id: int, now: float
) -> None:
    await _update_existing(
        conn,
        job_id,
        "UPDATE jobs SET response_message_id = ?, updated_at = ? WHERE id = ?",
        (message_id, now, job_id),
    )


async def clear_token(conn: aiosqlite.Connection, job_id: int, now: float) -> None:
    await _update_existing(
        conn,
        job_id,
        "UPDATE jobs SET interaction_token = NULL, updated_at = ? WHERE id = ?",
        (now, job_id),
    )


async def clear_expired_tokens(conn: aiosqlite.Connection, now: float) -> int:
    return await execute(
        conn,
        """
        UPDATE jobs SET interaction_token = NULL, updated_at = ?
        WHERE interaction_token IS NOT NULL AND token_expires_at <= ?
        """,
        (now, now),
    )


async def set_local_path(
    conn: aiosqlite.Connection, job_id: int, path: str | None, now: float
) -> None:
    await _update_existing(
        conn,
        job_id,
        "UPDATE jobs SET local_path = ?, updated_at = ? WHERE id = ?",
        (path, now, job_id),
    )


# ---------------------------------------------------------------------- delivery


async def claim_delivery(conn: aiosqlite.Connection, job_id: int, now: float) -> bool:
    # One compare-and-set statement: of any number of concurrent claimers (tasks or processes)
    # exactly one sees a changed row.
    changed = await execute(
        conn,
        """
        UPDATE jobs SET delivery_state = 'claimed', delivery_claimed_at = ?, updated_at = ?
        WHERE id = ? AND delivery_state = 'pending' AND state IN ('succeeded', 'failed')
        """,
        (now, now, job_id),
    )
    if changed == 0:
        await require(conn, job_id)
    return changed > 0


async def release_claim(
    conn: aiosqlite.Connection,
    job_id: int,
    now: float,
    retry_at: float | None = None,
    *,
    failed: bool = True,
) -> bool:
    """claimed -> pending; `failed` counts the attempt (a shutdown mid-delivery does not)."""
    changed = await execute(
        conn,
        """
        UPDATE jobs SET delivery_state = 'pending', delivery_claimed_at = NULL,
            delivery_attempts = delivery_attempts + ?, delivery_retry_at = ?, updated_at = ?
        WHERE id = ? AND delivery_state = 'claimed'
        """,
        (int(failed), retry_at, now, job_id),
    )
    if changed == 0:
        await require(conn, job_id)
    return changed > 0


async def finish_delivery(
    conn: aiosqlite.Connection, job_id: int, message_id: int | None, now: float
) -> Job | None:
    """Only the job row; the Store settles or refunds in the same transaction."""
    job = await require(conn, job_id)
    if job.delivery_state == "done":
        return None
    if job.delivery_state != "claimed":
        raise InvalidTransition(job_id, job.delivery_state, "done", "deliveries are claimed first")
    # The interaction token is a credential and has no further use once the result is posted.
    changed = await execute(
        conn,
        """
        UPDATE jobs SET delivery_state = 'done', delivered_at = ?, delivered_message_id = ?,
            interaction_token = NULL, updated_at = ?
        WHERE id = ? AND delivery_state = 'claimed'
        """,
        (now, message_id, now, job_id),
    )
    if changed != 1:
        raise InvalidTransition(job_id, job.delivery_state, "done", "changed concurrently")
    return await require(conn, job_id)


async def record_charge(
    conn: aiosqlite.Connection, job_id: int, charged: int, uncharged: int, now: float
) -> None:
    """A delivered job settled at its reported cost: `cost_micros` becomes what was charged,
    `uncharged_micros` what of the reported cost was over the member's limits."""
    await _update_existing(
        conn,
        job_id,
        "UPDATE jobs SET cost_micros = ?, uncharged_micros = ?, updated_at = ? WHERE id = ?",
        (charged, uncharged, now, job_id),
    )


# ---------------------------------------------------------------------- queries


async def active(conn: aiosqlite.Connection) -> list[Job]:
    rows = await fetch_all(conn, f"SELECT * FROM jobs WHERE {_ACTIVE} ORDER BY id")  # noqa: S608 (constant)
    return [to_job(r) for r in rows]


async def undelivered(conn: aiosqlite.Connection) -> list[Job]:
    rows = await fetch_all(
        conn,
        """
        SELECT * FROM jobs WHERE delivery_state != 'done' AND state IN ('succeeded', 'failed')
        ORDER BY id
        """,
    )
    return [to_job(r) for r in rows]


async def due_deliveries(conn: aiosqlite.Connection, now: float) -> list[Job]:
    """Pending deliveries whose back-off has passed."""
    rows = await fetch_all(
        conn,
        """
        SELECT * FROM jobs WHERE delivery_state != 'done' AND delivery_state = 'pending'
            AND state IN ('succeeded', 'failed')
            AND (delivery_retry_at IS NULL OR delivery_retry_at <= ?)
        ORDER BY id
        """,
        (now,),
    )
    return [to_job(r) for r in rows]


async def with_local_files(conn: aiosqlite.Connection) -> list[Job]:
    """Jobs with a file kept on disk (see set_local_path); few, through a partial index."""
    rows = await fetch_all(conn, "SELECT * FROM jobs WHERE local_path IS NOT NULL ORDER BY id")
    return [to_job(r) for r in rows]


async def recent(conn: aiosqlite.Connection, user_id: int, limit: int, offset: int) -> list[Job]:
    rows = await fetch_all(
        conn,
        """
        SELECT * FROM jobs WHERE user_id = ? ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?
        """,
        (user_id, limit, offset),
    )
    return [to_job(r) for r in rows]


async def count(conn: aiosqlite.Connection, user_id: int) -> int:
    return int(await fetch_value(conn, "SELECT COUNT(*) FROM jobs WHERE user_id = ?", (user_id,)))


async def count_active(conn: aiosqlite.Connection, user_id: int) -> int:
    value = await fetch_value(
        conn,
        f"SELECT COUNT(*) FROM jobs WHERE user_id = ? AND {_ACTIVE}",  # noqa: S608 (constant)
        (user_id,),
    )
    return int(value)


async def last_request_at(conn: aiosqlite.Connection, user_id: int) -> float | None:
    value = await fetch_value(
        conn, "SELECT MAX(created_at) FROM jobs WHERE user_id = ?", (user_id,)
    )
    return None if value is None else float(value)


async def count_working(conn: aiosqlite.Connection, exclude_id: int | None) -> int:
    """Jobs being sent or running at the service (what the concurrency cap counts)."""
    value = await fetch_value(
        conn,
        "SELECT COUNT(*) FROM jobs WHERE state IN ('creating', 'running') AND id IS NOT ?",
        (exclude_id,),
    )
    return int(value)


async def queue_position(conn: aiosqlite.Connection, job_id: int) -> int | None:
    state = await fetch_value(conn, "SELECT state FROM jobs WHERE id = ?", (job_id,))
    if state != "queued_local":
        return None
    value = await fetch_value(
        conn,
        f"SELECT COUNT(*) FROM jobs WHERE {_ACTIVE} AND state = 'queued_local' AND id <= ?",  # noqa: S608 (constant)
        (job_id,),
    )
    return int(value)


async def known_video_ids(conn: aiosqlite.Connection, since: float | None) -> set[str]:
    if since is None:
        rows = await fetch_all(conn, "SELECT api_video_id FROM jobs WHERE api_video_id IS NOT NULL")
    else:
        rows = await fetch_all(
            conn,
            "SELECT api_video_id FROM jobs WHERE api_video_id IS NOT NULL AND created_at >= ?",
            (since,),
        )
    return {str(r[0]) for r in rows}
