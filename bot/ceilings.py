"""A guild's admins change its limits within the owner's ceilings, and every change is audited.

Discord applications are public unless the owner says otherwise, so a server's admins are not
trusted with the owner's money: they may lower any limit, but raise a budget (a member's, a
role's or the server's), the videos one member may have in progress or shorten the cooldown only
as far as the owner's settings allow (`ADMIN_MAX_*`, `ADMIN_MIN_COOLDOWN_SECONDS`), and exempt
someone from the limits only if `ADMIN_MAY_EXEMPT` is set. Unset, each ceiling is the bot's own
value (`QUOTA_*`): the owner chose those as what one member may cost, so going past them is the
owner's decision, never a server's. The ceilings bind owners using `/video-admin` too: what is
stored above a ceiling would count as the ceiling anyway (bot.quota), so allowing it would only
show a value that does not apply; an owner raises the setting instead.

Every change (and every refused attempt, marked as such) is written to the audit with who made
it, where, when, and the touched values before and after, in the transaction of the change
itself (`Store.audited_change`). A refusal message names the ceiling and its setting.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Final

from pydantic import JsonValue

from bot.catalog import format_dollars
from bot.quota import (
    ACTIVE_JOBS_LIMIT,
    BOT_CAP_META_KEY,
    COOLDOWN_LIMIT,
    KEY_ALLOWED_MODELS,
    KEY_CHANNEL_IDS,
    KEY_COOLDOWN,
    KEY_MAX_ACTIVE,
    KEY_MAX_SECONDS,
    KEY_USER_DAILY,
    KEY_USER_MONTHLY,
    MAX_ACTIVE_CEILING,
    MAX_BUDGET_MICROS,
    MAX_COOLDOWN_SECONDS,
    OVERRIDABLE_LIMITS,
    USER_DAILY,
    USER_MONTHLY,
    quota_overrides_for,
)
from bot.store import QuotaOverride, Store, TargetKind
from bot.store.audit import ActorKind, AuditDraft, AuditEntry, Change, OverrideKey
from bot.store.quota import Ceilings

EVERY_LIMIT: Final = "all"

# The setting behind each ceiling, named in refusals.
CEILING_SETTINGS: dict[str, str] = {
    USER_DAILY: "ADMIN_MAX_USER_DAILY_DOLLARS",
    USER_MONTHLY: "ADMIN_MAX_USER_MONTHLY_DOLLARS",
    ACTIVE_JOBS_LIMIT: "ADMIN_MAX_ACTIVE_PER_USER",
    COOLDOWN_LIMIT: "ADMIN_MIN_COOLDOWN_SECONDS",
}
EXEMPT_SETTING = "ADMIN_MAY_EXEMPT"

# Changes the caller passes to set_limits: KEEP leaves a limit as it is, None resets it.
KEEP: Final = "keep"


class OverCeiling(ValueError):
    """A change past the owner's ceiling; its text (user-facing) names the ceiling and setting.
    The attempt has been audited by the time it is raised."""


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


# ---------------------------------------------------------------------- the rules


def budget_refusal(ceilings: Ceilings, name: str, micros: int | None) -> str | None:
    """Why an admin may not give this budget (None: they may)."""
    ceiling = ceilings.spend.get(name)
    if micros is None or ceiling is None or micros <= ceiling:
        return None
    label = OVERRIDABLE_LIMITS[name]
    return (
        f"{format_dollars(micros)} is more than the bot's owner lets server admins give as a "
        f"{label}: at most {format_dollars(ceiling)} (`{CEILING_SETTINGS[name]}`)."
    )


def active_refusal(ceilings: Ceilings, count: int | None) -> str | None:
    if count is None or ceilings.max_active is None or count <= ceilings.max_active:
        return None
    return (
        f"{count} videos in progress at once is more than the bot's owner lets server admins "
        f"allow: at most {ceilings.max_active} (`{CEILING_SETTINGS[ACTIVE_JOBS_LIMIT]}`)."
    )


def cooldown_refusal(ceilings: Ceilings, seconds: float | None) -> str | None:
    floor = ceilings.min_cooldown
    if seconds is None or floor is None or seconds >= floor:
        return None
    return (
        f"A cooldown of {seconds:g} seconds is shorter than the bot's owner lets server admins "
        f"set: at least {floor:g} seconds (`{CEILING_SETTINGS[COOLDOWN_LIMIT]}`)."
    )


def exempt_refusal(ceilings: Ceilings) -> str | None:
    if ceilings.may_exempt:
        return None
    return (
        "The bot's owner does not let server admins exempt members or roles from the limits "
        f"(`{EXEMPT_SETTING}`). You can give a budget up to the owner's ceilings instead."
    )


# ---------------------------------------------------------------------- one guild's changes


class GuildAdmin:
    """The changes `/video-admin` makes in one guild, on behalf of one actor."""

    def __init__(self, store: Store, ceilings: Ceilings, guild_id: int, actor: Actor) -> None:
        self.store = store
        self.ceilings = ceilings
        self.guild_id = guild_id
        self.actor = actor

    async def _commit(
        self, action: str, target: str | None, change: Change, refusal: str | None = None
    ) -> AuditEntry:
        draft = AuditDraft(
            guild_id=self.guild_id,
            actor_id=self.actor.user_id,
            actor_kind=self.actor.kind,
            action=action,
            target=target,
        )
        if refusal is not None:
            await self.store.audited_change(draft, change, refused=True, reason=refusal)
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
        budget and ends an exemption; exempt False lifts one, keeping any budget."""
        rows: dict[OverrideKey, QuotaOverride | None] = {}
        if limit == EVERY_LIMIT:
            if micros is not None:
                raise ValueError(
                    "An amount is for one budget: choose the 24-hour or the monthly budget."
                )
            if exempt is None:
                raise ValueError(
                    "For every limit, set exempt: True to exempt, False to lift exemptions."
                )
            names = list(OVERRIDABLE_LIMITS)
        else:
            if limit not in OVERRIDABLE_LIMITS:
                known = ", ".join(OVERRIDABLE_LIMITS)
                raise ValueError(f"`{limit}` can't be overridden; choose one of: {known}.")
            if micros is None and exempt is None:
                raise ValueError(
                    "Give an amount in dollars or exempt; to go back to the defaults, "
                    "use `/video-admin quota reset`."
                )
            if limit in (ACTIVE_JOBS_LIMIT, COOLDOWN_LIMIT) and micros is not None:
                raise ValueError(f"The {OVERRIDABLE_LIMITS[limit]} can only be exempted.")
            if micros is not None and not 0 <= micros <= MAX_BUDGET_MICROS:
                raise ValueError(
                    f"A budget must be between $0.00 and {format_dollars(MAX_BUDGET_MICROS)}."
                )
            names = [limit]
        for name in names:
            current = await self.store.get_quota_override(self.guild_id, kind, target_id, name)
            budget = micros
            if budget is None and current is not None:
                budget = current.max_micros  # only the exemption changes
            new_exempt = bool(exempt)
            if budget is None and not new_exempt:
                rows[OverrideKey(kind, target_id, name)] = None
            else:
                rows[OverrideKey(kind, target_id, name)] = QuotaOverride(
                    guild_id=self.guild_id,
                    target_kind=kind,
                    target_id=target_id,
                    limit_name=name,
                    max_micros=budget,
                    exempt=new_exempt,
                )
        refusal = exempt_refusal(self.ceilings) if exempt else None
        if refusal is None and limit != EVERY_LIMIT:
            refusal = budget_refusal(self.ceilings, limit, micros)
        action = "quota.exempt" if micros is None else "quota.set"
        change = Change(guild_id=self.guild_id, overrides=rows)
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
        transaction. None goes back to the bot's value; `reset` does that for all four first."""
        values: dict[str, JsonValue] = {}
        if reset:
            values = {KEY_USER_DAILY: None, KEY_USER_MONTHLY: None}
            values |= {KEY_MAX_ACTIVE: None, KEY_COOLDOWN: None}
        refusals: list[str | None] = []
        for key, name, value in (
            (KEY_USER_DAILY, USER_DAILY, daily),
            (KEY_USER_MONTHLY, USER_MONTHLY, monthly),
        ):
            if value == KEEP:
                continue
            assert value is None or isinstance(value, int)
            if value is not None and not 0 <= value <= MAX_BUDGET_MICROS:
                raise ValueError(
                    f"A budget must be between $0.00 and {format_dollars(MAX_BUDGET_MICROS)}."
                )
            values[key] = value
            refusals.append(budget_refusal(self.ceilings, name, value))
        if active != KEEP:
            assert active is None or isinstance(active, int)
            if active is not None and not 1 <= active <= MAX_ACTIVE_CEILING:
                raise ValueError(f"Videos in progress at once must be 1 to {MAX_ACTIVE_CEILING}.")
            values[KEY_MAX_ACTIVE] = active
            refusals.append(active_refusal(self.ceilings, active))
        if cooldown != KEEP:
            assert cooldown is None or isinstance(cooldown, int | float)
            if cooldown is not None and not 0 <= cooldown <= MAX_COOLDOWN_SECONDS:
                raise ValueError("The cooldown must be between 0 seconds and one day.")
            values[KEY_COOLDOWN] = None if cooldown is None else float(cooldown)
            refusals.append(cooldown_refusal(self.ceilings, cooldown))
        refusal = " ".join(r for r in refusals if r) or None
        return await self._commit(
            "settings.limits", None, Change(self.guild_id, settings=values), refusal
        )

    async def set_models(self, models: Sequence[str] | None) -> AuditEntry:
        """Models `/video` may use in the guild; None = every catalog model. The caller checks
        the ids against the catalog (this module does not know it)."""
        if models is not None and not models:
            raise ValueError("Allow at least one model, or reset to allow them all.")
        value: list[JsonValue] | None = None if models is None else list(dict.fromkeys(models))
        return await self._setting("settings.models", KEY_ALLOWED_MODELS, value)

    async def set_max_seconds(self, seconds: int | None) -> AuditEntry:
        if seconds is not None and seconds <= 0:
            raise ValueError("The maximum duration must be at least one second.")
        return await self._setting("settings.seconds", KEY_MAX_SECONDS, seconds)

    async def set_channels(self, channel_ids: Sequence[int] | None) -> AuditEntry:
        """Channels where `/video` may be used; None (or empty) = everywhere."""
        ids: list[JsonValue] | None = None
        if channel_ids:
            ids = [*sorted(set(channel_ids))]
        return await self._setting("settings.channels", KEY_CHANNEL_IDS, ids)

    async def _setting(self, action: str, key: str, value: JsonValue) -> AuditEntry:
        return await self._commit(action, None, Change(self.guild_id, settings={key: value}))


# ---------------------------------------------------------------------- showing the audit

_SETTING_LABELS: dict[str, str] = {
    KEY_USER_DAILY: "server's 24-hour budget",
    KEY_USER_MONTHLY: "server's monthly budget",
    KEY_MAX_ACTIVE: "server's videos in progress at once",
    KEY_COOLDOWN: "server's cooldown",
    KEY_ALLOWED_MODELS: "models",
    KEY_MAX_SECONDS: "longest video",
    KEY_CHANNEL_IDS: "channels",
}
_MONEY_KEYS = {KEY_USER_DAILY, KEY_USER_MONTHLY}

ACTION_LABELS: dict[str, str] = {
    "quota.set": "set a budget",
    "quota.exempt": "changed an exemption",
    "quota.reset": "reset overrides",
    "settings.limits": "changed the server's limits",
    "settings.models": "changed the models",
    "settings.seconds": "changed the longest video",
    "settings.channels": "changed the channels",
    "cap": "changed the bot-wide daily cap",
}


def _value_text(item: str, value: JsonValue) -> str:
    if value is None or value == "":
        return "default"
    kind, _, rest = item.partition(":")
    if kind == "override" and isinstance(value, dict):
        budget = value.get("max_micros")
        money = format_dollars(budget) if isinstance(budget, int) else None
        if value.get("exempt"):
            return "exempt" if money is None else f"exempt (budget {money})"
        return money or "default"
    if kind == "setting" and rest in _MONEY_KEYS and isinstance(value, int):
        return format_dollars(value)
    if kind == "meta" and rest == BOT_CAP_META_KEY and isinstance(value, str):
        return format_dollars(int(value)) if value.isdigit() else value[:40]
    if kind == "setting" and rest == KEY_COOLDOWN and isinstance(value, int | float):
        return f"{value:g} s"
    if kind == "setting" and rest == KEY_CHANNEL_IDS and isinstance(value, list):
        return ", ".join(f"<#{c}>" for c in value if isinstance(c, int))
    if isinstance(value, list):
        return ", ".join(str(v)[:40] for v in value)
    return str(value)[:80]


def _item_label(item: str) -> str:
    kind, _, rest = item.partition(":")
    if kind == "setting":
        return _SETTING_LABELS.get(rest, rest)
    if kind == "override":
        limit = rest.rsplit(":", 1)[-1]
        return OVERRIDABLE_LIMITS.get(limit, limit)
    if rest == BOT_CAP_META_KEY:
        return "bot-wide daily cap"
    return rest


def change_lines(entry: AuditEntry) -> list[str]:
    """`label: before → after` for each touched item (unchanged ones left out unless refused,
    where the "after" is what was asked for)."""
    lines: list[str] = []
    for item in sorted(set(entry.before) | set(entry.after)):
        before, after = entry.before.get(item), entry.after.get(item)
        if before == after and not entry.refused:
            continue
        lines.append(
            f"{_item_label(item)}: {_value_text(item, before)} → {_value_text(item, after)}"
        )
    return lines or ["(nothing changed)"]


def action_label(action: str) -> str:
    return ACTION_LABELS.get(action, action)
