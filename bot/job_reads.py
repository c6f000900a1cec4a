"""Reading the news of every running job with as few requests as the backend allows.

Where the list endpoint is available one page of 100 refreshes up to 100 jobs, and only jobs the
listing did not reach get a GET of their own. Whatever one job's read ends in (an error, a body
that does not parse) is that job's outcome alone; the reads of the others go on. A job whose
reads keep failing is read less often, and after the others.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Collection, Sequence

from bot.api.client import VideosClient
from bot.api.errors import (
    BadRequestError,
    InvalidResponseError,
    NotFoundError,
    UnsupportedOperation,
    VideoAPIError,
    is_outage,
)
from bot.round_stats import UNREAD, Outcome, RoundStats, Unread, counted, said
from bot.store import Job

log = logging.getLogger(__name__)

# Below this many running jobs a GET each is as cheap as listing and never pages through history.
LIST_THRESHOLD = 3
PAGE_SIZE = 100
# Per-job reads stop for the round after this many calls in a row found the service down with
# nothing answering: the rest wait for the next round instead of each paying the retries.
OUTAGE_STREAK = 3
# Reads of single jobs under way at once, once the service has answered something this round.
READ_CONCURRENCY = 32
# A job whose reads keep failing is read less often (each read of it may cost the client's
# retries): again after half an interval, then 1.5, 3.5 ... intervals, at most this far apart.
# Its deadline applies all the same.
READ_BACKOFF_CAP = 300.0


class JobReads:
    def __init__(
        self, client: VideosClient, *, interval: float, clock: Callable[[], float]
    ) -> None:
        self.client = client
        # The tracker's interval: the unit of a failing job's read back-off.
        self.interval = interval
        self.clock = clock
        # Set once the server has refused a list request; every round then polls job by job.
        self.list_refused = False
        # Videos whose reads failed: (failures in a row, not read again before this time).
        self._read_backoff: dict[str, tuple[int, float]] = {}
        # Videos whose last read failed, whatever the cause (an outage too): read after the
        # others, so a few broken jobs at the front cannot look like an outage round after round.
        self._missed: set[str] = set()

    def lists(self, running: int) -> bool:
        """Whether a round with `running` jobs at the service reads them with list requests."""
        return self.client.caps.list and not self.list_refused and running >= LIST_THRESHOLD

    async def fetch(
        self, running: Sequence[Job], stats: RoundStats, *, skip: Collection[str] = ()
    ) -> tuple[dict[str, Outcome], asyncio.Task[dict[str, Outcome]] | None]:
        """Each running job's news: its video, None where the API no longer knows it, the error
        its read ended in, or UNREAD (also for the videos in `skip`, not due for a read of their
        own this round). What the listing (and the first single reads) answered comes at once;
        the remaining single reads come from the returned task. Never raises for one job's (or
        one call's) failure."""
        wanted = {j.api_video_id for j in running if j.api_video_id is not None}
        found: dict[str, Outcome] = {}
        if self.lists(len(wanted)):
            try:
                await self._fetch_listed(running, wanted, found, stats)
            except (NotFoundError, UnsupportedOperation, BadRequestError) as exc:
                # A server without the route (or refusing it) keeps refusing it: poll job by
                # job from now on.
                self.list_refused = True
                log.warning("listing videos failed (%s); polling each job instead", said(exc))
            except VideoAPIError as exc:
                # This round reads the jobs one by one (an outage stops that early below).
                log.warning("listing videos failed this round (%s); reading each job", said(exc))
        now = self.clock()
        due: list[str] = []
        for video_id in wanted - found.keys():
            if video_id in skip or self._read_backoff.get(video_id, (0, 0.0))[1] > now:
                found[video_id] = UNREAD  # read again later; its deadline still applies
            else:
                due.append(video_id)
        # Jobs whose reads failed before go last, so they cannot use up a round's patience.
        due.sort(key=lambda v: (v in self._missed, self._read_backoff.get(v, (0, 0.0))[0], v))
        index = 0
        # Until something answers this round, one read at a time: in an outage the round stops
        # after a few instead of sending every job's read (each with its retries).
        # The first of them gets the client's retries (so one transient 5xx does not make a
        # round look like an outage); every other read has none: the next round is its retry,
        # and one job's 5xx or 429 must not hold the round up for the client's back-off.
        while index < len(due) and stats.requests == stats.outages:
            await self._read_one(due[index], found, stats, retries=None if index == 0 else 0)
            index += 1
        rest = due[index:]
        if not rest:
            self._note_reads(wanted, found, stats, self.clock())
            return found, None
        return found, asyncio.create_task(self._read_rest(wanted, found, rest, stats))

    async def _read_rest(
        self, wanted: set[str], found: dict[str, Outcome], rest: list[str], stats: RoundStats
    ) -> dict[str, Outcome]:
        late: dict[str, Outcome] = {}
        gate = asyncio.Semaphore(READ_CONCURRENCY)

        async def read(video_id: str) -> None:
            async with gate:
                await self._read_one(video_id, late, stats)

        await asyncio.gather(*(read(v) for v in rest))
        # Spaced from when the reads ended: a round slowed by retries must not use up the wait.
        self._note_reads(wanted, {**found, **late}, stats, self.clock())
        return late

    async def _read_one(
        self,
        video_id: str,
        found: dict[str, Outcome],
        stats: RoundStats,
        *,
        retries: int | None = 0,
    ) -> None:
        if stats.outages >= OUTAGE_STREAK and stats.outages == stats.requests:
            found[video_id] = UNREAD  # the service looks down: the next round tries again
            return
        try:
            read = self.client.retrieve(video_id, retries=retries)
            found[video_id] = await counted(stats, read)
        except NotFoundError:
            found[video_id] = None
        except VideoAPIError as exc:
            found[video_id] = exc
        except Exception as exc:
            # An answer the client let through unchecked is still that job's alone.
            log.exception("reading video %s failed unexpectedly", video_id)
            found[video_id] = InvalidResponseError(type(exc).__name__)

    def _note_reads(
        self, wanted: set[str], found: dict[str, Outcome], stats: RoundStats, now: float
    ) -> None:
        """Space out the reads of jobs whose reads keep failing. In a round where the whole
        service looked down, failures are the service's, not the jobs': nothing is counted."""
        outage_round = stats.requests > 0 and stats.outages == stats.requests
        for video_id in wanted:
            outcome = found.setdefault(video_id, UNREAD)
            if isinstance(outcome, Unread):
                continue
            if isinstance(outcome, VideoAPIError):
                self._missed.add(video_id)
            else:
                self._missed.discard(video_id)
            if outage_round and isinstance(outcome, VideoAPIError) and is_outage(outcome):
                continue
            if isinstance(outcome, VideoAPIError):
                failures = self._read_backoff.get(video_id, (0, 0.0))[0] + 1
                delay = min(READ_BACKOFF_CAP, self.interval * (2 ** (failures - 1) - 0.5))
                self._read_backoff[video_id] = (failures, now + delay)
            else:
                self._read_backoff.pop(video_id, None)
        for video_id in self._read_backoff.keys() - wanted:
            del self._read_backoff[video_id]
        self._missed &= wanted

    async def _fetch_listed(
        self,
        running: Sequence[Job],
        wanted: set[str],
        found: dict[str, Outcome],
        stats: RoundStats,
    ) -> None:
        """Fill `found` from list pages, newest first, until every wanted job is seen. Items a
        page could not parse are left out of `found`, so their jobs are read one by one."""
        oldest = min((j.create_attempted_at or j.created_at) for j in running)
        cutoff = oldest - self.client.config.clock_skew
        # Bounded: enough pages for our jobs plus slack for other users of the same key.
        max_pages = math.ceil(len(wanted) / PAGE_SIZE) + 2
        after: str | None = None
        for _ in range(max_pages):
            page = await counted(
                stats, self.client.list(after=after, limit=PAGE_SIZE, order="desc")
            )
            for video in page.data:
                if video.id in wanted:
                    found[video.id] = video
            if not page.data or wanted <= found.keys():
                break
            last = page.data[-1]
            if last.created_at is None or last.created_at < cutoff:
                break  # past our jobs, or a page that cannot say how old it is
            more = page.has_more if page.has_more is not None else len(page.data) >= PAGE_SIZE
            cursor = page.last_id or last.id
            if not more or cursor == after:
                break
            after = cursor
