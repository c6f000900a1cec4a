"""When running jobs are next read: job by job (no list), and when listed rounds come.

A GET per job per round is what a backend without list costs, and most of those reads find the
job still running: a job of a kind that took two minutes the last fifty times is not done after
ten seconds. So a job is read once early (about one interval after it left: a quick failure, a
refused prompt, is told at once), then not before its kind's lower end (`Expected.low`, the
10th percentile of what this bot saw, less half an interval; 0 without history, so a new kind is
read every round), then at every round. From there on every round reads it, so its completion
is noticed within one interval of it, as before, unless it ended before that: a job faster than
nearly all of its kind's recent ones is noticed within one interval of the lower end instead.
`python3 dev.py bench polling` measures both: the reads saved, and how many jobs were noticed
later than one interval after their end (docs/benchmarks.md).

With list, one request covers every job each round whatever their number, so nothing is gained
by leaving jobs out: the tracker asks `ReadSchedule` only for rounds that read job by job. What
a listing gains from what was learned is when rounds come (`next_round_wait`): a completion
between two rounds at the interval waits half an interval on average, and jobs of a kind end
near its median, so a round also comes when a running job is expected to end (a second after its
kind's learned median, not yet past at the last round), never closer than WAKE_FLOOR of an
interval to the one before. Rounds therefore come at most 1 / WAKE_FLOOR times an interval (four
list requests a page where rounds at the interval make one), and each job brings at most one
round of its own (its expected end): at most min(running jobs, 1 / WAKE_FLOOR - 1) extra rounds
an interval, each a list request a page. docs/benchmarks.md gives what that costs and gains.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bot.durations import Durations, Expected
from bot.queueview import started_at
from bot.store import Job

# A job is read in a round starting up to this share of an interval before its read is due:
# rounds come at the interval, but a read is noted a moment after its round began, so without
# it every other round would find the job "not quite due" and read it one interval late.
DUE_SLACK = 0.5
# After the early read, reads start this share of an interval ahead of the kind's lower end: a
# job a little faster than its kind's fastest tenth is still noticed within one interval.
LOWER_END_MARGIN = 0.5
# With list, rounds for expected ends never come closer than this share of an interval.
WAKE_FLOOR = 0.25
# A round for an expected end comes this long after it (at most WAKE_FLOOR of an interval): the
# samples behind a median come from completion stamps in whole seconds, cut down, so a job of
# median length is done up to a second after its median says.
END_SLACK = 1.0


def next_round_wait(since_last: float, interval: float, ends: Iterable[float], now: float) -> float:
    """Seconds from `now` to the next round of a tracker that lists every job, `since_last`
    seconds after the last round began: at the interval, or sooner at the soonest of `ends`
    (expected ends of running jobs, on the clock of `now`) not yet past at the last round, plus
    END_SLACK; never sooner than WAKE_FLOOR of an interval after the last round."""
    last = now - since_last
    slack = min(END_SLACK, WAKE_FLOOR * interval)
    wait = interval - since_last
    ahead = [end + slack for end in ends if end + slack > last]
    if ahead:
        wait = min(wait, max(WAKE_FLOOR * interval - since_last, min(ahead) - now))
    return max(0.0, wait)


def read_due(
    started: float,
    last_read: float | None,
    expected: Expected,
    interval: float,
    now: float,
    *,
    early_check: float | None = None,
) -> bool:
    """Whether a round at `now` reads a job that started at `started`: its early read, or an
    interval after its last one, is due (with DUE_SLACK), and, once the early read was made,
    not before its kind's lower end, less LOWER_END_MARGIN of an interval."""
    if last_read is None:
        first = started + (interval if early_check is None else early_check)
        return now + DUE_SLACK * interval >= first
    lower_end = started + expected.low - LOWER_END_MARGIN * interval
    return now + DUE_SLACK * interval >= last_read + interval and now >= lower_end


class ReadSchedule:
    def __init__(
        self, durations: Durations, backend: str, *, early_check: float | None = None
    ) -> None:
        self.durations = durations
        # The backend key (bot/durations.py `backend_key`) the durations are learned under.
        self.backend = backend
        # Seconds after a job left that its one early read is due (None: one interval; 0: the
        # first round after it left).
        self.early_check = early_check
        # When each video was last read (successfully or not).
        self._last_read: dict[str, float] = {}

    async def not_due(self, running: Sequence[Job], *, now: float, interval: float) -> set[str]:
        """The videos of `running` whose next read is not due this round. Forgets the videos
        that are no longer running."""
        skip: set[str] = set()
        current: set[str] = set()
        for job in running:
            video_id = job.api_video_id
            if video_id is None:
                continue
            current.add(video_id)
            expected = await self.durations.expected_for(self.backend, job)
            if not read_due(
                started_at(job),
                self._last_read.get(video_id),
                expected,
                interval,
                now,
                early_check=self.early_check,
            ):
                skip.add(video_id)
        for video_id in self._last_read.keys() - current:
            del self._last_read[video_id]
        return skip

    def read(self, video_id: str, at: float) -> None:
        """A read of `video_id` was made (whatever it found)."""
        self._last_read[video_id] = at
