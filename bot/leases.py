"""This process's hold on the jobs it looks after, when several bot processes share one
database (PostgreSQL; see bot/store/leases.py for the rule).

Every third of a lease period the keeper renews this process's leases and takes the jobs no
live process holds: those a stopped process left (released at a clean stop, expired after a
crash). A job taken over is carried on from where the store says it is: a delivery the dead
process had claimed is looked for in the channel before anything is sent again (the
deliverer's resume), a create whose outcome is unknown is looked for before it is ever re-sent
(the tracker's rounds), and a request it had acknowledged but not recorded is answered. The
tracker and the deliverer only act on jobs this process holds (`Store.looks_after`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bot.delivery import Deliverer
from bot.store import Intake, Job, Store
from bot.store.leases import Claimed

log = logging.getLogger(__name__)


class LeaseKeeper:
    def __init__(
        self,
        store: Store,
        deliverer: Deliverer,
        *,
        wake: Callable[[], None],
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.store = store
        self.deliverer = deliverer
        # Wakes the tracker, so jobs taken over are looked at without waiting for a round.
        self.wake = wake
        self.sleep = sleep
        self._task: asyncio.Task[None] | None = None
        self._carrying: asyncio.Task[Any] | None = None
        # Jobs taken over and not yet resumed (the renewals add, the takeover work drains).
        self._taken: list[Job] = []

    @property
    def period(self) -> float:
        # Renewed three times a lease: two renewals may fail (a database hiccup) before
        # another process could take the jobs.
        return self.store.lease_seconds / 3

    async def claim_now(self) -> None:
        """Renew, take what is free, and carry on with what was taken (at start: before the
        tracker begins, so this waits for that work)."""
        self._taken.extend((await self._renew()).taken)
        await self._carry_on()

    async def _renew(self) -> Claimed:
        claimed = await self.store.claim_leases()
        if claimed.taken:
            log.info("took over %d job(s) no live process was looking after", len(claimed.taken))
        return claimed

    async def _carry_on(self) -> None:
        """Resume what was taken over (until nothing more is waiting), answer the requests a
        dead process left, forget the images of jobs sent."""
        while self._taken:
            taken, self._taken = self._taken, []
            await self.deliverer.resume(_finished(taken))
            self.wake()
        for intake in await self.store.claim_orphan_intakes():
            await self._answer(intake)
        if self.store.shared:
            await self.store.drop_sent_references()

    async def _answer(self, intake: Intake) -> None:
        # Told first, forgotten after: telling twice only edits the same reply again.
        try:
            await self.deliverer.sink.answer_unrecorded(intake)
            await self.store.drop_intake(intake.interaction_id)
        except Exception:
            log.exception("could not answer request %s", intake.interaction_id)

    def start(self) -> None:
        # On SQLite this process is the only one: everything was taken by `claim_now` at start,
        # and whatever it records later is its own.
        if self._task is None and self.store.shared:
            self._task = asyncio.create_task(self._run(), name="lease keeper")
            self._task.add_done_callback(_log_end)

    async def stop(self) -> None:
        """Stop renewing and hand this process's jobs back, so another process takes them at
        its next claim (call once nothing else works on them)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            released = await self.store.release_leases()
        except Exception:
            log.exception("could not hand back this process's jobs; they pass on at expiry")
        else:
            if released and self.store.shared:
                log.info("handed %d job(s) back to the other processes", released)

    async def _run(self) -> None:
        while True:
            await self.sleep(self.period)
            try:
                self._taken.extend((await self._renew()).taken)
            except Exception:
                # The next renewal comes a third of a lease later; two may fail in a row.
                log.exception("could not renew this process's leases")
                continue
            # What follows a takeover (looking for results in channels, answering requests)
            # may wait on Discord: never in the way of the next renewal, or this live process
            # would lose its own jobs to another.
            if self._carrying is None or self._carrying.done():
                self._carrying = self.deliverer.tasks.spawn(self._carry_on(), name="takeover")


def _finished(jobs: Sequence[Job]) -> list[Job]:
    return [j for j in jobs if j.state in ("succeeded", "failed") and j.delivery_state != "done"]


def _log_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the lease keeper stopped", exc_info=task.exception())
