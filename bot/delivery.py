"""Getting a finished job's result to its user exactly once, and never holding up tracking.

A delivery is claimed in the store before anything is sent and finished after, in one transaction
with the ledger's settlement. A crash in between leaves the claim, which the next start resolves by
asking the sink whether the result already arrived, so a result is never posted twice nor lost.

A delivery that fails is tried again later, with exponential back-off and a cap on attempts; the
downloaded (and fitted) file is kept between tries, so a channel that refuses the result costs one
download, not one per round. After the last try the job ends as undeliverable: the member is told
where the sink still can, the reservation is refunded, and the file is removed at its retention
time.

Progress edits go to one small task per job (the newest state wins), so a slow or failing Discord
edit concerns that job's message alone and never the tracker's round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bot.api.client import VideosClient
from bot.api.errors import NotFoundError, VideoAPIError
from bot.jobview import failure_notice
from bot.media import FITTED, THUMBNAIL, UNFIT, VIDEO, MediaFiles
from bot.notice import Notice, notice
from bot.queueview import Outlook
from bot.redact import redact
from bot.store import Intake, Job, Store
from bot.tasks import BackgroundTasks
from bot.thumbnail import make_thumbnail_async
from bot.transcode import reencode_to_fit_async

log = logging.getLogger(__name__)

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
DEFAULT_MAX_ATTEMPTS = 6
# Back-off between delivery attempts: 30 s, 1, 2, 4, 8 min ... (about 15 minutes over six tries,
# well inside the hour a service keeps a finished video).
RETRY_BASE_SECONDS = 30.0
RETRY_CAP_SECONDS = 900.0
RETENTION_SECONDS = 3600.0
# A progress edit (or the final notice) that takes longer than this is given up.
EDIT_TIMEOUT_SECONDS = 60.0
UNDELIVERABLE_CODE = "undeliverable"
UNDELIVERABLE_MESSAGE = "The video was made but could not be delivered."


@dataclass(frozen=True)
class Result:
    """What the user gets: a video (or, failing that, a thumbnail with a note), or a failure."""

    video: Path | None = None
    thumbnail: Path | None = None
    note: Notice | None = None
    failure: Notice | None = None


class DeliverySink(Protocol):
    """The outside world's side of delivery (the Discord adapter implements it)."""

    async def show_progress(self, job: Job, outlook: Outlook | None = None) -> None:
        """Show a working job's state; `outlook` (when known) its place in line, ETA and, where
        the service reports no progress, an estimated bar. Told again when these move; how often
        the message is actually edited is the sink's own throttle."""
        ...

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
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        retry_base: float = RETRY_BASE_SECONDS,
        retry_cap: float = RETRY_CAP_SECONDS,
        retention: float = RETENTION_SECONDS,
        edit_timeout: float = EDIT_TIMEOUT_SECONDS,
    ) -> None:
        self.store = store
        self.client = client
        self.sink = sink
        self.media = MediaFiles(media_dir)
        self.clock = clock
        self.max_attempts = max(1, max_attempts)
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        # How long the service keeps a finished video where it does not say (about an hour).
        self.retention = retention
        self.edit_timeout = edit_timeout
        self.tasks = BackgroundTasks()
        self._running: set[int] = set()
        # Progress edits: the newest state (and outlook) waiting per job, and the one task
        # showing them.
        self._edits: dict[int, tuple[Job, Outlook | None]] = {}
        self._editors: dict[int, asyncio.Task[None]] = {}
        # Jobs whose thumbnail could not be had: not asked for again on the next attempt.
        self._no_thumb: set[int] = set()

    # ------------------------------------------------------------------ tracker events

    async def job_changed(self, job: Job, outlook: Outlook | None = None) -> None:
        """Never waits for Discord: the edit is queued for the job's own edit task."""
        self.queue_edit(job, outlook)

    async def job_finished(self, job: Job) -> None:
        self.schedule(job)

    def queue_edit(self, job: Job, outlook: Outlook | None = None) -> None:
        if job.finished or job.id in self._running:
            return  # its result is on the way; a progress edit now could land after it
        self._edits[job.id] = (job, outlook)
        if job.id not in self._editors:
            self._editors[job.id] = self.tasks.spawn(
                self._show_edits(job.id), name=f"progress-{job.id}"
            )

    async def _show_edits(self, job_id: int) -> None:
        try:
            while (edit := self._edits.pop(job_id, None)) is not None:
                job, outlook = edit
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that
                    # arrives as the edit ends, and the loop would go on after a stop.
                    async with asyncio.timeout(self.edit_timeout):
                        await self.sink.show_progress(job, outlook)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    # Only this message missed an update; its next change tries again.
                    log.warning("progress edit for job %s failed: %s", job_id, redact(repr(exc)))
        finally:
            self._editors.pop(job_id, None)

    async def _stop_edits(self, job_id: int) -> None:
        """Drop the job's waiting edit and let one under way finish, before its result is sent
        (an edit landing after the result would overwrite it)."""
        self._edits.pop(job_id, None)
        task = self._editors.get(job_id)
        if task is not None and task is not asyncio.current_task():
            await asyncio.wait({task})

    def schedule(self, job: Job) -> None:
        if job.id not in self._running:
            self.tasks.spawn(self.deliver(job), name=f"deliver-{job.id}")

    async def resume(self, jobs: Sequence[Job] | None = None) -> None:
        """On start, and for finished jobs taken over from a process that stopped (`jobs`):
        settle interrupted deliveries, then deliver everything still pending (a restart is a
        good moment to try again, so the back-off is not waited for)."""
        if jobs is None:
            jobs = [j for j in await self.store.undelivered_jobs() if self.store.looks_after(j)]
        for job in jobs:
            try:
                if job.delivery_state == "claimed":
                    message_id = await self.sink.find_result(job)
                    if message_id is not None:
                        await self.store.finish_delivery(job.id, message_id, self.clock())
                        continue
                    await self.store.release_claim(job.id, failed=False)
                fresh = await self.store.get_job(job.id)
                if fresh is not None:
                    self.schedule(fresh)
            except Exception:
                log.exception("could not resume the delivery of job %s", job.id)

    async def sweep(self) -> None:
        """Retry deliveries whose back-off has passed, and remove kept files whose retention
        has passed (called once per tracker round)."""
        for job in await self.store.due_deliveries(self.clock()):
            if self.store.looks_after(job):
                self.schedule(job)
        for job in await self.store.jobs_with_local_files():
            try:
                await self._remove_if_expired(job)
            except Exception:
                log.exception("could not remove the kept files of job %s", job.id)

    async def _remove_if_expired(self, job: Job) -> None:
        if job.delivery_state != "done" or job.id in self._running:
            return
        if self.clock() < self._retention_end(job):
            return
        if (
            self.store.shared
            and job.local_path
            and not await asyncio.to_thread(Path(job.local_path).exists)
        ):
            # Kept in another process's data folder (another host): its sweep removes them.
            return
        await asyncio.to_thread(self._cleanup, job.id)
        await self.store.set_local_path(job.id, None)

    def _retention_end(self, job: Job) -> float:
        if job.expires_at is not None:
            return job.expires_at
        return (job.completed_at or job.updated_at) + self.retention

    # ------------------------------------------------------------------ one delivery

    async def deliver(self, job: Job) -> None:
        if job.id in self._running:
            return
        self._running.add(job.id)
        try:
            await self._stop_edits(job.id)
            if not await self.store.claim_delivery(job.id, self.clock()):
                return
            try:
                result = await self._prepare(job)
                current = await self.store.get_job(job.id) or job
                message_id = await self.sink.send_result(current, result)
            except asyncio.CancelledError:
                await self.store.release_claim(job.id, failed=False)
                raise
            except Exception as exc:
                try:
                    await self._attempt_failed(job.id, exc)
                except Exception:
                    log.exception("job %s: could not record a failed delivery", job.id)
                    with contextlib.suppress(Exception):
                        await self.store.release_claim(job.id, self.clock() + self.retry_base)
                return
            await self.store.finish_delivery(job.id, message_id, self.clock())
            await asyncio.to_thread(self._cleanup, job.id)
        finally:
            self._running.discard(job.id)

    def retry_delay(self, failures: int) -> float:
        """Seconds before the next try after `failures` failed attempts."""
        return float(min(self.retry_cap, self.retry_base * 2.0 ** max(0, failures - 1)))

    async def _attempt_failed(self, job_id: int, exc: Exception) -> None:
        fresh = await self.store.get_job(job_id)
        failures = (fresh.delivery_attempts if fresh is not None else 0) + 1
        reason = redact(exc.message if isinstance(exc, VideoAPIError) else repr(exc))
        if fresh is None or failures >= self.max_attempts:
            log.warning(
                "delivery of job %s failed %d times (last: %s); giving up", job_id, failures, reason
            )
            await self._give_up(job_id, fresh)
            return
        delay = self.retry_delay(failures)
        log.warning(
            "delivery of job %s failed (try %d of %d: %s); next try in %.0f s",
            job_id,
            failures,
            self.max_attempts,
            reason,
            delay,
            exc_info=not isinstance(exc, VideoAPIError),
        )
        await self.store.release_claim(job_id, self.clock() + delay)

    async def _give_up(self, job_id: int, job: Job | None) -> None:
        """The last try failed: the job ends as undeliverable. Still claimed here, so nothing
        else delivers it meanwhile; the refund is recorded before the member is told."""
        message_id: int | None = None
        if job is not None and job.state == "succeeded":
            failed = await self.store.expire_undelivered(
                job_id, UNDELIVERABLE_CODE, UNDELIVERABLE_MESSAGE
            )
            if await asyncio.to_thread(self.media.video(job_id).exists):
                # Kept until the service's own copy expires, then removed by the sweep.
                await self.store.set_local_path(job_id, str(self.media.video(job_id)))
            notice = failed or await self.store.get_job(job_id)
            if notice is not None:
                # One plain notice without files: the sink's usual fallbacks (the reply, the
                # channel, a DM) may still take a message that the upload could not.
                try:
                    async with asyncio.timeout(self.edit_timeout):
                        message_id = await self.sink.send_result(
                            notice,
                            Result(failure=failure_notice(notice.error_code, notice.error_message)),
                        )
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("job %s: could not tell its member: %s", job_id, redact(repr(exc)))
        await self.store.finish_delivery(job_id, message_id, self.clock())
        if job is None or job.state != "succeeded":
            await asyncio.to_thread(self._cleanup, job_id)

    async def _prepare(self, job: Job) -> Result:
        if job.state == "failed":
            return Result(failure=failure_notice(job.error_code, job.error_message))
        assert job.api_video_id is not None
        video = self.media.video(job.id)
        # A file from an earlier attempt is complete (downloads are renamed into place only
        # when whole) and is used again instead of being fetched again.
        if not await asyncio.to_thread(video.exists):
            try:
                await self.client.download(job.api_video_id, video)
            except NotFoundError:
                # The assets outlived their retention before we could fetch them: tell and refund.
                await self.store.expire_undelivered(job.id)
                return Result(
                    failure=notice(
                        "The video was finished but expired before it could be fetched. "
                        "Nothing was charged."
                    )
                )
        thumb = await self._thumbnail(job, video)
        limit = job.upload_limit or DEFAULT_UPLOAD_LIMIT
        # The limit is per file: a preview larger than it (a big webp beside a tightly fitted
        # video) would get the whole message refused, so it is left out.
        if thumb is not None and (await asyncio.to_thread(thumb.stat)).st_size > limit:
            thumb = None
        if (await asyncio.to_thread(video.stat)).st_size <= limit:
            return Result(video=video, thumbnail=thumb)
        fitted = await self._fitted(job, video, limit)
        if fitted is not None:
            return Result(
                video=fitted,
                thumbnail=thumb,
                note=notice("Re-encoded to fit this channel's upload limit."),
            )
        return Result(
            thumbnail=thumb,
            note=notice(
                "The video is larger than this channel's upload limit ({megabytes} MB) even "
                "after re-encoding.",
                megabytes=round(limit / 1_048_576),
            ),
        )

    async def _thumbnail(self, job: Job, video: Path) -> Path | None:
        assert job.api_video_id is not None
        thumb = self.media.video(job.id, THUMBNAIL)
        if await asyncio.to_thread(thumb.exists):
            return thumb
        if job.id in self._no_thumb:
            return None
        if self.client.caps.variants:
            try:
                # The client keeps only a body typed and starting like an image: a gateway that
                # drops `variant` and answers the mp4 itself is refused there.
                await self.client.download(job.api_video_id, thumb, variant="thumbnail")
            except VideoAPIError as exc:
                log.info("job %s: no thumbnail variant (%s)", job.id, redact(exc.message))
            else:
                return thumb
        # No usable thumbnail from the service: made here from the video's first frame.
        if await make_thumbnail_async(video, thumb):
            return thumb
        self._no_thumb.add(job.id)
        return None

    async def _fitted(self, job: Job, video: Path, limit: int) -> Path | None:
        """The video re-encoded under `limit`, from an earlier attempt when there was one."""
        fitted = self.media.video(job.id, FITTED)
        unfit = self.media.video(job.id, UNFIT)
        if await asyncio.to_thread(fitted.exists):
            return fitted
        if await asyncio.to_thread(unfit.exists):
            return None
        result = await reencode_to_fit_async(video, fitted, limit)
        if result is None:
            # Re-encoding takes seconds of CPU: remember that it cannot fit for the next try.
            await asyncio.to_thread(unfit.touch)
        return result

    async def refetch(self, job: Job) -> Path | None:
        """A delivered job's video again, while the API still has it (None once it is gone).
        The caller passes the path to `discard` when done with it."""
        if job.state != "succeeded" or job.api_video_id is None:
            return None
        if job.expires_at is not None and job.expires_at <= self.clock():
            return None
        path = self.media.video(job.id, f"-again-{secrets.token_hex(4)}{VIDEO}")
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

    def _cleanup(self, job_id: int) -> None:
        self._no_thumb.discard(job_id)
        self.media.remove_job(job_id)
