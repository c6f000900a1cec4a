"""The job's state machine, in SQL on the `jobs` table. Each function runs on a connection whose
transaction the caller holds; the money side of a transition is in ledger.py and is called by
the Store in the same transaction.

State machine (anything else raises InvalidTransition):

    creating <-> queued_local          (only while no create was ever sent)
    creating (sent) -> creating (unsent)   (release_create_attempt: it reached no server;
                                        retry_create: proven not created, fewer than N sends)
    creating -> running                (attach_video)
    creating | queued_local | running -> failed    (mark_failed; refunds)
    queued_local | creating (unsent) -> failed     (cancel, video None: its member's Cancel;
                                        refunds; nothing is ever sent for it)
    running (at that video) -> failed  (cancel with its video: stopped at the service, or
                                        the service cannot stop it; refunds)
    running -> succeeded               (mark_succeeded)
    succeeded -> failed                (expire_undelivered: assets gone before delivery; refunds)

A finished job's delivery has a state machine of its own (deliveries.py).

Repeating a transition that already happened (a retry after a crash) is a no-op that returns
None or False instead of raising.

Every UPDATE of a transition is conditional on the state it was checked against and its row
count is checked, so even outside the Store's serialised transactions a lost race raises
InvalidTransition instead of overwriting someone else's change.
"""

from __future__ import annotations

from bot.store.db import Conn, IntegrityErrors, execute, fetch_value
from bot.store.jobs import ACTIVE, require
from bot.store.records import CANCELLED_CODE, InvalidTransition, Job, JobState

# Statuses the store writes itself, in the API's vocabulary.
COMPLETED_STATUS = "completed"


def _lost_race(job: Job, changed: int, wanted: str) -> None:
    """A conditional UPDATE matched no row: the job moved on since it was read."""
    if changed != 1:
        raise InvalidTransition(job.id, job.state, wanted, "changed concurrently")


async def set_state(conn: Conn, job_id: int, state: JobState, now: float) -> bool:
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


async def mark_create_attempted(conn: Conn, job_id: int, at: float, now: float) -> bool:
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


async def mark_create_answered(conn: Conn, job_id: int, now: float) -> bool:
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
    conn: Conn, job_id: int, attempted_at: float, max_sends: int, now: float
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


async def release_create_attempt(conn: Conn, job_id: int, now: float) -> bool:
    """Undo `mark_create_attempted` for a send that certainly reached no server (the connection
    was refused): the job is again one that was never sent, so it may be sent later."""
    changed = await execute(
        conn,
        """
        UPDATE jobs SET create_attempted_at = NULL,
            create_attempts = CASE WHEN create_attempts > 0 THEN create_attempts - 1 ELSE 0 END,
            updated_at = ?
        WHERE id = ? AND state = 'creating' AND api_video_id IS NULL
              AND create_attempted_at IS NOT NULL
        """,
        (now, job_id),
    )
    return changed == 1


async def attach_video(
    conn: Conn,
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
                create_attempts = CASE WHEN create_attempts > 1 THEN create_attempts ELSE 1 END,
                updated_at = ?
            WHERE id = ? AND state = 'creating' AND api_video_id IS NULL
            """,
            (api_video_id, api_status, progress, now, now, job_id),
        )
    except IntegrityErrors as exc:  # another process attached it meanwhile
        raise InvalidTransition(job_id, job.state, "running", str(exc)) from exc
    _lost_race(job, changed, "running")
    return await require(conn, job_id)


async def update_progress(
    conn: Conn,
    job_id: int,
    api_status: str,
    progress: int | None,
    now: float,
) -> bool:
    changed = await execute(
        conn,
        """
        UPDATE jobs SET api_status = ?, progress = ?, updated_at = ?
        WHERE id = ? AND state = 'running'
              AND (api_status IS DISTINCT FROM ? OR progress IS DISTINCT FROM ?)
        """,
        (api_status, progress, now, job_id, api_status, progress),
    )
    return changed > 0


async def mark_succeeded(
    conn: Conn,
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
    conn: Conn, job_id: int, code: str, message: str | None, now: float
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
        WHERE id = ? AND {ACTIVE}
        """,  # noqa: S608 (constant)
        (code, message, now, now, job_id),
    )
    _lost_race(job, changed, "failed")
    return await require(conn, job_id)


async def expire_undelivered(
    conn: Conn, job_id: int, code: str, message: str, now: float
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


async def cancel(
    conn: Conn,
    job_id: int,
    by_user_id: int,
    *,
    video_id: str | None,
    message: str,
    now: float,
) -> Job | None:
    """Its member's Cancel: -> failed with code CANCELLED_CODE, `cancelled_by` kept. Only while
    the job is as the caller last saw it: `video_id` None, a job whose create never left
    (queued_local, or creating with no send recorded: the sender's claim of the send then fails,
    so nothing is ever sent); otherwise a running job at `video_id`. None when it is not (the
    tracker or the sender moved it meanwhile, or it is another member's): nothing changed. The
    Store refunds in the same transaction."""
    if video_id is None:
        changed = await execute(
            conn,
            """
            UPDATE jobs SET state = 'failed', error_code = ?, error_message = ?,
                completed_at = ?, updated_at = ?, cancelled_by = ?
            WHERE id = ? AND user_id = ? AND create_attempted_at IS NULL
                  AND state IN ('queued_local', 'creating')
            """,
            (CANCELLED_CODE, message, now, now, by_user_id, job_id, by_user_id),
        )
    else:
        changed = await execute(
            conn,
            """
            UPDATE jobs SET state = 'failed', error_code = ?, error_message = ?,
                completed_at = ?, updated_at = ?, cancelled_by = ?
            WHERE id = ? AND user_id = ? AND state = 'running' AND api_video_id = ?
            """,
            (CANCELLED_CODE, message, now, now, by_user_id, job_id, by_user_id, video_id),
        )
    return await require(conn, job_id) if changed == 1 else None
