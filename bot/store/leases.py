"""SQL for leases: which bot process looks after which job, and until when.

Several processes may share one PostgreSQL database. Each job that still needs looking after
(active at the service, or finished and not yet delivered) is held by one process, its
`lease_owner`, until `lease_expires_at`. The holder renews its leases well before they end;
a process that dies stops renewing, and once its leases have expired any live process takes
them over with the same statement it renews its own with. On PostgreSQL the candidates are
read FOR UPDATE SKIP LOCKED, so two processes claiming at once never wait on each other and
never take the same job. Requests acknowledged but not yet jobs (`intake`) are leased the same
way, so the member of a request a dead process was handling is still answered."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.store.db import Conn, dialect, execute, fetch_all
from bot.store.intake import drop_recorded, to_intake
from bot.store.jobs import ACTIVE, to_job
from bot.store.records import Intake, Job

# What still needs a process: at the service or waiting for a slot, or not yet delivered.
NEEDS_CARE = f"({ACTIVE} OR delivery_state != 'done')"
# Ids per UPDATE ... IN (...): well under every engine's limit on parameters.
CHUNK = 500


@dataclass
class Claimed:
    """The jobs a process holds after a claim, and those of them it took from another."""

    mine: set[int] = field(default_factory=set)
    taken: list[Job] = field(default_factory=list)


def _skip_locked(conn: Conn) -> str:
    return " FOR UPDATE SKIP LOCKED" if dialect(conn) == "postgresql" else ""


def _free(steal: bool) -> str:
    # steal: the caller knows no other process is alive (SQLite's one process per data folder),
    # so the leases a stopped process left are taken at once instead of after they expire.
    if steal:
        return "TRUE"
    return "(lease_owner IS NULL OR lease_owner = ? OR lease_expires_at < ?)"


async def claim(conn: Conn, owner: str, now: float, until: float, *, steal: bool) -> Claimed:
    """Renew `owner`'s leases and take the free ones, in one transaction the caller holds."""
    params: tuple[object, ...] = () if steal else (owner, now)
    rows = await fetch_all(
        conn,
        f"SELECT id, lease_owner FROM jobs WHERE {NEEDS_CARE} AND {_free(steal)}"  # noqa: S608 (constants)
        f" ORDER BY id{_skip_locked(conn)}",
        params,
    )
    ids = [int(r["id"]) for r in rows]
    taken_ids = [int(r["id"]) for r in rows if r["lease_owner"] != owner]
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        marks = ", ".join("?" for _ in chunk)
        await execute(
            conn,
            f"UPDATE jobs SET lease_owner = ?, lease_expires_at = ? WHERE id IN ({marks})",  # noqa: S608 (placeholders)
            (owner, until, *chunk),
        )
    # Requests of this process not yet recorded as jobs keep their leases too.
    await execute(
        conn,
        "UPDATE intake SET lease_expires_at = ? WHERE lease_owner = ?",
        (until, owner),
    )
    taken: list[Job] = []
    for start in range(0, len(taken_ids), CHUNK):
        chunk = taken_ids[start : start + CHUNK]
        marks = ", ".join("?" for _ in chunk)
        found = await fetch_all(conn, f"SELECT * FROM jobs WHERE id IN ({marks})", chunk)  # noqa: S608 (placeholders)
        taken.extend(to_job(r) for r in found)
    return Claimed(mine=set(ids), taken=taken)


async def orphan_intakes(
    conn: Conn, owner: str, now: float, until: float, *, steal: bool
) -> list[Intake]:
    """Take the requests another process acknowledged and left (its leases expired) before
    they became jobs, so their members can be told; those that became jobs are forgotten."""
    await drop_recorded(conn)
    params: tuple[object, ...] = () if steal else (owner, now)
    # A request still being handled by this process is not an orphan.
    mine = "lease_owner IS DISTINCT FROM ?"
    rows = await fetch_all(
        conn,
        f"SELECT * FROM intake WHERE {_free(steal)} AND {mine}"  # noqa: S608 (constants)
        f" ORDER BY received_at{_skip_locked(conn)}",
        (*params, owner),
    )
    found = [int(r["interaction_id"]) for r in rows]
    for start in range(0, len(found), CHUNK):
        chunk = found[start : start + CHUNK]
        marks = ", ".join("?" for _ in chunk)
        await execute(
            conn,
            f"UPDATE intake SET lease_owner = ?, lease_expires_at = ?"  # noqa: S608 (placeholders)
            f" WHERE interaction_id IN ({marks})",
            (owner, until, *chunk),
        )
    return [to_intake(row) for row in rows]


async def release(conn: Conn, owner: str) -> int:
    """A process stopping cleanly hands its jobs back at once (no wait for expiry)."""
    released = await execute(
        conn,
        "UPDATE jobs SET lease_owner = NULL, lease_expires_at = NULL"  # noqa: S608 (a constant)
        f" WHERE lease_owner = ? AND {NEEDS_CARE}"
        # A create sent may still be on its way from a request being answered: that job passes
        # on when its lease expires, not at once.
        " AND NOT (state = 'creating' AND create_attempted_at IS NOT NULL)",
        (owner,),
    )
    await execute(
        conn,
        "UPDATE intake SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner = ?",
        (owner,),
    )
    return released


async def any_queued(conn: Conn) -> bool:
    rows = await fetch_all(conn, "SELECT 1 FROM jobs WHERE state = 'queued_local' LIMIT 1")
    return bool(rows)


async def take_queued(
    conn: Conn, owner: str, until: float, max_concurrent: int, now: float
) -> Job | None:
    """The oldest job waiting for a slot, moved to 'creating' and leased to `owner`, if fewer
    than `max_concurrent` jobs are being sent or run across every process; else None. In the
    caller's serialised transaction, so two processes cannot both fill the last slot."""
    working = await fetch_all(
        conn, "SELECT COUNT(*) FROM jobs WHERE state IN ('creating', 'running')"
    )
    if int(working[0][0]) >= max_concurrent:
        return None
    # (A job's reference image is in the database too: any process can send it.)
    rows = await fetch_all(
        conn, "SELECT id FROM jobs WHERE state = 'queued_local' ORDER BY id LIMIT 1"
    )
    if not rows:
        return None
    job_id = int(rows[0][0])
    await execute(
        conn,
        "UPDATE jobs SET state = 'creating', lease_owner = ?, lease_expires_at = ?,"
        " updated_at = ? WHERE id = ? AND state = 'queued_local'",
        (owner, until, now, job_id),
    )
    found = await fetch_all(conn, "SELECT * FROM jobs WHERE id = ?", (job_id,))
    return to_job(found[0])
