"""Owner-only folders and files, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.files import create_private, make_private_tree, open_private, private_dir


@pytest.fixture(params=[0o022, 0o000, 0o277], ids=["umask-022", "umask-000", "umask-277"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("umask")
def test_new_folders_and_their_new_parents_are_owner_only(tmp_path: Path) -> None:
    target = private_dir(tmp_path / "data" / "media" / "videos")
    assert mode(target) == 0o700
    assert mode(tmp_path / "data" / "media") == 0o700
    assert mode(tmp_path / "data") == 0o700


@pytest.mark.usefixtures("umask")
def test_files_are_owner_only_and_writable(tmp_path: Path) -> None:
    with open_private(tmp_path / "a" / "clip.mp4") as handle:
        handle.write(b"data")
    assert mode(tmp_path / "a" / "clip.mp4") == 0o600
    loose = tmp_path / "b.mp4"
    loose.write_bytes(b"old")
    loose.chmod(0o644)
    create_private(loose)
    assert mode(loose) == 0o600
    assert loose.read_bytes() == b""


def test_an_existing_tree_is_made_owner_only(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "media" / "videos").mkdir(parents=True)
    (root / "media" / "videos" / "job-1.mp4").write_bytes(b"x")
    (root / "bot.sqlite3").write_bytes(b"x")
    for path in (root, root / "media", root / "media" / "videos"):
        path.chmod(0o755)
    make_private_tree(root)
    for path in root.rglob("*"):
        assert mode(path) == (0o700 if path.is_dir() else 0o600), path
    assert mode(root) == 0o700
