"""One task that follows every active job, however many there are.

Each round reads the active jobs from the store and refreshes them with as few requests as the
backend allows: where the list endpoint is available one page of 100 refreshes up to 100 jobs, and
only jobs the listing did not reach get a GET of their own. Every request goes through the client's
shared requests-per-minute limiter, so the tracker can never exceed the owner's limit.

Whatever one job's answer is (an error, a body that does not parse, a value out of range) concerns
that job alone: the round goes on for the others, and the job's deadline applies whether or not
its status could be read. "The video service is down" is judged from the round as a whole: only
when every call of the round failed as an outage (no connection, no answer, 5xx).

A create whose outcome is unknown (a 5xx, a timeout or a dropped connection) is looked for at once.
Two clean list reads at least `clean_read_gap` seconds apart that show no matching job mean it was
not created, and it is sent again (at most `max_create_sends` sends in all, each recorded before it
leaves); a search that finds several candidates never counts as "not created", and such a job is
refunded after the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from bot.api.client import CreateSearch, JobMatch, VideosClient
from bot.api.errors import (
    BadRequestError,
    InvalidResponseError,
    NotFoundError,
    UnsupportedOperation,
    VideoAPIError,
    is_outage,
)
from bot.api.models import Phase, Video, micros_of_dollars
from bot.jobview import MAX_CREATE_SENDS
from bot.redact import redact
from bot.store import InvalidTransition, Job, Store
from bot.tasks import BackgroundTasks

log = logging.getLogger(__name__)

T = TypeVar("T")

# Below this many running jobs a GET each is as cheap as listing and never pages through history.
# How long a search waits for another request's create, still on its way, to be stored.
RACE_WAIT = 1.0
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
# Two clean list reads this far apart show that an unconfirmed create started nothing.
CLEAN_READ_GAP = 10.0
# Timestamps a server may report are taken only within this distance of now.
_SANE_SECONDS = 10 * 365 * 86_400

NO_LIST_MESSAGE = "The video service did not confirm the request; nothing was charged to you."
UNCONFIRMED_MESSAGE = "The video service never confirmed the request, so it was refunded."
UNUSABLE_MESSAGE = (
    "The video service accepted the request but answered in a way the bot cannot use."
)
DEADLINE_MESSAGE = "The video took too long and was given up."


class JobListener(Protocol):
    """What the tracker tells the outside world (the Discord adapter implements it). Both
    calls must return promptly: showing the change (a Discord edit) happens off the round."""

    async def job_changed(self, job: Job) -> None: ...

    async def job_finished(self, job: Job) -> None: ...


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


class _Unread:
    """A job not read this round (the service looked down before its turn)."""


_UNREAD = _Unread()
Outcome = Video | VideoAPIError | _Unread | None


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
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        resubmit: Callable[[Job], Awaitable[None]] | None = None,
        max_create_sends: int = MAX_CREATE_SENDS,
        clean_read_gap: float = CLEAN_READ_GAP,
    ) -> None:
        self.store = store
        self.client = client
        self.listener = listener
        self.interval = interval
        # How long an ambiguous create is looked for before it is given up and refunded.
        self.create_grace = create_grace
        self.clock = clock
        self.sleep = sleep
        self.resubmit = resubmit
        self.max_create_sends = max_create_sends
        self.clean_read_gap = clean_read_gap
        # Runs first in each round (the job service starts queued jobs there when there is room).
        self.before_round: Callable[[], Awaitable[None]] | None = None
        # Jobs whose create is under way in this process: the tracker leaves them alone.
        self.in_flight: set[int] = set()
        # False while the video service cannot be reached; shown to users as "waiting".
        self.service_ok = True
        # Set once the server has refused a list request; every round then polls job by job.
        self.list_refused = False
        # Searches for unconfirmed creates started outside the round (see look_now).
        self.looks = BackgroundTasks()
        # Jobs being looked for right now (by a round or a look task): one search at a time.
        self._looking: set[int] = set()
        # Per job: (the send's attempt time, when a clean read first showed nothing for it).
        self._clean_reads: dict[int, tuple[float, float]] = {}
        # Videos whose reads failed: (failures in a row, not read again before this time).
        self._read_backoff: dict[str, tuple[int, float]] = {}
        # Videos whose last read failed, whatever the cause (an outage too): read after the
        # others, so a few broken jobs at the front cannot look like an outage round after round.
        self._missed: set[str] = set()
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
        await self.looks.cancel_all()

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
            try:
                await self.before_round()
            except Exception:
                log.exception("the work before the tracker round failed; the round goes on")
        jobs = [j for j in await self.store.active_jobs() if j.id not in self.in_flight]
        stats.jobs = len(jobs)
        running = [j for j in jobs if j.state == "running" and j.api_video_id]
        creating = [j for j in jobs if j.state == "creating"]
        for job_id in self._clean_reads.keys() - {j.id for j in creating}:
            del self._clean_reads[job_id]  # settled by another path
        outcomes, reads = await self._fetch(running, stats)
        if stats.requests and (reads is None or stats.outages < stats.requests):
            # Judged before the news is applied, so "waiting" goes as the progress comes in.
            await self._judge_service(stats, jobs)
        try:
            # What is known already is applied while the remaining single reads are under way,
            # so the odd jobs among them never hold up the others.
            await self._apply_all(running, outcomes, stats)
            if reads is not None:
                late = await reads
                await self._judge_service(stats, jobs)
                await self._apply_all(running, late, stats)
        finally:
            if reads is not None and not reads.done():
                reads.cancel()
        judged = stats.requests
        for job in creating:
            await self._contained(job, self._reconcile(job, stats), stats)
        if not judged and stats.requests:
            await self._judge_service(stats, jobs)
        return stats

    async def _apply_all(
        self, running: Sequence[Job], outcomes: dict[str, Outcome], stats: RoundStats
    ) -> None:
        for job in running:
            if job.api_video_id is not None and job.api_video_id in outcomes:
                outcome = outcomes[job.api_video_id]
                await self._contained(job, self._apply(job, outcome, stats), stats)

    async def _contained(self, job: Job, work: Awaitable[None], stats: RoundStats) -> None:
        """Run one job's step; whatever it raises concerns that job alone. Its deadline still
        applies, so a job that can never be applied ends and is refunded in time."""
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            stats.errors += 1
            log.exception(
                "job %s: this round's news could not be applied; next round again", job.id
            )
            if self._past_deadline(job):
                try:
                    done = await self.store.mark_failed(job.id, "deadline", DEADLINE_MESSAGE)
                    await self._finished(done, stats)
                except Exception:
                    log.exception("job %s: could not be failed at its deadline", job.id)

    async def set_service_ok(self, ok: bool) -> None:
        """Whether a send just reached the video service."""
        if ok != self.service_ok:
            await self._set_service_ok(ok, await self.store.active_jobs())

    async def _judge_service(self, stats: RoundStats, jobs: Sequence[Job]) -> None:
        # Down only when every call of the round failed as an outage: one job's 5xx or odd
        # answer beside others that were read is that job's problem, not the service's.
        await self._set_service_ok(stats.outages < stats.requests, jobs)

    async def _set_service_ok(self, ok: bool, jobs: Sequence[Job]) -> None:
        # Members see "waiting for the video service" while it is unreachable, and the usual
        # status again when it is back: each flip is shown on every job's message once.
        if ok == self.service_ok:
            return
        self.service_ok = ok
        if not ok:
            log.warning("the video service is not answering; jobs wait for it")
        for job in jobs:
            await self._tell_changed(job)

    async def _call(self, stats: RoundStats, call: Awaitable[T]) -> T:
        """One request of the round, counted for the judgement of the service."""
        stats.requests += 1
        try:
            return await call
        except VideoAPIError as exc:
            if is_outage(exc):
                stats.outages += 1
            raise

    # ------------------------------------------------------------------ reading running jobs

    async def _fetch(
        self, running: Sequence[Job], stats: RoundStats
    ) -> tuple[dict[str, Outcome], asyncio.Task[dict[str, Outcome]] | None]:
        """Each running job's news: its video, None where the API no longer knows it, the error
        its read ended in, or _UNREAD. What the listing (and the first single reads) answered
        comes at once; the remaining single reads come from the returned task. Never raises
        for one job's (or one call's) failure."""
        wanted = {j.api_video_id for j in running if j.api_video_id is not None}
        found: dict[str, Outcome] = {}
        if self.client.caps.list and not self.list_refused and len(wanted) >= LIST_THRESHOLD:
            try:
                await self._fetch_listed(running, wanted, found, stats)
            except (NotFoundError, UnsupportedOperation, BadRequestError) as exc:
                # A server without the route (or refusing it) keeps refusing it: poll job by
                # job from now on.
                self.list_refused = True
                log.warning("listing videos failed (%s); polling each job instead", _said(exc))
            except VideoAPIError as exc:
                # This round reads the jobs one by one (an outage stops that early below).
                log.warning("listing videos failed this round (%s); reading each job", _said(exc))
        now = self.clock()
        due: list[str] = []
        for video_id in wanted - found.keys():
            if self._read_backoff.get(video_id, (0, 0.0))[1] > now:
                found[video_id] = _UNREAD  # read again later; its deadline still applies
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
            found[video_id] = _UNREAD  # the service looks down: the next round tries again
            return
        try:
            read = self.client.retrieve(video_id, retries=retries)
            found[video_id] = await self._call(stats, read)
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
            outcome = found.setdefault(video_id, _UNREAD)
            if isinstance(outcome, _Unread):
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
            page = await self._call(
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

    async def _apply(self, job: Job, outcome: Outcome, stats: RoundStats) -> None:
        now = self.clock()
        if isinstance(outcome, VideoAPIError | _Unread):
            # Nothing usable about this job this round: only its deadline applies.
            if isinstance(outcome, VideoAPIError):
                stats.errors += 1
                log.info("job %s: status not read this round: %s", job.id, _said(outcome))
            if self._past_deadline(job):
                await self._abandon(job, stats)
            return
        if outcome is None:
            done = await self.store.mark_failed(
                job.id, "not_found", "The video service no longer knows this video."
            )
            await self._finished(done, stats)
            return
        video = outcome
        if video.phase is Phase.COMPLETED:
            done = await self.store.mark_succeeded(
                job.id,
                completed_at=_sane_time(video.completed_at, now) or now,
                expires_at=_sane_time(video.expires_at, now),
                reported_cost_micros=None
                if video.cost_usd is None
                else micros_of_dollars(video.cost_usd),
            )
            await self._finished(done, stats)
        elif video.phase is Phase.FAILED:
            error = video.error
            code = error.code if error is not None and error.code not in (None, "") else None
            message = error.message if error is not None and error.message else None
            done = await self.store.mark_failed(
                job.id,
                str(code) if code is not None else video.status,
                message or _status_reason(video.status),
            )
            await self._finished(done, stats)
        elif self._past_deadline(job, now):
            await self._abandon(job, stats)
        elif await self.store.update_progress(job.id, video.status, video.progress):
            stats.changed += 1
            updated = await self.store.get_job(job.id)
            if updated is not None:
                await self._tell_changed(updated)

    def _past_deadline(self, job: Job, now: float | None = None) -> bool:
        return (
            job.deadline_at is not None and (self.clock() if now is None else now) > job.deadline_at
        )

    async def _abandon(self, job: Job, stats: RoundStats) -> None:
        """A job past its deadline: deleted at the service where it can be (so the owner stops
        paying for it), then failed and refunded. A failed delete is logged; the refund
        happens all the same."""
        if job.api_video_id is not None and self.client.caps.delete:
            try:
                await self._call(stats, self.client.delete(job.api_video_id))
            except NotFoundError:
                pass
            except VideoAPIError as exc:
                log.warning(
                    "job %s: could not delete its video at the service: %s", job.id, _said(exc)
                )
        done = await self.store.mark_failed(job.id, "deadline", DEADLINE_MESSAGE)
        await self._finished(done, stats)

    # ------------------------------------------------------------------ creates

    async def _reconcile(self, job: Job, stats: RoundStats) -> None:
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
        if self._past_deadline(job):
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
            if (
                fresh is not None
                and fresh.state == "creating"
                and fresh.create_attempted_at is None
            ):
                stats.resent += 1
                await self.resubmit(fresh)

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
                if job is None or job.state != "creating" or job.id in self.in_flight:
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
        for other_id in self.in_flight - {job.id}:
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
            await self._finished(done, stats)
            return None
        if await self._racing_send(job):
            # Another request's create like this one is still on its way: its job may be listed
            # already while its answer is not stored, and must never be taken for this one.
            return RACE_WAIT
        search: CreateSearch | None
        try:
            search = await self._call(
                stats,
                self.client.find_created(
                    await self._match(job),
                    since=attempted,
                    exclude_ids=await self.store.known_video_ids(),
                ),
            )
        except VideoAPIError as exc:
            log.info("could not look for job %s's video yet: %s", job.id, _said(exc))
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
                await self._tell_changed(attached)
            return None
        if job.create_answered:
            # The service said yes with an answer the bot cannot use, and its listing does not
            # show the job in a usable form either: it is given up (and refunded), never resent.
            self._clean_reads.pop(job.id, None)
            done = await self.store.mark_failed(job.id, "create_unusable", UNUSABLE_MESSAGE)
            await self._finished(done, stats)
            return None
        if now - attempted > self.create_grace or self._past_deadline(job, now):
            # Looked for long enough (a search that keeps failing or finding several candidates
            # never proves anything): refunded, never sent again.
            self._clean_reads.pop(job.id, None)
            done = await self.store.mark_failed(job.id, "create_unconfirmed", UNCONFIRMED_MESSAGE)
            await self._finished(done, stats)
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
        if self._past_deadline(job) or job.create_attempts >= self.max_create_sends:
            done = await self.store.mark_failed(job.id, "create_unconfirmed", NO_LIST_MESSAGE)
            await self._finished(done, stats)
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
        await self._tell_changed(fresh)
        if self.resubmit is not None and fresh.id not in self.in_flight:
            stats.resent += 1
            await self.resubmit(fresh)
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

    # ------------------------------------------------------------------ telling the listener

    async def _finished(self, job: Job | None, stats: RoundStats) -> None:
        if job is None:
            return
        stats.finished += 1
        try:
            await self.listener.job_finished(job)
        except Exception:
            log.exception("job %s: its delivery could not be scheduled", job.id)

    async def _tell_changed(self, job: Job) -> None:
        try:
            await self.listener.job_changed(job)
        except Exception:
            log.exception("job %s: its message could not be updated", job.id)


def _said(exc: VideoAPIError) -> str:
    """An error for the log: one line, redacted."""
    return redact(f"{type(exc).__name__}: {exc.message}")


def _sane_time(value: float | None, now: float) -> float | None:
    """A server's timestamp, or None when it is missing, not finite or absurdly far from now."""
    if value is None:
        return None
    try:
        when = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if not math.isfinite(when) or abs(when - now) > _SANE_SECONDS:
        return None
    return when


def _status_reason(status: str) -> str:
    return {
        "expired": "The video expired before it could be fetched.",
        "cancelled": "The job was cancelled at the video service.",
        "canceled": "The job was cancelled at the video service.",
        "deleted": "The video was deleted at the video service.",
    }.get(status.lower(), f"The video service reported the job as {redact(status, 64)}.")
