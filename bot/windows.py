"""The UTC windows spending is counted in: a calendar day, a calendar month, a rolling day.

All in Unix seconds. Members see these instants in their own time zone (the front end renders
them); the windows themselves are the same for everyone, so a budget resets at one moment.
"""

from __future__ import annotations

from datetime import UTC, datetime

DAY_SECONDS = 86_400.0


def _utc(now: float) -> datetime:
    return datetime.fromtimestamp(now, UTC)


def utc_day_start(now: float) -> float:
    """The first instant of `now`'s calendar day, UTC."""
    return _utc(now).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def month_start(now: float) -> float:
    """The first instant of `now`'s calendar month, UTC."""
    return _utc(now).replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()


def next_month_start(now: float) -> float:
    """The first instant of the calendar month after `now`'s, UTC."""
    first = _utc(now).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if first.month == 12:
        return first.replace(year=first.year + 1, month=1).timestamp()
    return first.replace(month=first.month + 1).timestamp()
