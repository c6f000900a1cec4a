"""SQL for `intake`: acknowledged requests not yet known to be jobs."""

from __future__ import annotations

import aiosqlite

from bot.store.db import execute, fetch_all
from bot.store.records import Intake


async def record(conn: aiosqlite.Connection, intake: Intake) -> None:
    await execute(
        conn,
        """
        INSERT OR REPLACE INTO intake
            (interaction_id, application_id, token, token_expires_at, user_id, received_at)
        VALUES (?, ?, ?, ?, ?, ?)
        """,
        (
            intake.interaction_id,
            intake.application_id,
            intake.token,
            intake.token_expires_at,
            intake.user_id,
            intake.received_at,
        ),
    )


async def drop(conn: aiosqlite.Connection, interaction_id: int) -> None:
    await execute(conn, "DELETE FROM intake WHERE interaction_id = ?", (interaction_id,))


async def unrecorded(conn: aiosqlite.Connection) -> list[Intake]:
    """Intakes whose interaction never became a job (those that did are the tracker's)."""
    rows = await fetch_all(
        conn,
        """
        SELECT i.* FROM intake AS i
        WHERE NOT EXISTS (SELECT 1 FROM jobs AS j WHERE j.interaction_id = i.interaction_id)
        ORDER BY i.received_at
        """,
    )
    return [
        Intake(
            interaction_id=row["interaction_id"],
            application_id=row["application_id"],
            token=row["token"],
            token_expires_at=row["token_expires_at"],
            user_id=row["user_id"],
            received_at=row["received_at"],
        )
        for row in rows
    ]


async def drop_recorded(conn: aiosqlite.Connection) -> int:
    """Forget intakes whose interaction became a job."""
    return await execute(
        conn,
        """
        DELETE FROM intake
        WHERE EXISTS (SELECT 1 FROM jobs AS j WHERE j.interaction_id = intake.interaction_id)
        """,
    )
