"""The changes `/video-admin` makes in one guild: members' and roles' quotas, the guild's limits,
models, longest video and channels. Each is checked against the owner's ceilings
(bot/ceilings.py) and written with its audit entry in one transaction (`Store.audited_change`);
an attempt past a ceiling is audited, marked refused, and changes nothing.

Where a change depends on what is stored (a budget kept when only an exemption changes, a
channel added to the list), it is worked out from the stored value inside that transaction, so
two admins changing the same thing at once never overwrite each other with a stale read.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Final, Literal

from pydantic import JsonValue

from bot.catalog import format_dollars
from bot.ceilings import (
    OverCeiling,
    active_refusal,
    budget_refusal,
    cooldown_refusal,
    exempt_refusal,
)
from bot.guildsettings import (
    KEY_ALLOWED_MODELS,
    KEY_CHANNEL_IDS,
    KEY_COOLDOWN,
    KEY_MAX_ACTIVE,
    KEY_MAX_SECONDS,
    KEY_USER_DAILY,
    KEY_USER_MONTHLY,
    MAX_ACTIVE_CEILING,
    MAX_COOLDOWN_SECONDS,
    read_guild_settings,
)
from bot.money import MAX_BUDGET_MICROS
from bot.notice import ChannelRef, Code, Notice, NoticeError, notice
from bot.quota.limits import (
    ACTIVE_JOBS_LIMIT,
    COOLDOWN_LIMIT,
    OVERRIDABLE_LIMITS,
    USER_DAILY,
    USER_MONTHLY,
)
from bot.quota.overrides import merge_override, quota_overrides_for
from bot.store import QuotaOverride, Store, TargetKind
from bot.store.audit import ActorKind, AuditDraft, AuditEntry, Change, OverrideKey
from bot.store.quota import Ceilings

EVERY_LIMIT: Final = "all"

# Changes the caller passes to set_limits: KEEP leaves a limit as it is, None resets it.
KEEP: Final = "keep"

ChannelAction = Literal["add", "remove", "clear"]


@dataclasses.dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change: a member with Manage Server, or one of the bot's owners."""

    user_id: int
    owner: bool = False

    @property
    def kind(self) -> ActorKind:
        return "owner" if self.owner else "admin"


def target_text(kind: TargetKind, target_id: int) -> str:
    return f"{kind}:{target_id}"


def _budget_range() -> NoticeError:
    return NoticeError(
        notice("A budget must be between $0.00 and {most}.", most=format_dollars(MAX_BUDGET_MICROS))
    )


class GuildAdmin:
    """The changes `/video-admin` makes in one guild, on behalf of one actor."""

    def __init__(self, store: Store, ceilings: Ceilings, guild_id: int, actor: Actor) -> None:
        self.store = store
        self.ceilings = ceilings
        self.guild_id = guild_id
        self.actor = actor

    async def _commit(
        self, action: str, target: str | None, change: Change, refusal: Notice | None = None
    ) -> AuditEntry:
        draft = AuditDraft(
            guild_id=self.guild_id,
            actor_id=self.actor.user_id,
            actor_kind=self.actor.kind,
            action=action,
            target=target,
        )
        if refusal is not None:
            await self.store.audited_change(draft, change, refused=True, reason=refusal.plain())
            raise OverCeiling(refusal)
        return await self.store.audited_change(draft, change)

    # ------------------------------------------------------------ members and roles

    async def set_quota(
        self,
        kind: TargetKind,
        target_id: int,
        limit: str,
        *,
        micros: int | None = None,
        exempt: bool | None = None,
    ) -> AuditEntry:
        """`/video-admin quota set`: a member's or role's own budget for one limit, or an
        exemption from it (or from every limit, `EVERY_LIMIT`). An amount on its own is the
        budget and ends an exemption; exempt False lifts one, keeping any budget (see
        `merge_override`, applied to what is stored inside the change's transaction)."""
        if limit == EVERY_LIMIT:
            if micros is not None:
                raise NoticeError(
                    notice("An amount is for one budget: choose the 24-hour or the monthly budget.")
                )
            if exempt is None:
                raise NoticeError(
                    notice("For every limit, set exempt: True to exempt, False to lift exemptions.")
                )
            names = list(OVERRIDABLE_LIMITS)
        else:
            if limit not in OVERRIDABLE_LIMITS:
                known = ", ".join(OVERRIDABLE_LIMITS)
                raise NoticeError(
                    notice(
                        "{limit} can't be overridden; choose one of: {known}.",
                        limit=Code(limit),
                        known=known,
                    )
                )
            if micros is None and exempt is None:
                raise NoticeError(
                    notice(
                        "Give an amount in dollars or exempt; to go back to the defaults, "
                        "use {command}.",
                        command=Code("/video-admin quota reset"),
                    )
                )
            if limit in (ACTIVE_JOBS_LIMIT, COOLDOWN_LIMIT) and micros is not None:
                raise NoticeError(
                    notice("The {limit} can only be exempted.", limit=OVERRIDABLE_LIMITS[limit])
                )
            if micros is not None and not 0 <= micros <= MAX_BUDGET_MICROS:
                raise _budget_range()
            names = [limit]
        updates = {
            OverrideKey(kind, target_id, name): functools.partial(
                merge_override,
                guild_id=self.guild_id,
                target_kind=kind,
                target_id=target_id,
                limit_name=name,
                micros=micros,
                exempt=exempt,
            )
            for name in names
        }
        refusal = exempt_refusal(self.ceilings) if exempt else None
        if refusal is None and limit != EVERY_LIMIT:
            refusal = budget_refusal(self.ceilings, limit, micros)
        action = "quota.exempt" if micros is None else "quota.set"
        change = Change(guild_id=self.guild_id, override_updates=updates)
        return await self._commit(action, target_text(kind, target_id), change, refusal)

    async def reset_quota(self, kind: TargetKind, target_id: int) -> int:
        """`/video-admin quota reset`: remove a member's or role's overrides; how many. Always
        allowed (the defaults are within the ceilings). Spending is never erased."""
        found = await quota_overrides_for(self.store, self.guild_id, kind, target_id)
        rows: dict[OverrideKey, QuotaOverride | None] = {
            OverrideKey(kind, target_id, o.limit_name): None for o in found
        }
        entry = await self._commit(
            "quota.reset", target_text(kind, target_id), Change(self.guild_id, overrides=rows)
        )
        return sum(1 for value in entry.before.values() if value is not None)

    # ------------------------------------------------------------ the guild's settings

    async def set_limits(
        self,
        *,
        daily: int | str | None = KEEP,
        monthly: int | str | None = KEEP,
        active: int | str | None = KEEP,
        cooldown: float | str | None = KEEP,
        reset: bool = False,
    ) -> AuditEntry:
        """`/video-admin settings limits`: each member's default limits in the guild, in one
        transaction. None goes back to the bot's value; `reset` does that for all four first.
        Every value is checked (input, then the owner's ceilings) before anything is written:
        one past a ceiling refuses the whole change."""
        values: dict[str, JsonValue] = {}
        if reset:
            values = {KEY_USER_DAILY: None, KEY_USER_MONTHLY: None}
            values |= {KEY_MAX_ACTIVE: None, KEY_COOLDOWN: None}
        refusals: list[Notice | None] = []
        for key, name, value in (
            (KEY_USER_DAILY, USER_DAILY, daily),
            (KEY_USER_MONTHLY, USER_MONTHLY, monthly),
        ):
            if value == KEEP:
                continue
            assert value is None or isinstance(value, int)
            if value is not None and not 0 <= value <= MAX_BUDGET_MICROS:
                raise _budget_range()
            values[key] = value
            refusals.append(budget_refusal(self.ceilings, name, value))
        if active != KEEP:
            assert active is None or isinstance(active, int)
            if active is not None and not 1 <= active <= MAX_ACTIVE_CEILING:
                raise NoticeError(
                    notice(
                        "Videos in progress at once must be 1 to {most}.", most=MAX_ACTIVE_CEILING
                    )
                )
            values[KEY_MAX_ACTIVE] = active
            refusals.append(active_refusal(self.ceilings, active))
        if cooldown != KEEP:
            assert cooldown is None or isinstance(cooldown, int | float)
            if cooldown is not None and not 0 <= cooldown <= MAX_COOLDOWN_SECONDS:
                raise NoticeError(notice("The cooldown must be between 0 seconds and one day."))
            values[KEY_COOLDOWN] = None if cooldown is None else float(cooldown)
            refusals.append(cooldown_refusal(self.ceilings, cooldown))
        refusal: Notice | None = None
        for found in refusals:
            if found is not None:
                refusal = found if refusal is None else refusal + found
        return await self._commit(
            "settings.limits", None, Change(self.guild_id, settings=values), refusal
        )

    async def set_models(self, models: Sequence[str] | None) -> AuditEntry:
        """Models `/video` may use in the guild; None = every catalog model. The caller checks
        the ids against the catalog (this module does not know it)."""
        if models is not None and not models:
            raise NoticeError(notice("Allow at least one model, or reset to allow them all."))
        value: list[JsonValue] | None = None if models is None else list(dict.fromkeys(models))
        return await self._setting("settings.models", KEY_ALLOWED_MODELS, value)

    async def set_max_seconds(self, seconds: int | None) -> AuditEntry:
        if seconds is not None and seconds <= 0:
            raise NoticeError(notice("The maximum duration must be at least one second."))
        return await self._setting("settings.seconds", KEY_MAX_SECONDS, seconds)

    async def set_channels(self, channel_ids: Sequence[int] | None) -> AuditEntry:
        """Channels where `/video` may be used; None (or empty) = everywhere."""
        return await self._setting("settings.channels", KEY_CHANNEL_IDS, _channel_list(channel_ids))

    async def change_channels(
        self, action: ChannelAction, channel_id: int | None = None
    ) -> AuditEntry:
        """Add a channel to the list, remove one, or clear it (every channel), from the list
        as stored when the change is written. NoticeError (nothing written) for a channel
        missing from what it needs."""
        if action != "clear" and channel_id is None:
            raise NoticeError(
                notice("Choose the channel to add.")
                if action == "add"
                else notice("Choose the channel to remove.")
            )

        def update(stored: JsonValue) -> JsonValue:
            listed = list(read_guild_settings({KEY_CHANNEL_IDS: stored}).channel_ids or ())
            if action == "clear":
                return None
            assert channel_id is not None
            if action == "add":
                listed.append(channel_id)
            elif channel_id in listed:
                listed.remove(channel_id)
            else:
                raise NoticeError(
                    notice("{channel} is not on the list.", channel=ChannelRef(channel_id))
                )
            return _channel_list(listed)

        change = Change(self.guild_id, setting_updates={KEY_CHANNEL_IDS: update})
        return await self._commit("settings.channels", None, change)

    async def _setting(self, action: str, key: str, value: JsonValue) -> AuditEntry:
        return await self._commit(action, None, Change(self.guild_id, settings={key: value}))


def _channel_list(channel_ids: Sequence[int] | None) -> list[JsonValue] | None:
    return [*sorted(set(channel_ids))] if channel_ids else None
