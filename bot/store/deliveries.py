"""A finished job's delivery, in SQL on the `jobs` table. Each function runs on a connection whose
transaction the caller holds; the Store settles or refunds the job's money in the same one.

Delivery, for a finished job only (anything else raises InvalidTransition):

    pending -> claimed                 (claim_delivery: exactly one concurrent claimer wins)
    claimed -> pending                 (release_claim: the attempt failed, retry at a time)
    claimed -> done                    (finish_delivery; settles or refunds, clears the token)

Repeating a transition that already happened is a no-op that returns None or False.
"""

from __future__ import annotations

from bot.store.db import Conn, execute, fetch_all
from bot.store.jobs import require, to_job
from bot.store.records import InvalidTransition, Job


async def claim_delivery(conn: Conn, job_id: int, now: float) -> bool:
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
    conn: Conn,
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
    conn: Conn, job_id: int, message_id: int | None, now: float
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


async def undelivered(conn: Conn) -> list[Job]:
    rows = await fetch_all(
        conn,
        """
        SELECT * FROM jobs WHERE delivery_state != 'done' AND state IN ('succeeded', 'failed')
        ORDER BY id
        """,
    )
    return [to_job(r) for r in rows]


async def due_deliveries(conn: Conn, now: float) -> list[Job]:
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
