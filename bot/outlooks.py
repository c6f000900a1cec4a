"""Each round, where every active job stands for its member, and whose member should be told.

Once per round (and on each wake, when the line may have moved) the line is played forward for
every active job at once (bot/queueview.py `line_etas`) and each job gets an `Outlook`: its place
in line, when it should be done and, where the service reports no progress, an estimated bar. A
member is told again only when theirs moved (`outlook_moved`: a new place, a bar step, an ETA
that moved by more than a little), so a round does not edit every message for a few seconds'
drift; how often a message is really edited is the front end's own throttle. The same line
gives when each running job of a kind with history should end (`ends`): with list, the tracker
also runs a round then (bot/poll_schedule.py `next_round_wait`).
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.durations import Durations
from bot.queueview import Eta, Outlook, line_etas, outlook_moved, outlook_of, started_at
from bot.store import Job, Store


class Outlooks:
    def __init__(self, store: Store, durations: Durations, backend: str) -> None:
        self.store = store
        self.durations = durations
        # The backend key the durations are learned under (bot/durations.py `backend_key`).
        self.backend = backend
        self._etas: dict[int, Eta] = {}
        # When each running job of a kind with history should end: its start plus the median.
        self._ends: dict[int, float] = {}
        # What each active job's member was last told.
        self._shown: dict[int, Outlook] = {}

    async def moved(
        self, jobs: Sequence[Job], *, slots: int | None, now: float, reports_progress: bool
    ) -> list[tuple[Job, Outlook]]:
        """Play the line forward for `jobs` (every active job, as the store has them now) with
        `slots` (the concurrency cap; None: no cap, nobody waits) and return those whose
        outlook moved since their member was last told, with it. Forgets the jobs no longer
        active."""
        self._etas = await line_etas(
            self.store, self.durations, self.backend, slots, now=now, jobs=jobs
        )
        self._ends = {}
        out: list[tuple[Job, Outlook]] = []
        for job in jobs:
            eta = self._etas.get(job.id)
            if eta is not None and job.state == "running" and eta.expected.source == "history":
                self._ends[job.id] = started_at(job) + eta.expected.median
            outlook = outlook_of(job, eta, reports_progress=reports_progress, now=now)
            if outlook_moved(self._shown.get(job.id), outlook, now):
                out.append((job, outlook))
        for job_id in self._shown.keys() - self._etas.keys():
            del self._shown[job_id]
        return out

    def ends(self) -> list[float]:
        """When each running job of a kind with history should end (its median after it
        started), as of the last line played forward; a catalog hint is no such promise."""
        return list(self._ends.values())

    def current(self, job: Job, *, now: float, reports_progress: bool) -> Outlook | None:
        """`job`'s outlook from the last round's line (None before the job was in one)."""
        eta = self._etas.get(job.id)
        if eta is None:
            return None
        return outlook_of(job, eta, reports_progress=reports_progress, now=now)

    def shown(self, job_id: int, outlook: Outlook) -> None:
        """`outlook` was handed to the job's member."""
        if job_id in self._etas:
            self._shown[job_id] = outlook
