"""A thumbnail made here, from the video's first frame, for servers that have no thumbnail variant
(LiteLLM drops `variant` and answers the mp4; vLLM-Omni, SGLang and FastVideo have none).

The video came from a server, so it is untrusted: only the first few packets are read, the frame's
size is bounded, and anything PyAV or Pillow cannot make sense of is a plain False, never an
exception. The file is written owner-only and renamed into place only when complete.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import av
from PIL import Image

from bot.files import open_private

log = logging.getLogger(__name__)

# Packets read before giving up on finding a decodable frame (a keyframe comes first in practice).
MAX_PACKETS = 64
# The longest side of the thumbnail; larger frames are scaled down.
MAX_SIDE = 1280
# Frames larger than this (in pixels) are not decoded into an image at all.
MAX_PIXELS = 8192 * 8192
QUALITY = 80


def make_thumbnail(video: Path, dest: Path) -> bool:
    """Write the first frame of `video` to `dest` (webp, or jpeg when `dest` ends in .jpg/.jpeg),
    readable by the owner only. False when the file has no frame that can be decoded."""
    try:
        image = _first_frame(video)
    except (av.FFmpegError, OSError, ValueError, MemoryError) as exc:
        log.info("no thumbnail from %s: %s", video.name, type(exc).__name__)
        return False
    if image is None:
        return False
    fmt = "JPEG" if dest.suffix.lower() in (".jpg", ".jpeg") else "WEBP"
    part = dest.with_name(dest.name + ".part")
    try:
        with open_private(part) as handle:
            image.save(handle, fmt, quality=QUALITY)
        os.replace(part, dest)
    except (OSError, ValueError) as exc:
        log.info("could not write the thumbnail %s: %s", dest.name, type(exc).__name__)
        part.unlink(missing_ok=True)
        return False
    return True


async def make_thumbnail_async(video: Path, dest: Path) -> bool:
    """`make_thumbnail` in a thread, so decoding never stalls the event loop."""
    return await asyncio.to_thread(make_thumbnail, video, dest)


def _first_frame(video: Path) -> Image.Image | None:
    with av.open(str(video), mode="r") as container:
        if not container.streams.video:
            return None
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if not width or not height or width * height > MAX_PIXELS:
            return None
        for count, packet in enumerate(container.demux(stream)):
            if count >= MAX_PACKETS:
                return None
            for frame in packet.decode():
                if not isinstance(frame, av.VideoFrame):
                    continue
                picture: Image.Image = frame.to_image()  # type: ignore[no-untyped-call]
                image = picture.convert("RGB")
                image.thumbnail((MAX_SIDE, MAX_SIDE))
                return image
    return None
