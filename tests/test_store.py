"""The SQLite store over real files: schema and migrations, the job state machine, delivery
claims, the money ledger, quota checks (with overrides) under concurrency, and the queries and
small tables the bot reads."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import stat
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.store import (
    Intake,
    InvalidTransition,
    Job,
    JobNotFound,
    NewJob,
    QuotaOverride,
    Refusal,
    SchemaTooNew,
    SpendLimit,
    Store,
)
from bot.store.db import IntegrityErrors, connect, execute, fetch_value
from bot.store.quota import Ceilings
from bot.store.schema import MIGRATIONS, migrate, user_version
from tests import pgserver
from tests.pgserver import SQLITE_ONLY

COST = 400_000
T0 = 1_000_000.0


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "bot.sqlite3"


@pytest.fixture
def target(database_url: str | None, db_path: Path) -> Path | str:
    """The database the test's stores open: a SQLite file, or a PostgreSQL database."""
    return database_url or db_path


@pytest.fixture
async def store(target: Path | str, clock: Clock) -> AsyncIterator[Store]:
    s = await Store.open(target, clock=clock)
    try:
        yield s
    finally:
        await s.close()


def new_job(**fields: Any) -> NewJob:
    values: dict[str, Any] = {
        "user_id": 1,
        "guild_id": 100,
        "channel_id": 10,
        "prompt": "a fox in the snow",
        "model": "sora-2",
        "seconds": "4",
        "size": "1280x720",
        "cost_micros": COST,
    }
    values.update(fields)
    return NewJob(**values)


async def reserve(store: Store, *limits: SpendLimit, **kwargs: Any) -> Job | Refusal:
    new: NewJob = kwargs.pop("new", None) or new_job()
    return await store.reserve_job(new, new.cost_micros, limits, **kwargs)


async def reserved(store: Store, **fields: Any) -> Job:
    return await store.insert_job(new_job(**fields))


async def running(store: Store, video_id: str, **fields: Any) -> Job:
    job = await reserved(store, **fields)
    await store.mark_create_attempted(job.id, store.clock())
    attached = await store.attach_video(job.id, video_id, "queued", 0)
    assert attached is not None
    return attached


async def succeeded(store: Store, video_id: str, **fields: Any) -> Job:
    job = await running(store, video_id, **fields)
    done = await store.mark_succeeded(job.id, store.clock(), store.clock() + 3600)
    assert done is not None
    return done


async def delivered(store: Store, video_id: str, **fields: Any) -> Job:
    job = await succeeded(store, video_id, **fields)
    assert await store.claim_delivery(job.id)
    done = await store.finish_delivery(job.id, 555)
    assert done is not None
    return done


async def state_of(store: Store, job_id: int) -> str:
    job = await store.get_job(job_id)
    assert job is not None
    return job.state


async def must_get(store: Store, job_id: int) -> Job:
    job = await store.get_job(job_id)
    assert job is not None
    return job


# ---------------------------------------------------------------------- schema and file


@SQLITE_ONLY
async def test_migrates_an_empty_file_to_the_current_schema(store: Store, db_path: Path) -> None:
    with sqlite3.connect(db_path) as raw:
        version = raw.execute("PRAGMA user_version").fetchone()[0]
        mode = raw.execute("PRAGMA journal_mode").fetchone()[0]
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert version == len(MIGRATIONS)
    assert mode == "wal"
    assert {"jobs", "ledger", "guild_settings", "quota_overrides", "meta"} <= tables
    async with store.transaction() as conn:
        assert await fetch_value(conn, "PRAGMA foreign_keys") == 1
        assert await fetch_value(conn, "PRAGMA busy_timeout") == 5000


async def test_reopening_keeps_everything_and_does_not_migrate_again(
    db_path: Path, clock: Clock
) -> None:
    async with await Store.open(db_path, clock=clock) as first:
        job = await running(first, "v1")
        await first.set_meta("commands", "abc")
        await first.set_guild_setting(100, "channel", 42)
    async with await Store.open(db_path, clock=clock) as second:
        again = await second.get_job(job.id)
        assert again == job
        assert await second.get_meta("commands") == "abc"
        assert await second.get_guild_setting(100, "channel") == 42
        assert await second.open_hold(job.id) == COST
    with sqlite3.connect(db_path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


async def test_a_newer_schema_is_refused(db_path: Path) -> None:
    async with await Store.open(db_path):
        pass
    with sqlite3.connect(db_path) as raw:
        raw.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(SchemaTooNew):
        await Store.open(db_path)
    with sqlite3.connect(db_path) as raw:  # left as it was
        assert raw.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) + 1


async def test_two_processes_may_create_the_file_at_once(db_path: Path) -> None:
    stores = await asyncio.gather(*(Store.open(db_path) for _ in range(3)))
    try:
        job = await reserved(stores[0])
        assert [await s.get_job(job.id) for s in stores] == [job] * 3
    finally:
        for s in stores:
            await s.close()
    with sqlite3.connect(db_path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


async def test_a_failing_migration_leaves_the_previous_version(tmp_path: Path) -> None:
    conn = await connect(tmp_path / "m.sqlite3")
    try:
        good = ("CREATE TABLE a (x INTEGER)",)
        bad = ("CREATE TABLE b (x INTEGER)", "THIS IS NOT SQL")
        with pytest.raises(sqlite3.OperationalError):
            await migrate(conn, (good, bad))
        assert await user_version(conn) == 1
        async with conn.execute("SELECT name FROM sqlite_master WHERE name = 'b'") as cur:
            assert await cur.fetchone() is None
        assert await migrate(conn, (good,)) == 1
    finally:
        await conn.close()


def modes(directory: Path, name: str) -> dict[str, int]:
    """Permission bits of the database file and its -wal/-shm companions."""
    return {f.name: stat.S_IMODE(f.stat().st_mode) for f in directory.glob(f"{name}*")}


async def test_the_file_is_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        async with await Store.open(tmp_path / "new.sqlite3") as s:
            await reserved(s)
            found = modes(tmp_path, "new.sqlite3")
            assert "new.sqlite3-wal" in found
            assert set(found.values()) == {0o600}, found
        loose = tmp_path / "loose.sqlite3"
        loose.write_bytes(b"")
        loose.chmod(0o644)
        async with await Store.open(loose):
            assert modes(tmp_path, "loose.sqlite3")["loose.sqlite3"] == 0o600
    finally:
        os.umask(old)


async def refused(store: Store, sql: str, params: tuple[Any, ...] = ()) -> str:
    """What the database said when it refused `sql` (in a transaction of its own: PostgreSQL
    ends a transaction at its first error)."""
    with pytest.raises(IntegrityErrors) as caught:
        async with store.transaction() as conn:
            await execute(conn, sql, params)
    return str(caught.value)


async def test_the_ledger_is_append_only_and_checked(store: Store) -> None:
    job = await reserved(store)
    assert "append-only" in await refused(store, "UPDATE ledger SET amount_micros = 0")
    assert "append-only" in await refused(store, "DELETE FROM ledger")
    await refused(  # a refund cannot add budget
        store,
        "INSERT INTO ledger (at, charged_at, job_id, user_id, account, amount_micros,"
        " reason) VALUES (0, 0, ?, 1, 'held', 5, 'refund')",
        (job.id,),
    )
    await refused(  # foreign keys are enforced
        store,
        "INSERT INTO ledger (at, charged_at, job_id, user_id, account, amount_micros,"
        " reason) VALUES (0, 0, 999, 1, 'held', 5, 'reserve')",
    )
    assert [e.amount_micros for e in await store.ledger_entries(job.id)] == [COST]


async def _write_then_fail(store: Store) -> None:
    async with store.transaction() as conn:
        await execute(conn, "INSERT INTO meta (key, value) VALUES ('k', 'v')")
        raise RuntimeError("boom")


async def test_an_exception_in_a_transaction_rolls_it_back(store: Store) -> None:
    with pytest.raises(RuntimeError):
        await _write_then_fail(store)
    assert await store.get_meta("k") is None
    await store.set_meta("k", "after")  # the connection is usable
    assert await store.get_meta("k") == "after"


async def test_cancelling_at_any_point_leaves_the_connection_usable(store: Store) -> None:
    for ticks in range(12):
        task = asyncio.create_task(reserve(store))
        for _ in range(ticks):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await store.set_meta("alive", str(ticks))
        assert await store.get_meta("alive") == str(ticks)
    # Every job that was recorded holds exactly its reservation, nothing half-written.
    balances = await store.ledger_sum_by_job()
    assert sorted(balances) == [j.id for j in await store.active_jobs()]
    assert all(b.held == COST and b.spent == 0 for b in balances.values())


# ---------------------------------------------------------------------- state machine


async def test_a_send_that_reached_no_server_can_be_released_and_claimed_again(
    store: Store,
) -> None:
    job = await reserved(store)
    assert not await store.release_create_attempt(job.id)  # never attempted: nothing to undo
    assert await store.mark_create_attempted(job.id, T0)
    assert await store.release_create_attempt(job.id)
    assert (await must_get(store, job.id)).create_attempted_at is None
    assert await store.mark_create_attempted(job.id, T0 + 5)  # the next send may claim it
    await store.attach_video(job.id, "v1", "queued", 0)
    # Once the service has the job, the attempt is never undone (it would be sent twice).
    assert not await store.release_create_attempt(job.id)
    assert (await must_get(store, job.id)).create_attempted_at == T0 + 5


async def test_the_whole_happy_path(store: Store, clock: Clock) -> None:
    job = await reserved(store, interaction_token="tok", token_expires_at=T0 + 900)
    assert (job.state, job.delivery_state, job.created_at) == ("creating", "pending", T0)
    clock.advance(1)
    assert await store.mark_create_attempted(job.id, T0 + 1)
    clock.advance(1)
    # A second send of the same job is refused: the first attempt stands, nothing goes out twice.
    assert not await store.mark_create_attempted(job.id, T0 + 2)
    assert (await must_get(store, job.id)).create_attempted_at == T0 + 1
    run = await store.attach_video(job.id, "v1", "queued", 0)
    assert run is not None and run.state == "running" and run.api_video_id == "v1"
    assert await store.update_progress(job.id, "in_progress", 40)
    assert not await store.update_progress(job.id, "in_progress", 40)
    done = await store.mark_succeeded(job.id, T0 + 30, T0 + 3600)
    assert done is not None
    assert (done.state, done.progress, done.api_status) == ("succeeded", 100, "completed")
    assert (done.completed_at, done.expires_at) == (T0 + 30, T0 + 3600)
    assert not await store.update_progress(job.id, "in_progress", 50)  # finished: ignored
    assert await store.claim_delivery(job.id)
    final = await store.finish_delivery(job.id, 777)
    assert final is not None
    assert final.delivery_state == "done"
    assert final.delivered_message_id == 777
    assert final.interaction_token is None
    assert await store.undelivered_jobs() == []
    assert await store.active_jobs() == []


async def test_local_queueing_goes_both_ways_until_sent(store: Store) -> None:
    job = await reserved(store)
    assert await store.set_state(job.id, "queued_local")
    assert not await store.set_state(job.id, "queued_local")  # already there
    assert await store.set_state(job.id, "creating")
    assert not await store.set_state(job.id, "creating")
    await store.mark_create_attempted(job.id, T0)
    with pytest.raises(InvalidTransition, match="already sent"):
        await store.set_state(job.id, "queued_local")


@pytest.mark.parametrize("start", ["creating", "queued_local", "running"])
async def test_every_active_state_can_fail_and_is_refunded(store: Store, start: str) -> None:
    if start == "running":
        job = await running(store, "v1")
    else:
        job = await reserved(store)
        if start == "queued_local":
            await store.set_state(job.id, "queued_local")
    failed = await store.mark_failed(job.id, "boom", "It broke.")
    assert failed is not None
    assert (failed.state, failed.error_code, failed.error_message) == (
        "failed",
        "boom",
        "It broke.",
    )
    assert failed.completed_at is not None
    assert await store.open_hold(job.id) == 0
    assert await store.mark_failed(job.id, "boom", "again") is None  # repeat: no-op
    entries = await store.ledger_entries(job.id)
    assert [(e.reason, e.amount_micros) for e in entries] == [("reserve", COST), ("refund", -COST)]
    assert await store.ledger_balances() == {"held": 0, "spent": 0}


async def test_attaching_is_idempotent_for_the_same_video_only(store: Store) -> None:
    job = await running(store, "v1")
    assert await store.attach_video(job.id, "v1", "queued", 0) is None
    with pytest.raises(InvalidTransition, match="already attached"):
        await store.attach_video(job.id, "v2", "queued", 0)
    other = await reserved(store)
    with pytest.raises(InvalidTransition, match=f"owned by job {job.id}"):
        await store.attach_video(other.id, "v1", "queued", 0)
    assert (await must_get(store, other.id)).state == "creating"


async def test_attaching_records_the_attempt_if_it_was_missing(store: Store, clock: Clock) -> None:
    job = await reserved(store)
    clock.advance(5)
    run = await store.attach_video(job.id, "v1", "queued", None)
    assert run is not None and run.create_attempted_at == T0 + 5


Step = Callable[[Store, int], Awaitable[object]]


async def _to_running(store: Store) -> Job:
    return await running(store, "v-running")


async def _to_queued(store: Store) -> Job:
    job = await reserved(store)
    await store.set_state(job.id, "queued_local")
    return job


async def _to_failed(store: Store) -> Job:
    job = await reserved(store)
    await store.mark_failed(job.id, "x", None)
    return job


async def _to_succeeded(store: Store) -> Job:
    return await succeeded(store, "v-ok")


async def _to_delivered(store: Store) -> Job:
    return await delivered(store, "v-done")


ILLEGAL: list[tuple[str, Callable[[Store], Awaitable[Job]], Step]] = [
    ("queued job attached", _to_queued, lambda s, j: s.attach_video(j, "v9", "queued", 0)),
    ("queued job sent", _to_queued, lambda s, j: s.mark_create_attempted(j, T0)),
    ("creating succeeds", reserved, lambda s, j: s.mark_succeeded(j, T0, None)),
    ("queued succeeds", _to_queued, lambda s, j: s.mark_succeeded(j, T0, None)),
    ("running requeued", _to_running, lambda s, j: s.set_state(j, "queued_local")),
    ("running back to creating", _to_running, lambda s, j: s.set_state(j, "creating")),
    ("running marked sent", _to_running, lambda s, j: s.mark_create_attempted(j, T0)),
    ("state set to running", reserved, lambda s, j: s.set_state(j, "running")),
    ("state set to succeeded", reserved, lambda s, j: s.set_state(j, "succeeded")),
    ("success fails", _to_succeeded, lambda s, j: s.mark_failed(j, "x", None)),
    ("success requeued", _to_succeeded, lambda s, j: s.set_state(j, "queued_local")),
    ("failed succeeds", _to_failed, lambda s, j: s.mark_succeeded(j, T0, None)),
    ("failed attached", _to_failed, lambda s, j: s.attach_video(j, "v9", "queued", 0)),
    ("failed requeued", _to_failed, lambda s, j: s.set_state(j, "queued_local")),
    ("running expires", _to_running, lambda s, j: s.expire_undelivered(j)),
    ("delivered expires", _to_delivered, lambda s, j: s.expire_undelivered(j)),
    ("delivered fails", _to_delivered, lambda s, j: s.mark_failed(j, "x", None)),
    ("finish unclaimed", _to_failed, lambda s, j: s.finish_delivery(j, 1)),
]


@pytest.mark.parametrize(("name", "setup", "step"), ILLEGAL, ids=[i[0] for i in ILLEGAL])
async def test_illegal_transitions_raise_and_change_nothing(
    store: Store, name: str, setup: Callable[[Store], Awaitable[Job]], step: Step
) -> None:
    job = await setup(store)
    before = await must_get(store, job.id)
    ledger_before = await store.ledger_entries()
    with pytest.raises(InvalidTransition):
        await step(store, job.id)
    assert await store.get_job(job.id) == before
    assert await store.ledger_entries() == ledger_before


async def test_unknown_jobs_are_reported(store: Store) -> None:
    assert await store.get_job(404) is None
    for call in (
        store.set_state(404, "creating"),
        store.mark_create_attempted(404, T0),
        store.attach_video(404, "v", "queued", 0),
        store.mark_succeeded(404, T0, None),
        store.mark_failed(404, "x", None),
        store.claim_delivery(404),
        store.release_claim(404),
        store.finish_delivery(404, None),
        store.set_response_message(404, 1),
        store.clear_token(404),
        store.set_local_path(404, "x"),
        store.insert_job(new_job(source_job_id=404)),
    ):
        with pytest.raises(JobNotFound):
            await call


async def test_side_fields_are_saved(store: Store) -> None:
    source = await reserved(store)
    job = await reserved(store, kind="remix", source_job_id=source.id, interaction_token="t")
    assert (job.kind, job.source_job_id) == ("remix", source.id)
    await store.set_response_message(job.id, 123)
    await store.set_local_path(job.id, "/media/job.mp4")
    await store.clear_token(job.id)
    fresh = await must_get(store, job.id)
    assert (fresh.response_message_id, fresh.local_path) == (123, "/media/job.mp4")
    assert fresh.interaction_token is None


async def test_reserve_rejects_a_cost_that_differs_from_the_job(store: Store) -> None:
    with pytest.raises(ValueError, match="differs"):
        await store.reserve_job(new_job(), COST + 1)
    assert await store.count_jobs(1) == 0


# ---------------------------------------------------------------------- money


async def test_a_success_is_charged_once_on_delivery(store: Store) -> None:
    job = await succeeded(store, "v1")
    # Not yet delivered: still a hold, counted in usage, nothing spent.
    assert await store.ledger_balances() == {"held": COST, "spent": 0}
    assert await store.mark_succeeded(job.id, T0, None) is None  # twice: nothing more
    assert await store.ledger_balances() == {"held": COST, "spent": 0}
    assert await store.claim_delivery(job.id)
    assert await store.finish_delivery(job.id, 1) is not None
    assert await store.finish_delivery(job.id, 1) is None  # twice: nothing more
    assert await store.mark_succeeded(job.id, T0, None) is None
    assert await store.ledger_balances() == {"held": 0, "spent": COST}
    assert await store.ledger_sum_by_job() == {job.id: (0, COST)}
    reasons = [(e.account, e.reason, e.amount_micros) for e in await store.ledger_entries()]
    assert reasons == [
        ("held", "reserve", COST),
        ("held", "settle", -COST),
        ("spent", "settle", COST),
    ]
    assert await store.usage(user_id=1) == COST


async def test_an_expired_success_is_refunded_and_delivered_as_a_failure(store: Store) -> None:
    job = await succeeded(store, "v1")
    assert await store.claim_delivery(job.id)
    expired = await store.expire_undelivered(job.id)
    assert expired is not None
    assert (expired.state, expired.error_code, expired.delivery_state) == (
        "failed",
        "expired",
        "claimed",
    )
    assert await store.expire_undelivered(job.id) is None  # repeat: no-op
    assert await store.ledger_balances() == {"held": 0, "spent": 0}
    done = await store.finish_delivery(job.id, 9)
    assert done is not None and done.state == "failed"
    assert await store.ledger_balances() == {"held": 0, "spent": 0}
    assert await store.usage(user_id=1) == 0


async def test_a_failure_releases_the_hold_and_frees_the_budget(store: Store) -> None:
    limit = SpendLimit("daily", "user", since=0, max_micros=COST)
    first = await reserve(store, limit)
    assert isinstance(first, Job)
    assert isinstance(await reserve(store, limit), Refusal)
    await store.mark_failed(first.id, "x", None)
    assert await store.usage(user_id=1) == 0
    assert isinstance(await reserve(store, limit), Job)


async def test_a_free_job_still_has_its_reserve_entry(store: Store) -> None:
    job = await delivered(store, "v1", cost_micros=0)
    assert [(e.reason, e.amount_micros) for e in await store.ledger_entries(job.id)] == [
        ("reserve", 0)
    ]
    assert await store.ledger_balances() == {"held": 0, "spent": 0}


# ---------------------------------------------------------------------- quota


async def test_spend_limit_counts_the_window_and_says_when_it_resets(
    store: Store, clock: Clock
) -> None:
    await delivered(store, "old")  # reserved at T0, outside the window below
    clock.advance(100)
    await reserved(store)  # T0 + 100: inside
    limit = SpendLimit("daily", "user", since=T0 + 50, max_micros=2 * COST, resets_at=T0 + 500)
    assert isinstance(await reserve(store, limit), Job)  # COST + COST fits exactly
    refusal = await reserve(store, limit)
    assert refusal == Refusal(
        kind="spend",
        limit_name="daily",
        used_micros=2 * COST,
        max_micros=2 * COST,
        cost_micros=COST,
        resets_at=T0 + 500,
    )
    # Another user is not affected by a per-user limit.
    assert isinstance(await reserve(store, limit, new=new_job(user_id=2)), Job)
    assert await store.count_jobs(1) == 3  # the refusal wrote nothing


async def test_a_refund_inside_the_window_does_not_free_budget_reserved_before_it(
    store: Store, clock: Clock
) -> None:
    early = await reserved(store)  # T0, before the window
    clock.advance(100)
    await store.mark_failed(early.id, "x", None)  # refund at T0 + 100, inside the window
    limit = SpendLimit("window", "user", since=T0 + 50, max_micros=COST)
    assert await store.usage(user_id=1, since=T0 + 50) == 0
    assert isinstance(await reserve(store, limit), Job)
    assert isinstance(await reserve(store, limit), Refusal)


async def test_guild_and_bot_limits_pool_everyone(store: Store) -> None:
    guild = SpendLimit("guild-daily", "guild", since=0, max_micros=2 * COST)
    bot = SpendLimit("bot-daily", "bot", since=0, max_micros=3 * COST)
    assert isinstance(await reserve(store, guild, bot, new=new_job(user_id=1)), Job)
    assert isinstance(await reserve(store, guild, bot, new=new_job(user_id=2)), Job)
    refusal = await reserve(store, guild, bot, new=new_job(user_id=3))
    assert isinstance(refusal, Refusal) and refusal.limit_name == "guild-daily"
    other_guild = new_job(user_id=3, guild_id=200)
    assert isinstance(await reserve(store, guild, bot, new=other_guild), Job)
    refusal = await reserve(store, guild, bot, new=new_job(user_id=4, guild_id=300))
    assert isinstance(refusal, Refusal) and refusal.limit_name == "bot-daily"


async def test_a_limit_for_one_guild_ignores_requests_elsewhere(store: Store) -> None:
    only_100 = SpendLimit("g100-user", "user", since=0, max_micros=COST, guild_id=100)
    assert isinstance(await reserve(store, only_100), Job)
    assert isinstance(await reserve(store, only_100), Refusal)
    assert isinstance(await reserve(store, only_100, new=new_job(guild_id=200)), Job)
    assert isinstance(await reserve(store, only_100, new=new_job(guild_id=None)), Job)


async def test_direct_messages_share_one_guild_pool(store: Store) -> None:
    pool = SpendLimit("guild", "guild", since=0, max_micros=COST)
    assert isinstance(await reserve(store, pool, new=new_job(user_id=1, guild_id=None)), Job)
    assert isinstance(await reserve(store, pool, new=new_job(user_id=2, guild_id=None)), Refusal)


async def test_active_jobs_limit(store: Store) -> None:
    first = await reserve(store, max_active_per_user=2)
    second = await reserve(store, max_active_per_user=2)
    assert isinstance(first, Job) and isinstance(second, Job)
    refusal = await reserve(store, max_active_per_user=2)
    assert refusal == Refusal(kind="active", limit_name="active_jobs", active_jobs=2, max_active=2)
    assert isinstance(await reserve(store, max_active_per_user=2, new=new_job(user_id=2)), Job)
    await store.set_state(first.id, "queued_local")  # queued still counts
    assert isinstance(await reserve(store, max_active_per_user=2), Refusal)
    await store.mark_failed(first.id, "x", None)
    assert isinstance(await reserve(store, max_active_per_user=2), Job)


async def test_cooldown(store: Store, clock: Clock) -> None:
    assert isinstance(await reserve(store, cooldown_seconds=30), Job)
    clock.advance(10)
    refusal = await reserve(store, cooldown_seconds=30)
    assert isinstance(refusal, Refusal)
    assert (refusal.kind, refusal.limit_name) == ("cooldown", "cooldown")
    assert refusal.retry_after == pytest.approx(20)
    assert refusal.resets_at == pytest.approx(T0 + 30)
    # A clock that stepped back never asks for more than one cooldown.
    refusal = await reserve(store, cooldown_seconds=30, now=T0 - 1000)
    assert isinstance(refusal, Refusal) and refusal.retry_after == 30
    assert isinstance(await reserve(store, cooldown_seconds=30, new=new_job(user_id=2)), Job)
    clock.advance(20)
    assert isinstance(await reserve(store, cooldown_seconds=30), Job)


async def test_the_most_lasting_refusal_is_reported_first(store: Store) -> None:
    limit = SpendLimit("daily", "user", since=0, max_micros=COST)
    await reserve(store, limit)
    refusal = await reserve(store, limit, max_active_per_user=1, cooldown_seconds=60)
    assert isinstance(refusal, Refusal) and refusal.kind == "spend"
    refusal = await reserve(store, max_active_per_user=1, cooldown_seconds=60)
    assert isinstance(refusal, Refusal) and refusal.kind == "active"


async def test_overrides_lift_or_lower_limits(store: Store) -> None:
    limit = SpendLimit("daily", "user", since=0, max_micros=COST)
    await store.set_quota_override(
        QuotaOverride(
            guild_id=100, target_kind="role", target_id=7, limit_name="daily", max_micros=3 * COST
        )
    )
    await store.set_quota_override(
        QuotaOverride(
            guild_id=100, target_kind="role", target_id=8, limit_name="daily", max_micros=2 * COST
        )
    )
    # Roles: the most generous applies (3 jobs for a member with both roles).
    for _ in range(3):
        assert isinstance(await reserve(store, limit, role_ids=[7, 8]), Job)
    refusal = await reserve(store, limit, role_ids=[7, 8])
    assert isinstance(refusal, Refusal) and refusal.max_micros == 3 * COST
    # Without the roles, the default ceiling: one job.
    assert isinstance(await reserve(store, limit, new=new_job(user_id=2)), Job)
    refusal = await reserve(store, limit, new=new_job(user_id=2))
    assert isinstance(refusal, Refusal) and refusal.max_micros == COST
    # A user override decides alone, even when it is lower than the role's.
    await store.set_quota_override(
        QuotaOverride(
            guild_id=100, target_kind="user", target_id=3, limit_name="daily", max_micros=0
        )
    )
    refusal = await reserve(store, limit, role_ids=[7], new=new_job(user_id=3))
    assert isinstance(refusal, Refusal) and refusal.max_micros == 0
    # Overrides belong to their guild.
    assert isinstance(
        await reserve(store, limit, role_ids=[7], new=new_job(user_id=3, guild_id=200)), Job
    )


async def test_exempt_overrides_skip_spend_active_and_cooldown(store: Store) -> None:
    limit = SpendLimit("daily", "user", since=0, max_micros=0)
    for name in ("daily", "active_jobs", "cooldown"):
        await store.set_quota_override(
            QuotaOverride(
                guild_id=100, target_kind="user", target_id=1, limit_name=name, exempt=True
            )
        )
    for _ in range(3):
        got = await reserve(store, limit, max_active_per_user=1, cooldown_seconds=60)
        assert isinstance(got, Job)
    # In a DM the guild's overrides do not apply.
    refusal = await reserve(store, limit, new=new_job(guild_id=None))
    assert isinstance(refusal, Refusal) and refusal.kind == "spend"


async def test_a_role_override_without_a_ceiling_keeps_the_default(store: Store) -> None:
    limit = SpendLimit("daily", "user", since=0, max_micros=2 * COST)
    await store.set_quota_override(
        QuotaOverride(guild_id=100, target_kind="role", target_id=7, limit_name="daily")
    )
    await store.set_quota_override(
        QuotaOverride(
            guild_id=100, target_kind="role", target_id=8, limit_name="daily", max_micros=COST
        )
    )
    assert isinstance(await reserve(store, limit, role_ids=[7, 8]), Job)
    assert isinstance(await reserve(store, limit, role_ids=[7, 8]), Job)  # default: 2
    assert isinstance(await reserve(store, limit, role_ids=[7, 8]), Refusal)
    assert isinstance(await reserve(store, limit, role_ids=[8], new=new_job(user_id=2)), Job)
    assert isinstance(await reserve(store, limit, role_ids=[8], new=new_job(user_id=2)), Refusal)


async def test_bot_limits_are_never_overridden(store: Store) -> None:
    limit = SpendLimit("bot", "bot", since=0, max_micros=COST)
    await store.set_quota_override(
        QuotaOverride(guild_id=100, target_kind="user", target_id=1, limit_name="bot", exempt=True)
    )
    assert isinstance(await reserve(store, limit), Job)
    assert isinstance(await reserve(store, limit), Refusal)


# ---------------------------------------------------------------------- concurrency


async def test_concurrent_reservations_admit_exactly_the_spend_limit(store: Store) -> None:
    limit = SpendLimit("daily", "user", since=0, max_micros=5 * COST)
    results = await asyncio.gather(*(reserve(store, limit) for _ in range(20)))
    assert sum(isinstance(r, Job) for r in results) == 5
    assert await store.usage(user_id=1) == 5 * COST


async def test_concurrent_reservations_admit_exactly_the_active_limit(store: Store) -> None:
    results = await asyncio.gather(*(reserve(store, max_active_per_user=3) for _ in range(20)))
    assert sum(isinstance(r, Job) for r in results) == 3
    assert len(await store.active_jobs()) == 3


async def test_two_connections_to_one_database_cannot_both_fit_the_last_slot(
    target: Path | str, clock: Clock
) -> None:
    limit = SpendLimit("daily", "user", since=0, max_micros=4 * COST)
    async with (
        await Store.open(target, clock=clock) as a,
        await Store.open(target, clock=clock) as b,
    ):
        results = await asyncio.gather(*(reserve(s, limit) for _ in range(10) for s in (a, b)))
        assert sum(isinstance(r, Job) for r in results) == 4
        assert await a.usage() == 4 * COST
        assert await b.count_jobs(1) == 4


async def test_claims_from_two_connections_have_one_winner(
    target: Path | str, clock: Clock
) -> None:
    async with (
        await Store.open(target, clock=clock) as a,
        await Store.open(target, clock=clock) as b,
    ):
        job = await succeeded(a, "v1")
        claims = await asyncio.gather(*(s.claim_delivery(job.id) for _ in range(5) for s in (a, b)))
        assert claims.count(True) == 1
        finished = await asyncio.gather(a.finish_delivery(job.id, 1), b.finish_delivery(job.id, 2))
        assert sum(f is not None for f in finished) == 1
        assert await b.ledger_balances() == {"held": 0, "spent": COST}


async def test_concurrent_success_and_delivery_charge_once(store: Store) -> None:
    job = await running(store, "v1")
    done = await asyncio.gather(*(store.mark_succeeded(job.id, T0, None) for _ in range(5)))
    assert sum(d is not None for d in done) == 1
    claims = await asyncio.gather(*(store.claim_delivery(job.id) for _ in range(5)))
    assert claims.count(True) == 1
    finished = await asyncio.gather(*(store.finish_delivery(job.id, 1) for _ in range(5)))
    assert sum(f is not None for f in finished) == 1
    assert await store.ledger_balances() == {"held": 0, "spent": COST}


async def test_concurrent_failures_refund_once(store: Store) -> None:
    job = await running(store, "v1")
    done = await asyncio.gather(*(store.mark_failed(job.id, "x", None) for _ in range(5)))
    assert sum(d is not None for d in done) == 1
    assert len(await store.ledger_entries(job.id)) == 2
    assert await store.ledger_balances() == {"held": 0, "spent": 0}


# ---------------------------------------------------------------------- delivery


async def test_delivery_claim_release_and_finish(store: Store, clock: Clock) -> None:
    active = await running(store, "v0")
    assert not await store.claim_delivery(active.id)  # not finished: nothing to deliver
    job = await succeeded(store, "v1", interaction_token="tok", token_expires_at=T0 + 900)
    assert [j.id for j in await store.undelivered_jobs()] == [job.id]
    assert not await store.release_claim(job.id)  # nothing claimed
    claims = await asyncio.gather(store.claim_delivery(job.id), store.claim_delivery(job.id))
    assert sorted(claims) == [False, True]
    claimed = await must_get(store, job.id)
    assert (claimed.delivery_state, claimed.delivery_claimed_at) == ("claimed", T0)
    assert [j.id for j in await store.undelivered_jobs()] == [job.id]  # still to settle
    assert await store.release_claim(job.id)  # the attempt failed
    released = await must_get(store, job.id)
    assert (released.delivery_state, released.delivery_attempts) == ("pending", 1)
    assert released.delivery_claimed_at is None
    assert released.interaction_token == "tok"
    clock.advance(10)
    assert await store.claim_delivery(job.id)
    assert not await store.claim_delivery(job.id)
    done = await store.finish_delivery(job.id, 4242)
    assert done is not None
    assert (done.delivery_state, done.delivered_at, done.delivered_message_id) == (
        "done",
        T0 + 10,
        4242,
    )
    assert done.interaction_token is None
    assert not await store.claim_delivery(job.id)
    assert not await store.release_claim(job.id)
    assert await store.undelivered_jobs() == []


async def test_a_failed_job_is_delivered_too(store: Store) -> None:
    job = await reserved(store, interaction_token="tok")
    await store.mark_failed(job.id, "x", "no")
    assert [j.id for j in await store.undelivered_jobs()] == [job.id]
    assert await store.claim_delivery(job.id)
    done = await store.finish_delivery(job.id, None)
    assert done is not None and done.interaction_token is None
    assert await store.ledger_balances() == {"held": 0, "spent": 0}


# ---------------------------------------------------------------------- tokens


async def test_expired_tokens_are_cleared(store: Store, clock: Clock) -> None:
    old = await reserved(store, interaction_token="old", token_expires_at=T0 + 10)
    fresh = await reserved(store, interaction_token="fresh", token_expires_at=T0 + 900)
    none = await reserved(store)
    assert await store.clear_expired_tokens() == 0
    clock.advance(10)
    assert await store.clear_expired_tokens() == 1
    assert (await must_get(store, old.id)).interaction_token is None
    assert (await must_get(store, fresh.id)).interaction_token == "fresh"
    assert (await must_get(store, none.id)).interaction_token is None
    assert await store.clear_expired_tokens() == 0
    assert await store.clear_expired_tokens(now=T0 + 1000) == 1
    assert (await must_get(store, fresh.id)).interaction_token is None


# ---------------------------------------------------------------------- queries


async def test_queue_positions_follow_the_order_of_requests(store: Store) -> None:
    working = await reserved(store)
    queued = [await reserved(store) for _ in range(3)]
    for job in queued:
        await store.set_state(job.id, "queued_local")
    assert [await store.queue_position(j.id) for j in queued] == [1, 2, 3]
    assert await store.queue_position(working.id) is None
    assert await store.queue_position(999) is None
    await store.set_state(queued[0].id, "creating")  # started
    assert [await store.queue_position(j.id) for j in queued] == [None, 1, 2]
    await store.mark_failed(queued[1].id, "x", None)  # cancelled
    assert await store.queue_position(queued[2].id) == 1
    assert [j.id for j in await store.active_jobs()] == [working.id, queued[0].id, queued[2].id]


async def test_recent_jobs_pages_newest_first(store: Store, clock: Clock) -> None:
    ids = []
    for _ in range(7):
        ids.append((await reserved(store)).id)
        clock.advance(1)
    await reserved(store, user_id=2)
    pages = [await store.recent_jobs(1, 3, offset) for offset in (0, 3, 6, 9)]
    assert [[j.id for j in page] for page in pages] == [
        ids[6:3:-1],
        ids[3:0:-1],
        ids[:1],
        [],
    ]
    assert await store.count_jobs(1) == 7
    assert await store.count_jobs(2) == 1
    assert await store.count_jobs(3) == 0
    with pytest.raises(ValueError, match="negative"):
        await store.recent_jobs(1, -1)


async def test_jobs_made_in_the_same_second_page_stably(store: Store) -> None:
    ids = [(await reserved(store)).id for _ in range(5)]
    seen = [j.id for offset in (0, 2, 4) for j in await store.recent_jobs(1, 2, offset)]
    assert seen == ids[::-1]


async def test_known_video_ids_and_last_request(store: Store, clock: Clock) -> None:
    assert await store.last_request_at(1) is None
    await running(store, "v-old")
    clock.advance(100)
    await running(store, "v-new")
    await reserved(store)
    failed = await running(store, "v-failed")
    await store.mark_failed(failed.id, "x", None)
    assert await store.known_video_ids() == {"v-old", "v-new", "v-failed"}
    assert await store.known_video_ids(since=T0 + 50) == {"v-new", "v-failed"}
    assert await store.last_request_at(1) == T0 + 100
    assert await store.last_request_at(2) is None


async def test_usage_and_top_spenders(store: Store, clock: Clock) -> None:
    await delivered(store, "a1", user_id=1, guild_id=100, cost_micros=100)  # spent, T0
    clock.advance(10)
    await reserved(store, user_id=1, guild_id=100, cost_micros=200)  # held
    await reserved(store, user_id=2, guild_id=100, cost_micros=500)
    refunded = await reserved(store, user_id=2, guild_id=100, cost_micros=1000)
    await store.mark_failed(refunded.id, "x", None)
    await reserved(store, user_id=3, guild_id=200, cost_micros=50)
    await reserved(store, user_id=1, guild_id=None, cost_micros=7)  # a DM
    assert await store.usage() == 100 + 200 + 500 + 50 + 7
    assert await store.usage(user_id=1) == 307
    assert await store.usage(user_id=1, guild_id=100) == 300
    assert await store.usage(guild_id=100) == 800
    assert await store.usage(user_id=1, since=T0 + 5) == 207
    assert await store.usage(user_id=4) == 0
    assert await store.top_spenders(100, since=0) == [(2, 500), (1, 300)]
    assert await store.top_spenders(None, since=0) == [(2, 500), (1, 307), (3, 50)]
    assert await store.top_spenders(None, since=0, limit=1) == [(2, 500)]
    assert await store.top_spenders(100, since=T0 + 5) == [(2, 500), (1, 200)]
    assert await store.top_spenders(999, since=0) == []


# ---------------------------------------------------------------------- small tables


async def test_guild_settings_round_trip_json(store: Store) -> None:
    value: Any = {"channels": [1, 2], "name": "vidéo ✓", "on": True, "ratio": 0.5, "x": None}
    await store.set_guild_setting(100, "config", value)
    await store.set_guild_setting(100, "limit", 5)
    await store.set_guild_setting(200, "limit", 9)
    assert await store.get_guild_setting(100, "config") == value
    assert await store.get_guild_setting(100, "missing") is None
    await store.set_guild_setting(100, "limit", [6])
    assert await store.all_guild_settings(100) == {"config": value, "limit": [6]}
    assert await store.delete_guild_setting(100, "limit")
    assert not await store.delete_guild_setting(100, "limit")
    assert await store.all_guild_settings(100) == {"config": value}
    assert await store.get_guild_setting(200, "limit") == 9
    with pytest.raises(ValueError, match="JSON"):
        await store.set_guild_setting(100, "bad", float("nan"))


async def test_quota_overrides_round_trip(store: Store) -> None:
    user = QuotaOverride(
        guild_id=100, target_kind="user", target_id=1, limit_name="daily", max_micros=5
    )
    role = QuotaOverride(
        guild_id=100, target_kind="role", target_id=1, limit_name="daily", exempt=True
    )
    elsewhere = user.model_copy(update={"guild_id": 200})
    for o in (user, role, elsewhere):
        await store.set_quota_override(o)
    assert await store.get_quota_override(100, "user", 1, "daily") == user
    assert await store.list_quota_overrides(100) == [role, user]
    changed = user.model_copy(update={"max_micros": None, "exempt": True})
    await store.set_quota_override(changed)  # upsert
    assert await store.get_quota_override(100, "user", 1, "daily") == changed
    assert await store.delete_quota_override(100, "user", 1, "daily")
    assert not await store.delete_quota_override(100, "user", 1, "daily")
    assert await store.get_quota_override(100, "user", 1, "daily") is None
    assert await store.list_quota_overrides(100) == [role]
    assert await store.list_quota_overrides(200) == [elsewhere]


async def test_meta_round_trip(store: Store) -> None:
    assert await store.get_meta("k") is None
    await store.set_meta("k", "1")
    await store.set_meta("k", "2")
    assert await store.get_meta("k") == "2"


# ---------------------------------------------------------------------- ledger property

USERS = (1, 2, 3)
CAP = 3 * COST  # per user, over all time

# "next" moves a job one step along its usual life, so sequences get far; the rest are
# arbitrary calls, legal or not, in any order.
OPS = (
    "next",
    "next",
    "next",
    "next",
    "reserve",
    "reserve",
    "queue",
    "unqueue",
    "attempt",
    "attach",
    "progress",
    "succeed",
    "fail",
    "expire",
    "claim",
    "release",
    "finish",
    "tokens",
    "tick",
)

op_strategy = st.tuples(
    st.sampled_from(OPS),
    st.integers(min_value=0, max_value=50),  # which job (mod the number of jobs)
    st.sampled_from(USERS),
    st.sampled_from((0, 100_000, COST, 1_000_000)),
)


async def apply_op(
    store: Store, clock: Clock, ids: list[int], op: tuple[str, int, int, int]
) -> None:
    name, pick, user, cost = op
    if name == "reserve":
        limit = SpendLimit("cap", "user", since=0, max_micros=CAP)
        new = new_job(
            user_id=user, cost_micros=cost, interaction_token="t", token_expires_at=clock() + 30
        )
        got = await store.reserve_job(new, cost, [limit], max_active_per_user=4)
        if isinstance(got, Job):
            ids.append(got.id)
        return
    if name == "tick":
        clock.advance(10)
        return
    if name == "tokens":
        await store.clear_expired_tokens()
        return
    if not ids:
        return
    job_id = ids[pick % len(ids)]
    if name == "next":
        name = natural_next(await must_get(store, job_id), pick)
    steps: dict[str, Callable[[], Awaitable[object]]] = {
        "done": lambda: asyncio.sleep(0),
        "queue": lambda: store.set_state(job_id, "queued_local"),
        "unqueue": lambda: store.set_state(job_id, "creating"),
        "attempt": lambda: store.mark_create_attempted(job_id, clock()),
        "attach": lambda: store.attach_video(job_id, f"video-{job_id}", "queued", 0),
        "progress": lambda: store.update_progress(job_id, "in_progress", pick),
        "succeed": lambda: store.mark_succeeded(job_id, clock(), None),
        "fail": lambda: store.mark_failed(job_id, "x", None),
        "expire": lambda: store.expire_undelivered(job_id),
        "claim": lambda: store.claim_delivery(job_id),
        "release": lambda: store.release_claim(job_id),
        "finish": lambda: store.finish_delivery(job_id, 1),
    }
    with contextlib.suppress(InvalidTransition):
        await steps[name]()


def natural_next(job: Job, pick: int) -> str:
    if job.state == "creating":
        return "attempt" if job.create_attempted_at is None else "attach"
    if job.state == "queued_local":
        return "unqueue"
    if job.state == "running":
        return "fail" if pick % 3 == 0 else "succeed"
    if job.delivery_state == "pending":
        return "claim"
    if job.delivery_state == "claimed":
        return ("release", "expire", "finish", "finish")[pick % 4]
    return "done"


async def check_ledger(store: Store, ids: list[int]) -> None:
    by_job = await store.ledger_sum_by_job()
    assert sorted(by_job) == sorted(ids)
    reserves: dict[int, list[int]] = {}
    for entry in await store.ledger_entries():
        if entry.reason == "reserve":
            reserves.setdefault(entry.job_id, []).append(entry.amount_micros)
    all_jobs = [j for user in USERS for j in await store.recent_jobs(user, 1000)]
    assert sorted(j.id for j in all_jobs) == sorted(ids)
    for job in all_jobs:
        held, spent = by_job[job.id]
        assert reserves[job.id] == [job.cost_micros]
        if job.active or (job.state == "succeeded" and job.delivery_state != "done"):
            assert (held, spent) == (job.cost_micros, 0), job
        elif job.state == "succeeded":
            assert (held, spent) == (0, job.cost_micros), job
        else:
            assert (held, spent) == (0, 0), job
        if job.delivery_state == "done":
            assert job.interaction_token is None
    held_total = sum(b.held for b in by_job.values())
    spent_total = sum(b.spent for b in by_job.values())
    assert await store.ledger_balances() == {"held": held_total, "spent": spent_total}
    assert await store.usage() == held_total + spent_total
    for user in USERS:
        mine = [j for j in all_jobs if j.user_id == user]
        assert await store.usage(user_id=user) == sum(sum(by_job[j.id]) for j in mine) <= CAP
        assert sum(j.active for j in mine) <= 4


async def run_scenario(ops: list[tuple[str, int, int, int]], pg_server: str | None = None) -> None:
    clock = Clock()
    with tempfile.TemporaryDirectory() as tmp:
        # NORMAL: fewer fsyncs, same logic; this test is about the books, not durability.
        path = Path(tmp) / "p.sqlite3"
        url = await pgserver.create_database(pg_server) if pg_server else None
        try:
            async with await Store.open(url or path, clock=clock, synchronous="NORMAL") as store:
                ids: list[int] = []
                for op in ops:
                    await apply_op(store, clock, ids, op)
                    await check_ledger(store, ids)
                # Concurrent bursts keep the same books.
                await asyncio.gather(*(apply_op(store, clock, ids, op) for op in ops))
                await check_ledger(store, ids)
        finally:
            if url:
                await pgserver.drop_database(url)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op_strategy, min_size=30, max_size=120))
def test_the_books_balance_after_any_sequence_of_operations(
    ops: list[tuple[str, int, int, int]],
) -> None:
    asyncio.run(run_scenario(ops))


# A database per example; fewer examples (each costs a database and a thousand round trips).
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op_strategy, min_size=30, max_size=120))
def test_the_books_balance_after_any_sequence_of_operations_on_postgresql(
    pg_server: str, ops: list[tuple[str, int, int, int]]
) -> None:
    asyncio.run(run_scenario(ops, pg_server))


def intake(store: Store, interaction_id: int) -> Intake:
    return Intake(
        interaction_id=interaction_id,
        application_id=5,
        token=f"tok-{interaction_id}",
        token_expires_at=store.clock() + 900,
        user_id=interaction_id % 7,
        received_at=store.clock(),
    )


async def test_intakes_that_became_jobs_are_not_reported_as_lost(store: Store) -> None:
    for iid in (11, 12, 13):
        await store.record_intake(intake(store, iid))
    await reserved(store, interaction_id=12)
    await store.drop_intake(13)
    lost = await store.unrecorded_intakes()
    assert [i.interaction_id for i in lost] == [11]
    assert lost[0].token == "tok-11"
    # Still there until the member has been told (a stop meanwhile tells them next time).
    assert [i.interaction_id for i in await store.unrecorded_intakes()] == [11]
    await store.drop_intake(11)
    assert await store.unrecorded_intakes() == []


@SQLITE_ONLY  # the turns of SQLite's one connection; PostgreSQL's intakes wait for no lock
async def test_a_burst_of_intakes_is_committed_ahead_of_work_already_waiting(
    store: Store, db_path: Path
) -> None:
    inside, leave = asyncio.Event(), asyncio.Event()

    async def occupy() -> None:
        async with store.transaction():
            inside.set()
            await leave.wait()

    holder = asyncio.create_task(occupy())
    await inside.wait()
    # Ordinary work queued before the burst: the intakes go first, so it sees all of them.
    waiting = asyncio.create_task(store.unrecorded_intakes())
    await asyncio.sleep(0)
    # More than one statement's worth of rows (each statement commits its rows on its own).
    burst = [asyncio.create_task(store.record_intake(intake(store, n))) for n in range(1, 401)]
    await asyncio.sleep(0)
    assert not any(t.done() for t in burst)  # nothing passes a transaction in progress
    leave.set()
    await asyncio.gather(holder, *burst)
    assert sorted(i.interaction_id for i in await waiting) == list(range(1, 401))
    raw = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        rows = raw.execute("SELECT interaction_id, token FROM intake ORDER BY 1").fetchall()
    finally:
        raw.close()
    assert rows == [(n, f"tok-{n}") for n in range(1, 401)]


# ---------------------------------------------------------------------- containment (issue 11)


async def test_a_database_from_before_send_counting_is_migrated_with_its_sends_counted(
    db_path: Path,
) -> None:
    conn = await connect(db_path)
    try:
        await migrate(conn, MIGRATIONS[:2])
        for sent in (None, T0):
            await conn.execute(
                """
                INSERT INTO jobs (kind, user_id, channel_id, prompt, model, seconds, size,
                    cost_micros, state, create_attempted_at, created_at, updated_at)
                VALUES ('create', 1, 10, 'a fox', 'sora-2', '4', '1280x720', 0, 'creating', ?,
                    ?, ?)
                """,
                (sent, T0, T0),
            )
    finally:
        await conn.close()
    async with await Store.open(db_path) as store:
        unsent, sent_once = await store.active_jobs()
    assert (unsent.create_attempts, sent_once.create_attempts) == (0, 1)
    assert unsent.delivery_retry_at is None


async def test_each_send_is_counted_and_a_resend_is_allowed_only_under_the_cap(
    store: Store, clock: Clock
) -> None:
    job = await reserved(store)
    assert job.create_attempts == 0
    assert await store.mark_create_attempted(job.id, T0)
    assert (await must_get(store, job.id)).create_attempts == 1
    # Connection refused: it reached no server, so it is not counted.
    assert await store.release_create_attempt(job.id)
    assert (await must_get(store, job.id)).create_attempts == 0
    for sends in (1, 2, 3):
        at = T0 + sends
        assert await store.mark_create_attempted(job.id, at)
        assert (await must_get(store, job.id)).create_attempts == sends
        assert not await store.retry_create(job.id, at - 0.5, 3)  # another send's time
        if sends < 3:
            assert await store.retry_create(job.id, at, 3)
            again = await must_get(store, job.id)
            assert (again.state, again.create_attempted_at) == ("creating", None)
    assert not await store.retry_create(job.id, T0 + 3, 3)  # three sends: no fourth
    assert (await must_get(store, job.id)).create_attempted_at == T0 + 3
    attached = await store.attach_video(job.id, "v1", "queued", 0)
    assert attached is not None and attached.create_attempts == 3
    assert not await store.retry_create(job.id, T0 + 3, 9)  # running: never sent again


async def test_a_failed_delivery_waits_for_its_retry_time(store: Store, clock: Clock) -> None:
    job = await succeeded(store, "v1")
    assert [j.id for j in await store.due_deliveries()] == [job.id]
    assert await store.claim_delivery(job.id)
    assert await store.due_deliveries() == []
    assert await store.release_claim(job.id, T0 + 60)
    waiting = await must_get(store, job.id)
    assert (waiting.delivery_state, waiting.delivery_attempts) == ("pending", 1)
    assert waiting.delivery_retry_at == T0 + 60
    assert await store.due_deliveries(T0 + 59) == []
    assert [j.id for j in await store.due_deliveries(T0 + 60)] == [job.id]
    # An attempt cut short by a shutdown is not counted.
    assert await store.claim_delivery(job.id)
    assert await store.release_claim(job.id, failed=False)
    assert (await must_get(store, job.id)).delivery_attempts == 1


async def test_files_kept_for_a_job_are_listed_until_cleared(store: Store) -> None:
    job = await succeeded(store, "v1")
    assert await store.jobs_with_local_files() == []
    await store.set_local_path(job.id, "/data/videos/job-1.mp4")
    assert [j.id for j in await store.jobs_with_local_files()] == [job.id]
    await store.set_local_path(job.id, None)
    assert await store.jobs_with_local_files() == []


async def test_what_the_store_keeps_from_a_server_is_redacted_and_bounded(store: Store) -> None:
    job = await running(store, "v1")
    key = "sk-proj-" + "A" * 40
    status = "moderating\n" + "x" * 500
    assert await store.update_progress(job.id, status, 10)
    fresh = await must_get(store, job.id)
    assert fresh.api_status is not None
    assert "\n" not in fresh.api_status and len(fresh.api_status) <= 64
    failed = await store.mark_failed(
        job.id, f"code {key}", f"Incorrect API key provided: {key}\nBearer abc.def " + "y" * 900
    )
    assert failed is not None and failed.error_message is not None
    assert key not in failed.error_message and key not in (failed.error_code or "")
    assert "abc.def" not in failed.error_message
    assert "\n" not in failed.error_message and len(failed.error_message) <= 300


# ---------------------------------------------------------------------- options and reported cost


async def settle_reported(store: Store, job: Job, reported: int) -> Job:
    """Run a reserved job to a success whose service reported `reported`, and deliver it."""
    await store.mark_create_attempted(job.id, store.clock())
    await store.attach_video(job.id, f"v{job.id}", "queued", 0)
    done = await store.mark_succeeded(job.id, T0, None, reported_cost_micros=reported)
    assert done is not None and done.reported_cost_micros == reported
    assert await store.claim_delivery(job.id)
    delivered = await store.finish_delivery(job.id, 1)
    assert delivered is not None
    return delivered


async def test_a_jobs_options_are_kept(store: Store) -> None:
    job = await reserved(store, negative_prompt="blurry", seed=4_000_000_000, audio=False)
    fresh = await must_get(store, job.id)
    assert (fresh.negative_prompt, fresh.seed, fresh.audio) == ("blurry", 4_000_000_000, False)
    plain = await reserved(store)
    assert (plain.negative_prompt, plain.seed, plain.audio) == (None, None, None)


async def test_a_lower_reported_cost_is_settled_and_the_difference_given_back(
    store: Store,
) -> None:
    limit = SpendLimit("daily", "user", since=0.0, max_micros=10 * COST)
    job = await reserve(store, limit)
    assert isinstance(job, Job)
    done = await settle_reported(store, job, COST // 4)
    assert (done.cost_micros, done.reported_cost_micros, done.uncharged_micros) == (
        COST // 4,
        COST // 4,
        0,
    )
    entries = [(e.account, e.reason, e.amount_micros) for e in await store.ledger_entries()]
    assert entries == [
        ("held", "reserve", COST),
        ("held", "settle", -COST),
        ("spent", "settle", COST),
        ("spent", "adjust_down", -(COST - COST // 4)),
    ]
    assert await store.ledger_sum_by_job() == {job.id: (0, COST // 4)}
    assert await store.usage(user_id=1) == COST // 4
    # Repeating the delivery changes nothing.
    assert await store.finish_delivery(job.id, 1) is None
    assert len(await store.ledger_entries()) == 4


async def test_a_higher_reported_cost_is_charged_within_the_limits_only(store: Store) -> None:
    daily = SpendLimit("daily", "user", since=0.0, max_micros=3 * COST)
    bot_wide = SpendLimit("bot", "bot", since=0.0, max_micros=100 * COST)
    first = await reserve(store, daily, bot_wide)
    second = await reserve(store, daily, bot_wide)
    assert isinstance(first, Job) and isinstance(second, Job)
    # 2 * COST used of 3 * COST: the first job's extra COST fits, exactly.
    done = await settle_reported(store, first, 2 * COST)
    assert (done.cost_micros, done.uncharged_micros) == (2 * COST, 0)
    # Now 3 * COST used: nothing more fits, so the second job's extra is not charged.
    capped = await settle_reported(store, second, 3 * COST)
    assert (capped.cost_micros, capped.reported_cost_micros, capped.uncharged_micros) == (
        COST,
        3 * COST,
        2 * COST,
    )
    reasons = [(e.job_id, e.reason, e.amount_micros) for e in await store.ledger_entries()]
    assert (first.id, "adjust_up", COST) in reasons
    assert not [r for r in reasons if r[0] == second.id and r[1].startswith("adjust")]
    assert await store.usage(user_id=1) == 3 * COST
    assert await store.ledger_balances() == {"held": 0, "spent": 3 * COST}


async def test_a_higher_reported_cost_is_capped_at_what_the_tightest_limit_leaves(
    store: Store,
) -> None:
    daily = SpendLimit("daily", "user", since=0.0, max_micros=10 * COST)
    bot_wide = SpendLimit("bot", "bot", since=0.0, max_micros=3 * COST)
    other = await reserve(store, daily, bot_wide, new=new_job(user_id=2))
    job = await reserve(store, daily, bot_wide)
    assert isinstance(other, Job) and isinstance(job, Job)
    # The bot-wide ceiling leaves COST (another member's job counts there too).
    done = await settle_reported(store, job, 5 * COST)
    assert (done.cost_micros, done.uncharged_micros) == (2 * COST, 3 * COST)
    assert await store.usage() == 3 * COST


async def test_an_exempt_member_is_charged_the_whole_reported_cost(store: Store) -> None:
    daily = SpendLimit("daily", "user", since=0.0, max_micros=COST)
    await store.set_quota_override(
        QuotaOverride(
            guild_id=100, target_kind="user", target_id=1, limit_name="daily", exempt=True
        )
    )
    job = await reserve(store, daily)
    assert isinstance(job, Job)
    done = await settle_reported(store, job, 5 * COST)
    assert (done.cost_micros, done.uncharged_micros) == (5 * COST, 0)


async def test_a_higher_reported_cost_stays_within_the_owners_ceiling_over_an_override(
    store: Store,
) -> None:
    # The guild's override allows 10 jobs' worth, the owner's ceiling 2: the extra a service
    # reports is charged only up to the ceiling the request was checked under.
    daily = SpendLimit("daily", "user", since=0.0, max_micros=COST)
    await store.set_quota_override(
        QuotaOverride(
            guild_id=100,
            target_kind="user",
            target_id=1,
            limit_name="daily",
            max_micros=10 * COST,
        )
    )
    job = await reserve(store, daily, ceilings=Ceilings(spend={"daily": 2 * COST}))
    assert isinstance(job, Job)
    done = await settle_reported(store, job, 5 * COST)
    assert (done.cost_micros, done.uncharged_micros) == (2 * COST, 3 * COST)


async def test_a_job_recorded_without_limits_is_settled_at_its_whole_reported_cost(
    store: Store,
) -> None:
    job = await reserved(store)
    done = await settle_reported(store, job, 2 * COST)
    assert (done.cost_micros, done.uncharged_micros) == (2 * COST, 0)


async def test_the_ledger_refuses_an_adjustment_of_the_wrong_sign(store: Store) -> None:
    job = await reserved(store)
    for reason, amount in (("adjust_down", 5), ("adjust_up", -5)):
        await refused(
            store,
            "INSERT INTO ledger (at, charged_at, job_id, user_id, account, amount_micros,"
            " reason) VALUES (0, 0, ?, 1, 'spent', ?, ?)",
            (job.id, amount, reason),
        )
    assert [e.reason for e in await store.ledger_entries()] == ["reserve"]


async def test_a_ledger_from_before_reported_costs_is_migrated_with_every_entry(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite3"
    conn = await connect(path)
    try:
        # Every migration before the one that brings reported costs.
        mine = next(i for i, m in enumerate(MIGRATIONS) if any("adjust_up" in x for x in m))
        await migrate(conn, MIGRATIONS[:mine])
        await conn.execute(
            "INSERT INTO jobs (kind, user_id, channel_id, prompt, model, seconds, size, "
            "cost_micros, state, created_at, updated_at) "
            "VALUES ('create', 1, 10, 'p', 'sora-2', '4', '1280x720', 5, 'creating', 1, 1)"
        )
        await conn.execute(
            "INSERT INTO ledger (at, charged_at, job_id, user_id, guild_id, account, "
            "amount_micros, reason) VALUES (1, 1, 1, 1, NULL, 'held', 5, 'reserve')"
        )
        assert await migrate(conn) == len(MIGRATIONS)
    finally:
        await conn.close()
    async with await Store.open(path) as store:
        (entry,) = await store.ledger_entries()
        assert (entry.id, entry.reason, entry.amount_micros) == (1, "reserve", 5)
        job = await must_get(store, 1)
        assert (job.seed, job.reported_cost_micros, job.uncharged_micros) == (None, None, 0)
        assert (job.deleted_at, job.deleted_by) == (None, None)  # migration 6
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            async with store.transaction() as tx:
                await tx.execute("DELETE FROM ledger")
