"""How an entry of the audit of limit changes reads: what was changed, from what to what.

The entries themselves (who, when, where, before and after, refused attempts) are the store's
(bot/store/audit.py); this names their items and values for the member reading them.
"""

from __future__ import annotations

from pydantic import JsonValue

from bot.catalog import format_dollars
from bot.guildsettings import (
    KEY_ALLOWED_MODELS,
    KEY_CHANNEL_IDS,
    KEY_COOLDOWN,
    KEY_MAX_ACTIVE,
    KEY_MAX_SECONDS,
    KEY_USER_DAILY,
    KEY_USER_MONTHLY,
)
from bot.notice import ChannelRef, Notice, Value, joined, notice
from bot.quota.limits import BOT_CAP_META_KEY, OVERRIDABLE_LIMITS
from bot.store.audit import AuditEntry

_SETTING_LABELS: dict[str, Notice] = {
    KEY_USER_DAILY: notice("server's 24-hour budget"),
    KEY_USER_MONTHLY: notice("server's monthly budget"),
    KEY_MAX_ACTIVE: notice("server's videos in progress at once"),
    KEY_COOLDOWN: notice("server's cooldown"),
    KEY_ALLOWED_MODELS: notice("models"),
    KEY_MAX_SECONDS: notice("longest video"),
    KEY_CHANNEL_IDS: notice("channels"),
}
_MONEY_KEYS = {KEY_USER_DAILY, KEY_USER_MONTHLY}

ACTION_LABELS: dict[str, Notice] = {
    "quota.set": notice("set a budget"),
    "quota.exempt": notice("changed an exemption"),
    "quota.reset": notice("reset overrides"),
    "settings.limits": notice("changed the server's limits"),
    "settings.models": notice("changed the models"),
    "settings.seconds": notice("changed the longest video"),
    "settings.channels": notice("changed the channels"),
    "cap": notice("changed the bot-wide daily cap"),
}


def _value_text(item: str, value: JsonValue) -> Value:
    if value is None or value == "":
        return notice("default")
    kind, _, rest = item.partition(":")
    if kind == "override" and isinstance(value, dict):
        budget = value.get("max_micros")
        money = format_dollars(budget) if isinstance(budget, int) else None
        if value.get("exempt"):
            return (
                notice("exempt")
                if money is None
                else notice("exempt (budget {money})", money=money)
            )
        return money or notice("default")
    if kind == "setting" and rest in _MONEY_KEYS and isinstance(value, int):
        return format_dollars(value)
    if kind == "meta" and rest == BOT_CAP_META_KEY and isinstance(value, str):
        return format_dollars(int(value)) if value.isdigit() else value[:40]
    if kind == "setting" and rest == KEY_COOLDOWN and isinstance(value, int | float):
        return notice("{seconds} s", seconds=f"{value:g}")
    if kind == "setting" and rest == KEY_CHANNEL_IDS and isinstance(value, list):
        return joined([ChannelRef(c) for c in value if isinstance(c, int)])
    if isinstance(value, list):
        return ", ".join(str(v)[:40] for v in value)
    return str(value)[:80]


def _item_label(item: str) -> Value:
    kind, _, rest = item.partition(":")
    if kind == "setting":
        return _SETTING_LABELS.get(rest, rest)
    if kind == "override":
        limit = rest.rsplit(":", 1)[-1]
        return OVERRIDABLE_LIMITS.get(limit, limit)
    if rest == BOT_CAP_META_KEY:
        return notice("bot-wide daily cap")
    return rest


def change_lines(entry: AuditEntry) -> list[Notice]:
    """`label: before → after` for each touched item (unchanged ones left out unless refused,
    where the "after" is what was asked for)."""
    lines: list[Notice] = []
    for item in sorted(set(entry.before) | set(entry.after)):
        before, after = entry.before.get(item), entry.after.get(item)
        if before == after and not entry.refused:
            continue
        lines.append(
            notice(
                "{item}: {before} → {after}",
                item=_item_label(item),
                before=_value_text(item, before),
                after=_value_text(item, after),
            )
        )
    return lines or [notice("(nothing changed)")]


def action_label(action: str) -> Value:
    return ACTION_LABELS.get(action, action)
