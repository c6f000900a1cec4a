"""How long a job should take, learned from the bot's own finished jobs.

Each finished job leaves one sample: the time from when its request left for the video service
(or, never sent by this process, when it was made) to when the service completed it, as the
store knows both. Samples are kept per backend, model, size and length, the newest `HISTORY` of
each (bot/store/timings.py), so a server that got faster (or a new one behind the same profile)
is followed within a few dozen jobs. From them: the median (the ETA), the 90th percentile (the
"should be done by" once the median has passed) and the 10th (the lower end: where the backend is
read job by job, a job is not read again until the round ahead of it, bot/poll_schedule.py).

Until a kind has history the hint is the catalog's (a model's `expected_job_seconds`, by clip
length, which an owner may set in their catalog file) or else a default by the clip's length
(`default_expected`): about
30 seconds plus 15 seconds per second of video for the median, twice that for the 90th
percentile, and no lower end (polled from the start, as without history). Hosted Sora 2 and
Veo 3.1 clips take one to three minutes and self-hosted Wan a few, so the default errs long;
one finished job of the kind replaces it.

A backend is named by `backend_key`: its profile and a digest of its address (scheme, host,
port and path; no credentials, query or fragment), never the key and never the address itself,
which may carry a secret in its path.
"""

from __future__ import annotations

import hashlib
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from bot.store import Job, Store

# Samples kept per kind (backend, model, size, seconds).
HISTORY = 50
# The default until a kind has history: BASE + PER_SECOND x the clip's seconds (the median);
# the 90th percentile is P90_FACTOR x that.
DEFAULT_BASE_SECONDS = 30.0
DEFAULT_PER_SECOND = 15.0
DEFAULT_P90_FACTOR = 2.0
# A clip length that does not parse counts as this many seconds.
DEFAULT_CLIP_SECONDS = 8
# A sample longer than this is a clock gone wrong, not a job: not kept.
MAX_SAMPLE_SECONDS = 86_400.0
# Services stamp completion in whole seconds (cut down), so a sample may be this much short.
STAMP_SECONDS = 1.0
# How long an expectation is reused before the store is read again (a sample recorded in this
# process replaces it at once).
CACHE_SECONDS = 60.0

Source = Literal["history", "catalog"]
Kind = tuple[str, str, str, str]


@dataclass(frozen=True, slots=True)
class Expected:
    """How long a job of one kind should take, in seconds: `median` (the ETA), `p90` (the late
    end), `low` (the 10th percentile: the job is unlikely to be done before it; 0 without
    history), from `source` over `samples` finished jobs."""

    median: float
    p90: float
    source: Source
    low: float = 0.0
    samples: int = 0


def backend_key(profile: str, base_url: str) -> str:
    """`profile:digest` for the server at `base_url`: the same server under the same profile
    keeps its history across restarts; nothing of the address or the key is kept."""
    parts = urlsplit(base_url.strip())
    try:
        port = parts.port
    except ValueError:  # a port that is not a number: the address is still one identity
        port = None
    where = (
        f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}"
        f"{f':{port}' if port else ''}{parts.path.rstrip('/')}"
    )
    return f"{profile}:{hashlib.sha256(where.encode()).hexdigest()[:16]}"


def default_expected(seconds: str) -> Expected:
    """The hint for a kind without history (see the module's text)."""
    try:
        clip = max(1, int(seconds))
    except ValueError:
        clip = DEFAULT_CLIP_SECONDS
    median = DEFAULT_BASE_SECONDS + DEFAULT_PER_SECOND * clip
    return Expected(median=median, p90=median * DEFAULT_P90_FACTOR, source="catalog")


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (`share` in 0..1) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def from_samples(samples: Sequence[float]) -> Expected:
    """What a non-empty set of durations says."""
    return Expected(
        median=float(statistics.median(samples)),
        p90=percentile(samples, 0.9),
        source="history",
        low=percentile(samples, 0.1),
        samples=len(samples),
    )


def sample_of(job: Job) -> float | None:
    """How long a finished job took, in seconds; None when it says nothing about a kind's
    duration: not a success, no completion time, an extension (its length is the stitched
    whole, not what was made), or a time out of range (a clock gone wrong)."""
    if job.state != "succeeded" or job.completed_at is None or job.kind == "extend":
        return None
    started = job.create_attempted_at if job.create_attempted_at is not None else job.created_at
    took = job.completed_at - started
    if not math.isfinite(took) or took < -STAMP_SECONDS or took > MAX_SAMPLE_SECONDS:
        return None
    # A service's completion stamp is whole seconds, cut down: a job done within the second
    # it was sent may look done before it was.
    return max(0.0, took)


class Durations:
    """Expected durations per kind, from the store's samples (cached briefly in memory)."""

    def __init__(
        self,
        store: Store,
        *,
        history: int = HISTORY,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        hint: Callable[[str, str], float | None] = lambda model, seconds: None,
    ) -> None:
        # `hint(model, seconds)`: the catalog's usual job time for a kind without history.
        if history < 1:
            raise ValueError("at least one sample is kept")
        self.store = store
        self.history = history
        self.cache_seconds = cache_seconds
        self.clock = clock
        self.hint = hint
        self._cache: dict[Kind, tuple[float, Expected]] = {}

    async def expected(self, backend: str, model: str, size: str, seconds: str) -> Expected:
        """How long a job of this kind should take: from history, or the default."""
        kind: Kind = (backend, model, size, seconds)
        now = self.clock()
        cached = self._cache.get(kind)
        if cached is not None and now - cached[0] < self.cache_seconds:
            return cached[1]
        samples = await self.store.recent_durations(
            backend=backend, model=model, size=size, seconds=seconds, limit=self.history
        )
        found = from_samples(samples) if samples else self._without_history(model, seconds)
        self._cache[kind] = (now, found)
        return found

    def _without_history(self, model: str, seconds: str) -> Expected:
        hinted = self.hint(model, seconds)
        if hinted is None or not math.isfinite(hinted) or hinted <= 0:
            return default_expected(seconds)
        return Expected(median=hinted, p90=hinted * DEFAULT_P90_FACTOR, source="catalog")

    async def expected_for(self, backend: str, job: Job) -> Expected:
        return await self.expected(backend, job.model, job.size, job.seconds)

    async def record(self, backend: str, job: Job) -> bool:
        """Learn from a finished job (see `sample_of`); whether a sample was added. Recording
        the same job again adds nothing."""
        took = sample_of(job)
        if took is None:
            return False
        added = await self.store.record_duration(
            backend=backend,
            model=job.model,
            size=job.size,
            seconds=job.seconds,
            took=took,
            job_id=job.id,
            keep=self.history,
        )
        self._cache.pop((backend, job.model, job.size, job.seconds), None)
        return added
