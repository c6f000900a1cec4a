"""Media the simulated backend serves: a real, playable H.264 mp4, a webp thumbnail and a jpg
spritesheet, drawn with Pillow and encoded with PyAV.

Every function here is synchronous, CPU-bound and free of shared state, so callers run it in a
thread (`asyncio.to_thread`). Files are written under a temporary name and renamed into place, so
a reader never sees a half-written asset.
"""

from __future__ import annotations

import colorsys
import hashlib
import math
import os
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
from PIL import Image, ImageDraw, ImageFont

from bot.files import private_dir

# Columns and rows of the spritesheet grid, and the width of one tile in it.
SPRITE_COLUMNS = 5
SPRITE_ROWS = 2
SPRITE_TILE_WIDTH = 256
MAX_PROMPT_LINES = 6
# Part of every clip's name in a cache: bump it when the picture changes, so old files are not
# served.
RENDER_VERSION = "1"

Font = ImageFont.ImageFont | ImageFont.FreeTypeFont


def _check_geometry(width: int, height: int, seconds: int, fps: int) -> None:
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise ValueError(f"width and height must be positive and even, got {width}x{height}")
    if seconds <= 0 or fps <= 0:
        raise ValueError(f"seconds and fps must be positive, got {seconds} s at {fps} fps")


@lru_cache(maxsize=16)
def _font(size: int) -> Font:
    # Pillow's bundled default font scales when FreeType is available; the bitmap one otherwise.
    return ImageFont.load_default(size=size)


def _palette(
    prompt: str,
) -> tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]:
    """Two stripe colours and an accent, derived from the prompt so different prompts differ."""
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    hue = digest[0] / 255

    def rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
        r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
        return int(r * 255), int(g * 255), int(b * 255)

    return rgb(hue, 0.55, 0.55), rgb(hue + 0.08, 0.6, 0.35), rgb(hue + 0.5, 0.8, 0.95)


class FramePainter:
    """Draws frame `i` of a clip: diagonal stripes scrolling sideways, a bouncing disc, the
    prompt on a panel, a clock and a progress bar. The costly parts are drawn once."""

    def __init__(self, width: int, height: int, frames: int, fps: int, prompt: str) -> None:
        self.width = width
        self.height = height
        self.frames = frames
        self.fps = fps
        light, dark, self.accent = _palette(prompt)
        self.period = max(32, (min(width, height) // 8) & ~1)
        self._strip = self._stripes(light, dark)
        self._panel, self._panel_xy = self._prompt_panel(prompt)
        self._small = _font(max(12, min(width, height) // 28))
        self.radius = max(8, min(width, height) // 14)

    def _stripes(self, light: tuple[int, int, int], dark: tuple[int, int, int]) -> Image.Image:
        # Wider than the frame by one period: a frame is a crop at an offset that scrolls.
        strip = Image.new("RGB", (self.width + self.period, self.height), dark)
        draw = ImageDraw.Draw(strip)
        half = self.period // 2
        x = -self.height
        while x < strip.width + self.period:
            draw.polygon(
                [
                    (x, self.height),
                    (x + half, self.height),
                    (x + half + self.height, 0),
                    (x + self.height, 0),
                ],
                fill=light,
            )
            x += self.period
        return strip

    def _prompt_panel(self, prompt: str) -> tuple[Image.Image, tuple[int, int]]:
        size = max(14, min(self.width, self.height) // 22)
        font = _font(size)
        usable = int(self.width * 0.8)
        per_line = max(8, int(usable / (size * 0.55)))
        lines = textwrap.wrap(" ".join(prompt.split()), per_line) or [""]
        if len(lines) > MAX_PROMPT_LINES:
            lines = lines[:MAX_PROMPT_LINES]
            lines[-1] = lines[-1][: max(0, per_line - 1)] + "…"
        text = "\n".join(lines)
        probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        left, top, right, bottom = probe.multiline_textbbox(
            (0, 0), text, font=font, spacing=size // 3
        )
        pad = size // 2
        panel_w = min(self.width, int(right - left) + 2 * pad)
        panel_h = min(self.height, int(bottom - top) + 2 * pad)
        panel = Image.new("RGB", (max(2, panel_w), max(2, panel_h)), (16, 16, 20))
        ImageDraw.Draw(panel).multiline_text(
            (pad - left, pad - top), text, font=font, fill=(245, 245, 245), spacing=size // 3
        )
        xy = ((self.width - panel.width) // 2, max(0, int(self.height * 0.62) - panel.height // 2))
        return panel, xy

    def frame(self, index: int) -> Image.Image:
        t = index / self.fps
        offset = (index * max(2, self.period // 8)) % self.period
        image = self._strip.crop((offset, 0, offset + self.width, self.height))
        draw = ImageDraw.Draw(image)
        # A disc bouncing across the upper half: motion any player makes obvious.
        phase = index / max(1, self.frames - 1)
        cx = self.radius + (self.width - 2 * self.radius) * (
            0.5 - 0.5 * math.cos(phase * 4 * math.pi)
        )
        cy = self.height * 0.3 + self.height * 0.1 * math.sin(t * 2 * math.pi)
        r = self.radius
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=self.accent, outline=(255, 255, 255))
        image.paste(self._panel, self._panel_xy)
        stamp = f"{t:5.2f}s  frame {index + 1}/{self.frames}"
        draw.text(
            (self.radius // 2, self.radius // 2), stamp, font=self._small, fill=(255, 255, 255)
        )
        bar_h = max(4, self.height // 90)
        done = int(self.width * (index + 1) / self.frames)
        draw.rectangle((0, self.height - bar_h, done, self.height), fill=self.accent)
        return image


@contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    """A temporary sibling of `path` that replaces it only if the block succeeds."""
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        yield tmp
        # The embedded simulator's cache lives in the bot's DATA_DIR, where files are private.
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def render_video(  # noqa: PLR0917 - positional, as the rest of the bot calls it
    path: Path, width: int, height: int, seconds: int, fps: int, prompt: str
) -> Path:
    """Write an H.264 (yuv420p) mp4 of exactly `seconds * fps` frames to `path`."""
    _check_geometry(width, height, seconds, fps)
    frames = seconds * fps
    painter = FramePainter(width, height, frames, fps, prompt)
    time_base = Fraction(1, fps)
    with (
        _atomic(path) as tmp,
        av.open(str(tmp), "w", format="mp4", container_options={"movflags": "+faststart"}) as out,
    ):
        stream = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "26"})
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = time_base
        for index in range(frames):
            # Each step keeps its own name on purpose: freeing the large picture before the next
            # one is drawn makes the allocator hand memory back and forth, doubling the time.
            image = painter.frame(index)
            rgb = av.VideoFrame.from_image(image)  # type: ignore[no-untyped-call]
            yuv = rgb.reformat(format="yuv420p")
            yuv.pts = index
            yuv.time_base = time_base
            out.mux(stream.encode(yuv))
        out.mux(stream.encode(None))
    return path


def render_thumbnail(  # noqa: PLR0917 - same arguments as render_video
    path: Path, width: int, height: int, seconds: int, fps: int, prompt: str
) -> Path:
    """Write the clip's first frame as a webp of the same size."""
    _check_geometry(width, height, seconds, fps)
    image = FramePainter(width, height, seconds * fps, fps, prompt).frame(0)
    with _atomic(path) as tmp:
        image.save(tmp, format="WEBP", quality=80, method=0)
    return path


def sprite_indices(frames: int, count: int = SPRITE_COLUMNS * SPRITE_ROWS) -> list[int]:
    """Frame numbers evenly spread over the clip, first to last."""
    if frames <= count:
        return list(range(frames))
    return [round(i * (frames - 1) / (count - 1)) for i in range(count)]


def render_spritesheet(  # noqa: PLR0917 - same arguments as render_video
    path: Path, width: int, height: int, seconds: int, fps: int, prompt: str
) -> Path:
    """Write a jpg grid (SPRITE_COLUMNS x SPRITE_ROWS) of frames spread over the clip."""
    _check_geometry(width, height, seconds, fps)
    frames = seconds * fps
    painter = FramePainter(width, height, frames, fps, prompt)
    tile_w = SPRITE_TILE_WIDTH
    tile_h = max(2, round(height * tile_w / width))
    sheet = Image.new("RGB", (tile_w * SPRITE_COLUMNS, tile_h * SPRITE_ROWS), (0, 0, 0))
    for n, index in enumerate(sprite_indices(frames)):
        tile = painter.frame(index).resize((tile_w, tile_h), Image.Resampling.BILINEAR)
        sheet.paste(tile, ((n % SPRITE_COLUMNS) * tile_w, (n // SPRITE_COLUMNS) * tile_h))
    with _atomic(path) as tmp:
        sheet.save(tmp, format="JPEG", quality=80)
    return path


def render_all(  # noqa: PLR0917 - same arguments as render_video
    directory: Path, stem: str, width: int, height: int, seconds: int, fps: int, prompt: str
) -> dict[str, Path]:
    """All three assets of one clip under `directory`, named `stem.mp4|.webp|.jpg`; an asset
    already on disk is kept (the name says what it shows)."""
    targets = {
        "video": (directory / f"{stem}.mp4", render_video),
        "thumbnail": (directory / f"{stem}.webp", render_thumbnail),
        "spritesheet": (directory / f"{stem}.jpg", render_spritesheet),
    }
    done: dict[str, Path] = {}
    for variant, (target, render) in targets.items():
        if not target.exists():
            render(target, width, height, seconds, fps, prompt)
        done[variant] = target
    return done
