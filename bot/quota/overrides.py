"""A member's or role's own limits in a guild (quota overrides): which apply to a member, how a
change merges into what is stored, and what a stored one counts as under the owner's ceilings.

How overrides combine for one request (a member's own decides, else the most generous of their
roles') is the store's (bot/store/quota.py), so that the check-and-reserve transaction applies
exactly what it reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence

from bot.notice import Notice
from bot.quota.limits import OVERRIDABLE_LIMITS, label
from bot.store import QuotaOverride, Store, TargetKind
from bot.store.quota import NO_CEILINGS, Ceilings, Overrides


async def quota_overrides_for(
    store: Store, guild_id: int, target_kind: TargetKind, target_id: int
) -> list[QuotaOverride]:
    """`/video-admin quota show`: the overrides a member or role has in the guild."""
    return [
        o
        for o in await store.list_quota_overrides(guild_id)
        if o.target_kind == target_kind and o.target_id == target_id
    ]


async def member_overrides(
    store: Store,
    user_id: int,
    guild_id: int | None,
    role_ids: Collection[int],
    ceilings: Ceilings = NO_CEILINGS,
) -> Overrides:
    """The overrides that apply to a member with these roles in the guild: the same selection
    the store makes inside `reserve_job` (store/quota.load_overrides)."""
    if guild_id is None:
        return Overrides((), user_id, ceilings)
    stored = await store.list_quota_overrides(guild_id)
    return Overrides.matching(stored, user_id, role_ids, ceilings)


def merge_override(
    current: QuotaOverride | None,
    *,
    guild_id: int,
    target_kind: TargetKind,
    target_id: int,
    limit_name: str,
    micros: int | None,
    exempt: bool | None,
) -> QuotaOverride | None:
    """What `/video-admin quota set` leaves stored for one limit, given what is stored now.

    An amount on its own is the budget and ends an exemption; `exempt` on its own changes only
    the exemption, keeping a stored budget (so lifting an exemption brings the budget back). An
    override with neither a budget nor an exemption is removed (None)."""
    budget = micros
    if budget is None and current is not None:
        budget = current.max_micros
    if budget is None and not exempt:
        return None
    return QuotaOverride(
        guild_id=guild_id,
        target_kind=target_kind,
        target_id=target_id,
        limit_name=limit_name,
        max_micros=budget,
        exempt=bool(exempt),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class StoredOverride:
    """A stored override and what it counts as: values stored before the owner set a ceiling
    (or lowered one) count as the ceiling."""

    override: QuotaOverride
    label: Notice
    # A budget above the owner's ceiling counts as the ceiling; None: it counts as stored.
    capped_at: int | None
    # An exemption the owner does not allow counts as the most an admin may give.
    exemption_allowed: bool


def _order(override: QuotaOverride) -> int:
    names = list(OVERRIDABLE_LIMITS)
    return names.index(override.limit_name) if override.limit_name in names else len(names)


def stored_overrides(
    overrides: Sequence[QuotaOverride], ceilings: Ceilings = NO_CEILINGS
) -> list[StoredOverride]:
    """The overrides in the order of the limits, each with what it counts as."""
    shown: list[StoredOverride] = []
    for o in sorted(overrides, key=_order):
        ceiling = ceilings.spend.get(o.limit_name)
        capped = (
            ceiling
            if not o.exempt
            and o.max_micros is not None
            and ceiling is not None
            and o.max_micros > ceiling
            else None
        )
        shown.append(
            StoredOverride(
                override=o,
                label=label(o.limit_name),
                capped_at=capped,
                exemption_allowed=ceilings.may_exempt,
            )
        )
    return shown
