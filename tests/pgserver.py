"""A throwaway PostgreSQL server for a test run: the system's own binaries (`PG_BIN`, then PATH,
then the highest /usr/lib/postgresql/*/bin), a cluster in a fresh temporary folder tuned for
speed over durability, and one fresh database per test.

The test run starts one `PgCluster` (tests/conftest.py) and hands its base URL to the xdist
workers through `ENV_URL`; each test gets its own database from `create_database` and drops it
after. The server runs as a child of the process that started it, is stopped when that run
ends and, on Linux, is also told to shut down if that process dies without stopping it."""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import asyncpg
import pytest

# The base URL of the run's server (its `postgres` database), for the workers and the bot
# processes the tests start.
ENV_URL = "VIDEOBOT_TEST_PG"
# Why the run's server could not start, for its tests to fail with.
ENV_ERROR = "VIDEOBOT_TEST_PG_ERROR"
# A folder holding initdb, postgres and pg_ctl, to use instead of searching for them.
ENV_BIN = "PG_BIN"
# initdb and postgres refuse to run as root: the server runs as this user instead.
SERVER_USER = "postgres"
SUPERUSER = "postgres"

# Durability buys nothing for a database thrown away after the test; many connections do: several
# workers, each test opening stores (and bot processes) of its own.
FAST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "64MB",
    "max_wal_size": "1GB",
    "checkpoint_timeout": "30min",
    "autovacuum": "off",
    "log_min_messages": "warning",
    "log_min_error_statement": "panic",
}

_PR_SET_PDEATHSIG = 1
FOLDER_PREFIX = "videobot-pg-"
# In each cluster's folder: the pid of the process that started it.
OWNER_FILE = "owner.pid"
_START_TIMEOUT = 60.0


class PgUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine (or no user to run them as)."""


def find_bin_dir(env: dict[str, str] | None = None) -> Path:
    """The folder of the server binaries: `PG_BIN`, else where `initdb` is on PATH, else the
    highest version under /usr/lib/postgresql (Debian keeps them off PATH)."""
    env = dict(os.environ) if env is None else env
    named = env.get(ENV_BIN)
    if named:
        folder = Path(named)
        if not (folder / "initdb").is_file():
            raise PgUnavailable(f"{ENV_BIN}={named} has no initdb")
        return folder
    on_path = shutil.which("initdb", path=env.get("PATH"))
    if on_path:
        return Path(on_path).resolve().parent
    found = [d for d in Path("/usr/lib/postgresql").glob("*/bin") if (d / "initdb").is_file()]
    if found:
        return max(found, key=lambda d: _version_key(d.parent.name))
    raise PgUnavailable(
        "PostgreSQL is not installed: no initdb on PATH or in /usr/lib/postgresql/*/bin"
        f" (install Debian's `postgresql` package, or set {ENV_BIN})"
    )


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid_in(path: Path) -> int | None:
    """The pid on the first line of `path`, if it can be read."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(path.read_text().split()[0])
    return None


def sweep_stale(parent: Path) -> None:
    """Remove cluster folders that runs killed before they could stop (their server ended with
    them; see `_die_with_parent`, but the folder stays): those whose starting process is gone
    and whose server is not running."""
    for folder in parent.glob(f"{FOLDER_PREFIX}*"):
        owner = _pid_in(folder / OWNER_FILE)
        if owner is None or _pid_alive(owner):
            continue  # being set up, or another run's
        server = _pid_in(folder / "data" / "postmaster.pid")
        if server is not None and _pid_alive(server):
            continue
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class _RunAs:
    """Who the server's processes run as: ourselves, or `postgres` when we are root."""

    uid: int | None = None
    gid: int | None = None

    @property
    def extra_groups(self) -> list[int] | None:
        # None keeps ours; as another user, none of root's groups.
        return None if self.uid is None else []

    @classmethod
    def for_server(cls) -> _RunAs:
        if os.geteuid() != 0:
            return cls()
        try:
            entry = pwd.getpwnam(SERVER_USER)
        except KeyError:
            raise PgUnavailable(
                f"PostgreSQL refuses to run as root, and there is no user {SERVER_USER!r}"
            ) from None
        return cls(entry.pw_uid, entry.pw_gid)

    def own(self, path: Path) -> None:
        if self.uid is not None and self.gid is not None:
            os.chown(path, self.uid, self.gid)


def _die_with_parent() -> None:
    """In the server's process before exec: a fast, immediate shutdown if the test run dies
    without stopping it (set after the user change, which would clear it)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGQUIT)


class PgCluster:
    """One PostgreSQL cluster in a temporary folder of its own, listening on 127.0.0.1 on a free
    port and on a unix socket in that folder. `start()` initialises and starts it and returns
    when it accepts connections; `stop()` shuts it down and removes the folder. Start it from
    a thread that outlives the cluster (the main one): the server is bound to that thread."""

    def __init__(
        self,
        *,
        bin_dir: Path | None = None,
        parent: Path | None = None,
        settings: Mapping[str, str] | None = None,
        stop_timeout: float = 30.0,
    ) -> None:
        self.bin_dir = bin_dir or find_bin_dir()
        # Server settings over FAST_SETTINGS (a benchmark may want durability back).
        self.settings = dict(settings or {})
        self.stop_timeout = stop_timeout
        self._run_as = _RunAs.for_server()
        self._parent = parent
        self.folder: Path | None = None
        self.port = 0
        self._server: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        assert self.folder is not None, "not started"
        return self.folder / "data"

    @property
    def log_path(self) -> Path:
        assert self.folder is not None, "not started"
        return self.folder / "server.log"

    @property
    def pid(self) -> int | None:
        return self._server.pid if self._server is not None else None

    @property
    def base_url(self) -> str:
        return self.url("postgres")

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> str:
        """Initialise and start the cluster; its base URL."""
        # Outside pytest's own tmp folders: those are private to root, and the server runs as
        # another user that must reach its folder.
        parent = Path(self._parent or tempfile.gettempdir())
        sweep_stale(parent)
        self.folder = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX, dir=parent))
        try:
            (self.folder / OWNER_FILE).write_text(f"{os.getpid()}\n")
            self._run_as.own(self.folder)
            self._initdb()
            self._launch()
        except BaseException:
            self.stop()
            raise
        return self.base_url

    def _initdb(self) -> None:
        assert self.folder is not None
        command = [
            str(self.bin_dir / "initdb"),
            "--pgdata",
            str(self.data_dir),
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
        ]
        run_as = self._run_as
        done = subprocess.run(
            command,
            cwd=self.folder,
            capture_output=True,
            check=False,
            user=run_as.uid,
            group=run_as.gid,
            extra_groups=run_as.extra_groups,
        )
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace")
            raise RuntimeError(f"initdb failed ({done.returncode}):\n{output[-3000:]}")

    def _launch(self) -> None:
        assert self.folder is not None
        self.port = _free_port()
        settings = {
            **FAST_SETTINGS,
            **self.settings,
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.folder),
        }
        command = [str(self.bin_dir / "postgres"), "-D", str(self.data_dir)]
        for name, value in settings.items():
            command += ["-c", f"{name}={value}"]
        log = self.log_path.open("ab")
        try:
            self._server = subprocess.Popen(
                command,
                cwd=self.folder,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group: a Ctrl-C in the terminal reaches the test run, which
                # then stops the server in order, not the server directly.
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - set before any test thread runs
                user=self._run_as.uid,
                group=self._run_as.gid,
                extra_groups=self._run_as.extra_groups,
            )
        finally:
            log.close()
        self._wait_ready()

    def _wait_ready(self) -> None:
        """Until the server's pid file says it accepts connections (what `pg_ctl -w` reads)."""
        assert self._server is not None
        pid_file = self.data_dir / "postmaster.pid"
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._server.poll() is not None:
                raise RuntimeError(
                    f"postgres exited ({self._server.returncode}) at start:\n{self._log_tail()}"
                )
            with contextlib.suppress(OSError):
                lines = pid_file.read_text().splitlines()
                # Line 8 is the server's status ("ready" once it accepts connections).
                if len(lines) >= 8 and lines[7].strip() == "ready":
                    return
            time.sleep(0.02)
        raise RuntimeError(f"postgres did not become ready in {_START_TIMEOUT:.0f} s")

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-3000:]
        return ""

    def stop(self) -> None:
        """Shut the server down (a fast shutdown: sessions are ended; then an immediate one; then
        killed) and remove its folder. Harmless when not running."""
        server, self._server = self._server, None
        if server is not None and server.poll() is None:
            for sig in (signal.SIGINT, signal.SIGQUIT):
                with contextlib.suppress(ProcessLookupError):
                    server.send_signal(sig)
                try:
                    server.wait(self.stop_timeout)
                    break
                except subprocess.TimeoutExpired:
                    continue
            else:
                # Its processes end on their own once it is gone (they watch for that).
                server.kill()
                server.wait()
        folder, self.folder = self.folder, None
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def database_name() -> str:
    """A name no other test of this run (in any worker) uses."""
    worker = re.sub(r"\W", "", os.environ.get("PYTEST_XDIST_WORKER", "main"))
    return f"test_{worker}_{uuid.uuid4().hex[:12]}".lower()


def with_database(base_url: str, name: str) -> str:
    """`base_url` naming database `name` instead."""
    root, _, _ = base_url.rpartition("/")
    return f"{root}/{name}"


async def create_database(base_url: str) -> str:
    """A new, empty database on the server at `base_url`; its URL."""
    name = database_name()
    conn = await asyncpg.connect(base_url)
    try:
        # A copy of the template's files: several times faster than writing it all to the WAL
        # (PostgreSQL 15's default), and the checkpoints it costs are cheap with fsync off.
        strategy = " STRATEGY = FILE_COPY" if conn.get_server_version().major >= 15 else ""
        await conn.execute(f'CREATE DATABASE "{name}"{strategy}')
    finally:
        await conn.close()
    return with_database(base_url, name)


async def drop_database(url: str) -> None:
    """Drop the database `url` names, ending any session still connected to it."""
    base, _, name = url.rpartition("/")
    conn = await asyncpg.connect(f"{base}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


# For a test that uses `database_url` (directly or through a fixture) but is about the SQLite
# file itself: its permissions, WAL, lock or PRAGMAs.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
