"""Where the bot may be used at all: the owner's allow-list of servers, and direct messages.

A Discord application is public by default, so anyone can add the bot to a server of their own
and spend its owner's money there. The owner names the servers (`ALLOWED_GUILD_IDS`; empty means
any) and says whether direct messages are served (`ALLOW_DMS`), where no server's limits apply.
"""

from __future__ import annotations

import enum
from collections.abc import Collection


class Denied(enum.Enum):
    """Why a request is turned away before anything else is looked at."""

    GUILD_NOT_ALLOWED = "guild_not_allowed"
    DMS_OFF = "dms_off"


def check_access(
    guild_id: int | None, *, allowed_guilds: Collection[int], allow_dms: bool
) -> Denied | None:
    """None when a request from `guild_id` (None: a direct message) may be served."""
    if guild_id is None:
        return None if allow_dms else Denied.DMS_OFF
    if allowed_guilds and guild_id not in allowed_guilds:
        return Denied.GUILD_NOT_ALLOWED
    return None
