"""The checks of an atomic check-and-reserve. Which limits apply and their numbers are policy,
decided elsewhere; this measures usage against them, inside the caller's transaction, after
applying the guild's quota overrides (read in the same transaction, so an override changed at
the same moment is either wholly seen or not at all).

Overrides (table `quota_overrides`) are matched to limits by name, in the request's guild, for
the requesting user or any of the roles the caller says the user has:

- A user override decides alone; otherwise the most generous of the role overrides applies
  (exempt beats any ceiling, else the highest `max_micros`; one without `max_micros` keeps the
  default ceiling). So an override can lift a ceiling or lower it.
- `exempt` skips the limit; `max_micros` replaces a spend limit's ceiling.
- The limit names 'active_jobs' and 'cooldown' can be overridden with `exempt` only.
- Never for a 'bot'-scope limit (the owner's bot-wide ceiling is not a guild's to lift), nor for
  a request from a DM (overrides are per guild).

Overrides are a guild's, set by its admins, so they apply within the owner's `Ceilings`: a
stored budget above the ceiling (say, from before there were ceilings) counts as the ceiling,
and where the owner does not allow exemptions a stored exemption counts as the most generous
value an admin may give (the budget ceiling, the active-job ceiling, the cooldown floor).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from typing import TypedDict

from bot.store import jobs, kv, ledger
from bot.store.db import Conn
from bot.store.ledger import ANY_GUILD, AnyGuild
from bot.store.records import NewJob, QuotaOverride, Refusal, SpendLimit

ACTIVE_JOBS_LIMIT = "active_jobs"
COOLDOWN_LIMIT = "cooldown"


@dataclasses.dataclass(frozen=True, slots=True)
class Ceilings:
    """The most a guild's admins may give (the owner's settings); None: no ceiling."""

    # Per spend limit name: the highest budget an override may set.
    spend: Mapping[str, int] = dataclasses.field(default_factory=dict)
    max_active: int | None = None
    min_cooldown: float | None = None
    may_exempt: bool = True

    def cap(self, name: str, micros: int | None) -> int | None:
        """An override's budget as it may apply (None stays None: the default ceiling)."""
        ceiling = self.spend.get(name)
        if micros is None or ceiling is None:
            return micros
        return min(micros, ceiling)


NO_CEILINGS = Ceilings()


@dataclasses.dataclass(frozen=True, slots=True)
class Applied:
    """What overrides make of one named limit for one request."""

    exempt: bool = False
    # The ceilings of the chosen overrides; None stands for the default ceiling.
    ceilings: tuple[int | None, ...] = ()
    # An exemption the owner does not allow: as generous as an admin may be, and no more.
    capped_exemption: bool = False

    def ceiling(self, default: int) -> int:
        if not self.ceilings:
            return default
        return max(default if c is None else c for c in self.ceilings)


class Overrides:
    """The overrides that match one request (user or role, guild), by limit name."""

    def __init__(
        self, found: Sequence[QuotaOverride], user_id: int, ceilings: Ceilings = NO_CEILINGS
    ) -> None:
        self._by_name: dict[str, Applied] = {}
        for name in {o.limit_name for o in found}:
            mine = [o for o in found if o.limit_name == name]
            user = [o for o in mine if o.target_kind == "user" and o.target_id == user_id]
            chosen = user or [o for o in mine if o.target_kind == "role"]
            if not chosen:
                continue
            exempt = any(o.exempt for o in chosen)
            capped = exempt and not ceilings.may_exempt
            budgets = [
                ceilings.spend.get(name, o.max_micros) if o.exempt else o.max_micros for o in chosen
            ]
            self._by_name[name] = Applied(
                exempt=exempt and not capped,
                ceilings=tuple(ceilings.cap(name, b) for b in budgets),
                capped_exemption=capped,
            )

    @classmethod
    def matching(
        cls,
        guild_overrides: Sequence[QuotaOverride],
        user_id: int,
        role_ids: Collection[int],
        ceilings: Ceilings = NO_CEILINGS,
    ) -> Overrides:
        """Of a guild's overrides, those for the member and for any of these roles."""
        roles = set(role_ids)
        found = [
            o
            for o in guild_overrides
            if (o.target_kind == "user" and o.target_id == user_id)
            or (o.target_kind == "role" and o.target_id in roles)
        ]
        return cls(found, user_id, ceilings)

    def for_limit(self, name: str) -> Applied:
        return self._by_name.get(name, Applied())


NO_OVERRIDES = Overrides((), 0)


async def load_overrides(
    conn: Conn,
    new: NewJob,
    role_ids: Collection[int],
    ceilings: Ceilings = NO_CEILINGS,
) -> Overrides:
    if new.guild_id is None:
        return NO_OVERRIDES
    stored = await kv.list_quota_overrides(conn, new.guild_id)
    return Overrides.matching(stored, new.user_id, role_ids, ceilings)


def apply_exemptions(
    overrides: Overrides,
    ceilings: Ceilings,
    max_active_per_user: int | None,
    cooldown_seconds: float | None,
) -> tuple[int | None, float | None]:
    """The active-job cap and cooldown after the overrides' exemptions (within ceilings)."""
    active = overrides.for_limit(ACTIVE_JOBS_LIMIT)
    if active.exempt:
        max_active_per_user = None
    elif active.capped_exemption and max_active_per_user is not None:
        if ceilings.max_active is None:
            max_active_per_user = None
        else:
            max_active_per_user = max(max_active_per_user, ceilings.max_active)
    cooldown = overrides.for_limit(COOLDOWN_LIMIT)
    if cooldown.exempt:
        cooldown_seconds = None
    elif cooldown.capped_exemption and cooldown_seconds is not None:
        floor = ceilings.min_cooldown or 0.0
        cooldown_seconds = min(cooldown_seconds, floor) or None
    return max_active_per_user, cooldown_seconds


def _guild_filter(limit: SpendLimit, new: NewJob) -> int | AnyGuild | None:
    if limit.scope == "guild":
        return limit.guild_id if limit.guild_id is not None else new.guild_id
    return ANY_GUILD if limit.guild_id is None else limit.guild_id


def applies(limit: SpendLimit, new: NewJob) -> bool:
    # A limit restricted to one guild says nothing about a request made elsewhere (adding that
    # request's cost to the other guild's usage would compare unrelated numbers).
    return limit.guild_id is None or limit.guild_id == new.guild_id


def with_overrides(limit: SpendLimit, overrides: Overrides) -> SpendLimit | None:
    """The limit as it applies to this request; None if the request is exempt from it."""
    if limit.scope == "bot":
        return limit
    applied = overrides.for_limit(limit.name)
    if applied.exempt:
        return None
    ceiling = applied.ceiling(limit.max_micros)
    return limit if ceiling == limit.max_micros else dataclasses.replace(limit, max_micros=ceiling)


async def spend_refusal(
    conn: Conn, new: NewJob, cost_micros: int, limit: SpendLimit
) -> Refusal | None:
    if not applies(limit, new):
        return None
    used = await ledger.usage(
        conn,
        since=limit.since,
        user_id=new.user_id if limit.scope == "user" else None,
        guild_id=_guild_filter(limit, new),
    )
    if used + cost_micros <= limit.max_micros:
        return None
    return Refusal(
        kind="spend",
        limit_name=limit.name,
        used_micros=used,
        max_micros=limit.max_micros,
        cost_micros=cost_micros,
        resets_at=limit.resets_at,
    )


class QuotaTerms(TypedDict, total=False):
    """A request's limits besides its spend limits, as `check_request` takes them (and the
    Store's `reserve_job` and `check_job` pass them on); each one left out is its default."""

    max_active_per_user: int | None
    cooldown_seconds: float | None
    role_ids: Collection[int]
    ceilings: Ceilings


async def check_request(
    conn: Conn,
    new: NewJob,
    cost_micros: int,
    limits: Sequence[SpendLimit],
    *,
    now: float,
    max_active_per_user: int | None = None,
    cooldown_seconds: float | None = None,
    role_ids: Collection[int] = (),
    ceilings: Ceilings = NO_CEILINGS,
    overrides: Overrides | None = None,
) -> Refusal | None:
    """The first reason to refuse, most lasting first (a spend limit outlives a busy slot,
    which outlives a cooldown), so the user is not told to wait for nothing. `overrides`: as
    `load_overrides` gives them for `role_ids` and `ceilings`, when the caller has them."""
    if overrides is None:
        overrides = await load_overrides(conn, new, role_ids, ceilings)
    max_active_per_user, cooldown_seconds = apply_exemptions(
        overrides, ceilings, max_active_per_user, cooldown_seconds
    )
    for default in limits:
        limit = with_overrides(default, overrides)
        if limit is None:
            continue
        refusal = await spend_refusal(conn, new, cost_micros, limit)
        if refusal is not None:
            return refusal
    if max_active_per_user is not None:
        active = await jobs.count_active(conn, new.user_id)
        if active >= max_active_per_user:
            return Refusal(
                kind="active",
                limit_name=ACTIVE_JOBS_LIMIT,
                active_jobs=active,
                max_active=max_active_per_user,
            )
    if cooldown_seconds is not None and cooldown_seconds > 0:
        last = await jobs.last_request_at(conn, new.user_id)
        if last is not None and last + cooldown_seconds > now:
            # Clamped: if the clock stepped back, still never ask for more than one cooldown.
            wait = min(cooldown_seconds, last + cooldown_seconds - now)
            return Refusal(
                kind="cooldown",
                limit_name=COOLDOWN_LIMIT,
                resets_at=now + wait,
                retry_after=wait,
            )
    return None
