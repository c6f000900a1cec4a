"""Frame sizes, aspect ratios and resolutions, as the catalog and servers write them.

A size is WxH (`1280x720`); an aspect ratio `16:9`; a resolution the short side, `720p`. Each
aspect ratio at a resolution stands for one frame size (`standard_size`), so everything that
keeps or prices a video speaks WxH.
"""

from __future__ import annotations

import re

from bot.api.models import parse_size

_ASPECT = re.compile(r"^([1-9][0-9]{0,2}):([1-9][0-9]{0,2})$")
_RESOLUTION = re.compile(r"^([1-9][0-9]{1,3})p$")


def parse_aspect(aspect: str) -> tuple[int, int]:
    """'16:9' -> (16, 9); ValueError for anything else."""
    match = _ASPECT.match(aspect)
    if match is None:
        raise ValueError(f"aspect ratio must look like 16:9, got {aspect!r}")
    return int(match[1]), int(match[2])


def parse_resolution(resolution: str) -> int:
    """'720p' -> 720 (the short side); ValueError for anything else."""
    match = _RESOLUTION.match(resolution)
    if match is None:
        raise ValueError(f"resolution must look like 720p, got {resolution!r}")
    return int(match[1])


def standard_size(aspect: str, resolution: str) -> str:
    """The frame size of an aspect ratio at a resolution: the resolution is the short side, the
    long side follows the ratio, rounded to an even number (16:9 at 720p -> 1280x720, 9:16 at
    1080p -> 1080x1920, 1:1 at 720p -> 720x720). Models that make other frames say so in their
    `frame_sizes`."""
    a, b = parse_aspect(aspect)
    short = parse_resolution(resolution)
    long = 2 * round(short * max(a, b) / min(a, b) / 2)
    return f"{long}x{short}" if a >= b else f"{short}x{long}"


def size_label(size: str) -> str:
    """'1280x720' -> '1280x720 (landscape)' for choice menus."""
    w, h = parse_size(size)
    shape = "landscape" if w > h else "portrait" if h > w else "square"
    return f"{size} ({shape})"
