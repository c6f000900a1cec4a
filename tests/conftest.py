"""Fixtures shared by the test modules, and a guard that runs with every test: no API key or
Discord token used by the suite ever shows up in a log record or in a message the bot posted."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from bot.sim.prepared import ENV_DIR
from tests import pgserver
from tests.fakediscord import FakeDiscord
from tests.fakediscord.fixture import fake_discord  # noqa: F401 - a pytest fixture
from tests.scripted_api import ScriptedAPI

# Every video API key the tests hand to the bot or the client.
KNOWN_SECRETS = frozenset(
    {
        "sk-e2e-secret-key-0123456789",
        "sk-test-secret-abc123",
        "sk-sim-test",
        "sk-test-123",
        "sk-very-secret-123",
        "sk-wrong-123",
        "sk-cli",
        "sk-env",
    }
)


class _Everything(logging.Handler):
    """Keeps each record as a log file would show it, traceback included."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record) + repr(record.args))
        except Exception:
            self.lines.append(str(record.msg))


def pytest_configure(config: pytest.Config) -> None:
    """One folder of prepared clips for the whole run: the workers (and the simulators the CLI
    tests start) inherit it, so each clip is rendered once, not once per process."""
    _share_postgres(config)
    if hasattr(config, "workerinput") or os.environ.get(ENV_DIR):
        return
    folder = tempfile.mkdtemp(prefix="video-sim-prepared-")
    os.environ[ENV_DIR] = folder

    def cleanup() -> None:
        os.environ.pop(ENV_DIR, None)
        shutil.rmtree(folder, ignore_errors=True)

    config.add_cleanup(cleanup)


def _share_postgres(config: pytest.Config) -> None:
    """With workers, one PostgreSQL server for the whole run, started here before they are and
    stopped when the run ends; they inherit its URL. (In one process, `pg_server` starts it on
    first use instead, so a run without PostgreSQL tests starts none.)"""
    if hasattr(config, "workerinput") or os.environ.get(pgserver.ENV_URL):
        return
    if not config.getoption("numprocesses", default=None):
        return
    try:
        cluster = pgserver.PgCluster()
    except pgserver.PgUnavailable:
        return  # each PostgreSQL test says why (pg_server)
    try:
        cluster.start()
    except Exception as exc:
        os.environ[pgserver.ENV_ERROR] = f"the test PostgreSQL server did not start: {exc}"
    else:
        os.environ[pgserver.ENV_URL] = cluster.base_url

    def cleanup() -> None:
        os.environ.pop(pgserver.ENV_URL, None)
        os.environ.pop(pgserver.ENV_ERROR, None)
        cluster.stop()

    config.add_cleanup(cleanup)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `long` run first: with workers (`python3 dev.py test`), a long test that
    started last would leave the rest of the suite waiting on it alone. Each is followed by
    another test: a worker holds the next test queued behind the one it runs, and two long ones
    queued together would run one after the other."""
    long = [item for item in items if item.get_closest_marker("long") is not None]
    rest = [item for item in items if item.get_closest_marker("long") is None]
    paired = [item for pair in zip(long, rest, strict=False) for item in pair]
    items[:] = paired + long[len(paired) // 2 :] + rest[len(paired) // 2 :]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The base URL of the run's PostgreSQL server: the one the run started for its workers, or
    one started here on first use. Skips when PostgreSQL is not installed, except under CI,
    which must run every test on both engines."""
    shared = os.environ.get(pgserver.ENV_URL)
    if shared:
        yield shared
        return
    if error := os.environ.get(pgserver.ENV_ERROR):
        pytest.fail(error)
    try:
        cluster = pgserver.PgCluster()
    except pgserver.PgUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc}; CI runs every database test on PostgreSQL too")
        pytest.skip(str(exc))
    with cluster:
        yield cluster.base_url


@pytest.fixture
async def pg_url(pg_server: str) -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database of this test's own, dropped after it."""
    url = await pgserver.create_database(pg_server)
    try:
        yield url
    finally:
        await pgserver.drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "pg"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """The bot's DATABASE_URL, once per engine: None (unset: the default SQLite file under
    DATA_DIR) and a fresh PostgreSQL database. `pgserver.SQLITE_ONLY` keeps a test on SQLite."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
async def api() -> AsyncIterator[ScriptedAPI]:
    """A scripted video service on loopback (a module may name its own `api`)."""
    async with ScriptedAPI() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP client a test's VideosClient sends through (a module may name its own)."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, connect=2.0)) as client:
        yield client


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The common default umask, under which a plain file would be readable by every local user
    (for tests that the bot's own files are not)."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture(autouse=True)
def no_secret_leaves_the_bot(request: pytest.FixtureRequest) -> Iterator[None]:
    handler = _Everything()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(min(level, logging.INFO))
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    secrets = set(KNOWN_SECRETS)
    seen = list(handler.lines)
    fake = request.node.funcargs.get("fake_discord")
    if isinstance(fake, FakeDiscord):
        secrets.add(fake.token)
        for channel in fake.channels.values():
            for message in fake.channel_messages(channel, include_deleted=True):
                seen.append(f"{message.content} {message.embeds} {message.history}")
    found = leaks(seen, secrets)
    assert found == [], f"a secret appeared in logs or messages: {found[:3]}"


def leaks(lines: list[str], secrets: set[str]) -> list[str]:
    """The lines that contain any of `secrets`, shortened for the failure message."""
    return [line[:300] for line in lines if any(s and s in line for s in secrets)]
