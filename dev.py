#!/usr/bin/env python3
"""One entry point for a fresh clone: creates `.venv`, installs the locked dependencies and runs
a task.

    python3 dev.py run        the main job (see README)
    python3 dev.py test       lint, format check, mypy --strict, import contracts and the whole
                              test suite
    python3 dev.py bench      every benchmark, one table
    python3 dev.py -- ARGS    `python -m videobot ARGS` inside the venv

Only the standard library is used here, because this file runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
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


def _shown(cmd: list[str]) -> str:
    return " ".join(cmd[1:] if cmd[0].endswith(("python", "python.exe")) else cmd)


def _run(cmd: list[str]) -> int:
    print("$", _shown(cmd), flush=True)
    return subprocess.run(cmd, cwd=ROOT, check=False).returncode


def _workers() -> int:
    # The suite mostly waits on loopback servers and subprocesses, not on the CPU: several
    # workers per core overlap those waits (measured fastest on a 2-core machine).
    return max(4, 4 * (os.cpu_count() or 1))


def task_test(py: Path, extra: list[str]) -> int:
    """The static checks run in the background while pytest runs (their output is shown after
    pytest's, each under its command); any failing step fails the whole command."""
    static = [
        [str(py), "-m", "ruff", "check", "."],
        [str(py), "-m", "ruff", "format", "--check", "."],
        [str(py), "-m", "mypy"],
        # The layers and the no-cycles rule, as contracts in pyproject.toml.
        [str(py.with_name("lint-imports")), "--no-cache"],
    ]
    # Workers unless the caller chose (`-n 0` runs the tests in one process, for a debugger).
    chose = any(a.startswith(("-n", "--numprocesses")) for a in extra)
    workers = [] if chose else ["-n", str(_workers())]
    pytest = [str(py), "-m", "pytest", *workers, *extra]
    # Bytecode and pytest's rewritten test modules are written (Python's default), once, by a
    # collection pass before the workers start: otherwise every worker compiles them all again.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dev-test-") as tmp:
        running = []
        for i, cmd in enumerate(static):
            out = (Path(tmp) / f"step{i}.log").open("w+b")
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
            running.append((cmd, proc, out))
        if workers:
            # Its errors, if any, show again in the real run.
            collect = [str(py), "-m", "pytest", "--collect-only", "-q", *extra]
            subprocess.run(collect, cwd=ROOT, env=env, capture_output=True, check=False)
        print("$", _shown(pytest), flush=True)
        code = subprocess.run(pytest, cwd=ROOT, env=env, check=False).returncode
        results = [(pytest, code)]
        for cmd, proc, out in running:
            code = proc.wait()
            out.seek(0)
            print("$", _shown(cmd), flush=True)
            sys.stdout.buffer.write(out.read())
            sys.stdout.flush()
            out.close()
            results.append((cmd, code))
    print(f"\n{'step':<40} result  ({time.monotonic() - started:.0f} s in all)")
    for cmd, code in results:
        print(f"{_shown(cmd)[:40]:<40} {'ok' if code == 0 else f'FAILED ({code})'}")
    return next((code for _, code in results if code != 0), 0)


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
