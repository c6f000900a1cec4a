"""Cancelling a job for its member, whatever front end asks (a Cancel button).

Only the member who started the job may cancel it; anyone else is refused and nothing changes.

- Not yet sent (waiting for a slot, or its create has not left): nothing is ever sent; the job
  ends cancelled and its reservation is refunded, in one transaction that holds only while the
  create has still not left (the sender's claim of the send fails after it).
- Being sent (the create left, its answer has not come): the job has no video to stop yet; the
  member is asked to try again in a moment and nothing changes.
- At the service: its status is read once. Completed: it is delivered as usual and nothing
  changes. Otherwise it is deleted there where the profile can (vLLM-Omni stops a running job on
  DELETE; 404 means it is gone, 409 that it is being stopped: both are what was wanted), then
  ended cancelled and refunded in one transaction that holds only while the job is still running
  at that video. If the tracker moved it meanwhile the job is read again: a success is delivered
  as usual, a failure was refunded by whoever failed it. (A job the service completes between
  the read and the DELETE may lose its video to the DELETE; its delivery then finds it gone and
  refunds it, as for any video that expired before delivery.)
- The service could not be asked (an outage, a 5xx, a 429, an answer the bot cannot use):
  nothing changes, the job goes on and is charged only if delivered; the member may try again.
  Ending it here while the service may still be making it would leave the owner paying for a
  video nobody gets, with no member's budget counting it.
- The service cannot stop it (a profile without delete, or a DELETE refused outright): the job
  ends cancelled here and is refunded, and the member is told the service may still finish it.
  A front end may prefer not to offer Cancel then (`cancellable`): on a paid service that cannot
  stop jobs, every such cancel is a video the owner pays for and no budget counts.

A cancelled job is 'failed' with code 'cancelled' and `cancelled_by` set (bot/store): it leaves
the active states, so the tracker stops following it, and `/videos` lists it. `on_cancelled`,
when given, is told of each job this module ended (the delivery's `job_finished`, so the job's
message says so and its files go).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from bot.api.client import VideosClient
from bot.api.errors import (
    BadRequestError,
    NotFoundError,
    RateLimitError,
    VideoAPIError,
    is_outage,
)
from bot.api.models import Phase
from bot.api.profiles import Capabilities
from bot.notice import Notice, notice
from bot.own_job import own_job
from bot.store import Job, Store

log = logging.getLogger(__name__)

# cancelled: the job ended cancelled (now, or before); refused: not the member's to cancel, or
# unknown; finished: it had already ended (a success is delivered as usual); failed: it could not
# be cancelled just now and goes on (see the notice).
CancelStatus = Literal["cancelled", "refused", "finished", "failed"]

NOT_OWNER = notice("Only the member who started this video can cancel it.")
CANCELLED_UNSENT = notice("Cancelled before it reached the video service. Nothing was charged.")
CANCELLED_STOPPED = notice("Cancelled: it was stopped at the video service. Nothing was charged.")
CANCELLED_UNSTOPPABLE = notice(
    "Cancelled, and nothing was charged to you, but the video service here can't stop a job "
    "it has started, so it may still finish it there."
)
ALREADY_CANCELLED = notice("It was already cancelled.")
ALREADY_DONE = notice("It had already finished: the video is delivered as usual.")
ALREADY_ENDED = notice("It had already ended.")
BEING_SENT = notice(
    "It is being sent to the video service right now, so there is nothing to stop yet. "
    "Try again in a moment."
)
NOT_REACHED = notice(
    "The video service could not be asked to stop it just now, so it goes on. "
    "Try again in a moment."
)

# What the job keeps as its failure message (the member's own words are in the notice).
CANCELLED_MESSAGE = "Cancelled by its member."
UNSTOPPABLE_MESSAGE = "Cancelled by its member; the video service may still finish it."


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    """What came of a Cancel: `notice` is for the member; `job` the job as it now stands (None
    when refused); `stopped` whether the service stopped it, or had nothing to stop."""

    status: CancelStatus
    notice: Notice
    job: Job | None = None
    stopped: bool = True


def cancellable(job: Job, caps: Capabilities) -> bool:
    """Whether Cancel is worth offering on `job`'s message: while it waits or is being sent,
    and at the service only where the service can stop it (see the module's text)."""
    if not job.active:
        return False
    return job.state != "running" or caps.delete


def _unsent(job: Job) -> bool:
    return job.state == "queued_local" or (
        job.state == "creating" and job.create_attempted_at is None
    )


def _transient(exc: VideoAPIError) -> bool:
    """An error after which the same request may well succeed soon."""
    if is_outage(exc) or isinstance(exc, RateLimitError):
        return True
    # 408 and the like, and anything the client could not read (a redirect, an odd body).
    return exc.status is None or not 400 <= exc.status < 500 or exc.status == 408


class JobCanceller:
    def __init__(
        self,
        store: Store,
        client: VideosClient,
        *,
        on_cancelled: Callable[[Job], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.on_cancelled = on_cancelled

    async def check(self, job_id: int, by_user_id: int) -> CancelOutcome | None:
        """The refusal `cancel` would give, without asking the service (a front end can answer
        at once, before a slow call); None when the cancel may go ahead."""
        job = await own_job(self.store, job_id, by_user_id, NOT_OWNER)
        return CancelOutcome("refused", job) if isinstance(job, Notice) else None

    async def cancel(self, job_id: int, by_user_id: int) -> CancelOutcome:
        """Cancel job `job_id` for `by_user_id` (see the module's text)."""
        job = await own_job(self.store, job_id, by_user_id, NOT_OWNER)
        if isinstance(job, Notice):
            return CancelOutcome("refused", job)
        if _unsent(job):
            done = await self.store.cancel_job(
                job.id, by_user_id, video_id=None, message=CANCELLED_MESSAGE
            )
            if done is not None:
                log.info("job %s: cancelled by its member before it was sent", job.id)
                return await self._ended(done, CANCELLED_UNSENT)
            # Sent or ended meanwhile: judged as it now is.
            job = await self.store.get_job(job.id) or job
        if not job.active:
            return _already(job)
        if job.state != "running" or job.api_video_id is None:
            return CancelOutcome("failed", BEING_SENT, job)
        return await self._at_service(job, job.api_video_id, by_user_id)

    async def _at_service(self, job: Job, video_id: str, by_user_id: int) -> CancelOutcome:
        try:
            video = await self.client.retrieve(video_id)
        except NotFoundError:
            video = None  # gone there already: nothing to stop
        except VideoAPIError as exc:
            log.info("job %s: status not read for its cancel: %s", job.id, exc)
            return CancelOutcome("failed", NOT_REACHED, job)
        if video is not None and video.phase is Phase.COMPLETED:
            # Left to the tracker, which delivers it as usual.
            return CancelOutcome("finished", ALREADY_DONE, job)
        # Ended there already (gone, failed): nothing to stop.
        stopped: bool | None = True
        if video is not None and video.phase is not Phase.FAILED:
            stopped = await self._stop(job, video_id)
        if stopped is None:
            return CancelOutcome("failed", NOT_REACHED, job)
        done = await self.store.cancel_job(
            job.id,
            by_user_id,
            video_id=video_id,
            message=CANCELLED_MESSAGE if stopped else UNSTOPPABLE_MESSAGE,
        )
        said = CANCELLED_STOPPED if stopped else CANCELLED_UNSTOPPABLE
        if done is not None:
            log.info("job %s: cancelled by its member (stopped there: %s)", job.id, stopped)
            return await self._ended(done, said, stopped=stopped)
        fresh = await self.store.get_job(job.id) or job
        if fresh.state == "failed" and not fresh.cancelled:
            # The tracker saw the stop first and ended (and refunded) it: cancelled all the same.
            return CancelOutcome("cancelled", said, fresh, stopped)
        if not fresh.active:
            return _already(fresh)
        return CancelOutcome("failed", NOT_REACHED, fresh)

    async def _stop(self, job: Job, video_id: str) -> bool | None:
        """Ask the service to stop the job: True when it did (or it is gone or being stopped),
        False when it cannot, None when it could not be asked just now."""
        if not self.client.caps.delete:
            return False
        try:
            await self.client.delete(video_id)
        except NotFoundError:
            return True
        except BadRequestError as exc:
            if exc.status == 409:  # vLLM-Omni: its cancellation is under way
                return True
            log.warning("job %s: the service refused to stop video %s: %s", job.id, video_id, exc)
            return False
        except VideoAPIError as exc:
            if _transient(exc):
                log.info("job %s: stopping video %s failed for now: %s", job.id, video_id, exc)
                return None
            log.warning("job %s: the service refused to stop video %s: %s", job.id, video_id, exc)
            return False
        return True

    async def _ended(self, job: Job, said: Notice, *, stopped: bool = True) -> CancelOutcome:
        if self.on_cancelled is not None:
            try:
                await self.on_cancelled(job)
            except Exception:
                log.exception("job %s: its cancel could not be shown", job.id)
        return CancelOutcome("cancelled", said, job, stopped)


def _already(job: Job) -> CancelOutcome:
    if job.cancelled:
        return CancelOutcome("cancelled", ALREADY_CANCELLED, job)
    if job.state == "succeeded":
        return CancelOutcome("finished", ALREADY_DONE, job)
    return CancelOutcome("finished", ALREADY_ENDED, job)
