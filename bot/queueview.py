"""Where a job stands: its place in line while it waits for a slot, when it should start and be
done, and, where the service reports no progress, an estimate of it.

The line is the local queue's (bot/local_queue.py): jobs held in 'queued_local' while the
concurrency cap (`QUOTA_MAX_CONCURRENT_JOBS`) is reached, started oldest first (by id) as slots
free up. Its order here is the same, so "2nd in line" is the second job the queue will start.

ETAs come from learned durations (bot/durations.py): a job at the service should end its
kind's median after its request left; one past its median, by its 90th percentile; one past
that has no ETA of its own ("taking longer than usual"). A waiting job starts when the slot it
will get frees up: the line is played forward, slot by slot, with each job ahead taking its own
kind's median. Times are `When` parts (shown in each reader's time zone, relative) so the core
holds no front end's markup.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

from bot.durations import Durations, Expected
from bot.notice import Notice, Ordinal, When, notice
from bot.store import Job, Store

# In playing the line forward, a job past its 90th percentile is taken to end this share of its
# median from now (at least OVERDUE_MIN_SECONDS): it may end any moment, but not all at once.
OVERDUE_SHARE = 0.25
OVERDUE_MIN_SECONDS = 5.0
# An estimated bar reaches this at the median, creeps to ESTIMATE_MAX at the 90th percentile and
# stays there: only the service's "completed" makes it 100.
ESTIMATE_AT_MEDIAN = 90
ESTIMATE_MAX = 99
# An estimated bar moves in steps of this many percent.
ESTIMATE_STEP = 5
# An ETA that moved by less than this share of the time left to it (or, when that is shorter,
# by less than ETA_SLACK_SECONDS) is not worth an edit of its own.
ETA_SLACK_SHARE = 0.1
ETA_SLACK_SECONDS = 10.0


async def place_in_line(store: Store, job_id: int) -> int | None:
    """1-based place among the jobs waiting for a slot, in the order the local queue starts them
    (oldest id first); None when the job is not waiting for one."""
    return await store.queue_position(job_id)


def started_at(job: Job) -> float:
    """When a job's time at the service began: its request's send, else when it was made."""
    return job.create_attempted_at if job.create_attempted_at is not None else job.created_at


def expected_end(job: Job, expected: Expected, now: float) -> float | None:
    """When a job at the service (or being sent) should be done: its median after it started,
    its 90th percentile once the median has passed; None once that has passed too. A job whose
    request has not left yet (just taken from the line) starts now."""
    unsent = job.state == "creating" and job.create_attempted_at is None
    start = now if unsent else started_at(job)
    for end in (start + expected.median, start + expected.p90):
        if end > now:
            return end
    return None


def slot_free_at(job: Job, expected: Expected, now: float) -> float:
    """When a working job's slot should free up, for playing the line forward: its expected
    end, or soon when it is overdue."""
    end = expected_end(job, expected, now)
    if end is not None:
        return end
    return now + max(OVERDUE_MIN_SECONDS, expected.median * OVERDUE_SHARE)


def estimated_progress(job: Job, expected: Expected, now: float) -> int:
    """A percentage from elapsed time alone, for a service that reports none: linear to
    ESTIMATE_AT_MEDIAN at the median, then creeping to ESTIMATE_MAX at the 90th percentile.
    Never 100: only the service says a job is done. Always an estimate (say so)."""
    elapsed = max(0.0, now - started_at(job))
    median = max(expected.median, 1e-9)
    if elapsed <= median:
        return int(ESTIMATE_AT_MEDIAN * elapsed / median)
    tail = expected.p90 - median
    if tail <= 0 or elapsed >= expected.p90:
        return ESTIMATE_MAX
    return ESTIMATE_AT_MEDIAN + int((ESTIMATE_MAX - ESTIMATE_AT_MEDIAN) * (elapsed - median) / tail)


def play_line(
    slots_free_at: Sequence[float], waiting: Sequence[float], slots: int | None, now: float
) -> list[tuple[float, float]]:
    """(start, end) of each waiting job, in line order, given when each working job's slot
    frees up, each waiting job's expected duration and the number of slots (None or below 1:
    no cap, every job starts now). More working jobs than slots (the cap was lowered) simply
    means the first starts once enough of them have ended."""
    if slots is None or slots < 1:
        return [(now, now + took) for took in waiting]
    busy = [max(now, at) for at in slots_free_at]
    heapq.heapify(busy)
    clock = now
    planned: list[tuple[float, float]] = []
    for took in waiting:
        while len(busy) >= slots:
            clock = max(clock, heapq.heappop(busy))
        planned.append((clock, clock + took))
        heapq.heappush(busy, clock + took)
    return planned


@dataclass(frozen=True, slots=True)
class Eta:
    """Where an active job stands. `place`: its 1-based place in line (None: not waiting);
    `start`: when a waiting job should be sent (None: it has been); `finish`: when it should be
    done (None: past its 90th percentile, taking longer than usual); `expected`: the durations
    behind it (`expected.source` says whether they are learned or the default)."""

    job_id: int
    place: int | None
    start: When | None
    finish: When | None
    expected: Expected


@dataclass(frozen=True, slots=True)
class Outlook:
    """What a member is shown of where their job stands, handed to the delivery sink with a
    progress edit. `place`: 1-based place in line (None: not waiting for a slot); `finish`: when
    it should be done (None: no ETA, it is taking longer than usual); `estimated_progress`: a
    percentage from elapsed / expected, set only where the service reports no progress (the
    profile has none, or this job's is None), else None; `estimated`: the bar shown is that
    estimate (say so); `learned`: the ETA rests on this bot's own finished jobs of the kind,
    not the default hint."""

    place: int | None = None
    finish: When | None = None
    estimated_progress: int | None = None
    estimated: bool = False
    learned: bool = False


async def line_etas(
    store: Store,
    durations: Durations,
    backend: str,
    slots: int | None,
    *,
    now: float,
    jobs: Sequence[Job] | None = None,
) -> dict[int, Eta]:
    """The Eta of every active job (or of `jobs`, the store's active jobs as already read), in
    one pass: the line is played forward once for all of it."""
    active = list(jobs) if jobs is not None else await store.active_jobs()
    expected = {j.id: await durations.expected_for(backend, j) for j in active}
    working = [j for j in active if j.state in ("creating", "running")]
    # The local queue's order (bot/local_queue.py): oldest id first.
    waiting = sorted((j for j in active if j.state == "queued_local"), key=lambda j: j.id)
    etas: dict[int, Eta] = {}
    for job in working:
        end = expected_end(job, expected[job.id], now)
        etas[job.id] = Eta(job.id, None, None, _when(end), expected[job.id])
    planned = play_line(
        [slot_free_at(j, expected[j.id], now) for j in working],
        [expected[j.id].median for j in waiting],
        slots,
        now,
    )
    for place, (job, (start, end)) in enumerate(zip(waiting, planned, strict=True), start=1):
        etas[job.id] = Eta(job.id, place, When(start), When(end), expected[job.id])
    return etas


def outlook_of(job: Job, eta: Eta | None, *, reports_progress: bool, now: float) -> Outlook:
    """What `job`'s member is shown of its Eta. The bar is estimated only for a job at the
    service whose progress is not reported (the profile has none, or this job's is None), in
    ESTIMATE_STEP steps (so it moves visibly without an edit for every percent)."""
    if eta is None:
        return Outlook()
    estimate: int | None = None
    at_service = job.state == "running" or (
        job.state == "creating" and job.create_attempted_at is not None
    )
    if at_service and (not reports_progress or job.progress is None):
        raw = estimated_progress(job, eta.expected, now)
        estimate = raw - raw % ESTIMATE_STEP
    return Outlook(
        place=eta.place,
        finish=eta.finish,
        estimated_progress=estimate,
        estimated=estimate is not None,
        learned=eta.expected.source == "history",
    )


def outlook_moved(old: Outlook | None, new: Outlook, now: float) -> bool:
    """Whether a member should be told again: the place, the bar or what stands behind the
    ETA changed, or the ETA moved by more than ETA_SLACK_SHARE of the time left to it (at
    least ETA_SLACK_SECONDS), so a line played forward each round does not edit every
    message for a few seconds' drift."""
    if old is None:
        return True
    if (old.place, old.estimated_progress, old.learned) != (
        new.place,
        new.estimated_progress,
        new.learned,
    ):
        return True
    if old.finish is None or new.finish is None:
        return (old.finish is None) != (new.finish is None)
    slack = max(ETA_SLACK_SECONDS, ETA_SLACK_SHARE * max(0.0, new.finish.at - now))
    return abs(new.finish.at - old.finish.at) > slack


async def eta_of(
    store: Store,
    durations: Durations,
    backend: str,
    slots: int | None,
    job_id: int,
    *,
    now: float,
) -> Eta | None:
    """One job's Eta (None: not active). Reads the whole line: for many jobs at once, call
    `line_etas` once instead."""
    return (await line_etas(store, durations, backend, slots, now=now)).get(job_id)


def in_line(place: int) -> Notice:
    """`2nd in line`."""
    return notice("{place} in line", place=Ordinal(place))


def done_by(eta: Eta) -> Notice | None:
    """`should be done <in 3 minutes>`; None without an ETA."""
    if eta.finish is None:
        return None
    return notice("should be done {when}", when=eta.finish)


def _when(at: float | None) -> When | None:
    return None if at is None else When(at)
