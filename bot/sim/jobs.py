"""The simulator's jobs and their lifecycle, driven by the clock.

Status is computed from the clock on every read, so there are no timers; only rendering runs in
the background. A job is `queued` for the first QUEUED_SHARE of its time, then `in_progress`; a
job bound to fail fails at FAIL_AT of its time; the others report `in_progress` at 99% until their
clip exists, so `completed` always means the content can be downloaded. Finished media expires
after the configured retention. Statuses here are always the reference API's words (a profile
only changes how they are reported, in bot/sim/dialect.py).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

from bot.sim.config import SimConfig
from bot.sim.errors import MODERATION_MESSAGE, ApiError, no_such_video
from bot.sim.records import SimVideo
from bot.sim.renders import Renders

log = logging.getLogger(__name__)

# The first share of a job's time it reports `queued`; a failing job fails at FAIL_AT of its time.
QUEUED_SHARE = 0.1
FAIL_AT = 0.5
RENDER_FAILED = ("internal_error", "The video could not be generated. Please try again.")


class Jobs:
    """Every job a server was asked for, by id, with the clips they are served."""

    def __init__(self, config: SimConfig, clock: Callable[[], float], rng: random.Random) -> None:
        self.config = config
        self.videos: dict[str, SimVideo] = {}
        # Every id ever created, in order: deleted ones stay usable as list cursors.
        self.order: list[str] = []
        self._clock = clock
        self._rng = rng
        self.renders = Renders(
            config, clock, in_use=self._clips_in_use, on_failed=self._clip_failed
        )

    def create(self, **fields: Any) -> SimVideo:
        """A new job (fields as SimVideo's); its clip starts rendering now unless it will fail."""
        cfg = self.config
        video = SimVideo(
            id=f"video_{self._rng.getrandbits(192):048x}",
            created_at=self._clock(),
            job_seconds=max(0.0, cfg.job_seconds),
            **fields,
        )
        word = (cfg.moderation_word or "").strip().lower()
        if word and word in video.prompt.lower():
            video.failure = ("moderation_blocked", MODERATION_MESSAGE)
        elif cfg.fail_rate > 0 and self._rng.random() < cfg.fail_rate:
            video.failure = (cfg.fail_code, cfg.fail_message)
        self.videos[video.id] = video
        self.order.append(video.id)
        if video.failure is None:
            self.renders.render_for(video)
        log.debug("job %s created (%s, %s s, %s)", video.id, video.size, video.seconds, video.kind)
        return video

    def get(self, video_id: str) -> SimVideo:
        """The job, brought up to the clock's time; the API's 404 if there is none."""
        video = self.videos.get(video_id)
        if video is None:
            raise no_such_video(video_id)
        return self.refresh(video)

    def completed_source(self, video_id: str, action: str) -> SimVideo:
        """The finished job a remix, edit or extension starts from; the API's 400 otherwise."""
        source = self.get(video_id)
        if source.status != "completed":
            raise ApiError(
                400,
                f"Video '{video_id}' is {source.status}; only a completed video can be {action}.",
                param="video_id",
                code="invalid_value",
            )
        return source

    def delete(self, video: SimVideo) -> None:
        # vLLM-Omni cancels a queued or running job; the others forget it (SGLang's render goes
        # on regardless, which a simulator need not copy).
        del self.videos[video.id]
        video.reference = None

    def refresh(self, video: SimVideo) -> SimVideo:
        """Bring `status` and `progress` up to the clock's time."""
        now = self._clock()
        if video.status == "failed":
            return video
        if video.status in ("completed", "expired"):
            assert video.completed_at is not None
            if now >= video.completed_at + self.config.retention_seconds:
                video.status = "expired"
                video.reference = None
            return video
        elapsed = now - video.created_at
        span = video.job_seconds
        if video.failure is not None and elapsed >= span * FAIL_AT:
            code, message = video.failure
            video.status, video.progress = "failed", 0
            video.error = {"code": code, "message": message}
            return video
        if elapsed >= span and video.failure is None:
            render = self.renders.render_for(video)
            if render.ready and render.ready_at is not None:
                # Done when both its time is up and its media exists; the stamp never moves.
                video.status, video.progress = "completed", 100
                video.completed_at = max(video.created_at + span, render.ready_at)
                return self.refresh(video)
            video.status, video.progress = "in_progress", 99
            return video
        if span <= 0 or elapsed < span * QUEUED_SHARE:
            video.status, video.progress = "queued", 0
        else:
            video.status = "in_progress"
            video.progress = max(1, min(99, int(100 * elapsed / span)))
        return video

    def _clips_in_use(self) -> set[str]:
        return {self.renders.key(v) for v in self.videos.values()}

    def _clip_failed(self, key: str) -> None:
        """Jobs still waiting on a clip whose render failed fail too (when their time comes)."""
        for video in self.videos.values():
            if self.renders.key(video) == key and video.status not in ("completed", "expired"):
                video.failure = RENDER_FAILED
