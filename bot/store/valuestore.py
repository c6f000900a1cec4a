"""The Store's guild settings, quota overrides and bot-wide values, and the audited changes to
them: each change by a server admin or an owner is written with its audit entry in one
transaction (see audit.py), so the audit holds exactly the changes that happened."""

from __future__ import annotations

from pydantic import JsonValue

from bot.store import audit, kv
from bot.store.base import StoreBase
from bot.store.records import QuotaOverride, TargetKind


class Values(StoreBase):
    """Guild settings, quota overrides, bot-wide values, and their audited changes."""

    async def get_guild_setting(self, guild_id: int, key: str) -> JsonValue:
        """The stored JSON value, or None if unset."""
        async with self._read() as conn:
            return await kv.get_guild_setting(conn, guild_id, key)

    async def set_guild_setting(self, guild_id: int, key: str, value: JsonValue) -> None:
        async with self.transaction() as conn:
            await kv.set_guild_setting(conn, guild_id, key, value)

    async def delete_guild_setting(self, guild_id: int, key: str) -> bool:
        async with self.transaction() as conn:
            return await kv.delete_guild_setting(conn, guild_id, key)

    async def all_guild_settings(self, guild_id: int) -> dict[str, JsonValue]:
        async with self._read() as conn:
            return await kv.all_guild_settings(conn, guild_id)

    async def set_quota_override(self, override: QuotaOverride) -> None:
        async with self.transaction() as conn:
            await kv.set_quota_override(conn, override)

    async def get_quota_override(
        self, guild_id: int, target_kind: TargetKind, target_id: int, limit_name: str
    ) -> QuotaOverride | None:
        async with self._read() as conn:
            return await kv.get_quota_override(conn, guild_id, target_kind, target_id, limit_name)

    async def list_quota_overrides(self, guild_id: int) -> list[QuotaOverride]:
        async with self._read() as conn:
            return await kv.list_quota_overrides(conn, guild_id)

    async def delete_quota_override(
        self, guild_id: int, target_kind: TargetKind, target_id: int, limit_name: str
    ) -> bool:
        async with self.transaction() as conn:
            return await kv.delete_quota_override(
                conn, guild_id, target_kind, target_id, limit_name
            )

    async def get_meta(self, key: str) -> str | None:
        async with self._read() as conn:
            return await kv.get_meta(conn, key)

    async def set_meta(self, key: str, value: str) -> None:
        async with self.transaction() as conn:
            await kv.set_meta(conn, key, value)

    # ------------------------------------------------------------------ audited changes
    # Limit changes by server admins and owners: each is written with its audit entry in one
    # transaction (see audit.py), so the audit holds exactly the changes that happened.

    async def audited_change(
        self,
        draft: audit.AuditDraft,
        change: audit.Change,
        *,
        refused: bool = False,
        reason: str | None = None,
    ) -> audit.AuditEntry:
        """Apply `change` and record it, with the touched items before and after; a `refused`
        attempt is recorded (after = what was asked for) and changes nothing."""
        async with self.transaction() as conn:
            change = await audit.resolve(conn, change)
            before = await audit.snapshot(conn, change)
            if refused:
                after = change.requested()
            else:
                await audit.apply(conn, change)
                after = await audit.snapshot(conn, change)
            return await audit.insert_entry(
                conn, draft, self.clock(), before, after, refused=refused, reason=reason
            )

    async def audit_entries(
        self, guild_id: int | None, limit: int, offset: int = 0
    ) -> list[audit.AuditEntry]:
        """A guild's audit (None: the bot-wide changes), newest first, `limit` from `offset`."""
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        async with self._read() as conn:
            return await audit.entries(conn, guild_id, limit, offset)

    async def count_audit(self, guild_id: int | None) -> int:
        async with self._read() as conn:
            return await audit.count(conn, guild_id)
