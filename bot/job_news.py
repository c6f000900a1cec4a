"""Applying what one round read of one running job: done, failed, gone, moved on, or past its
deadline.

Whatever one job's answer is (an error, a body that does not parse, a value out of range) concerns
that job alone (`contained`): the round goes on for the others, and the job's deadline applies
whether or not its status could be read. A job ended meanwhile by another path (its member's
Cancel) is left alone, quietly.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from bot.api.client import VideosClient
from bot.api.errors import NotFoundError, VideoAPIError
from bot.api.models import Phase, micros_of_dollars
from bot.jobview import SERVICE_CANCELLED_CODE
from bot.redact import redact
from bot.round_stats import Outcome, RoundStats, Unread, counted, said
from bot.store import InvalidTransition, Job, Store

log = logging.getLogger(__name__)

# Timestamps a server may report are taken only within this distance of now.
_SANE_SECONDS = 10 * 365 * 86_400

DEADLINE_MESSAGE = "The video took too long and was given up."


class TrackerSide(Protocol):
    """What applying news needs of the tracker that owns it."""

    async def finished(self, job: Job | None, stats: RoundStats) -> None: ...

    async def tell_changed(self, job: Job) -> None: ...

    def past_deadline(self, job: Job, now: float | None = None) -> bool: ...


class JobNews:
    def __init__(
        self,
        store: Store,
        client: VideosClient,
        tracker: TrackerSide,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.client = client
        self.tracker = tracker
        self.clock = clock

    async def contained(self, job: Job, work: Awaitable[None], stats: RoundStats) -> None:
        """Run one job's step; whatever it raises concerns that job alone. Its deadline still
        applies, so a job that can never be applied ends and is refunded in time."""
        try:
            await work
        except asyncio.CancelledError:
            raise
        except InvalidTransition as exc:
            # Ended meanwhile by another path (its member's Cancel, a delete): nothing to do.
            if not await self._still_active(job.id):
                log.info("job %s: ended meanwhile (%s); left alone", job.id, exc)
                return
            await self._failed_step(job, stats)
        except Exception:
            await self._failed_step(job, stats)

    async def _still_active(self, job_id: int) -> bool:
        try:
            fresh = await self.store.get_job(job_id)
        except Exception:
            return True
        return fresh is not None and fresh.active

    async def _failed_step(self, job: Job, stats: RoundStats) -> None:
        """A job's step raised (called while it is handled): logged, and its deadline applies
        all the same."""
        stats.errors += 1
        log.exception("job %s: this round's news could not be applied; next round again", job.id)
        if self.tracker.past_deadline(job):
            try:
                done = await self.store.mark_failed(job.id, "deadline", DEADLINE_MESSAGE)
                await self.tracker.finished(done, stats)
            except Exception:
                log.exception("job %s: could not be failed at its deadline", job.id)

    async def apply(self, job: Job, outcome: Outcome, stats: RoundStats) -> None:
        now = self.clock()
        if isinstance(outcome, VideoAPIError | Unread):
            # Nothing usable about this job this round: only its deadline applies.
            if isinstance(outcome, VideoAPIError):
                stats.errors += 1
                log.info("job %s: status not read this round: %s", job.id, said(outcome))
            if self.tracker.past_deadline(job):
                await self.abandon(job, stats)
            return
        if outcome is None:
            done = await self.store.mark_failed(
                job.id, "not_found", "The video service no longer knows this video."
            )
            await self.tracker.finished(done, stats)
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
            await self.tracker.finished(done, stats)
        elif video.phase is Phase.FAILED:
            error = video.error
            code = error.code if error is not None and error.code not in (None, "") else None
            message = error.message if error is not None and error.message else None
            if code is None and video.status.lower() in ("cancelled", "canceled"):
                # Not the member's Cancel (that one is `cancelled`, with who): said apart.
                code = SERVICE_CANCELLED_CODE
            done = await self.store.mark_failed(
                job.id,
                str(code) if code is not None else video.status,
                message or _status_reason(video.status),
            )
            await self.tracker.finished(done, stats)
        elif self.tracker.past_deadline(job, now):
            await self.abandon(job, stats)
        # Unchanged since the round read the job: nothing to write (most jobs, most rounds).
        elif (video.status, video.progress) != (job.api_status, job.progress) and (
            await self.store.update_progress(job.id, video.status, video.progress)
        ):
            stats.changed += 1
            updated = await self.store.get_job(job.id)
            if updated is not None:
                await self.tracker.tell_changed(updated)

    async def abandon(self, job: Job, stats: RoundStats) -> None:
        """A job past its deadline: deleted at the service where it can be (so the owner stops
        paying for it), then failed and refunded. A failed delete is logged; the refund
        happens all the same."""
        if job.api_video_id is not None and self.client.caps.delete:
            try:
                await counted(stats, self.client.delete(job.api_video_id))
            except NotFoundError:
                pass
            except VideoAPIError as exc:
                log.warning(
                    "job %s: could not delete its video at the service: %s", job.id, said(exc)
                )
        done = await self.store.mark_failed(job.id, "deadline", DEADLINE_MESSAGE)
        await self.tracker.finished(done, stats)


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
