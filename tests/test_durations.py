"""Learned durations (bot/durations.py) over a real SQLite file: samples from real finished jobs,
median and 90th percentile, the default until there is history, bounded history, and history
that outlives a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.catalog import Catalog
from bot.durations import (
    DEFAULT_BASE_SECONDS,
    DEFAULT_P90_FACTOR,
    DEFAULT_PER_SECOND,
    Durations,
    Expected,
    backend_key,
    default_expected,
    percentile,
)
from bot.sim.clock import SimClock
from bot.store import Job, NewJob, Store
from bot.store.db import connect
from bot.store.schema import MIGRATIONS, migrate

T0 = 1_000_000.0
BACKEND = backend_key("vllm-omni", "http://gpu-box:8091/v1")
KIND = ("Wan-AI/Wan2.2-T2V-A14B", "1280x720", "5")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "bot.sqlite3"


@pytest.fixture
async def store(path: Path) -> AsyncIterator[Store]:
    s = await Store.open(path, clock=SimClock(T0))
    try:
        yield s
    finally:
        await s.close()


async def finished(store: Store, took: float, *, sent_after: float = 2.0, **fields: Any) -> Job:
    """A job made at T0, sent `sent_after` seconds later (its wait for a slot), completed at the
    service `took` seconds after that: a real row through the store's own transitions."""
    values: dict[str, Any] = {
        "user_id": 1,
        "channel_id": 10,
        "prompt": "a lighthouse at dusk",
        "model": KIND[0],
        "size": KIND[1],
        "seconds": KIND[2],
        "cost_micros": 0,
    }
    values.update(fields)
    job = await store.insert_job(NewJob(**values), now=T0)
    assert await store.mark_create_attempted(job.id, T0 + sent_after)
    await store.attach_video(job.id, f"video_{job.id}", "queued", 0)
    done = await store.mark_succeeded(job.id, T0 + sent_after + took, None)
    assert done is not None
    return done


async def learn(durations: Durations, store: Store, *took: float, **fields: Any) -> None:
    for seconds in took:
        assert await durations.record(BACKEND, await finished(store, seconds, **fields))


async def test_median_and_p90_come_from_finished_jobs(store: Store) -> None:
    durations = Durations(store)
    # Ten jobs of one kind: 60 s to 150 s, and one slow outlier.
    await learn(durations, store, 60, 70, 80, 90, 100, 110, 120, 130, 140, 600)

    expected = await durations.expected(BACKEND, *KIND)

    assert expected == Expected(median=105.0, p90=140.0, source="history", low=60.0, samples=10)


async def test_a_sample_runs_from_the_send_not_from_the_wait_for_a_slot(store: Store) -> None:
    durations = Durations(store)
    await durations.record(BACKEND, await finished(store, 90, sent_after=300))

    assert (await durations.expected(BACKEND, *KIND)).median == 90


async def test_without_history_the_default_by_clip_length_is_used(store: Store) -> None:
    durations = Durations(store)
    # Another kind's history says nothing about this one.
    await learn(durations, store, 60, size="720x1280")

    expected = await durations.expected(BACKEND, *KIND)

    median = DEFAULT_BASE_SECONDS + DEFAULT_PER_SECOND * 5
    assert expected == Expected(
        median=median, p90=median * DEFAULT_P90_FACTOR, source="catalog", low=0.0, samples=0
    )
    assert expected == default_expected("5")
    # Another backend's history neither.
    other = backend_key("sglang", "http://gpu-box:30000/v1")
    assert (await durations.expected(other, KIND[0], "720x1280", KIND[2])).source == "catalog"
    assert (await durations.expected(BACKEND, KIND[0], "720x1280", KIND[2])).source == "history"


async def test_the_catalogs_hint_stands_until_the_kind_has_history(store: Store) -> None:
    # The owner's catalog says this model's 5 s clips take about 95 s at their server.
    catalog = Catalog.model_validate(
        {
            "models": [
                {
                    "id": KIND[0],
                    "label": "Wan 2.2",
                    "sizes": [KIND[1]],
                    "seconds": [KIND[2]],
                    "price_per_second": {KIND[1]: "0.05"},
                    "expected_job_seconds": {KIND[2]: 95},
                }
            ]
        }
    )
    durations = Durations(store, hint=catalog.expected_job_seconds, cache_seconds=0)

    hinted = await durations.expected(BACKEND, *KIND)
    # A length the catalog has no hint for falls back to the default by clip length.
    other = await durations.expected(BACKEND, KIND[0], KIND[1], "8")
    await learn(durations, store, 40)
    learned = await durations.expected(BACKEND, *KIND)

    assert hinted == Expected(median=95.0, p90=95.0 * DEFAULT_P90_FACTOR, source="catalog")
    assert other.median == DEFAULT_BASE_SECONDS + DEFAULT_PER_SECOND * 8
    assert (learned.median, learned.source) == (40.0, "history")


async def test_one_finished_job_is_history(store: Store) -> None:
    durations = Durations(store)
    assert (await durations.expected(BACKEND, *KIND)).source == "catalog"

    await learn(durations, store, 42)

    # The cache is dropped for the kind that was recorded: no wait for it to expire.
    assert await durations.expected(BACKEND, *KIND) == Expected(42, 42, "history", 42, 1)


async def test_only_the_newest_samples_of_a_kind_are_kept(store: Store) -> None:
    durations = Durations(store, history=5)
    await learn(durations, store, *(float(s) for s in range(100, 180, 10)))  # eight jobs

    kept = await store.recent_durations(
        backend=BACKEND, model=KIND[0], size=KIND[1], seconds=KIND[2], limit=100
    )

    assert kept == [170.0, 160.0, 150.0, 140.0, 130.0]
    assert (await durations.expected(BACKEND, *KIND)).median == 150


async def test_history_outlives_a_restart(path: Path) -> None:
    async with await Store.open(path, clock=SimClock(T0)) as store:
        await learn(Durations(store), store, 50, 70, 90)

    async with await Store.open(path, clock=SimClock(T0)) as store:
        expected = await Durations(store).expected(BACKEND, *KIND)

    assert (expected.median, expected.p90, expected.source) == (70, 90, "history")


async def test_a_job_is_learned_from_once_and_only_a_success_with_its_own_length(
    store: Store,
) -> None:
    durations = Durations(store)
    job = await finished(store, 80)
    assert await durations.record(BACKEND, job)
    assert not await durations.record(BACKEND, job)  # a retry adds nothing

    failed = await store.insert_job(
        NewJob(
            user_id=1,
            channel_id=10,
            prompt="p",
            model=KIND[0],
            size=KIND[1],
            seconds=KIND[2],
            cost_micros=0,
        )
    )
    gone = await store.mark_failed(failed.id, "boom", None)
    assert gone is not None
    assert not await durations.record(BACKEND, gone)
    # An extension's length is the stitched whole, not what the service made.
    extension = await finished(store, 500, kind="extend", source_job_id=job.id)
    assert not await durations.record(BACKEND, extension)

    assert (await durations.expected(BACKEND, *KIND)).samples == 1


def test_a_backend_is_named_without_its_address_or_any_secret() -> None:
    plain = backend_key("openai", "https://api.example.com/v1")
    assert plain.startswith("openai:")
    assert "example" not in plain
    # The same server however it is written; credentials and query never count.
    assert backend_key("openai", "HTTPS://API.example.com/v1/") == plain
    assert backend_key("openai", "https://user:s3cret@api.example.com/v1?key=s3cret") == plain
    assert "s3cret" not in backend_key("openai", "https://api.example.com/s3cret/v1")
    # Another profile, host or path is another backend.
    assert backend_key("azure", "https://api.example.com/v1") != plain
    assert backend_key("openai", "https://other.example.com/v1") != plain
    assert backend_key("openai", "https://api.example.com/v2") != plain


def test_percentiles_are_nearest_rank() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert [percentile(values, p) for p in (0.1, 0.5, 0.9, 1.0)] == [1.0, 3.0, 5.0, 5.0]
    assert percentile([7.0], 0.9) == 7.0


async def test_a_database_from_before_cancels_and_durations_is_migrated(path: Path) -> None:
    conn = await connect(path)
    try:
        mine = next(
            i for i, m in enumerate(MIGRATIONS) if any("CREATE TABLE durations" in x for x in m)
        )
        await migrate(conn, MIGRATIONS[:mine])
        await conn.execute(
            "INSERT INTO jobs (kind, user_id, channel_id, prompt, model, seconds, size, "
            "cost_micros, state, created_at, updated_at) "
            "VALUES ('create', 1, 10, 'p', 'sora-2', '4', '1280x720', 0, 'creating', 1, 1)"
        )
    finally:
        await conn.close()
    async with await Store.open(path, clock=SimClock(T0)) as store:
        (old,) = await store.active_jobs()
        assert (old.cancelled_by, old.cancelled) == (None, False)
        durations = Durations(store)
        await learn(durations, store, 30)
        assert (await durations.expected(BACKEND, *KIND)).source == "history"
