"""The prepared clip: one real, playable mp4 (with its thumbnail and spritesheet) per geometry,
rendered once per process and served for every job of that geometry, whatever its prompt.

Rendering costs about a second per clip; a test that never looks at the frames need not pay it
for each distinct prompt. The cache lives for the whole process, shared by every `SimServer`, so
a test suite renders each (width, height, seconds, fps) once. Renders run in worker threads
(`asyncio.to_thread`), several servers at once: a lock per geometry makes the second caller wait
for the first render instead of starting its own.

`SIM_PREPARED_DIR` names a folder to keep them in instead, shared by several processes (a test
suite's workers): each clip is then rendered once for all of them. Files are written under a
temporary name and renamed into place, so processes rendering the same clip at once never see
half a file.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from pathlib import Path

from bot.sim import media

# What the prepared clip's panel says: it shows no prompt, so it says it is prepared.
PROMPT = "A prepared clip (the simulator's stand-in for every prompt)"

Geometry = tuple[int, int, int, int]
# A folder shared by several processes (see the module's text).
ENV_DIR = "SIM_PREPARED_DIR"

_lock = threading.Lock()
_geometry_locks: dict[Geometry, threading.Lock] = {}
_clips: dict[Geometry, dict[str, Path]] = {}
_directory: Path | None = None


def _shared_directory() -> Path:
    """The folder of prepared clips: SIM_PREPARED_DIR's, or the process's own, made on first use
    and removed at exit."""
    global _directory  # noqa: PLW0603 - one folder per process, by design
    if _directory is None:
        named = os.environ.get(ENV_DIR)
        if named:
            _directory = Path(named)
            _directory.mkdir(parents=True, exist_ok=True)
        else:
            _directory = Path(tempfile.mkdtemp(prefix="video-sim-prepared-"))
            atexit.register(shutil.rmtree, _directory, ignore_errors=True)
    return _directory


def prepared_clip(width: int, height: int, seconds: int, fps: int) -> dict[str, Path]:
    """The prepared clip's assets by variant (`video`, `thumbnail`, `spritesheet`), rendered on
    first use; blocking, so call it in a thread. An asset removed from disk since is rendered
    again."""
    geometry = (width, height, seconds, fps)
    with _lock:
        directory = _shared_directory()
        geometry_lock = _geometry_locks.setdefault(geometry, threading.Lock())
    with geometry_lock:
        with _lock:
            paths = _clips.get(geometry)
        if paths is not None and all(path.exists() for path in paths.values()):
            return dict(paths)
        stem = f"prepared-v{media.RENDER_VERSION}-{width}x{height}-{seconds}s-{fps}fps"
        # Through the module, so a test that slows `render_all` down slows this one too.
        paths = media.render_all(directory, stem, width, height, seconds, fps, PROMPT)
        with _lock:
            _clips[geometry] = paths
        return dict(paths)
