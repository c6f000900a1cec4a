"""Sending a job's request to the video service, at most once.

The time of the attempt is written before the request leaves, so a crash at any point leaves a
record the tracker can finish: never sent -> send it; sent with unknown outcome -> find it among
recent videos. A job is sent only when it has never been sent and no send of it is under way in
this process; the outcome is left in the store and returned, so the caller (the tracker) can
react: look for a job whose answer was lost, show the service as down or up again.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bot.api.client import VideosClient
from bot.api.errors import (
    APIConnectionError,
    BadRequestError,
    CreateOutcomeUnknown,
    VideoAPIError,
    describe_error,
)
from bot.api.models import CreateVideo, Video
from bot.media import MediaFiles
from bot.redact import redact
from bot.store import InvalidTransition, Job, Store

log = logging.getLogger(__name__)

NO_LIST_MESSAGE = "The video service did not confirm the request; nothing was charged to you."


class Sent(enum.Enum):
    """What came of one send."""

    # Not sent: sent before (or being sent) by another path, or failed before sending.
    SKIPPED = "skipped"
    # The service started the job; its video is attached.
    STARTED = "started"
    # The answer was lost: the job stays in 'creating' with its attempt time, to be looked for.
    UNKNOWN = "unknown"
    # Nothing reached the service: the job waits for it, never sent.
    UNREACHABLE = "unreachable"
    # The service certainly started nothing; the job is failed and refunded.
    FAILED = "failed"


class Sender:
    def __init__(
        self,
        store: Store,
        client: VideosClient,
        media_dir: Path,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.client = client
        self.media = MediaFiles(media_dir)
        self.clock = clock
        # Jobs whose send is under way in this process: nobody else sends them, and the
        # tracker leaves them alone.
        self.in_flight: set[int] = set()

    async def send(self, job: Job) -> Sent:
        """Send the create (or the remix, edit or extension) for a job that has never been sent;
        leaves the outcome in the store."""
        # Checked and marked with no await in between: the tracker and the queue may both try
        # to send the same job, and only one of them may.
        if job.create_attempted_at is not None or job.id in self.in_flight:
            return Sent.SKIPPED
        self.in_flight.add(job.id)
        try:
            return await self._send(job)
        finally:
            self.in_flight.discard(job.id)

    async def _send(self, job: Job) -> Sent:
        start = await self._starter(job)
        if start is None:
            return Sent.FAILED
        try:
            claimed = await self.store.mark_create_attempted(job.id, self.clock())
        except InvalidTransition:
            claimed = False
        if not claimed:
            # Sent already (by another path, or before a restart): never a second request.
            return Sent.SKIPPED
        try:
            video = await start()
        except CreateOutcomeUnknown as exc:
            log.warning("job %s: create outcome unknown (%s)", job.id, describe_error(exc))
            status = exc.cause.status
            if status is not None and 200 <= status < 300:
                # A "yes" the bot cannot use (an unsafe id, a body that does not parse): the
                # service made a job, so it is looked for but never sent again.
                await self.store.mark_create_answered(job.id)
            if not self.client.caps.list:
                # Nothing can tell whether the service started a job: the member is told at
                # once, and refunded.
                await self.store.mark_failed(job.id, "create_unconfirmed", NO_LIST_MESSAGE)
                return Sent.FAILED
            # Left in 'creating' with its attempt time: the tracker looks for it at once, sends
            # it again once shown not to have started, or adopts it when found.
            return Sent.UNKNOWN
        except APIConnectionError as exc:
            # The client lets through only connections that carried nothing (refused, name not
            # resolved): no job was started, so the request waits for the service like the jobs
            # already there, and the tracker sends it once it answers.
            log.warning(
                "job %s: video service unreachable (%s); waiting", job.id, describe_error(exc)
            )
            await self.store.release_create_attempt(job.id)
            return Sent.UNREACHABLE
        except BadRequestError as exc:
            # A 400's text (validation, moderation) is what the member can act on; it is kept
            # only in the bot's wording (redacted), never raw.
            await self.store.mark_failed(
                job.id, redact(exc.code or "bad_request", 64), describe_error(exc)
            )
            return Sent.FAILED
        except VideoAPIError as exc:
            # Every other error here is one where the server certainly did not start a job
            # (ambiguous ones became CreateOutcomeUnknown), so refunding is safe.
            await self.store.mark_failed(
                job.id, redact(exc.code or type(exc).__name__, 64), describe_error(exc)
            )
            return Sent.FAILED
        await self.store.attach_video(job.id, video.id, video.status, video.progress)
        return Sent.STARTED

    async def _starter(self, job: Job) -> Callable[[], Awaitable[Video]] | None:
        """The API call that starts `job`, or None after failing the job (and refunding it)
        when what it needs is gone. Nothing here has reached the API yet."""
        if job.kind == "create":
            reference = await asyncio.to_thread(self.media.load_reference, job.id)
            if job.has_reference and reference is None and self.store.shared:
                # Taken from the process that took the request: its copy in the database.
                kept = await self.store.kept_reference(job.id)
                reference = None if kept is None else self.media.reference_image(*kept)
            if job.has_reference and reference is None:
                await self.store.mark_failed(
                    job.id, "reference_lost", "The reference image was lost before sending."
                )
                return None
            request = CreateVideo(
                prompt=job.prompt,
                model=job.model,
                seconds=job.seconds,
                size=job.size,
                negative_prompt=job.negative_prompt,
                seed=job.seed,
                audio=job.audio,
            )
            return lambda: self.client.create(request, reference)
        source = await self.store.get_job(job.source_job_id) if job.source_job_id else None
        if source is None or source.api_video_id is None:
            await self.store.mark_failed(
                job.id, "source_lost", "The video this was made from is no longer known."
            )
            return None
        video_id = source.api_video_id
        if job.kind == "remix":
            return lambda: self.client.remix(video_id, job.prompt)
        if job.kind == "edit":
            return lambda: self.client.edit(video_id, job.prompt)
        added = str(int(job.seconds) - int(source.seconds))
        return lambda: self.client.extend(video_id, job.prompt, added)
