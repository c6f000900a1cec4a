"""SQL for `durations`: how long finished jobs took, per backend, model, size and length.

Only the newest few samples of each kind are kept (`keep`), so the table stays small however
long the bot runs and an old server's speed fades out as a new one's comes in. Each function
runs on a connection whose transaction (or read turn) the caller holds.
"""

from __future__ import annotations

from bot.store.db import Conn, execute, fetch_all


async def record(
    conn: Conn,
    *,
    backend: str,
    model: str,
    size: str,
    seconds: str,
    took: float,
    job_id: int,
    at: float,
    keep: int,
) -> bool:
    """Add one job's sample and drop its kind's samples beyond the newest `keep`; whether it
    was added (False: that job's sample was there already)."""
    added = await execute(
        conn,
        """
        INSERT INTO durations (backend, model, size, seconds, took, job_id, at)
        VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (job_id) DO NOTHING
        """,
        (backend, model, size, seconds, took, job_id, at),
    )
    # Everything at or before the oldest id the newest `keep` leave out; by the index.
    await execute(
        conn,
        """
        DELETE FROM durations
        WHERE backend = ? AND model = ? AND size = ? AND seconds = ? AND id <= (
            SELECT id FROM durations
            WHERE backend = ? AND model = ? AND size = ? AND seconds = ?
            ORDER BY id DESC LIMIT 1 OFFSET ?
        )
        """,
        (backend, model, size, seconds, backend, model, size, seconds, keep),
    )
    return added == 1


async def recent(
    conn: Conn, *, backend: str, model: str, size: str, seconds: str, limit: int
) -> list[float]:
    """The newest `limit` samples of a kind (seconds each), newest first."""
    rows = await fetch_all(
        conn,
        """
        SELECT took FROM durations
        WHERE backend = ? AND model = ? AND size = ? AND seconds = ?
        ORDER BY id DESC LIMIT ?
        """,
        (backend, model, size, seconds, limit),
    )
    return [float(r[0]) for r in rows]
