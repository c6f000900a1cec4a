"""`GET /videos/{id}/content`: a finished job's video, thumbnail or spritesheet, as each profile
serves it, optionally padded to any size for tests of streaming large downloads."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from bot.sim.config import SimConfig
from bot.sim.dialect import Dialect
from bot.sim.errors import ApiError
from bot.sim.jobs import Jobs

CONTENT_TYPES = {"video": "video/mp4", "thumbnail": "image/webp", "spritesheet": "image/jpeg"}
# An mp4 box header: a 32-bit size and a 4-letter type.
_BOX_HEADER = 8


class ContentRoute:
    def __init__(self, config: SimConfig, dialect: Dialect, jobs: Jobs) -> None:
        self.config = config
        self.dialect = dialect
        self.jobs = jobs

    async def content(self, request: web.Request) -> web.StreamResponse:
        video = self.jobs.get(request.match_info["video_id"])
        variant = self.dialect.variant(request.query.get("variant"))
        profile = self.config.profile
        if profile == "openrouter":
            # Outputs by index; a job makes one.
            index = request.query.get("index", "0")
            if index != "0":
                raise ApiError(404, f"No output {index} for video '{video.id}'.")
        if profile == "vllm-omni" and video.status in ("queued", "in_progress"):
            raise ApiError(404, "Generation is still in-progress", type="NotFoundError")
        if profile == "vllm-omni" and video.status == "failed":
            raise ApiError(
                422, "Generation failed; the video has no content.", type="UnprocessableEntity"
            )
        if video.status == "expired":
            raise ApiError(404, f"The assets of video '{video.id}' have expired.", code="expired")
        if video.status == "failed":
            raise ApiError(
                404, f"Video '{video.id}' failed; it has no content.", code="video_failed"
            )
        if video.status != "completed":
            raise ApiError(
                404,
                f"Video '{video.id}' is not ready yet (status {video.status}); "
                "download it once its status is completed.",
                code="video_not_ready",
            )
        path = await self.jobs.renders.asset(video, variant)
        if variant == "video" and self.config.pad_video_bytes >= _BOX_HEADER:
            return await self._padded(request, path)
        return web.FileResponse(path, headers={"Content-Type": CONTENT_TYPES[variant]})

    async def _padded(self, request: web.Request, path: Path) -> web.StreamResponse:
        """The mp4 followed by a `free` box of `pad_video_bytes`: still a valid, playable file,
        as large as a test of streaming needs, written a chunk at a time."""
        data = await asyncio.to_thread(path.read_bytes)
        pad = self.config.pad_video_bytes
        response = web.StreamResponse(
            headers={"Content-Type": CONTENT_TYPES["video"], "Content-Length": str(len(data) + pad)}
        )
        await response.prepare(request)
        await response.write(data)
        await response.write(pad.to_bytes(4, "big") + b"free")
        left = pad - _BOX_HEADER
        chunk = bytes(min(left, 1 << 20))
        while left > 0:
            await response.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)
        await response.write_eof()
        return response
