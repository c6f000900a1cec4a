"""The spend limits a job was reserved under, kept with it (JSON in `jobs.spend_limits`), and
what they still allow when its service reports a cost above the reservation: that is charged
only within them (see store.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from bot.store import ledger, quota
from bot.store.db import Conn
from bot.store.ledger import ANY_GUILD, AnyGuild
from bot.store.records import Job, NewJob, SpendLimit


def kept_limits(new: NewJob, limits: Sequence[SpendLimit], overrides: quota.Overrides) -> str:
    """The spend limits a reservation was checked against, as they applied to it (overrides
    applied, exempt ones and other guilds' left out), as JSON kept with the job."""
    kept: list[dict[str, object]] = []
    for default in limits:
        if not quota.applies(default, new):
            continue
        limit = quota.with_overrides(default, overrides)
        if limit is None:
            continue
        if limit.scope == "guild":
            guild: int | str | None = limit.guild_id if limit.guild_id is not None else new.guild_id
        else:
            guild = "any" if limit.guild_id is None else limit.guild_id
        kept.append(
            {
                "name": limit.name,
                "since": limit.since,
                "max": limit.max_micros,
                "user": limit.scope == "user",
                "guild": guild,
            }
        )
    return json.dumps(kept)


async def headroom(conn: Conn, job: Job) -> int | None:
    """What the limits the job was reserved under still allow (its own charges counted), or
    None when none applies (a job recorded without a quota check)."""
    if job.spend_limits is None:
        return None
    room: int | None = None
    for limit in json.loads(job.spend_limits):
        raw = limit["guild"]
        guild: int | AnyGuild | None = ANY_GUILD if raw == "any" else raw
        used = await ledger.usage(
            conn,
            since=float(limit["since"]),
            user_id=job.user_id if limit["user"] else None,
            guild_id=guild,
        )
        left = int(limit["max"]) - used
        room = left if room is None else min(room, left)
    return room
