"""What a guild's admins set for `/video` there: the models, the longest video, the channels,
and each member's default limits (`/video-admin settings`).

Kept in the store's per-guild JSON key/value table; unset means the bot's default (every model,
the catalog's durations, every channel, the bot's quota settings). A value that does not read
(hand-edited, or from an older version) is ignored with a warning, never allowed to stop
`/video`.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TypeVar

from pydantic import JsonValue, TypeAdapter, ValidationError

from bot.notice import ChannelRef, Code, Notice, joined, notice
from bot.store import Store
from bot.windows import DAY_SECONDS

log = logging.getLogger(__name__)

# The keys in the store's guild settings table.
KEY_ALLOWED_MODELS = "video.allowed_models"
KEY_MAX_SECONDS = "video.max_seconds"
KEY_CHANNEL_IDS = "video.channel_ids"
KEY_USER_DAILY = "quota.daily_micros"
KEY_USER_MONTHLY = "quota.monthly_micros"
KEY_MAX_ACTIVE = "quota.max_active_per_user"
KEY_COOLDOWN = "quota.cooldown_seconds"

# Bounds on what a guild may store, whatever the owner's ceilings.
MAX_COOLDOWN_SECONDS = DAY_SECONDS
MAX_ACTIVE_CEILING = 100


@dataclasses.dataclass(frozen=True, slots=True)
class GuildSettings:
    """What a guild's admins set with `/video-admin settings` and `quota`; None = the default
    (every model, the catalog's durations, every channel, the bot's quota settings)."""

    allowed_models: tuple[str, ...] | None = None
    max_seconds: int | None = None
    channel_ids: tuple[int, ...] | None = None
    user_daily_micros: int | None = None
    user_monthly_micros: int | None = None
    max_active_per_user: int | None = None
    cooldown_seconds: float | None = None

    def allows_model(self, model: str) -> bool:
        return self.allowed_models is None or model in self.allowed_models

    def allows_seconds(self, seconds: str | int) -> bool:
        return self.max_seconds is None or int(seconds) <= self.max_seconds

    def allows_channel(self, channel_id: int, parent_id: int | None = None) -> bool:
        """A thread is allowed when its parent channel is."""
        if self.channel_ids is None:
            return True
        return channel_id in self.channel_ids or (
            parent_id is not None and parent_id in self.channel_ids
        )


_T = TypeVar("_T")
_MODELS = TypeAdapter(tuple[str, ...])
_IDS = TypeAdapter(tuple[int, ...])
_INT = TypeAdapter(int)
_FLOAT = TypeAdapter(float)


def _read(values: dict[str, JsonValue], key: str, adapter: TypeAdapter[_T]) -> _T | None:
    raw = values.get(key)
    if raw is None:
        return None
    try:
        return adapter.validate_python(raw)
    except ValidationError:
        # A hand-edited or stale row must not stop /video; the default applies instead.
        log.warning("ignoring malformed guild setting %s=%r", key, raw)
        return None


def _count(values: dict[str, JsonValue], key: str) -> int | None:
    value = _read(values, key, _INT)
    return None if value is None or value < 0 else value


def _seconds(values: dict[str, JsonValue], key: str) -> float | None:
    value = _read(values, key, _FLOAT)
    return None if value is None or not 0 <= value <= MAX_COOLDOWN_SECONDS else value


def read_guild_settings(values: dict[str, JsonValue]) -> GuildSettings:
    """The settings from the guild's stored values."""
    return GuildSettings(
        allowed_models=_read(values, KEY_ALLOWED_MODELS, _MODELS),
        max_seconds=_count(values, KEY_MAX_SECONDS),
        channel_ids=_read(values, KEY_CHANNEL_IDS, _IDS),
        user_daily_micros=_count(values, KEY_USER_DAILY),
        user_monthly_micros=_count(values, KEY_USER_MONTHLY),
        max_active_per_user=_count(values, KEY_MAX_ACTIVE),
        cooldown_seconds=_seconds(values, KEY_COOLDOWN),
    )


async def load_guild_settings(store: Store, guild_id: int | None) -> GuildSettings:
    """The guild's settings (one read); a DM has only defaults."""
    if guild_id is None:
        return GuildSettings()
    return read_guild_settings(await store.all_guild_settings(guild_id))


def check_request(
    settings: GuildSettings,
    model: str,
    seconds: str | int,
    channel_id: int,
    parent_channel_id: int | None = None,
) -> Notice | None:
    """Why the guild's settings refuse this request (for the member), or None if they allow it."""
    if not settings.allows_channel(channel_id, parent_channel_id):
        assert settings.channel_ids is not None
        where = joined([ChannelRef(c) for c in settings.channel_ids])
        return notice(
            "{command} can't be used in this channel here. Use it in: {channels}.",
            command=Code("/video"),
            channels=where,
        )
    if not settings.allows_model(model):
        assert settings.allowed_models is not None
        allowed = joined([Code(m) for m in settings.allowed_models])
        return notice(
            "Model {model} isn't allowed in this server. Allowed: {allowed}.",
            model=Code(model),
            allowed=allowed,
        )
    if not settings.allows_seconds(seconds):
        return notice(
            "This server allows videos of at most {most} seconds; you asked for {asked}.",
            most=settings.max_seconds or 0,
            asked=int(seconds),
        )
    return None
