"""Deleting a finished video at the video service for its owner, and recording that it is gone.

The rules are the core's, whatever front end asks (the Delete button today): only the member who
made the video may delete it, only where the service can delete, only a job that has a video
there. A video the service no longer knows (404) is already gone, which is what was wanted, so
it is recorded like a deletion; any other error from the service changes nothing, here or there,
and the member may try again. The store keeps when and by whom (`Job.deleted_at`, `deleted_by`),
so a second click does not ask the service again and the job's history can show it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from bot.api.client import VideosClient
from bot.api.errors import NotFoundError, VideoAPIError
from bot.notice import Notice, notice
from bot.own_job import own_job
from bot.store import Job, Store

log = logging.getLogger(__name__)

# deleted: the service deleted it now; gone: it was already gone (404, or recorded before);
# refused: not asked of the service (see the notice); failed: the service failed, nothing changed.
DeleteStatus = Literal["deleted", "gone", "refused", "failed"]

NOT_OWNER = notice("Only the member who made this video can delete it.")
CANNOT_DELETE = notice("The video service here can't delete videos.")
NO_VIDEO = notice("This job has no video to delete.")
FAILED = notice(
    "The video service could not delete the video just now; nothing was changed. "
    "Try again in a while."
)


@dataclass(frozen=True, slots=True)
class DeleteOutcome:
    """What came of a request to delete; `notice` says why not (refused or failed)."""

    status: DeleteStatus
    job: Job | None = None
    notice: Notice | None = None

    @property
    def done(self) -> bool:
        """The video is gone from the service and recorded so: take it off the message."""
        return self.status in ("deleted", "gone")


class VideoDeleter:
    def __init__(self, store: Store, client: VideosClient) -> None:
        self.store = store
        self.client = client

    async def check(self, job_id: int, by_user_id: int) -> DeleteOutcome | None:
        """The refusal `delete` would give, without asking the service (a front end can answer
        at once, before a slow call); None when the deletion may go ahead."""
        return self._refusal(await own_job(self.store, job_id, by_user_id, NOT_OWNER))

    async def delete(self, job_id: int, by_user_id: int) -> DeleteOutcome:
        """Delete job `job_id`'s video at the service for `by_user_id` and record it."""
        job = await own_job(self.store, job_id, by_user_id, NOT_OWNER)
        refused = self._refusal(job)
        if refused is not None:
            return refused
        assert isinstance(job, Job) and job.api_video_id is not None  # _refusal saw to both
        if job.deleted_at is not None:
            return DeleteOutcome("gone", job)
        status: DeleteStatus = "deleted"
        try:
            await self.client.delete(job.api_video_id)
        except NotFoundError:
            log.info("job %s: video %s was already gone", job.id, job.api_video_id)
            status = "gone"
        except VideoAPIError as exc:
            log.warning("job %s: deleting video %s failed: %s", job.id, job.api_video_id, exc)
            return DeleteOutcome("failed", job, FAILED)
        else:
            log.info("job %s: video %s deleted by its owner", job.id, job.api_video_id)
        # None: a concurrent click recorded it first; the video is gone either way.
        recorded = await self.store.record_deletion(job.id, by_user_id)
        return DeleteOutcome(status, recorded or await self.store.get_job(job.id) or job)

    def _refusal(self, job: Job | Notice) -> DeleteOutcome | None:
        if isinstance(job, Notice):
            return DeleteOutcome("refused", None, job)
        if not self.client.caps.delete:
            return DeleteOutcome("refused", job, CANNOT_DELETE)
        if job.api_video_id is None:
            return DeleteOutcome("refused", job, NO_VIDEO)
        return None
