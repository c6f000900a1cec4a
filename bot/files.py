"""Files the bot writes: owner-only, whatever the process's umask.

`DATA_DIR` holds the database (interaction tokens, prompts), members' reference images and
their videos. Every folder under it is 0700 and every file 0600, set explicitly rather than left
to the umask, which on most systems would make them readable by every local user.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) owner-only; an existing folder is made so too."""
    missing: list[Path] = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    path.mkdir(parents=True, exist_ok=True)
    for folder in {path, *missing}:
        os.chmod(folder, PRIVATE_DIR)
    return path


def create_private(path: Path) -> None:
    """Create (or truncate) `path` as an empty owner-only file, so that a library that later
    opens it for writing (an encoder, a copy) writes into a file nobody else can read."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    try:
        # The umask may have taken bits off the mode above, or the file existed with another.
        os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)


def open_private(path: Path) -> BinaryIO:
    """`path` opened for writing as an owner-only file (created, or truncated)."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    os.fchmod(fd, PRIVATE_FILE)
    return os.fdopen(fd, "wb")


def make_private_tree(root: Path) -> None:
    """Owner-only modes for everything already under `root` (a data folder from an older
    version, or one copied in by hand)."""
    private_dir(root)
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            os.chmod(os.path.join(folder, name), PRIVATE_DIR)
        for name in files:
            full = os.path.join(folder, name)
            if not os.path.islink(full):
                os.chmod(full, PRIVATE_FILE)


class DataFolderBusy(RuntimeError):
    """Another bot process holds the data folder."""


@contextlib.contextmanager
def only_process(folder: Path) -> Iterator[None]:
    """Hold `folder` for this process alone while the block runs. Two bot processes on one
    SQLite file would each track and deliver the same jobs; the kernel drops the lock when the
    process ends, however it ends. (No lock where the platform has no `fcntl`.)"""
    try:
        import fcntl  # noqa: PLC0415 - POSIX only
    except ImportError:
        yield
        return
    fd = os.open(folder / "bot.lock", os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataFolderBusy(
                f"another bot process is using {folder}: run one process per DATA_DIR"
            ) from None
        yield
    finally:
        os.close(fd)
