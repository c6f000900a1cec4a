"""The two database engines behind one store: the same schema from the same numbered
migrations, PostgreSQL's own checks (append-only tables, a newer schema refused, processes
migrating at once), the URL forms, the password kept out of every log, and several processes
on one PostgreSQL database each opening their services (no data-folder lock between them)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pydantic import SecretStr, ValidationError

from bot.services import open_services
from bot.settings import TAKEOVER_LOOK_SECONDS, Settings
from bot.sim import SimConfig, SimServer
from bot.store import NewJob, SchemaTooNew, Store
from bot.store.base import sqlite_path
from bot.store.pg import redacted
from bot.store.pgconn import numbered
from bot.store.pgschema import PG_MIGRATIONS
from bot.store.schema import MIGRATIONS
from bot.unconfirmed import CLEAN_READ_GAP
from tests.sinks import QuietSink

KEY = "sk-sim-test"


def new_job() -> NewJob:
    return NewJob(
        user_id=1,
        guild_id=100,
        channel_id=10,
        prompt="a fox",
        model="sora-2",
        seconds="4",
        size="1280x720",
        cost_micros=1000,
    )


async def sqlite_columns(path: Path) -> dict[str, set[str]]:
    def read() -> dict[str, set[str]]:
        with sqlite3.connect(path) as raw:
            tables = [
                r[0]
                for r in raw.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                    " AND name NOT LIKE 'sqlite_%'"
                )
            ]
            return {t: {r[1] for r in raw.execute(f"PRAGMA table_info({t})")} for t in tables}

    return await asyncio.to_thread(read)


async def pg_columns(url: str) -> dict[str, set[str]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name != 'schema_version'"
        )
    finally:
        await conn.close()
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row["table_name"], set()).add(row["column_name"])
    return found


async def test_both_engines_build_the_same_tables_and_columns(tmp_path: Path, pg_url: str) -> None:
    assert len(PG_MIGRATIONS) == len(MIGRATIONS)
    path = tmp_path / "bot.sqlite3"
    async with await Store.open(path), await Store.open(pg_url):
        pass
    lite, pg = await sqlite_columns(path), await pg_columns(pg_url)
    assert set(lite) == set(pg)
    for table, columns in lite.items():
        assert pg[table] == columns, table


async def test_postgresql_keeps_the_ledger_and_audit_append_only(pg_url: str) -> None:
    async with await Store.open(pg_url) as store:
        job = await store.insert_job(new_job())
        assert await store.ledger_entries(job.id)
    conn = await asyncpg.connect(pg_url)
    try:
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("UPDATE ledger SET amount_micros = 0")
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("DELETE FROM ledger")
        # A refund can never add budget: the direction check holds on this engine too.
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "INSERT INTO ledger (at, charged_at, job_id, user_id, account, amount_micros,"
                " reason) VALUES (1, 1, $1, 1, 'held', 5, 'refund')",
                job.id,
            )
    finally:
        await conn.close()


async def test_postgresql_refuses_a_schema_a_newer_bot_wrote(pg_url: str) -> None:
    async with await Store.open(pg_url):
        pass
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("UPDATE schema_version SET version = $1", len(PG_MIGRATIONS) + 1)
    finally:
        await conn.close()
    with pytest.raises(SchemaTooNew):
        await Store.open(pg_url)
    conn = await asyncpg.connect(pg_url)
    try:
        assert await conn.fetchval("SELECT version FROM schema_version") == len(PG_MIGRATIONS) + 1
    finally:
        await conn.close()


async def test_processes_starting_together_migrate_postgresql_once(pg_url: str) -> None:
    stores = await asyncio.gather(*(Store.open(pg_url) for _ in range(4)))
    try:
        conn = await asyncpg.connect(pg_url)
        try:
            assert await conn.fetchval("SELECT version FROM schema_version") == len(MIGRATIONS)
            assert await conn.fetchval("SELECT COUNT(*) FROM schema_version") == 1
        finally:
            await conn.close()
        job = await stores[0].insert_job(new_job())
        assert (await stores[3].get_job(job.id)) is not None
    finally:
        for store in stores:
            await store.close()


async def test_an_unreachable_postgresql_is_one_clear_error_without_the_password() -> None:
    url = "postgresql://bot:hunter2-secret@127.0.0.1:9/videobot"
    with pytest.raises(ConnectionError) as caught:
        await Store.open(url)
    assert "127.0.0.1:9/videobot" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_urls_name_the_engine_and_the_file() -> None:
    assert sqlite_path("sqlite:///data/bot.db") == Path("data/bot.db")
    assert sqlite_path("sqlite:////var/lib/bot.db") == Path("/var/lib/bot.db")
    assert sqlite_path(Path("x.db")) == Path("x.db")
    assert sqlite_path("postgresql://u@h/db") is None
    assert sqlite_path("postgres://u@h/db") is None
    with pytest.raises(ValueError, match="sqlite:/// or postgresql://"):
        sqlite_path("mysql://u@h/db")
    assert redacted("postgresql://u:pw@h:5432/db") == "postgresql://u@h:5432/db"


def test_placeholders_are_numbered_outside_quoted_text() -> None:
    assert numbered("SELECT ? , '?', \"a?\" FROM t WHERE x = ? AND y IN (?, ?)") == (
        "SELECT $1 , '?', \"a?\" FROM t WHERE x = $2 AND y IN ($3, $4)"
    )


def settings_with(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def test_the_database_url_setting_is_checked_and_its_password_is_a_secret() -> None:
    with pytest.raises(ValidationError, match="sqlite:/// or postgresql://"):
        settings_with(database_url=SecretStr("mysql://x@y/z"))
    chosen = settings_with(database_url=SecretStr("postgresql://bot:p%40ss-word-1@db:5432/v"))
    assert "p@ss-word-1" in chosen.secrets()
    assert "p@ss-word-1" not in repr(chosen)
    assert settings_with(database_url=SecretStr("")).database_url is None


async def test_two_processes_open_their_services_on_one_postgresql(
    tmp_path: Path, pg_url: str
) -> None:
    """No data-folder lock stands between processes on PostgreSQL: each opens (here in one
    event loop, with its own store and worker id), and a job one records is seen by both."""
    async with SimServer(SimConfig(api_key=KEY)) as url:

        def settings(name: str) -> Settings:
            return settings_with(
                data_dir=tmp_path / name,
                database_url=SecretStr(pg_url),
                openai_base_url=url,
                openai_api_key=SecretStr(KEY),
                video_api_profile="openai",
                job_lease_seconds=5,
            )

        async with (
            open_services(settings("one"), QuietSink()) as one,
            open_services(settings("two"), QuietSink()) as two,
        ):
            assert one.store.shared and two.store.shared
            assert one.store.worker != two.store.worker
            assert one.store.lease_seconds == 5
            job = await one.store.insert_job(new_job())
            seen = await two.store.get_job(job.id)
            assert seen is not None and seen.lease_owner == one.store.worker
            assert one.store.looks_after(seen) and not two.store.looks_after(seen)


def test_on_postgresql_the_create_grace_outlasts_a_takeover() -> None:
    # The figure the check adds is the gap the takeover's two list reads keep.
    assert TAKEOVER_LOOK_SECONDS == CLEAN_READ_GAP
    url = SecretStr("postgresql://bot@db/v")
    with pytest.raises(ValidationError, match="CREATE_GRACE_SECONDS must be at least 60"):
        settings_with(database_url=url, job_lease_seconds=30, create_grace_seconds=59)
    assert settings_with(database_url=url, job_lease_seconds=30, create_grace_seconds=60)
    # One process on SQLite takes nothing over; its restarts keep their own rule.
    assert settings_with(job_lease_seconds=30, create_grace_seconds=20)
