"""SQL for the audit of limit changes (table `audit`, migration 4): who changed what, where,
when, from what to what, and the attempts that were refused.

A change is described as a set of named items (a guild setting, a member's or role's override
of one limit, a bot-wide meta value). `resolve` works out the values that depend on what is
stored, `snapshot` reads the items before and after `apply` writes them, and `insert_entry`
records both snapshots: all inside the caller's transaction, so an entry exists exactly when its
change does. A refused attempt writes nothing but its entry, whose
"after" is what was asked for.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Literal

from pydantic import JsonValue

from bot.store import kv
from bot.store.db import Conn, Row, fetch_all, fetch_value, insert
from bot.store.records import QuotaOverride, TargetKind

ActorKind = Literal["admin", "owner"]

# Bounds on what one entry keeps: items are few (a handful of settings), text is short.
TARGET_LIMIT = 64
REASON_LIMIT = 600


@dataclasses.dataclass(frozen=True, slots=True)
class OverrideKey:
    target_kind: TargetKind
    target_id: int
    limit_name: str

    @property
    def item(self) -> str:
        return f"override:{self.target_kind}:{self.target_id}:{self.limit_name}"


# A new value worked out from the stored one (None: unset) inside the change's transaction.
OverrideUpdate = Callable[[QuotaOverride | None], QuotaOverride | None]
SettingUpdate = Callable[[JsonValue], JsonValue]


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    """What one command changes. `settings` are the guild's keys (None deletes); `overrides`
    the guild's member and role overrides (None deletes); `meta` bot-wide values.

    `setting_updates` and `override_updates` compute an item's new value from its stored one
    (a merge, an edit of a list), read in the change's own transaction (see `resolve`), so a
    change made at the same moment is never overwritten from a stale read."""

    guild_id: int | None = None
    settings: Mapping[str, JsonValue] = dataclasses.field(default_factory=dict)
    overrides: Mapping[OverrideKey, QuotaOverride | None] = dataclasses.field(default_factory=dict)
    meta: Mapping[str, str] = dataclasses.field(default_factory=dict)
    setting_updates: Mapping[str, SettingUpdate] = dataclasses.field(default_factory=dict)
    override_updates: Mapping[OverrideKey, OverrideUpdate] = dataclasses.field(default_factory=dict)

    def requested(self) -> dict[str, JsonValue]:
        """The items as the change would leave them (a refused attempt's "after")."""
        after: dict[str, JsonValue] = {f"setting:{k}": v for k, v in self.settings.items()}
        after.update({key.item: _override_json(o) for key, o in self.overrides.items()})
        after.update({f"meta:{k}": v for k, v in self.meta.items()})
        return after


@dataclasses.dataclass(frozen=True, slots=True)
class AuditDraft:
    """An entry before it is written: who asks, what kind of change, about whom."""

    guild_id: int | None
    actor_id: int
    actor_kind: ActorKind
    action: str
    target: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: float
    guild_id: int | None
    actor_id: int
    actor_kind: ActorKind
    action: str
    target: str | None
    before: dict[str, JsonValue]
    after: dict[str, JsonValue]
    refused: bool
    reason: str | None


def _override_json(override: QuotaOverride | None) -> JsonValue:
    if override is None:
        return None
    return {"max_micros": override.max_micros, "exempt": override.exempt}


async def resolve(conn: Conn, change: Change) -> Change:
    """The change with its updates worked out from the stored values, in the caller's
    transaction: plain values only. An update may raise (bad input that only the stored value
    shows); the transaction is then rolled back and nothing is written or audited."""
    if not change.setting_updates and not change.override_updates:
        return change
    assert change.guild_id is not None
    settings = dict(change.settings)
    if change.setting_updates:
        stored = await kv.all_guild_settings(conn, change.guild_id)
        for name, update in change.setting_updates.items():
            settings[name] = update(stored.get(name))
    overrides = dict(change.overrides)
    for key, override_update in change.override_updates.items():
        current = await kv.get_quota_override(
            conn, change.guild_id, key.target_kind, key.target_id, key.limit_name
        )
        overrides[key] = override_update(current)
    return dataclasses.replace(
        change, settings=settings, overrides=overrides, setting_updates={}, override_updates={}
    )


async def snapshot(conn: Conn, change: Change) -> dict[str, JsonValue]:
    """The current value of every item the change touches (None: unset)."""
    values: dict[str, JsonValue] = {}
    if change.settings:
        assert change.guild_id is not None
        stored = await kv.all_guild_settings(conn, change.guild_id)
        values.update({f"setting:{k}": stored.get(k) for k in change.settings})
    for key in change.overrides:
        assert change.guild_id is not None
        current = await kv.get_quota_override(
            conn, change.guild_id, key.target_kind, key.target_id, key.limit_name
        )
        values[key.item] = _override_json(current)
    for name in change.meta:
        values[f"meta:{name}"] = await kv.get_meta(conn, name)
    return values


async def apply(conn: Conn, change: Change) -> None:
    for name, value in change.settings.items():
        assert change.guild_id is not None
        if value is None:
            await kv.delete_guild_setting(conn, change.guild_id, name)
        else:
            await kv.set_guild_setting(conn, change.guild_id, name, value)
    for key, override in change.overrides.items():
        assert change.guild_id is not None
        if override is None:
            await kv.delete_quota_override(
                conn, change.guild_id, key.target_kind, key.target_id, key.limit_name
            )
        else:
            await kv.set_quota_override(conn, override)
    for name, text in change.meta.items():
        await kv.set_meta(conn, name, text)


def _dump(value: Mapping[str, JsonValue]) -> str:
    return json.dumps(value, allow_nan=False, separators=(",", ":"), sort_keys=True)


async def insert_entry(
    conn: Conn,
    draft: AuditDraft,
    at: float,
    before: Mapping[str, JsonValue],
    after: Mapping[str, JsonValue],
    *,
    refused: bool,
    reason: str | None,
) -> AuditEntry:
    target = None if draft.target is None else draft.target[:TARGET_LIMIT]
    reason = None if reason is None else reason[:REASON_LIMIT]
    entry_id = await insert(
        conn,
        """
        INSERT INTO audit (at, guild_id, actor_id, actor_kind, action, target,
                           before_json, after_json, refused, reason)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """,
        (
            at,
            draft.guild_id,
            draft.actor_id,
            draft.actor_kind,
            draft.action,
            target,
            _dump(before),
            _dump(after),
            int(refused),
            reason,
        ),
    )
    return AuditEntry(
        id=entry_id,
        at=at,
        guild_id=draft.guild_id,
        actor_id=draft.actor_id,
        actor_kind=draft.actor_kind,
        action=draft.action,
        target=target,
        before=dict(before),
        after=dict(after),
        refused=refused,
        reason=reason,
    )


def _load(text: str) -> dict[str, JsonValue]:
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


def _entry(row: Row) -> AuditEntry:
    kind: ActorKind = "owner" if row["actor_kind"] == "owner" else "admin"
    return AuditEntry(
        id=int(row["id"]),
        at=float(row["at"]),
        guild_id=None if row["guild_id"] is None else int(row["guild_id"]),
        actor_id=int(row["actor_id"]),
        actor_kind=kind,
        action=str(row["action"]),
        target=None if row["target"] is None else str(row["target"]),
        before=_load(row["before_json"]),
        after=_load(row["after_json"]),
        refused=bool(row["refused"]),
        reason=None if row["reason"] is None else str(row["reason"]),
    )


async def entries(conn: Conn, guild_id: int | None, limit: int, offset: int) -> list[AuditEntry]:
    """A guild's entries (None: the bot-wide ones), newest first."""
    rows = await fetch_all(
        conn,
        "SELECT * FROM audit WHERE guild_id IS NOT DISTINCT FROM ?"
        " ORDER BY id DESC LIMIT ? OFFSET ?",
        (guild_id, limit, offset),
    )
    return [_entry(r) for r in rows]


async def count(conn: Conn, guild_id: int | None) -> int:
    return int(
        await fetch_value(
            conn, "SELECT COUNT(*) FROM audit WHERE guild_id IS NOT DISTINCT FROM ?", (guild_id,)
        )
    )
