#!/usr/bin/env python3
"""One entry point for a fresh clone: creates `.venv`, installs the locked dependencies and runs
a task.

    python3 dev.py run        the main job (see README)
    python3 dev.py test       lint, format check, mypy --strict and the whole test suite
    python3 dev.py bench      every benchmark, one table
    python3 dev.py -- ARGS    `python -m videobot ARGS` inside the venv

Only the standard library is used here, because this file runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
LOCK = ROOT / "requirements.lock"
STAMP = VENV / ".installed-lock"


def _venv_python() -> Path:
    sub = "Scripts" if os.name == "nt" else "bin"
    exe = "python.exe" if os.name == "nt" else "python"
    return VENV / sub / exe


def _lock_digest() -> str:
    # The project metadata is in the digest so a new console script or package gets installed too.
    h = hashlib.sha256(LOCK.read_bytes())
    h.update((ROOT / "pyproject.toml").read_bytes())
    return h.hexdigest()


def ensure_venv() -> Path:
    """Create the venv and install the lock once; later calls cost one file read."""
    if sys.version_info < (3, 11):
        sys.exit(f"Python 3.11 or newer is needed; this is {sys.version.split()[0]}")
    py = _venv_python()
    if not py.exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = _lock_digest()
    if not STAMP.exists() or STAMP.read_text() != digest:
        print("installing locked dependencies into .venv ...", flush=True)
        pip = [str(py), "-m", "pip", "--disable-pip-version-check", "-q"]
        subprocess.run([*pip, "install", "-r", str(LOCK)], check=True)
        subprocess.run([*pip, "install", "--no-deps", "-e", str(ROOT)], check=True)
        STAMP.write_text(digest)
    return py


def _run(cmd: list[str]) -> int:
    print("$", " ".join(cmd[1:] if cmd[0].endswith(("python", "python.exe")) else cmd), flush=True)
    return subprocess.run(cmd, cwd=ROOT, check=False).returncode


def task_test(py: Path, extra: list[str]) -> int:
    steps = [
        [str(py), "-m", "ruff", "check", "."],
        [str(py), "-m", "ruff", "format", "--check", "."],
        [str(py), "-m", "mypy"],
        [str(py), "-m", "pytest", *extra],
    ]
    for step in steps:
        code = _run(step)
        if code != 0:
            return code
    return 0


def main(argv: list[str]) -> int:
    task = argv[0] if argv else "run"
    rest = argv[1:]
    py = ensure_venv()
    if task == "test":
        return task_test(py, rest)
    if task == "run":
        return _run([str(py), "-m", "videobot", *(rest or ["run"])])
    if task == "bench":
        return _run([str(py), "-m", "benchmarks", *rest])
    if task == "--":
        return _run([str(py), "-m", "videobot", *rest])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
