"""SQL for the small key/value tables: per-guild settings, quota overrides and `meta`."""

from __future__ import annotations

import json

from pydantic import JsonValue

from bot.store.db import Conn, Row, execute, fetch_all, fetch_one, fetch_value
from bot.store.records import QuotaOverride, TargetKind


async def get_guild_setting(conn: Conn, guild_id: int, key: str) -> JsonValue:
    value = await fetch_value(
        conn,
        "SELECT value_json FROM guild_settings WHERE guild_id = ? AND key = ?",
        (guild_id, key),
    )
    return None if value is None else json.loads(value)


async def set_guild_setting(conn: Conn, guild_id: int, key: str, value: JsonValue) -> None:
    # allow_nan=False: NaN/Infinity are not JSON and would not read back everywhere.
    text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    await execute(
        conn,
        """
        INSERT INTO guild_settings (guild_id, key, value_json) VALUES (?, ?, ?)
        ON CONFLICT (guild_id, key) DO UPDATE SET value_json = excluded.value_json
        """,
        (guild_id, key, text),
    )


async def delete_guild_setting(conn: Conn, guild_id: int, key: str) -> bool:
    changed = await execute(
        conn, "DELETE FROM guild_settings WHERE guild_id = ? AND key = ?", (guild_id, key)
    )
    return changed > 0


async def all_guild_settings(conn: Conn, guild_id: int) -> dict[str, JsonValue]:
    rows = await fetch_all(
        conn,
        "SELECT key, value_json FROM guild_settings WHERE guild_id = ? ORDER BY key",
        (guild_id,),
    )
    return {str(r[0]): json.loads(r[1]) for r in rows}


def _to_override(row: Row) -> QuotaOverride:
    return QuotaOverride.model_validate(dict(row))


async def set_quota_override(conn: Conn, override: QuotaOverride) -> None:
    await execute(
        conn,
        """
        INSERT INTO quota_overrides
            (guild_id, target_kind, target_id, limit_name, max_micros, exempt)
        VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT (guild_id, target_kind, target_id, limit_name)
        DO UPDATE SET max_micros = excluded.max_micros, exempt = excluded.exempt
        """,
        (
            override.guild_id,
            override.target_kind,
            override.target_id,
            override.limit_name,
            override.max_micros,
            int(override.exempt),
        ),
    )


async def get_quota_override(
    conn: Conn,
    guild_id: int,
    target_kind: TargetKind,
    target_id: int,
    limit_name: str,
) -> QuotaOverride | None:
    row = await fetch_one(
        conn,
        """
        SELECT * FROM quota_overrides
        WHERE guild_id = ? AND target_kind = ? AND target_id = ? AND limit_name = ?
        """,
        (guild_id, target_kind, target_id, limit_name),
    )
    return None if row is None else _to_override(row)


async def list_quota_overrides(conn: Conn, guild_id: int) -> list[QuotaOverride]:
    rows = await fetch_all(
        conn,
        """
        SELECT * FROM quota_overrides WHERE guild_id = ?
        ORDER BY target_kind, target_id, limit_name
        """,
        (guild_id,),
    )
    return [_to_override(r) for r in rows]


async def delete_quota_override(
    conn: Conn,
    guild_id: int,
    target_kind: TargetKind,
    target_id: int,
    limit_name: str,
) -> bool:
    changed = await execute(
        conn,
        """
        DELETE FROM quota_overrides
        WHERE guild_id = ? AND target_kind = ? AND target_id = ? AND limit_name = ?
        """,
        (guild_id, target_kind, target_id, limit_name),
    )
    return changed > 0


async def get_meta(conn: Conn, key: str) -> str | None:
    value = await fetch_value(conn, "SELECT value FROM meta WHERE key = ?", (key,))
    return None if value is None else str(value)


async def set_meta(conn: Conn, key: str, value: str) -> None:
    await execute(
        conn,
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )
