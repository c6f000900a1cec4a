"""The clips jobs are served: rendered in the background, in a thread (never on the event loop),
at most RENDER_SLOTS at once, one per distinct clip however many jobs share it, and kept in a cache
folder that drops the oldest clips no live job uses.

A clip is named for what it shows: its size, length and prompt when each prompt gets its own
("render"), or just its size and length when every job shares the process's prepared clip
("prepared", see bot/sim/prepared.py).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.files import private_dir
from bot.sim import media
from bot.sim.config import SimConfig
from bot.sim.prepared import prepared_clip
from bot.sim.records import SimVideo
from bot.sim.wire import parse_size

log = logging.getLogger(__name__)

# Renders at once: each already keeps x264's threads busy.
RENDER_SLOTS = 2
# Rendered clips kept in the cache beyond those live jobs still use.
CACHE_MAX_CLIPS = 64


@dataclass
class Render:
    """One clip's render: under way, failed, or done at `ready_at` (the server's clock)."""

    task: asyncio.Task[dict[str, Path]]
    ready_at: float | None = None

    @property
    def failed(self) -> bool:
        return self.task.done() and (self.task.cancelled() or self.task.exception() is not None)

    @property
    def ready(self) -> bool:
        return self.task.done() and not self.failed and self.ready_at is not None


class Renders:
    """A server's clips by name. `in_use` names the clips live jobs still need (never pruned);
    `on_failed` hears of a clip whose render failed while jobs still waited on it."""

    def __init__(
        self,
        config: SimConfig,
        clock: Callable[[], float],
        *,
        in_use: Callable[[], set[str]],
        on_failed: Callable[[str], None],
    ) -> None:
        self.config = config
        self._clock = clock
        self._in_use = in_use
        self._on_failed = on_failed
        self._renders: dict[str, Render] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._slots = asyncio.Semaphore(RENDER_SLOTS)
        self._closing = False
        self._cache_dir: Path | None = None
        self._own_cache: Path | None = None

    def __len__(self) -> int:
        """How many clips were started (and not dropped at shutdown)."""
        return len(self._renders)

    def key(self, video: SimVideo) -> str:
        """The name of the clip `video` is served."""
        if self.config.clip == "prepared":
            return f"prepared-{video.size}-{video.seconds}"
        text = f"{media.RENDER_VERSION}|{video.size}|{video.seconds}|{video.prompt}"
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]

    async def open(self) -> None:
        """Ready the cache folder: the configured one, else a temporary one of its own."""
        self._closing = False
        self._slots = asyncio.Semaphore(RENDER_SLOTS)
        if self.config.cache_dir is not None:
            self._cache_dir = Path(self.config.cache_dir)
            await asyncio.to_thread(private_dir, self._cache_dir)
        else:
            self._own_cache = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="video-sim-"))
            self._cache_dir = self._own_cache

    def stop_starting(self) -> None:
        """Start no more renders: those waiting for a slot fail quietly."""
        self._closing = True

    async def close(self) -> None:
        """Let renders under way finish, then remove a temporary cache folder."""
        self._closing = True
        await self.settle()
        if self._own_cache is not None:
            await asyncio.to_thread(shutil.rmtree, self._own_cache, ignore_errors=True)
            self._own_cache = None
            self._renders.clear()

    async def settle(self) -> None:
        """Wait until every render started so far has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def render_for(self, video: SimVideo) -> Render:
        """The render of the video's clip: reused if one exists or is under way, else started."""
        key = self.key(video)
        current = self._renders.get(key)
        if current is not None and not current.failed:
            return current
        width, height = parse_size(video.size)
        task = asyncio.create_task(
            self._render(key, width, height, int(video.seconds), video.prompt)
        )
        render = Render(task)
        self._renders[key] = render
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._done, key))
        return render

    async def asset(self, video: SimVideo, variant: str) -> Path:
        """The file of one variant (`video`, `thumbnail`, `spritesheet`) of a finished job's clip,
        rendered again if it was pruned from the cache since."""
        path = (await self.render_for(video).task)[variant]
        if not await asyncio.to_thread(path.exists):
            self._renders.pop(self.key(video), None)
            path = (await self.render_for(video).task)[variant]
        return path

    async def _render(
        self, key: str, width: int, height: int, seconds: int, prompt: str
    ) -> dict[str, Path]:
        assert self._cache_dir is not None
        directory = self._cache_dir
        fps = self.config.fps
        async with self._slots:
            if self._closing:
                raise RuntimeError("the simulator stopped before this render began")
            started = time.monotonic()
            if self.config.clip == "prepared":
                paths = await asyncio.to_thread(prepared_clip, width, height, seconds, fps)
            else:
                paths = await asyncio.to_thread(
                    media.render_all, directory, key, width, height, seconds, fps, prompt
                )
            log.debug(
                "rendered %s (%dx%d, %d s) in %.2f s",
                key,
                width,
                height,
                seconds,
                time.monotonic() - started,
            )
        render = self._renders.get(key)
        if render is not None:
            render.ready_at = self._clock()
        await asyncio.to_thread(_prune_cache, directory, self._in_use())
        return paths

    def _done(self, key: str, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        if self._closing:
            log.debug("render ended at shutdown: %s", exc)
            return
        log.error("simulated render failed", exc_info=exc)
        current = self._renders.get(key)
        if current is not None and current.task is task:
            self._on_failed(key)


def _prune_cache(directory: Path, keep: set[str]) -> None:
    """Drop the oldest clips beyond CACHE_MAX_CLIPS, never one a live job uses."""
    try:
        clips = sorted(directory.glob("*.mp4"), key=lambda p: p.stat().st_mtime)
    except OSError:
        return
    excess = len(clips) - CACHE_MAX_CLIPS
    for clip in clips:
        if excess <= 0:
            break
        if clip.stem in keep:
            continue
        for suffix in (".mp4", ".webp", ".jpg"):
            clip.with_suffix(suffix).unlink(missing_ok=True)
        excess -= 1
