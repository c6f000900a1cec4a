"""Getting a finished job's result to its user exactly once.

A delivery is claimed in the store before anything is sent and finished after, in one transaction
with the ledger's settlement. A crash in between leaves the claim, which the next start resolves by
asking the sink whether the result already arrived, so a result is never posted twice nor lost.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bot.api.client import VideosClient
from bot.api.errors import NotFoundError, VideoAPIError
from bot.jobview import failure_text
from bot.store import Intake, Job, Store
from bot.tasks import BackgroundTasks
from bot.transcode import reencode_to_fit_async

log = logging.getLogger(__name__)

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024


@dataclass(frozen=True)
class Result:
    """What the user gets: a video (or, failing that, a thumbnail with a note), or a failure."""

    video: Path | None = None
    thumbnail: Path | None = None
    note: str | None = None
    failure: str | None = None


class DeliverySink(Protocol):
    """The outside world's side of delivery (the Discord adapter implements it)."""

    async def show_progress(self, job: Job) -> None: ...

    async def send_result(self, job: Job, result: Result) -> int | None:
        """Post the result; return the message id it is in."""
        ...

    async def find_result(self, job: Job) -> int | None:
        """After a crash mid-delivery: the message already carrying the result, if any."""
        ...

    async def answer_unrecorded(self, intake: Intake) -> bool:
        """After a stop between acknowledging a request and recording it: tell the member."""
        ...


class Deliverer:
    def __init__(
        self,
        store: Store,
        client: VideosClient,
        sink: DeliverySink,
        media_dir: Path,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.client = client
        self.sink = sink
        self.media_dir = media_dir
        self.clock = clock
        self.tasks = BackgroundTasks()
        self._running: set[int] = set()

    # ------------------------------------------------------------------ tracker events

    async def job_changed(self, job: Job) -> None:
        await self.sink.show_progress(job)

    async def job_finished(self, job: Job) -> None:
        self.schedule(job)

    def schedule(self, job: Job) -> None:
        if job.id not in self._running:
            self.tasks.spawn(self.deliver(job), name=f"deliver-{job.id}")

    async def resume(self) -> None:
        """On start: settle interrupted deliveries, then deliver everything still pending."""
        for job in await self.store.undelivered_jobs():
            if job.delivery_state == "claimed":
                message_id = await self.sink.find_result(job)
                if message_id is not None:
                    await self.store.finish_delivery(job.id, message_id, self.clock())
                    continue
                await self.store.release_claim(job.id)
            fresh = await self.store.get_job(job.id)
            if fresh is not None:
                self.schedule(fresh)

    async def sweep(self) -> None:
        """Retry deliveries that failed earlier (called once per tracker round)."""
        for job in await self.store.undelivered_jobs():
            if job.delivery_state == "pending":
                self.schedule(job)

    # ------------------------------------------------------------------ one delivery

    async def deliver(self, job: Job) -> None:
        if job.id in self._running:
            return
        self._running.add(job.id)
        try:
            if not await self.store.claim_delivery(job.id, self.clock()):
                return
            try:
                result = await self._prepare(job)
                current = await self.store.get_job(job.id) or job
                message_id = await self.sink.send_result(current, result)
            except asyncio.CancelledError:
                await self.store.release_claim(job.id)
                raise
            except Exception:
                await self.store.release_claim(job.id)
                log.exception("delivery of job %s failed; it will be retried", job.id)
                return
            await self.store.finish_delivery(job.id, message_id, self.clock())
            await asyncio.to_thread(self._cleanup, job.id)
        finally:
            self._running.discard(job.id)

    async def _prepare(self, job: Job) -> Result:
        if job.state == "failed":
            return Result(failure=failure_text(job.error_code, job.error_message))
        assert job.api_video_id is not None
        video = self._path(job.id, ".mp4")
        thumb: Path | None = self._path(job.id, ".webp")
        try:
            await self.client.download(job.api_video_id, video)
        except NotFoundError:
            # The assets outlived their retention before we could fetch them: tell and refund.
            await self.store.expire_undelivered(job.id)
            return Result(
                failure="The video was finished but expired before it could be fetched. "
                "Nothing was charged."
            )
        if self.client.caps.variants:
            try:
                assert thumb is not None
                await self.client.download(job.api_video_id, thumb, variant="thumbnail")
            except VideoAPIError as exc:
                log.info("job %s: no thumbnail (%s)", job.id, exc)
                thumb = None
        else:
            thumb = None
        limit = job.upload_limit or DEFAULT_UPLOAD_LIMIT
        if video.stat().st_size <= limit:
            return Result(video=video, thumbnail=thumb)
        fitted = await reencode_to_fit_async(video, self._path(job.id, "-fit.mp4"), limit)
        if fitted is not None:
            return Result(
                video=fitted,
                thumbnail=thumb,
                note="Re-encoded to fit this channel's upload limit.",
            )
        if thumb is not None and thumb.stat().st_size > limit:
            thumb = None  # even the preview would be refused
        return Result(
            thumbnail=thumb,
            note=f"The video is larger than this channel's upload limit "
            f"({limit / 1_048_576:.0f} MB) even after re-encoding.",
        )

    async def refetch(self, job: Job) -> Path | None:
        """A delivered job's video again, while the API still has it (None once it is gone).
        The caller passes the path to `discard` when done with it."""
        if job.state != "succeeded" or job.api_video_id is None:
            return None
        if job.expires_at is not None and job.expires_at <= self.clock():
            return None
        path = self._path(job.id, f"-again-{secrets.token_hex(4)}.mp4")
        try:
            await self.client.download(job.api_video_id, path)
        except VideoAPIError as exc:
            log.info("job %s: video no longer available (%s)", job.id, exc)
            return None
        limit = job.upload_limit or DEFAULT_UPLOAD_LIMIT
        if path.stat().st_size <= limit:
            return path
        fitted = await reencode_to_fit_async(path, path.with_suffix(".fit.mp4"), limit)
        await self.discard(path)
        return fitted

    async def discard(self, path: Path) -> None:
        await asyncio.to_thread(path.unlink, missing_ok=True)

    def _path(self, job_id: int, suffix: str) -> Path:
        # Paths are built from our own job id only; nothing from the API or Discord picks them.
        return self.media_dir / "videos" / f"job-{job_id}{suffix}"

    def _cleanup(self, job_id: int) -> None:
        for suffix in (".mp4", "-fit.mp4", ".webp"):
            self._path(job_id, suffix).unlink(missing_ok=True)
        for ext in (".png", ".jpg", ".webp"):
            (self.media_dir / "references" / f"job-{job_id}{ext}").unlink(missing_ok=True)
