"""The tracker over a real SQLite file and a scripted API on loopback: batching, state changes,
reconciliation of unconfirmed creates, deadlines and an unreachable service."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from bot.api.client import ClientConfig, VideosClient
from bot.api.profiles import Capabilities
from bot.store import Job, NewJob, Store
from bot.tracker import Tracker
from tests.scripted_api import ScriptedAPI, answer, video


class Recorder:
    """A real listener that keeps what it was told."""

    def __init__(self) -> None:
        self.changed: list[Job] = []
        self.finished: list[Job] = []

    async def job_changed(self, job: Job) -> None:
        self.changed.append(job)

    async def job_finished(self, job: Job) -> None:
        self.finished.append(job)


async def _no_sleep(_: float) -> None:
    return None


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "bot.sqlite3")
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def api() -> AsyncIterator[ScriptedAPI]:
    async with ScriptedAPI() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=2.0) as client:
        yield client


def client_for(http: httpx.AsyncClient, url: str, **caps: Any) -> VideosClient:
    config = ClientConfig(
        base_url=url, api_key=SecretStr("k"), capabilities=Capabilities(**caps), max_retries=0
    )
    return VideosClient(http, config, sleep=_no_sleep)


async def running_job(store: Store, video_id: str, *, prompt: str = "a fox", **new: Any) -> Job:
    fields: dict[str, Any] = {
        "user_id": 1,
        "channel_id": 10,
        "prompt": prompt,
        "model": "sora-2",
        "seconds": "4",
        "size": "1280x720",
        "cost_micros": 400_000,
    }
    fields.update(new)
    job = await store.insert_job(NewJob(**fields))
    await store.mark_create_attempted(job.id, time.time())
    await store.attach_video(job.id, video_id, "queued", 0)
    fresh = await store.get_job(job.id)
    assert fresh is not None
    return fresh


def listing(*videos: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "list",
        "data": list(videos),
        "first_id": videos[0]["id"] if videos else None,
        "last_id": videos[-1]["id"] if videos else None,
        "has_more": False,
    }


async def test_one_list_request_refreshes_many_jobs(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    now = int(time.time())
    jobs = [await running_job(store, f"v{i}") for i in range(5)]
    api.on(
        "GET",
        "/videos",
        answer(
            200,
            listing(
                video(
                    "v0", status="completed", progress=100, created_at=now, expires_at=now + 3600
                ),
                video(
                    "v1",
                    status="failed",
                    created_at=now,
                    error={"code": "moderation_blocked", "message": "Blocked by policy."},
                ),
                video("v2", status="in_progress", progress=55, created_at=now),
                video("v3", status="queued", progress=0, created_at=now),
                video("v4", status="processing", created_at=now),
            ),
        ),
    )
    listener = Recorder()
    tracker = Tracker(store, client_for(http, api.url), listener)
    stats = await tracker.poll_once()
    assert stats.requests == 1
    assert api.count("GET", "/videos") == 1
    assert not [s for s in api.seen if s.path.startswith("/videos/")]
    states = {j.api_video_id: j.state for j in [await store.get_job(j.id) for j in jobs] if j}
    assert states == {
        "v0": "succeeded",
        "v1": "failed",
        "v2": "running",
        "v3": "running",
        "v4": "running",
    }
    assert sorted(j.api_video_id or "" for j in listener.finished) == ["v0", "v1"]
    failed = next(j for j in listener.finished if j.api_video_id == "v1")
    assert failed.error_message == "Blocked by policy."
    assert [j.progress for j in listener.changed if j.api_video_id == "v2"] == [55]
    # The failed job's reservation was refunded in the same step.
    balances = await store.ledger_balances()
    assert balances.get("held", 0) == 4 * 400_000


async def test_without_list_each_job_gets_one_get(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    for i in range(4):
        await running_job(store, f"v{i}")
        api.on(
            "GET", f"/videos/v{i}", answer(200, video(f"v{i}", status="in_progress", progress=10))
        )
    tracker = Tracker(store, client_for(http, api.url, list=False), Recorder())
    stats = await tracker.poll_once()
    assert stats.requests == 4
    assert api.count("GET", "/videos") == 0


async def test_unchanged_progress_is_not_reported_again(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    await running_job(store, "v1")
    api.on("GET", "/videos/v1", answer(200, video("v1", status="in_progress", progress=30)))
    listener = Recorder()
    tracker = Tracker(store, client_for(http, api.url), listener)
    await tracker.poll_once()
    await tracker.poll_once()
    assert len(listener.changed) == 1


async def test_unreachable_service_changes_nothing_and_is_shown(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    job = await running_job(store, "v1")
    api.on("GET", "/videos/v1", answer(503, "down"))
    listener = Recorder()
    tracker = Tracker(store, client_for(http, api.url), listener)
    await tracker.poll_once()
    assert tracker.service_ok is False
    assert (await store.get_job(job.id)).state == "running"  # type: ignore[union-attr]
    api.on("GET", "/videos/v1", answer(200, video("v1", status="in_progress", progress=5)))
    await tracker.poll_once()
    assert tracker.service_ok is True


async def test_job_past_its_deadline_fails_and_is_refunded(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    job = await running_job(store, "v1", deadline_at=time.time() - 1)
    api.on("GET", "/videos/v1", answer(200, video("v1", status="processing")))
    listener = Recorder()
    await Tracker(store, client_for(http, api.url), listener).poll_once()
    done = await store.get_job(job.id)
    assert done is not None and done.state == "failed" and done.error_code == "deadline"
    assert (await store.ledger_balances()).get("held", 0) == 0


async def test_vanished_video_fails_the_job(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    job = await running_job(store, "v1")
    api.on("GET", "/videos/v1", answer(404, "No such video"))
    listener = Recorder()
    await Tracker(store, client_for(http, api.url), listener).poll_once()
    assert [j.id for j in listener.finished] == [job.id]


async def _creating_job(store: Store, attempted_at: float | None, **new: Any) -> Job:
    job = await store.insert_job(
        NewJob(
            user_id=1,
            channel_id=10,
            prompt="a fox",
            model="sora-2",
            seconds="4",
            size="1280x720",
            cost_micros=400_000,
            **new,
        )
    )
    if attempted_at is not None:
        await store.mark_create_attempted(job.id, attempted_at)
    fresh = await store.get_job(job.id)
    assert fresh is not None
    return fresh


async def test_unconfirmed_create_is_adopted_from_the_listing(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    now = time.time()
    job = await _creating_job(store, now)
    api.on("GET", "/videos", answer(200, listing(video("v_found", created_at=int(now)))))
    await Tracker(store, client_for(http, api.url), Recorder()).poll_once()
    fresh = await store.get_job(job.id)
    assert fresh is not None and fresh.state == "running" and fresh.api_video_id == "v_found"
    assert api.count("POST", "/videos") == 0


async def test_unconfirmed_create_is_refunded_after_the_grace_period(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    job = await _creating_job(store, time.time() - 3600)
    api.on("GET", "/videos", answer(200, listing()))
    listener = Recorder()
    await Tracker(store, client_for(http, api.url), listener, create_grace=600).poll_once()
    fresh = await store.get_job(job.id)
    assert fresh is not None and fresh.state == "failed"
    assert fresh.error_code == "create_unconfirmed"
    assert (await store.ledger_balances()).get("held", 0) == 0
    assert api.count("POST", "/videos") == 0


async def test_never_sent_create_is_handed_back_to_be_sent(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    job = await _creating_job(store, None)
    resent: list[int] = []

    async def resubmit(j: Job) -> None:
        resent.append(j.id)

    tracker = Tracker(store, client_for(http, api.url), Recorder(), resubmit=resubmit)
    await tracker.poll_once()
    assert resent == [job.id]


async def test_while_the_service_is_unreachable_one_waiting_job_a_round_tries_it(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    jobs = [await _creating_job(store, None) for _ in range(3)]
    resent: list[int] = []

    async def resubmit(j: Job) -> None:
        resent.append(j.id)

    tracker = Tracker(store, client_for(http, api.url), Recorder(), resubmit=resubmit)
    tracker.service_ok = False  # as a send that found the service unreachable leaves it
    await tracker.poll_once()
    assert resent == [jobs[0].id]
    await tracker.set_service_ok(True)  # a send reached it
    resent.clear()
    await tracker.poll_once()
    assert resent == [j.id for j in jobs]


async def test_a_job_never_sent_by_its_deadline_is_failed_and_refunded(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    job = await _creating_job(store, None, deadline_at=time.time() - 1)
    resent: list[int] = []

    async def resubmit(j: Job) -> None:
        resent.append(j.id)

    recorder = Recorder()
    tracker = Tracker(store, client_for(http, api.url), recorder, resubmit=resubmit)
    await tracker.poll_once()
    fresh = await store.get_job(job.id)
    assert fresh is not None and fresh.state == "failed"
    assert fresh.error_code == "unreachable"
    assert [j.id for j in recorder.finished] == [job.id]
    assert resent == []
    assert (await store.ledger_balances()).get("held", 0) == 0


async def test_in_flight_jobs_are_left_alone(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    job = await _creating_job(store, None)
    resent: list[int] = []

    async def resubmit(j: Job) -> None:
        resent.append(j.id)

    tracker = Tracker(store, client_for(http, api.url), Recorder(), resubmit=resubmit)
    tracker.in_flight.add(job.id)
    await tracker.poll_once()
    assert resent == []


async def test_poll_hint_can_only_slow_the_tracker(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    client = client_for(http, api.url)
    tracker = Tracker(store, client, Recorder(), interval=10)
    client.poll_after = 2.0
    assert tracker.next_delay() == 10
    client.poll_after = 20.0
    assert tracker.next_delay() == 20


async def test_a_server_that_refuses_listing_is_polled_job_by_job(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    for i in range(4):
        await running_job(store, f"v{i}")
        api.on("GET", f"/videos/v{i}", answer(200, video(f"v{i}", status="completed")))
    api.on("GET", "/videos", answer(404, "Unknown route"))
    listener = Recorder()
    tracker = Tracker(store, client_for(http, api.url), listener)
    stats = await tracker.poll_once()
    assert tracker.list_refused
    assert tracker.service_ok
    assert stats.finished == 4
    assert api.count("GET", "/videos") == 1
    assert sorted(j.api_video_id or "" for j in listener.finished) == ["v0", "v1", "v2", "v3"]


async def test_a_wake_between_polls_starts_queued_work_without_polling(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    await running_job(store, "v0")
    api.on("GET", "/videos/v0", answer(200, video("v0", status="in_progress", progress=5)))
    tracker = Tracker(store, client_for(http, api.url, list=False), Recorder(), interval=30)
    starts = 0

    async def start_queued() -> None:
        nonlocal starts
        starts += 1

    tracker.before_round = start_queued
    tracker.start()
    try:
        for _ in range(50):
            if api.count("GET", "/videos/v0") == 1:
                break
            await asyncio.sleep(0.02)
        for _ in range(5):
            tracker.wake()
            await asyncio.sleep(0.05)
    finally:
        await tracker.stop()
    # One poll at start; each wake only ran the queue step.
    assert api.count("GET", "/videos/v0") == 1
    assert starts >= 5


async def test_a_job_being_sent_is_never_sent_again_by_a_tracker_round(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    """The race: a round reads the new job before its send marks it; the round must not send."""
    from bot.api.models import CreateVideo
    from bot.catalog import load_catalog
    from bot.quota import QuotaDefaults, QuotaPolicy
    from bot.submit import JobService, Origin

    release = asyncio.Event()
    arrived = asyncio.Event()

    async def slow_create(request: Any) -> Any:
        arrived.set()
        await release.wait()
        return await answer(200, video("v-only"))(request)

    api.on("POST", "/videos", slow_create, answer(200, video("v-second")))
    client = client_for(http, api.url)
    tracker = Tracker(store, client, Recorder())
    policy = QuotaPolicy(store, QuotaDefaults(cooldown_seconds=None, max_concurrent=None))
    service = JobService(store, client, load_catalog(None), tracker, tmp_path, policy=policy)
    request = CreateVideo(prompt="a fox", model="sora-2", seconds="4", size="1280x720")
    submitting = asyncio.create_task(service.submit(Origin(user_id=1, channel_id=2), request))
    await asyncio.wait_for(arrived.wait(), 5)
    # The create is in flight; a tracker round (and a second send of a stale copy) happen now.
    (stale,) = await store.active_jobs()
    await tracker.poll_once()
    await service.send(stale.model_copy(update={"create_attempted_at": None}))
    release.set()
    job = await submitting
    assert api.count("POST", "/videos") == 1
    assert not isinstance(job, str)
    fresh = await store.get_job(stale.id)
    assert fresh is not None
    assert fresh.api_video_id == "v-only"
