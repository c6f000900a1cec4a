"""SQL for `intake`: acknowledged requests not yet known to be jobs."""

from __future__ import annotations

from collections.abc import Sequence

from bot.store.db import Conn, Row, execute, fetch_all
from bot.store.records import Intake

# Rows per INSERT: 9 parameters each stays under 999, SQLite's oldest limit on parameters.
ROWS_PER_STATEMENT = 110
INSERT = (
    "INSERT INTO intake"
    " (interaction_id, application_id, token, token_expires_at, user_id, received_at, locale,"
    " lease_owner, lease_expires_at)"
)
# Discord may deliver one interaction twice (a resumed gateway session): the newest wins.
UPSERT = (
    " ON CONFLICT (interaction_id) DO UPDATE SET application_id = excluded.application_id,"
    " token = excluded.token, token_expires_at = excluded.token_expires_at,"
    " user_id = excluded.user_id, received_at = excluded.received_at, locale = excluded.locale,"
    " lease_owner = excluded.lease_owner, lease_expires_at = excluded.lease_expires_at"
)


async def record(
    conn: Conn, intakes: Sequence[Intake], lease: tuple[str, float] | None = None
) -> None:
    """Insert `intakes` with one statement per ROWS_PER_STATEMENT rows; outside a transaction
    each statement commits on its own (a burst's intakes share one commit)."""
    # One row per interaction, the newest: PostgreSQL refuses a statement that would upsert
    # one row twice, and the batch's other requests would fail with it.
    intakes = list({i.interaction_id: i for i in intakes}.values())
    for start in range(0, len(intakes), ROWS_PER_STATEMENT):
        chunk = intakes[start : start + ROWS_PER_STATEMENT]
        values = ", ".join("(?, ?, ?, ?, ?, ?, ?, ?, ?)" for _ in chunk)
        owner, until = lease if lease is not None else (None, None)
        params = [
            value
            for i in chunk
            for value in (
                i.interaction_id,
                i.application_id,
                i.token,
                i.token_expires_at,
                i.user_id,
                i.received_at,
                i.locale,
                owner,
                until,
            )
        ]
        # The statement's text is built from placeholders only; every value is a parameter.
        sql = f"{INSERT} VALUES {values}{UPSERT}"
        await execute(conn, sql, params)


def to_intake(row: Row) -> Intake:
    return Intake(
        interaction_id=row["interaction_id"],
        application_id=row["application_id"],
        token=row["token"],
        token_expires_at=row["token_expires_at"],
        user_id=row["user_id"],
        received_at=row["received_at"],
        locale=row["locale"],
    )


async def drop(conn: Conn, interaction_id: int) -> None:
    await execute(conn, "DELETE FROM intake WHERE interaction_id = ?", (interaction_id,))


async def unrecorded(conn: Conn) -> list[Intake]:
    """Intakes whose interaction never became a job (those that did are the tracker's)."""
    rows = await fetch_all(
        conn,
        """
        SELECT i.* FROM intake AS i
        WHERE NOT EXISTS (SELECT 1 FROM jobs AS j WHERE j.interaction_id = i.interaction_id)
        ORDER BY i.received_at
        """,
    )
    return [to_intake(row) for row in rows]


async def drop_recorded(conn: Conn) -> int:
    """Forget intakes whose interaction became a job."""
    return await execute(
        conn,
        """
        DELETE FROM intake
        WHERE EXISTS (SELECT 1 FROM jobs AS j WHERE j.interaction_id = intake.interaction_id)
        """,
    )
