"""A minimal Videos API on loopback, run in its own process so its memory is not counted against
the client being measured. It answers creates, polls (completed at once) and content downloads of
a configurable size, streamed in 1 MiB chunks. A create whose prompt is `bytes=N` makes a video
whose content is N bytes instead (the content is not an mp4: nothing here decodes it)."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import sys
import time

from aiohttp import web

CHUNK = bytes(range(256)) * 4096  # 1 MiB
SIZED_PROMPT = re.compile(r"bytes=(\d+)")


def make_app(content_bytes: int) -> web.Application:
    ids = itertools.count(1)
    sizes: dict[str, int] = {}

    def video(vid: str) -> dict[str, object]:
        now = int(time.time())
        return {
            "id": vid,
            "object": "video",
            "model": "sora-2",
            "status": "completed",
            "progress": 100,
            "created_at": now,
            "completed_at": now,
            "expires_at": now + 3600,
            "prompt": "bench",
            "size": "1280x720",
            "seconds": "4",
            "remixed_from_video_id": None,
            "error": None,
        }

    async def create(request: web.Request) -> web.Response:
        body = await request.read()
        vid = f"video_{next(ids)}"
        try:
            prompt = json.loads(body).get("prompt", "")
        except (ValueError, AttributeError):
            prompt = ""
        sized = SIZED_PROMPT.fullmatch(str(prompt))
        if sized:
            sizes[vid] = int(sized.group(1))
        return web.json_response(video(vid))

    async def retrieve(request: web.Request) -> web.Response:
        return web.json_response(video(request.match_info["vid"]))

    async def content(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        length = sizes.get(request.match_info["vid"], content_bytes)
        response.content_length = length
        await response.prepare(request)
        left = length
        while left > 0:
            piece = CHUNK[: min(left, len(CHUNK))]
            await response.write(piece)
            left -= len(piece)
        return response

    app = web.Application()
    app.router.add_post("/v1/videos", create)
    app.router.add_get("/v1/videos/{vid}", retrieve)
    app.router.add_get("/v1/videos/{vid}/content", content)
    return app


async def serve(content_bytes: int) -> None:
    runner = web.AppRunner(make_app(content_bytes), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"http://127.0.0.1:{port}/v1", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--content-bytes", type=int, default=1_000_000)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.content_bytes))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
