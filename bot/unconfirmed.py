"""Finishing creates whose outcome the bot does not know, and sending those never sent.

A create whose outcome is unknown (a 5xx, a timeout or a dropped connection) is looked for at once.
Two clean list reads at least `clean_read_gap` seconds apart that show no matching job mean it was
not created, and it is sent again (at most `max_create_sends` sends in all, each recorded before it
leaves); a search that finds several candidates never counts as "not created", and such a job is
refunded after the grace period. A job never sent (the process stopped first, or the service
could not be reached) is sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from bot.api.adoption import CreateSearch, JobMatch
from bot.api.client import VideosClient
from bot.api.errors import VideoAPIError
from bot.jobview import MAX_CREATE_SENDS
from bot.round_stats import RoundStats, counted, said
from bot.sender import NO_LIST_MESSAGE
from bot.store import InvalidTransition, Job, Store
from bot.tasks import BackgroundTasks

log = logging.getLogger(__name__)

# How long a search waits for another request's create, still on its way, to be stored.
RACE_WAIT = 1.0
# Two clean list reads this far apart show that an unconfirmed create started nothing.
CLEAN_READ_GAP = 10.0

UNCONFIRMED_MESSAGE = "The video service never confirmed the request, so it was refunded."
UNUSABLE_MESSAGE = (
    "The video service accepted the request but answered in a way the bot cannot use."
)
UNREACHABLE_MESSAGE = "The video service could not be reached in time."


class TrackerSide(Protocol):
    """What the search needs of the tracker that owns it (passed once, when it is built)."""

    @property
    def service_ok(self) -> bool: ...

    @property
    def in_flight(self) -> set[int]: ...

    @property
    def can_send(self) -> bool: ...

    async def send(self, job: Job) -> None: ...

    async def finished(self, job: Job | None, stats: RoundStats) -> None: ...

    async def tell_changed(self, job: Job) -> None: ...

    def past_deadline(self, job: Job, now: float | None = None) -> bool: ...


class UnconfirmedCreates:
    def __init__(
        self,
        store: Store,
        client: VideosClient,
        tracker: TrackerSide,
        *,
        create_grace: float,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        max_create_sends: int = MAX_CREATE_SENDS,
        clean_read_gap: float = CLEAN_READ_GAP,
    ) -> None:
        self.store = store
        self.client = client
        self.tracker = tracker
        # How long an ambiguous create is looked for before it is given up and refunded.
        self.create_grace = create_grace
        self.clock = clock
        self.sleep = sleep
        self.max_create_sends = max_create_sends
        self.clean_read_gap = clean_read_gap
        # Searches for unconfirmed creates started outside the round (see look_now).
        self.looks = BackgroundTasks()
        # Jobs being looked for right now (by a round or a look task): one search at a time.
        self._looking: set[int] = set()
        # Per job: (the send's attempt time, when a clean read first showed nothing for it).
        self._clean_reads: dict[int, tuple[float, float]] = {}

    def settled_except(self, creating: set[int]) -> None:
        """Forget the clean reads of jobs no longer in 'creating' (settled by another path)."""
        for job_id in self._clean_reads.keys() - creating:
            del self._clean_reads[job_id]

    async def reconcile(self, job: Job, stats: RoundStats) -> None:
        """A job left in 'creating': never sent before a stop, or its outcome is unknown."""
        if job.create_attempted_at is None:
            await self._send_waiting(job, stats)
            return
        if job.id in self._looking:
            return  # a search for it is under way (see look_now)
        self._looking.add(job.id)
        try:
            wait = await self._look_for(job, stats)
        finally:
            self._looking.discard(job.id)
        if wait is not None:
            # The next search counts only after a while: a task makes it then, not the round
            # after next.
            self.look_now(job.id, delay=wait)

    async def _send_waiting(self, job: Job, stats: RoundStats) -> None:
        # Nothing was ever sent for it (the process stopped first, the service could not be
        # reached, or its last send was shown not to have started a job), so sending it is safe;
        # the send itself claims the job, so a send already under way is not repeated.
        if self.tracker.past_deadline(job):
            done = await self.store.mark_failed(job.id, "unreachable", UNREACHABLE_MESSAGE)
            await self.tracker.finished(done, stats)
            return
        # While the service is unreachable one job per round tries it, not every waiting
        # one (each try costs the client's retries); once it answers, the rest follow.
        if not self.tracker.service_ok and stats.resent:
            return
        if self.tracker.can_send and job.id not in self.tracker.in_flight:
            fresh = await self.store.get_job(job.id)
            if (
                fresh is not None
                and fresh.state == "creating"
                and fresh.create_attempted_at is None
            ):
                stats.resent += 1
                await self.tracker.send(fresh)

    def look_now(self, job_id: int, *, delay: float = 0.0) -> None:
        """Look for an unconfirmed create's job at once (or after `delay`), off the caller's
        path: the member's message settles in seconds rather than at the next rounds."""
        if job_id not in self._looking:
            self._looking.add(job_id)
            self.looks.spawn(self._look_soon(job_id, delay), name=f"look-{job_id}")

    async def _look_soon(self, job_id: int, delay: float) -> None:
        try:
            if delay > 0:
                await self.sleep(delay)
            # Bounded: each send is looked at a few times at most; the rounds take it from there.
            for _ in range(3 * self.max_create_sends):
                job = await self.store.get_job(job_id)
                if job is None or job.state != "creating" or job.id in self.tracker.in_flight:
                    return
                if job.create_attempted_at is None:
                    return  # waiting to be sent: the rounds send it
                wait = await self._look_for(job, RoundStats())
                if wait is None:
                    return
                if wait > 0:
                    await self.sleep(wait)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job %s: looking for its video failed; the rounds go on with it", job_id)
        finally:
            self._looking.discard(job_id)

    async def _racing_send(self, job: Job) -> bool:
        """Whether another job's create that the same search could find (same size and length,
        and prompt where the server echoes it) has been sent and its answer not yet stored."""
        for other_id in self.tracker.in_flight - {job.id}:
            other = await self.store.get_job(other_id)
            if (
                other is not None
                and other.create_attempted_at is not None
                and (other.size, other.seconds) == (job.size, job.seconds)
                and (not self.client.caps.echoes_prompt or other.prompt == job.prompt)
            ):
                return True
        return False

    async def _look_for(self, job: Job, stats: RoundStats) -> float | None:
        """One search for the job an unconfirmed send may have started. Adopts it when found,
        sends again when two clean reads far enough apart show it was not created, refunds when
        it can never be known. Returns how long to wait before the next search counts, or None
        when there is nothing more to do now (the rounds carry on)."""
        attempted = job.create_attempted_at
        assert attempted is not None
        if not self.client.caps.list:
            # The service cannot be asked what it started: tell the member at once.
            self._clean_reads.pop(job.id, None)
            done = await self.store.mark_failed(job.id, "create_unconfirmed", NO_LIST_MESSAGE)
            await self.tracker.finished(done, stats)
            return None
        if await self._racing_send(job):
            # Another request's create like this one is still on its way: its job may be listed
            # already while its answer is not stored, and must never be taken for this one.
            return RACE_WAIT
        search: CreateSearch | None
        try:
            search = await counted(
                stats,
                self.client.find_created(
                    await self._match(job),
                    since=attempted,
                    exclude_ids=await self.store.known_video_ids(),
                ),
            )
        except VideoAPIError as exc:
            log.info("could not look for job %s's video yet: %s", job.id, said(exc))
            search = None
        now = self.clock()
        if search is not None and search.video is not None:
            video = search.video
            try:
                attached = await self.store.attach_video(
                    job.id, video.id, video.status, video.progress
                )
            except InvalidTransition as exc:
                # Owned by another request meanwhile (or this job moved on): never adopted.
                log.warning("job %s: did not adopt video %s: %s", job.id, video.id, exc)
                return None
            self._clean_reads.pop(job.id, None)
            log.warning("job %s: adopted video %s after an unconfirmed create", job.id, video.id)
            if attached is not None:
                await self.tracker.tell_changed(attached)
            return None
        if job.create_answered:
            # The service said yes with an answer the bot cannot use, and its listing does not
            # show the job in a usable form either: it is given up (and refunded), never resent.
            self._clean_reads.pop(job.id, None)
            done = await self.store.mark_failed(job.id, "create_unusable", UNUSABLE_MESSAGE)
            await self.tracker.finished(done, stats)
            return None
        if now - attempted > self.create_grace or self.tracker.past_deadline(job, now):
            # Looked for long enough (a search that keeps failing or finding several candidates
            # never proves anything): refunded, never sent again.
            self._clean_reads.pop(job.id, None)
            done = await self.store.mark_failed(job.id, "create_unconfirmed", UNCONFIRMED_MESSAGE)
            await self.tracker.finished(done, stats)
            return None
        if search is not None and not search.ambiguous:
            first = self._clean_reads.get(job.id)
            if first is None or first[0] != attempted:
                self._clean_reads[job.id] = (attempted, now)
                return self.clean_read_gap
            waited = now - first[1]
            if waited < self.clean_read_gap:
                return self.clean_read_gap - waited
            # Two clean reads far enough apart: the send started nothing.
            self._clean_reads.pop(job.id, None)
            return await self._not_created(job, attempted, stats)
        return None

    async def _not_created(self, job: Job, attempted: float, stats: RoundStats) -> float | None:
        if self.tracker.past_deadline(job) or job.create_attempts >= self.max_create_sends:
            done = await self.store.mark_failed(job.id, "create_unconfirmed", NO_LIST_MESSAGE)
            await self.tracker.finished(done, stats)
            return None
        if not await self.store.retry_create(job.id, attempted, self.max_create_sends):
            return None  # moved on meanwhile
        log.warning(
            "job %s: send %d was shown not to have started a job; sending it again",
            job.id,
            job.create_attempts,
        )
        fresh = await self.store.get_job(job.id)
        if fresh is None:
            return None
        await self.tracker.tell_changed(fresh)
        if self.tracker.can_send and fresh.id not in self.tracker.in_flight:
            stats.resent += 1
            await self.tracker.send(fresh)
        return 0.0

    async def _match(self, job: Job) -> JobMatch:
        """What identifies the job's request among the service's recent videos."""
        remixed_from: str | None = None
        seconds: str | None = job.seconds
        if job.kind != "create" and job.source_job_id is not None:
            source = await self.store.get_job(job.source_job_id)
            if job.kind == "remix" and source is not None:
                remixed_from = source.api_video_id
            if job.kind == "extend":
                seconds = None  # servers differ in what length an extension reports
        return JobMatch(
            prompt=job.prompt,
            model=job.model,
            size=job.size,
            seconds=seconds,
            remixed_from=remixed_from,
            has_reference=job.has_reference,
        )
