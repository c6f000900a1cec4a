"""One tracker round's bookkeeping: what it counted, and what each running job's read came to.

"The video service is down" is judged from the round as a whole (only when every call of the
round failed as an outage), so every request of a round goes through `counted`.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from bot.api.errors import VideoAPIError, is_outage
from bot.api.models import Video
from bot.redact import redact

T = TypeVar("T")


@dataclass
class RoundStats:
    jobs: int = 0
    requests: int = 0
    changed: int = 0
    finished: int = 0
    resent: int = 0
    # Calls of the round that failed as an outage (no connection, no answer, 5xx).
    outages: int = 0
    # Jobs whose news could not be read or applied this round (each contained to its job).
    errors: int = 0


class Unread:
    """A job not read this round (the service looked down before its turn)."""


UNREAD = Unread()
# A running job's news: its video, None where the API no longer knows it, the error its read
# ended in, or UNREAD.
Outcome = Video | VideoAPIError | Unread | None


async def counted(stats: RoundStats, call: Awaitable[T]) -> T:
    """One request of the round, counted for the judgement of the service."""
    stats.requests += 1
    try:
        return await call
    except VideoAPIError as exc:
        if is_outage(exc):
            stats.outages += 1
        raise


def said(exc: VideoAPIError) -> str:
    """An error for the log: one line, redacted."""
    return redact(f"{type(exc).__name__}: {exc.message}")
