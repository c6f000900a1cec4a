"""SQL for `job_references`: a job's reference image, kept in a database several processes share
until the job is sent (see schema migration 11)."""

from __future__ import annotations

from bot.store.db import Conn, execute, fetch_all


async def keep(conn: Conn, job_id: int, content_type: str, data: bytes) -> None:
    await execute(
        conn,
        "INSERT INTO job_references (job_id, content_type, data) VALUES (?, ?, ?)"
        " ON CONFLICT (job_id) DO UPDATE SET content_type = excluded.content_type,"
        " data = excluded.data",
        (job_id, content_type, data),
    )


async def kept(conn: Conn, job_id: int) -> tuple[str, bytes] | None:
    rows = await fetch_all(
        conn, "SELECT content_type, data FROM job_references WHERE job_id = ?", (job_id,)
    )
    return (str(rows[0][0]), bytes(rows[0][1])) if rows else None


async def drop_sent(conn: Conn) -> int:
    """Forget the images of jobs past sending: at the service, or finished."""
    return await execute(
        conn,
        "DELETE FROM job_references WHERE job_id IN"
        " (SELECT id FROM jobs WHERE state IN ('running', 'succeeded', 'failed'))",
    )
