"""One task that follows every active job, however many there are.

Each round reads the active jobs from the store and refreshes them with as few requests as the
backend allows: where the list endpoint is available one page of 100 refreshes up to 100 jobs, and
only jobs the listing did not reach get a GET of their own. Every request goes through the client's
shared requests-per-minute limiter, so the tracker can never exceed the owner's limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.api.client import JobMatch, VideosClient
from bot.api.errors import BadRequestError, NotFoundError, UnsupportedOperation, VideoAPIError
from bot.api.models import Phase, Video
from bot.store import Job, Store

log = logging.getLogger(__name__)

# Below this many running jobs a GET each is as cheap as listing and never pages through history.
LIST_THRESHOLD = 3
PAGE_SIZE = 100


class JobListener(Protocol):
    """What the tracker tells the outside world (the Discord adapter implements it)."""

    async def job_changed(self, job: Job) -> None: ...

    async def job_finished(self, job: Job) -> None: ...


@dataclass
class RoundStats:
    jobs: int = 0
    requests: int = 0
    changed: int = 0
    finished: int = 0
    resent: int = 0


class Tracker:
    def __init__(
        self,
        store: Store,
        client: VideosClient,
        listener: JobListener,
        *,
        interval: float = 10.0,
        create_grace: float = 600.0,
        clock: Callable[[], float] = time.time,
        resubmit: Callable[[Job], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.listener = listener
        self.interval = interval
        # How long an ambiguous create is looked for before it is given up and refunded.
        self.create_grace = create_grace
        self.clock = clock
        self.resubmit = resubmit
        # Runs first in each round (the job service starts queued jobs there when there is room).
        self.before_round: Callable[[], Awaitable[None]] | None = None
        # Jobs whose create is under way in this process: the tracker leaves them alone.
        self.in_flight: set[int] = set()
        # False while the video service cannot be reached; shown to users as "waiting".
        self.service_ok = True
        # Set once the server has refused a list request; every round then polls job by job.
        self.list_refused = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="job-tracker")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def wake(self) -> None:
        """Poll soon (a job was added), without waiting for the interval."""
        self._wake.set()

    def next_delay(self) -> float:
        # The server may ask for a longer interval; never poll faster than configured.
        hint = self.client.poll_after
        return max(self.interval, hint) if hint else self.interval

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last_poll = -math.inf
        while True:
            # Cleared before the round, so a wake that arrives during it is not lost.
            self._wake.clear()
            try:
                if loop.time() - last_poll >= self.next_delay():
                    last_poll = loop.time()
                    await self.poll_once()
                elif self.before_round is not None:
                    # A wake between polls (a job was added or a slot freed) only starts queued
                    # jobs: polling every job on every new request would multiply the requests.
                    await self.before_round()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("tracker round failed; retrying next round")
            wait = max(0.0, last_poll + self.next_delay() - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)

    # ------------------------------------------------------------------ one round

    async def poll_once(self) -> RoundStats:
        stats = RoundStats()
        if self.before_round is not None:
            await self.before_round()
        jobs = [j for j in await self.store.active_jobs() if j.id not in self.in_flight]
        stats.jobs = len(jobs)
        running = [j for j in jobs if j.state == "running" and j.api_video_id]
        creating = [j for j in jobs if j.state == "creating"]
        try:
            videos = await self._fetch(running, stats)
        except VideoAPIError as exc:
            log.warning("video service unavailable this round: %s", exc)
            await self._set_service_ok(False, jobs)
            return stats
        if stats.requests:
            # Only an answer says the service is back; a round with nothing to ask says nothing
            # (a send that reached it says so too: see set_service_ok).
            await self._set_service_ok(True, jobs)
        for job in running:
            assert job.api_video_id is not None
            await self._apply(job, videos.get(job.api_video_id), stats)
        for job in creating:
            await self._reconcile(job, stats)
        return stats

    async def set_service_ok(self, ok: bool) -> None:
        """Whether a send just reached the video service."""
        if ok != self.service_ok:
            await self._set_service_ok(ok, await self.store.active_jobs())

    async def _set_service_ok(self, ok: bool, jobs: Sequence[Job]) -> None:
        # Members see "waiting for the video service" while it is unreachable, and the usual
        # status again when it is back: each flip is shown on every job's message once.
        if ok == self.service_ok:
            return
        self.service_ok = ok
        for job in jobs:
            await self.listener.job_changed(job)

    async def _fetch(self, running: Sequence[Job], stats: RoundStats) -> dict[str, Video | None]:
        """Latest state of each running job's video; None where the API no longer knows it."""
        wanted = {j.api_video_id for j in running if j.api_video_id is not None}
        found: dict[str, Video | None] = {}
        if self.client.caps.list and not self.list_refused and len(wanted) >= LIST_THRESHOLD:
            try:
                await self._fetch_listed(running, wanted, found, stats)
            except (NotFoundError, UnsupportedOperation, BadRequestError) as exc:
                # A server that refuses listing keeps refusing it: poll job by job from now on.
                self.list_refused = True
                log.warning("listing videos failed (%s); polling each job instead", exc)
        for video_id in wanted - found.keys():
            try:
                found[video_id] = await self.client.retrieve(video_id)
            except NotFoundError:
                found[video_id] = None
            stats.requests += 1
        return found

    async def _fetch_listed(
        self,
        running: Sequence[Job],
        wanted: set[str],
        found: dict[str, Video | None],
        stats: RoundStats,
    ) -> None:
        """Fill `found` from list pages, newest first, until every wanted job is seen."""
        oldest = min((j.create_attempted_at or j.created_at) for j in running)
        cutoff = oldest - self.client.config.clock_skew
        # Bounded: enough pages for our jobs plus slack for other users of the same key.
        max_pages = math.ceil(len(wanted) / PAGE_SIZE) + 2
        after: str | None = None
        for _ in range(max_pages):
            page = await self.client.list(after=after, limit=PAGE_SIZE, order="desc")
            stats.requests += 1
            for video in page.data:
                if video.id in wanted:
                    found[video.id] = video
            if not page.data or wanted <= found.keys():
                break
            last = page.data[-1]
            if last.created_at is not None and last.created_at < cutoff:
                break
            more = page.has_more if page.has_more is not None else len(page.data) >= PAGE_SIZE
            if not more:
                break
            after = page.last_id or last.id

    async def _apply(self, job: Job, video: Video | None, stats: RoundStats) -> None:
        now = self.clock()
        if video is None:
            done = await self.store.mark_failed(
                job.id, "not_found", "The video service no longer knows this video."
            )
            await self._finished(done, stats)
            return
        if video.phase is Phase.COMPLETED:
            done = await self.store.mark_succeeded(
                job.id, completed_at=video.completed_at or now, expires_at=video.expires_at
            )
            await self._finished(done, stats)
        elif video.phase is Phase.FAILED:
            code = video.error.code if video.error and video.error.code else video.status
            message = video.error.message if video.error and video.error.message else None
            done = await self.store.mark_failed(
                job.id, code, message or _status_reason(video.status)
            )
            await self._finished(done, stats)
        elif job.deadline_at is not None and now > job.deadline_at:
            done = await self.store.mark_failed(
                job.id, "deadline", "The video took too long and was given up."
            )
            await self._finished(done, stats)
        elif await self.store.update_progress(job.id, video.status, video.progress):
            stats.changed += 1
            updated = await self.store.get_job(job.id)
            if updated is not None:
                await self.listener.job_changed(updated)

    async def _reconcile(self, job: Job, stats: RoundStats) -> None:
        """A job left in 'creating': never sent before a stop, or its outcome is unknown."""
        if job.create_attempted_at is None:
            # Nothing was ever sent for it (the process stopped first, or the service could not
            # be reached), so sending it is safe; the send itself claims the job, so a send
            # already under way is not repeated.
            if job.deadline_at is not None and self.clock() > job.deadline_at:
                done = await self.store.mark_failed(
                    job.id, "unreachable", "The video service could not be reached in time."
                )
                await self._finished(done, stats)
                return
            # While the service is unreachable one job per round tries it, not every waiting
            # one (each try costs the client's retries); once it answers, the rest follow.
            if not self.service_ok and stats.resent:
                return
            if self.resubmit is not None and job.id not in self.in_flight:
                fresh = await self.store.get_job(job.id)
                if fresh is not None and fresh.state == "creating":
                    stats.resent += 1
                    await self.resubmit(fresh)
            return
        known = await self.store.known_video_ids()
        match = JobMatch(prompt=job.prompt, model=job.model, size=job.size, seconds=job.seconds)
        try:
            video = await self.client.find_created(
                match, since=job.create_attempted_at, exclude_ids=known
            )
        except VideoAPIError as exc:
            log.info("could not look for job %s's video yet: %s", job.id, exc)
            video = None
        stats.requests += 1
        if video is not None:
            log.warning("job %s: adopted video %s after an unconfirmed create", job.id, video.id)
            await self.store.attach_video(job.id, video.id, video.status, video.progress)
            return
        if self.clock() - job.create_attempted_at > self.create_grace:
            done = await self.store.mark_failed(
                job.id,
                "create_unconfirmed",
                "The video service never confirmed the request, so it was refunded.",
            )
            await self._finished(done, stats)

    async def _finished(self, job: Job | None, stats: RoundStats) -> None:
        if job is None:
            return
        stats.finished += 1
        await self.listener.job_finished(job)


def _status_reason(status: str) -> str:
    return {
        "expired": "The video expired before it could be fetched.",
        "cancelled": "The job was cancelled at the video service.",
        "canceled": "The job was cancelled at the video service.",
        "deleted": "The video was deleted at the video service.",
    }.get(status.lower(), f"The video service reported the job as {status}.")
