"""The tests' own PostgreSQL: a cluster of its own starts, serves, and leaves nothing behind when
stopped; each test gets a fresh, empty database no other test sees; the engine fixture runs a
test once per engine and `SQLITE_ONLY` keeps one on SQLite."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest

from tests import pgserver


def _alive(pid: int) -> bool:
    """Whether `pid` is a live process (not gone, not a zombie waiting to be reaped)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def _processes() -> dict[int, tuple[int, int]]:
    """Every live process: pid -> (parent pid, process group)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # After the name in parentheses: state, ppid, pgrp, ...
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[0] != "Z":
            found[int(entry.name)] = (int(fields[1]), int(fields[2]))
    return found


def _server_processes(pid: int) -> set[int]:
    """The server `pid` and its processes (checkpointer, writers, sessions)."""
    return {pid} | {p for p, (parent, _) in _processes().items() if parent == pid}


def _until_gone(pids: set[int]) -> set[int]:
    """Waits (bounded) until none of `pids` is alive (a server's processes end on their own
    once it is gone); those still alive."""
    deadline = time.monotonic() + 10
    while (alive := {p for p in pids if _alive(p)}) and time.monotonic() < deadline:
        time.sleep(0.02)
    return alive


@pytest.fixture(scope="module")
def bin_dir() -> Path:
    """The server binaries, for clusters of these tests' own (not the run's shared server)."""
    try:
        found = pgserver.find_bin_dir()
        pgserver.PgCluster(bin_dir=found)  # and someone to run them as
    except pgserver.PgUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc}; CI runs every database test on PostgreSQL too")
        pytest.skip(str(exc))
    return found


async def test_a_cluster_starts_serves_and_leaves_nothing_when_stopped(bin_dir: Path) -> None:
    cluster = pgserver.PgCluster(bin_dir=bin_dir)
    # Started and stopped on this (the main) thread: the server is bound to the thread that
    # started it, and a worker thread of the loop's may end before the test does.
    base = cluster.start()
    try:
        folder, data_dir, pid = cluster.folder, cluster.data_dir, cluster.pid
        assert folder is not None and pid is not None
        assert base == f"postgresql://postgres@127.0.0.1:{cluster.port}/postgres"
        conn = await asyncpg.connect(base)
        try:
            assert await conn.fetchval("SELECT 1 + 1") == 2
            assert await conn.fetchval("SHOW fsync") == "off"
            assert await conn.fetchval("SHOW synchronous_commit") == "off"
            assert int(await conn.fetchval("SHOW max_connections")) >= 300
            assert await conn.fetchval("SHOW listen_addresses") == "127.0.0.1"
        finally:
            await conn.close()
        pid_file = (data_dir / "postmaster.pid").read_text().splitlines()
        assert int(pid_file[0]) == pid
        assert _alive(pid)
        family = _server_processes(pid)
        assert pid in family
        # As root the server runs as `postgres`, which owns its folder.
        if os.geteuid() == 0:
            assert os.stat(f"/proc/{pid}").st_uid != 0
    finally:
        cluster.stop()
    # A fast shutdown: the server waits for its processes before it exits.
    assert {p for p in family if _alive(p)} == set()
    assert not folder.exists()
    assert cluster.pid is None


def test_stopping_twice_or_before_starting_is_harmless(bin_dir: Path) -> None:
    cluster = pgserver.PgCluster(bin_dir=bin_dir)
    cluster.stop()
    with cluster:
        pid = cluster.pid
        assert pid is not None
    assert not _alive(pid)
    cluster.stop()


def test_a_server_that_will_not_shut_down_in_order_is_still_ended(bin_dir: Path) -> None:
    cluster = pgserver.PgCluster(bin_dir=bin_dir, stop_timeout=0.3)
    cluster.start()
    pid = cluster.pid
    assert pid is not None
    family = _server_processes(pid)
    # Stopped (SIGSTOP), it cannot act on a shutdown request: stop() must end it all the same.
    os.kill(pid, signal.SIGSTOP)
    cluster.stop()
    assert not _alive(pid)
    assert _until_gone(family) == set()


STARTER = """
import sys, time
from pathlib import Path
from tests.pgserver import PgCluster
cluster = PgCluster(bin_dir=Path(sys.argv[1]))
cluster.start()
print(cluster.pid, cluster.folder, flush=True)
time.sleep(120)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal")
def test_a_server_ends_when_the_run_that_started_it_is_killed_and_its_folder_is_swept(
    bin_dir: Path,
) -> None:
    root = Path(__file__).resolve().parent.parent
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(bin_dir)], cwd=root, stdout=subprocess.PIPE, text=True
    )
    try:
        assert starter.stdout is not None
        pid_text, folder = starter.stdout.readline().split()
        pid = int(pid_text)
        family = _server_processes(pid)
        assert _alive(pid)
        starter.kill()  # no chance to stop it
        starter.wait()
        assert _until_gone(family) == set()
        # Its folder is left behind, until the next cluster started beside it sweeps it away.
        assert Path(folder).exists()
        pgserver.sweep_stale(Path(folder).parent)
        assert not Path(folder).exists()
    finally:
        starter.kill()
        starter.wait()
        shutil.rmtree(folder, ignore_errors=True)


def test_binaries_are_found_by_pg_bin_then_path(tmp_path: Path) -> None:
    own = tmp_path / "pg" / "bin"
    own.mkdir(parents=True)
    (own / "initdb").write_text("#!/bin/sh\n")
    (own / "initdb").chmod(0o755)
    assert pgserver.find_bin_dir({"PG_BIN": str(own), "PATH": ""}) == own
    assert pgserver.find_bin_dir({"PATH": str(own)}) == own
    with pytest.raises(pgserver.PgUnavailable, match="has no initdb"):
        pgserver.find_bin_dir({"PG_BIN": str(tmp_path), "PATH": str(own)})


async def _tables(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
    finally:
        await conn.close()
    return sorted(r["table_name"] for r in rows)


# Two tests that each make the same table: neither sees the other's (in any order, any worker).
@pytest.mark.parametrize("n", [1, 2])
async def test_each_test_gets_a_fresh_empty_database(pg_url: str, n: int) -> None:
    assert pg_url.startswith("postgresql://postgres@127.0.0.1:")
    assert await _tables(pg_url) == []
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("CREATE TABLE mine (n INTEGER)")
        await conn.execute("INSERT INTO mine VALUES ($1)", n)
        assert await conn.fetchval("SELECT count(*) FROM mine") == 1
    finally:
        await conn.close()
    assert await _tables(pg_url) == ["mine"]


async def test_a_database_is_dropped_after_its_test(pg_server: str) -> None:
    url = await pgserver.create_database(pg_server)
    name = url.rpartition("/")[2]
    conn = await asyncpg.connect(url)  # a session left open is ended by the drop
    await pgserver.drop_database(url)
    assert conn.is_closed() or not await _still_serves(conn)
    admin = await asyncpg.connect(pg_server)
    try:
        assert (
            await admin.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name) == 0
        )
    finally:
        await admin.close()


async def _still_serves(conn: asyncpg.Connection) -> bool:
    try:
        await conn.fetchval("SELECT 1")
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        return False
    finally:
        await conn.close()
    return True


def test_the_engine_fixture_runs_once_per_engine(
    request: pytest.FixtureRequest, database_url: str | None
) -> None:
    engine = request.node.callspec.params["database_url"]
    if engine == "sqlite":
        assert database_url is None
    else:
        assert database_url is not None and database_url.startswith("postgresql://")


@pgserver.SQLITE_ONLY
def test_sqlite_only_keeps_a_test_on_sqlite(
    request: pytest.FixtureRequest, database_url: str | None
) -> None:
    assert request.node.callspec.id == "sqlite"
    assert database_url is None
