"""The money ledger: append-only entries in two accounts, 'held' and 'spent'.

reserve: held +X.  refund: held -X.  settle: held -X and spent +X.
adjust_down: spent -D, adjust_up: spent +D, right after a settle, when the service reported what
the job actually cost (see `adjust`).
A job's open hold is the sum of its held entries; refund and settle move only what is still
held, so repeating either (a retry after a crash) changes nothing. Usage for quotas is
held + spent.

Every entry of a job carries `charged_at`, the time the job was reserved, and windows select
on it. Selecting on the entry's own time would let a refund (or the held half of a settle)
that falls inside a window cancel a reservation made before it, pushing usage below zero and
handing out budget nobody refunded.

These functions run inside a transaction the caller holds (see Database.transaction).
"""

from __future__ import annotations

import enum

from bot.store.db import Conn, execute, fetch_all, fetch_value
from bot.store.records import Account, Job, JobBalance, LedgerEntry, LedgerReason

_INSERT = """
    INSERT INTO ledger (at, charged_at, job_id, user_id, guild_id, account, amount_micros, reason)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""


class AnyGuild(enum.Enum):
    """Marker for 'no guild filter', distinct from None (which is the pool of DM usage)."""

    ANY = enum.auto()


ANY_GUILD = AnyGuild.ANY


async def _append(
    conn: Conn,
    job: Job,
    *,
    at: float,
    account: Account,
    amount: int,
    reason: LedgerReason,
) -> None:
    await execute(
        conn,
        _INSERT,
        (at, job.created_at, job.id, job.user_id, job.guild_id, account, amount, reason),
    )


async def open_hold(conn: Conn, job_id: int) -> int:
    value = await fetch_value(
        conn,
        "SELECT CAST(COALESCE(SUM(amount_micros), 0) AS BIGINT) FROM ledger"
        " WHERE job_id = ? AND account = 'held'",
        (job_id,),
    )
    return int(value)


async def reserve(conn: Conn, job: Job, at: float) -> None:
    # Written even for a free job, so every job has exactly one reserve entry to audit against.
    await _append(conn, job, at=at, account="held", amount=job.cost_micros, reason="reserve")


async def refund(conn: Conn, job: Job, at: float) -> int:
    """Release what the job still holds; the amount released (0 if nothing was held)."""
    hold = await open_hold(conn, job.id)
    if hold > 0:
        await _append(conn, job, at=at, account="held", amount=-hold, reason="refund")
    return max(hold, 0)


async def settle(conn: Conn, job: Job, at: float) -> int:
    """Turn what the job still holds into spending; the amount settled."""
    hold = await open_hold(conn, job.id)
    if hold > 0:
        await _append(conn, job, at=at, account="held", amount=-hold, reason="settle")
        await _append(conn, job, at=at, account="spent", amount=hold, reason="settle")
    return max(hold, 0)


async def spent_of(conn: Conn, job_id: int) -> int:
    value = await fetch_value(
        conn,
        "SELECT CAST(COALESCE(SUM(amount_micros), 0) AS BIGINT) FROM ledger"
        " WHERE job_id = ? AND account = 'spent'",
        (job_id,),
    )
    return int(value)


async def adjust(
    conn: Conn, job: Job, actual: int, headroom: int | None, at: float
) -> tuple[int, int]:
    """Bring a settled job's spending to `actual`, the cost its service reported: the
    difference back when lower (never below zero: `actual` is not negative), charged when higher
    but only up to `headroom` (None: no limit applies). Returns (what the job has now cost the
    member, what of `actual` was not charged)."""
    if actual < 0:
        raise ValueError("a reported cost is not negative")
    spent = await spent_of(conn, job.id)
    if actual < spent:
        await _append(
            conn, job, at=at, account="spent", amount=actual - spent, reason="adjust_down"
        )
        return actual, 0
    extra = actual - spent
    allowed = extra if headroom is None else min(extra, max(headroom, 0))
    if allowed > 0:
        await _append(conn, job, at=at, account="spent", amount=allowed, reason="adjust_up")
    return spent + allowed, extra - allowed


_USAGE = "SELECT CAST(COALESCE(SUM(amount_micros), 0) AS BIGINT) FROM ledger WHERE charged_at >= ?"
# Static statements (chosen, never assembled) so each can use its index.
_USAGE_ALL = _USAGE
_USAGE_USER = _USAGE + " AND user_id = ?"
_USAGE_GUILD = _USAGE + " AND guild_id IS NOT DISTINCT FROM ?"
_USAGE_USER_GUILD = _USAGE + " AND user_id = ? AND guild_id IS NOT DISTINCT FROM ?"


async def usage(
    conn: Conn,
    *,
    since: float,
    user_id: int | None = None,
    guild_id: int | AnyGuild | None = ANY_GUILD,
) -> int:
    """held + spent of requests made at or after `since`, for one user and/or one guild
    (guild None = DMs), or for everyone."""
    if user_id is None and guild_id is ANY_GUILD:
        value = await fetch_value(conn, _USAGE_ALL, (since,))
    elif guild_id is ANY_GUILD:
        value = await fetch_value(conn, _USAGE_USER, (since, user_id))
    elif user_id is None:
        value = await fetch_value(conn, _USAGE_GUILD, (since, guild_id))
    else:
        value = await fetch_value(conn, _USAGE_USER_GUILD, (since, user_id, guild_id))
    return int(value)


async def top_spenders(
    conn: Conn, *, guild_id: int | AnyGuild | None, since: float, limit: int
) -> list[tuple[int, int]]:
    if guild_id is ANY_GUILD:
        rows = await fetch_all(
            conn,
            """
            SELECT user_id, CAST(SUM(amount_micros) AS BIGINT) AS used FROM ledger
            WHERE charged_at >= ?
            GROUP BY user_id HAVING SUM(amount_micros) > 0 ORDER BY used DESC, user_id LIMIT ?
            """,
            (since, limit),
        )
    else:
        rows = await fetch_all(
            conn,
            """
            SELECT user_id, CAST(SUM(amount_micros) AS BIGINT) AS used FROM ledger
            WHERE charged_at >= ? AND guild_id IS NOT DISTINCT FROM ?
            GROUP BY user_id HAVING SUM(amount_micros) > 0 ORDER BY used DESC, user_id LIMIT ?
            """,
            (since, guild_id, limit),
        )
    return [(int(r[0]), int(r[1])) for r in rows]


async def balances(conn: Conn) -> dict[Account, int]:
    rows = await fetch_all(
        conn, "SELECT account, CAST(SUM(amount_micros) AS BIGINT) FROM ledger GROUP BY account", ()
    )
    found = {str(r[0]): int(r[1]) for r in rows}
    return {"held": found.get("held", 0), "spent": found.get("spent", 0)}


async def sum_by_job(conn: Conn) -> dict[int, JobBalance]:
    rows = await fetch_all(
        conn,
        """
        SELECT job_id,
               CAST(COALESCE(SUM(CASE WHEN account = 'held' THEN amount_micros END), 0) AS BIGINT),
               CAST(COALESCE(SUM(CASE WHEN account = 'spent' THEN amount_micros END), 0) AS BIGINT)
        FROM ledger GROUP BY job_id ORDER BY job_id
        """,
        (),
    )
    return {int(r[0]): JobBalance(int(r[1]), int(r[2])) for r in rows}


async def entries(conn: Conn, job_id: int | None = None) -> list[LedgerEntry]:
    if job_id is None:
        rows = await fetch_all(conn, "SELECT * FROM ledger ORDER BY id", ())
    else:
        rows = await fetch_all(conn, "SELECT * FROM ledger WHERE job_id = ? ORDER BY id", (job_id,))
    return [LedgerEntry.model_validate(dict(r)) for r in rows]
