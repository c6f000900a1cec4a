"""SQL for `request_log`: the starts of requests to the video API within the last window, per
bucket (one video server), which every bot process on the database shares (bot/shared_rate.py).

A sliding log, like the in-process limiter (bot/api/ratelimit.py): a bucket holds at most its
per-minute number of rows, each a request start younger than the window, so the table stays a
few rows per server however long the bots run. The caller holds the store's write transaction
(serialised across processes), so the count and the insert see the same rows.
"""

from __future__ import annotations

from bot.store.db import Conn, execute, fetch_one

# A grant never answers "wait 0": 0.0 means granted, and the rounding of `oldest + window - now`
# must not turn a refusal into one.
MIN_WAIT = 0.001


async def take_slot(conn: Conn, bucket: str, per_minute: int, window: float, now: float) -> float:
    """Record a request start at `now` in `bucket` if fewer than `per_minute` started within
    `window` seconds before it, and return 0.0; otherwise return how long (seconds) until the
    oldest of those leaves the window, without recording anything."""
    # A start leaves the window once `window` seconds have passed (at <= now - window), as in
    # MinuteRateLimiter. A start more than a window ahead of `now` was written by a clock that
    # has since stepped back (or a host far off the time): it would hold the bucket shut for as
    # long as the step, so it goes too.
    await execute(
        conn,
        "DELETE FROM request_log WHERE bucket = ? AND (at <= ? OR at > ?)",
        (bucket, now - window, now + window),
    )
    row = await fetch_one(
        conn, "SELECT COUNT(*), MIN(at) FROM request_log WHERE bucket = ?", (bucket,)
    )
    count = 0 if row is None else int(row[0])
    if count < per_minute:
        await execute(conn, "INSERT INTO request_log (bucket, at) VALUES (?, ?)", (bucket, now))
        return 0.0
    assert row is not None and row[1] is not None
    # At most a window: the oldest remaining start is after now - window and before now + window.
    return min(window, max(MIN_WAIT, float(row[1]) + window - now))
