"""One task that follows every active job, however many there are.

Each round starts queued jobs where the concurrency cap leaves room (and runs the round work it
was given: retrying deliveries, releasing memory), reads the active jobs from the store and
refreshes them with as few requests as the backend allows (bot/job_reads.py; read job by job,
only the jobs whose read is due by what the bot learned of their kind, bot/poll_schedule.py),
applies what it read (bot/job_news.py), then finishes the creates whose outcome is unknown
(bot/unconfirmed.py), and last tells the members whose place in line or ETA moved
(bot/outlooks.py). Rounds come at the interval; where one list request covers every job, also
when a running job is expected to end (bot/poll_schedule.py `next_round_wait`). Every request
goes through the client's shared requests-per-minute limiter, so the tracker can never exceed
the owner's limit. Each success leaves a sample of how long its kind takes (bot/durations.py).

Whatever one job's answer is (an error, a body that does not parse, a value out of range) concerns
that job alone: the round goes on for the others, and the job's deadline applies whether or not
its status could be read. "The video service is down" is judged from the round as a whole: only
when every call of the round failed as an outage (no connection, no answer, 5xx).

Sending goes through the tracker too (`send`), so what a send found out (the service is down, or
up again; an answer was lost and the job must be looked for) is acted on in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from bot.api.client import VideosClient
from bot.api.models import Phase, Video
from bot.durations import Durations
from bot.job_news import JobNews
from bot.job_reads import JobReads
from bot.jobview import MAX_CREATE_SENDS
from bot.local_queue import LocalQueue
from bot.outlooks import Outlooks
from bot.poll_schedule import ReadSchedule, next_round_wait
from bot.queueview import Outlook
from bot.round_stats import Outcome, RoundStats, Unread
from bot.sender import Sent
from bot.store import Job, Store
from bot.tasks import BackgroundTasks
from bot.unconfirmed import CLEAN_READ_GAP, UnconfirmedCreates

log = logging.getLogger(__name__)


class JobListener(Protocol):
    """What the tracker tells the outside world (delivery implements it). Both calls must
    return promptly: showing the change (a Discord edit) happens off the round. `outlook`:
    where the job stands for its member (place in line, ETA, an estimated bar), when the
    tracker learns durations."""

    async def job_changed(self, job: Job, outlook: Outlook | None = None) -> None: ...

    async def job_finished(self, job: Job) -> None: ...


class CreateSender(Protocol):
    """What sends a job's request (bot/sender.py): at most once, the outcome returned."""

    in_flight: set[int]

    async def send(self, job: Job) -> Sent: ...


class Tracker:
    def __init__(
        self,
        store: Store,
        client: VideosClient,
        listener: JobListener,
        *,
        sender: CreateSender | None = None,
        max_concurrent: int | None = None,
        round_work: Callable[[], Awaitable[None]] | None = None,
        interval: float = 10.0,
        create_grace: float = 600.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        max_create_sends: int = MAX_CREATE_SENDS,
        clean_read_gap: float = CLEAN_READ_GAP,
        durations: Durations | None = None,
        backend: str = "",
        early_check: float | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.listener = listener
        # Sends jobs never sent (and those shown not to have started); None: nothing is sent.
        self.sender = sender
        # Jobs sent and not yet finished at the service at most; more wait in 'queued_local'.
        self.queue = LocalQueue(store, max_concurrent, send=self.send)
        # Runs in each round (and each wake) after queued jobs are started: retrying failed
        # deliveries, releasing memory.
        self.round_work = round_work
        self.interval = interval
        self.clock = clock
        # False while the video service cannot be reached; shown to users as "waiting".
        self.service_ok = True
        self.reads = JobReads(client, interval=interval, clock=clock)
        self.news = JobNews(store, client, self, clock=clock)
        # What the bot learned of how long jobs take, under the backend's key
        # (bot/durations.py): each success adds a sample; single reads wait for a job's kind's
        # lower end (bot/poll_schedule.py); members see their place and ETA (bot/outlooks.py).
        # None: every job is read every round and no outlook is given.
        self.durations = durations
        self.backend = backend
        self.schedule: ReadSchedule | None = None
        self.outlooks: Outlooks | None = None
        self._to_learn: list[Job] = []
        # Whether the last round read the running jobs by list (rounds may then come at their
        # expected ends).
        self._listed = False
        if durations is not None:
            self.schedule = ReadSchedule(durations, backend, early_check=early_check)
            self.outlooks = Outlooks(store, durations, backend)
        self.unconfirmed = UnconfirmedCreates(
            store,
            client,
            self,
            create_grace=create_grace,
            clock=clock,
            sleep=sleep,
            max_create_sends=max_create_sends,
            clean_read_gap=clean_read_gap,
        )
        # Without a sender nothing is ever in flight.
        self._no_sends: set[int] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def in_flight(self) -> set[int]:
        """Jobs whose send is under way in this process: the rounds leave them alone."""
        return self.sender.in_flight if self.sender is not None else self._no_sends

    @property
    def can_send(self) -> bool:
        return self.sender is not None

    @property
    def list_refused(self) -> bool:
        """Whether the server refused a list request (every round then polls job by job)."""
        return self.reads.list_refused

    @property
    def create_grace(self) -> float:
        """How long an ambiguous create is looked for before it is given up and refunded."""
        return self.unconfirmed.create_grace

    @create_grace.setter
    def create_grace(self, seconds: float) -> None:
        self.unconfirmed.create_grace = seconds

    @property
    def looks(self) -> BackgroundTasks:
        """Searches for unconfirmed creates started outside the round (see bot/unconfirmed.py)."""
        return self.unconfirmed.looks

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

    @property
    def running(self) -> bool:
        """Whether the rounds are running (between `start` and `stop`)."""
        return self._task is not None

    def wake(self) -> None:
        """Poll soon (a job was added), without waiting for the interval."""
        self._wake.set()

    def next_delay(self) -> float:
        # The server may ask for a longer interval; never poll faster than configured.
        hint = self.client.poll_after
        return max(self.interval, hint) if hint else self.interval

    def round_wait(self, since_last: float) -> float:
        """Seconds from now to the next round, `since_last` seconds after the last one began:
        the interval, or sooner where the last round listed every job and one of them is
        expected to end before it (bot/poll_schedule.py), unless the server asked for rounds
        further apart than the interval."""
        hint = self.client.poll_after
        early = self.outlooks is not None and self._listed and not (hint and hint > self.interval)
        ends = self.outlooks.ends() if self.outlooks is not None and early else ()
        return next_round_wait(since_last, self.next_delay(), ends, self.clock())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last_poll = -math.inf
        while True:
            # Cleared before the round, so a wake that arrives during it is not lost.
            self._wake.clear()
            try:
                if self.round_wait(loop.time() - last_poll) <= 0.0:
                    last_poll = loop.time()
                    await self.poll_once()
                else:
                    # A wake between polls (a job was added or a slot freed) only starts queued
                    # jobs: polling every job on every new request would multiply the requests.
                    # The line may have moved: its members are told.
                    await self.before_round()
                    await self.show_outlooks()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("tracker round failed; retrying next round")
            wait = self.round_wait(loop.time() - last_poll)
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that
            # comes with a wake, and stop() would wait for this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def before_round(self) -> None:
        """What runs first in each round and on each wake: starting queued jobs where there is
        room, then the round work the tracker was given."""
        await self.start_queued()
        if self.round_work is not None:
            await self.round_work()

    # ------------------------------------------------------------------ sending

    async def send(self, job: Job) -> None:
        """Send a job's request (if nobody has), and act on what the send found out."""
        if self.sender is None:
            return
        try:
            sent = await self.sender.send(job)
        finally:
            self.wake()
        if sent is Sent.UNKNOWN:
            # Looked for at once, off the caller's path.
            self.unconfirmed.look_now(job.id)
        elif sent is Sent.UNREACHABLE:
            await self.set_service_ok(False)
        elif sent is Sent.STARTED:
            await self.set_service_ok(True)

    async def at_capacity(self, job_id: int) -> bool:
        """Whether a new job (`job_id`) must wait in the local queue for a free slot."""
        return await self.queue.at_capacity(job_id)

    async def start_queued(self) -> None:
        """Send queued jobs, oldest first, while the concurrency cap leaves room."""
        await self.queue.start_queued()

    # ------------------------------------------------------------------ one round

    async def poll_once(self) -> RoundStats:
        stats = RoundStats()
        try:
            await self.before_round()
        except Exception:
            log.exception("the work before the tracker round failed; the round goes on")
        jobs = [
            j
            for j in await self.store.active_jobs()
            if j.id not in self.in_flight and self.store.looks_after(j)
        ]
        stats.jobs = len(jobs)
        running = [j for j in jobs if j.state == "running" and j.api_video_id]
        creating = [j for j in jobs if j.state == "creating"]
        self.unconfirmed.settled_except({j.id for j in creating})
        not_due: set[str] = set()
        self._listed = self.reads.lists(len(running))
        if self.schedule is not None and not self._listed:
            # Read job by job: only the jobs whose read is due (see bot/poll_schedule.py).
            not_due = await self.schedule.not_due(
                running, now=self.clock(), interval=self.next_delay()
            )
        outcomes, reads = await self.reads.fetch(running, stats, skip=not_due)
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
            await self.news.contained(job, self.unconfirmed.reconcile(job, stats), stats)
        if not judged and stats.requests:
            await self._judge_service(stats, jobs)
        await self.learn()
        await self.show_outlooks()
        return stats

    async def mine(self) -> list[Job]:
        """The active jobs this process looks after (on a shared database, those it leases)."""
        return [j for j in await self.store.active_jobs() if self.store.looks_after(j)]

    async def show_outlooks(self) -> None:
        """Tell the members whose job's place, ETA or estimated bar moved (bot/outlooks.py)."""
        if self.outlooks is None:
            return
        try:
            jobs = await self.store.active_jobs()
            moved = await self.outlooks.moved(
                jobs,
                slots=self.queue.max_concurrent,
                now=self.clock(),
                reports_progress=self.client.caps.progress,
            )
        except Exception:
            log.exception("where the jobs stand could not be worked out this round")
            return
        for job, outlook in moved:
            # Places count every process's jobs; each member is told by their job's process.
            if job.id not in self.in_flight and self.store.looks_after(job):
                await self.tell_changed(job, outlook)

    async def _apply_all(
        self, running: Sequence[Job], outcomes: dict[str, Outcome], stats: RoundStats
    ) -> None:
        read = [j for j in running if j.api_video_id is not None and j.api_video_id in outcomes]
        # Endings first: a finished job's delivery should not wait for the progress updates of
        # every other job in the round.
        read.sort(key=lambda j: not _ended(outcomes[j.api_video_id or ""]))
        for job in read:
            video_id = job.api_video_id or ""
            outcome = outcomes[video_id]
            if self.schedule is not None and not isinstance(outcome, Unread):
                self.schedule.read(video_id, self.clock())
            await self.news.contained(job, self.news.apply(job, outcome, stats), stats)

    async def set_service_ok(self, ok: bool) -> None:
        """Whether a send just reached the video service."""
        if ok != self.service_ok:
            await self._set_service_ok(ok, await self.mine())

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
            await self.tell_changed(job)

    def past_deadline(self, job: Job, now: float | None = None) -> bool:
        return (
            job.deadline_at is not None and (self.clock() if now is None else now) > job.deadline_at
        )

    # ------------------------------------------------------------------ telling the listener

    async def finished(self, job: Job | None, stats: RoundStats) -> None:
        if job is None:
            return
        stats.finished += 1
        try:
            await self.listener.job_finished(job)
        except Exception:
            log.exception("job %s: its delivery could not be scheduled", job.id)
        if self.durations is not None and job.state == "succeeded":
            # Learned at the end of the round, off the path from noticing to delivering.
            self._to_learn.append(job)

    async def learn(self) -> None:
        """Keep how long the round's successes took: the next job of each kind is read, and
        promised, by it."""
        learned, self._to_learn = self._to_learn, []
        if self.durations is None:
            return
        for job in learned:
            try:
                await self.durations.record(self.backend, job)
            except Exception:
                log.exception("job %s: how long it took could not be kept", job.id)

    async def tell_changed(self, job: Job, outlook: Outlook | None = None) -> None:
        """Tell the listener of a change to `job`, with where it stands (its outlook from the
        last round's line where none is given)."""
        if outlook is None and self.outlooks is not None:
            outlook = self.outlooks.current(
                job, now=self.clock(), reports_progress=self.client.caps.progress
            )
        if outlook is not None and self.outlooks is not None:
            self.outlooks.shown(job.id, outlook)
        try:
            await self.listener.job_changed(job, outlook)
        except Exception:
            log.exception("job %s: its message could not be updated", job.id)


def _ended(outcome: Outcome) -> bool:
    """Whether a read says the job is over at the service (done, failed or gone)."""
    return outcome is None or (isinstance(outcome, Video) and outcome.phase is not Phase.RUNNING)
