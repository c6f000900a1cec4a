"""The tracker over a real SQLite file and a scripted API on loopback: batching, state changes,
reconciliation of unconfirmed creates, deadlines and an unreachable service."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from pydantic import SecretStr

from bot.api.client import VideosClient
from bot.api.config import ClientConfig
from bot.api.profiles import Capabilities
from bot.jobview import failure_notice
from bot.queueview import Outlook
from bot.sender import Sender, Sent
from bot.store import Job, NewJob, Store
from bot.tracker import Tracker
from tests.clock import Clock
from tests.scripted_api import Responder, ScriptedAPI, answer, video, video_deleted
from tests.sinks import QuietSink


class Recorder:
    """A real listener that keeps what it was told."""

    def __init__(self) -> None:
        self.changed: list[Job] = []
        self.finished: list[Job] = []

    async def job_changed(self, job: Job, outlook: Outlook | None = None) -> None:
        self.changed.append(job)

    async def job_finished(self, job: Job) -> None:
        self.finished.append(job)


class Resubmits:
    """A sender that only records each job the tracker hands it to send."""

    def __init__(self, record: Callable[[Job], Awaitable[None]]) -> None:
        self.in_flight: set[int] = set()
        self.record = record

    async def send(self, job: Job) -> Sent:
        await self.record(job)
        return Sent.SKIPPED


async def _no_sleep(_: float) -> None:
    return None


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "bot.sqlite3") as s:
        yield s


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


async def test_a_job_the_service_cancelled_is_told_apart_from_a_members_cancel(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    job = await running_job(store, "v1")
    api.on("GET", "/videos/v1", answer(200, video("v1", status="cancelled")))
    await Tracker(store, client_for(http, api.url), Recorder()).poll_once()
    done = await store.get_job(job.id)
    assert done is not None and done.state == "failed" and not done.cancelled
    assert failure_notice(done.error_code, done.error_message).plain() == (
        "The job was cancelled at the video service."
    )
    assert (await store.ledger_balances()).get("held", 0) == 0


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

    tracker = Tracker(store, client_for(http, api.url), Recorder(), sender=Resubmits(resubmit))
    await tracker.poll_once()
    assert resent == [job.id]


async def test_while_the_service_is_unreachable_one_waiting_job_a_round_tries_it(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    jobs = [await _creating_job(store, None) for _ in range(3)]
    resent: list[int] = []

    async def resubmit(j: Job) -> None:
        resent.append(j.id)

    tracker = Tracker(store, client_for(http, api.url), Recorder(), sender=Resubmits(resubmit))
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
    tracker = Tracker(store, client_for(http, api.url), recorder, sender=Resubmits(resubmit))
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

    tracker = Tracker(store, client_for(http, api.url), Recorder(), sender=Resubmits(resubmit))
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
    starts = 0

    async def start_queued() -> None:
        nonlocal starts
        starts += 1

    tracker = Tracker(
        store,
        client_for(http, api.url, list=False),
        Recorder(),
        round_work=start_queued,
        interval=30,
    )
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
    from bot.catalog_files import load_catalog
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
    tracker = Tracker(store, client, Recorder(), sender=Sender(store, client, tmp_path))
    policy = QuotaPolicy(store, QuotaDefaults(cooldown_seconds=None, max_concurrent=None))
    service = JobService(store, client, load_catalog(None), tracker, tmp_path, policy=policy)
    request = CreateVideo(prompt="a fox", model="sora-2", seconds="4", size="1280x720")
    submitting = asyncio.create_task(service.submit(Origin(user_id=1, channel_id=2), request))
    await asyncio.wait_for(arrived.wait(), 5)
    # The create is in flight; a tracker round (and a second send of a stale copy) happen now.
    (stale,) = await store.active_jobs()
    await tracker.poll_once()
    await tracker.send(stale.model_copy(update={"create_attempted_at": None}))
    release.set()
    job = await submitting
    assert api.count("POST", "/videos") == 1
    assert not isinstance(job, str)
    fresh = await store.get_job(stale.id)
    assert fresh is not None
    assert fresh.api_video_id == "v-only"


# ---------------------------------------------------------------------- containment (issue 11)


def html(status: int = 200) -> Responder:
    async def respond(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, text="<html>oops</html>", content_type="text/html")

    return respond


def deleted(vid: str) -> Responder:
    return answer(200, video_deleted(vid))


async def held(store: Store) -> int:
    return (await store.ledger_balances()).get("held", 0)


async def test_odd_jobs_read_one_by_one_never_stall_the_healthy_ones(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    """One job answering 403, one HTML, one a 500 and one a body that does not validate, beside
    two healthy ones: the healthy ones finish in the first round; the odd ones stay running, and
    at their deadline are deleted at the service and refunded."""
    clock = Clock()
    deadline = clock.now + 600
    healthy = [await running_job(store, f"ok{i}", deadline_at=deadline) for i in range(2)]
    odd = {
        "forbidden": answer(403, "no access to this video"),
        "html": html(),
        "broken": answer(500, "boom"),
        "invalid": answer(200, {"id": "invalid", "status": {"not": "a status"}}),
    }
    odd_jobs = [await running_job(store, vid, deadline_at=deadline) for vid in odd]
    for vid, responder in odd.items():
        api.on("GET", f"/videos/{vid}", responder)
        api.on("DELETE", f"/videos/{vid}", deleted(vid))
    for job in healthy:
        vid = job.api_video_id or ""
        api.on("GET", f"/videos/{vid}", answer(200, video(vid, status="completed", progress=100)))
    listener = Recorder()
    tracker = Tracker(store, client_for(http, api.url, list=False), listener, clock=clock)

    stats = await tracker.poll_once()
    assert tracker.service_ok
    assert sorted(j.id for j in listener.finished) == sorted(j.id for j in healthy)
    assert stats.errors == len(odd)
    for job in odd_jobs:
        assert (await store.get_job(job.id)).state == "running"  # type: ignore[union-attr]
    assert not [s for s in api.seen if s.method == "DELETE"]
    # A job whose read failed is not read again at once (each read may cost retries)...
    await tracker.poll_once()
    assert all(api.count("GET", f"/videos/{vid}") == 1 for vid in odd)
    # ...but soon after, and its deadline applies whether or not it could be read.
    clock.now += tracker.interval
    await tracker.poll_once()
    assert all(api.count("GET", f"/videos/{vid}") == 2 for vid in odd)

    clock.now = deadline + 1
    await tracker.poll_once()
    for job in odd_jobs:
        fresh = await store.get_job(job.id)
        assert fresh is not None and (fresh.state, fresh.error_code) == ("failed", "deadline")
        assert api.count("DELETE", f"/videos/{job.api_video_id}") == 1
    # The healthy ones still hold their cost until delivered; every odd one was refunded.
    assert await held(store) == len(healthy) * 400_000


async def test_odd_items_in_a_listing_are_read_on_their_own(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    """A vLLM-Omni failure (integer error code) and an item that does not parse sit in the list:
    the others are applied from the page, the unreadable one is read by itself."""
    now = int(time.time())
    jobs = {vid: await running_job(store, vid) for vid in ("a", "b", "c", "bad")}
    page = listing(
        video("a", status="completed", progress=100, created_at=now),
        video("b", status="failed", error={"code": 500, "message": "CUDA out of memory"}),
        video("c", status="in_progress", progress=40, created_at=now),
        {"id": "bad", "object": "video", "status": {"odd": True}, "created_at": now},
    )
    api.on("GET", "/videos", answer(200, page))
    api.on("GET", "/videos/bad", answer(403, "forbidden"))
    listener = Recorder()
    tracker = Tracker(store, client_for(http, api.url), listener)
    await tracker.poll_once()
    states = {vid: (await store.get_job(j.id)).state for vid, j in jobs.items()}  # type: ignore[union-attr]
    assert states == {"a": "succeeded", "b": "failed", "c": "running", "bad": "running"}
    failed = await store.get_job(jobs["b"].id)
    assert failed is not None and (failed.error_code, failed.error_message) == (
        "500",
        "CUDA out of memory",
    )
    assert api.count("GET", "/videos/bad") == 1
    assert [s.path for s in api.seen if s.path.startswith("/videos/")] == ["/videos/bad"]
    assert tracker.service_ok


async def test_a_listing_that_is_not_json_falls_back_to_reads_for_that_round(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    for i in range(3):
        await running_job(store, f"v{i}")
        api.on("GET", f"/videos/v{i}", answer(200, video(f"v{i}", status="completed")))
    api.on("GET", "/videos", html())
    listener = Recorder()
    tracker = Tracker(store, client_for(http, api.url), listener)
    await tracker.poll_once()
    assert len(listener.finished) == 3
    assert tracker.service_ok
    assert not tracker.list_refused  # only this round: the next one lists again


async def test_only_a_round_where_every_call_is_an_outage_means_waiting(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    """Six jobs, all 503: after a few calls in a row found the service down the rest wait for
    the next round (no retries paid for each), and members see 'waiting'. One job answering 503
    beside one that answers is that job's problem only."""
    jobs = [await running_job(store, f"v{i}") for i in range(6)]
    for job in jobs:
        api.on("GET", f"/videos/{job.api_video_id}", answer(503, "down"))
    listener = Recorder()
    tracker = Tracker(store, client_for(http, api.url, list=False), listener)
    stats = await tracker.poll_once()
    assert tracker.service_ok is False
    assert stats.requests == stats.outages == 3
    assert {j.state for j in await store.active_jobs()} == {"running"}
    assert sorted(j.id for j in listener.changed) == [j.id for j in jobs]  # told "waiting"

    api.on("GET", "/videos/v5", answer(200, video("v5", status="in_progress", progress=5)))
    stats = await tracker.poll_once()
    assert tracker.service_ok is True
    # The job that failed last time was read after the others; all six were read this time.
    assert stats.requests == 6 and stats.outages == 5


async def test_a_job_past_its_deadline_is_deleted_at_the_service_before_its_refund(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    job = await running_job(store, "v1", deadline_at=time.time() - 1)
    api.on("GET", "/videos/v1", answer(200, video("v1", status="processing")))
    held_at_delete: list[int] = []

    async def delete(request: web.Request) -> web.StreamResponse:
        held_at_delete.append(await held(store))
        return await deleted("v1")(request)

    api.on("DELETE", "/videos/v1", delete)
    await Tracker(store, client_for(http, api.url), Recorder()).poll_once()
    assert held_at_delete == [400_000]  # the video was deleted while the cost was still held
    fresh = await store.get_job(job.id)
    assert fresh is not None and fresh.error_code == "deadline"
    assert await held(store) == 0


async def test_a_failed_delete_at_the_deadline_still_refunds(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    job = await running_job(store, "v1", deadline_at=time.time() - 1)
    api.on("GET", "/videos/v1", answer(403, "forbidden"))
    api.on("DELETE", "/videos/v1", answer(500, "cannot delete"))
    await Tracker(store, client_for(http, api.url), Recorder()).poll_once()
    assert api.count("DELETE", "/videos/v1") == 1
    assert (await store.get_job(job.id)).state == "failed"  # type: ignore[union-attr]
    assert await held(store) == 0


async def test_no_delete_where_the_backend_cannot(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    await running_job(store, "v1", deadline_at=time.time() - 1)
    api.on("GET", "/videos/v1", answer(200, video("v1", status="processing")))
    await Tracker(store, client_for(http, api.url, delete=False), Recorder()).poll_once()
    assert api.count("DELETE", "/videos/v1") == 0
    assert await held(store) == 0


class Unruly(Recorder):
    """A listener that fails for one job's changes and hangs for another's (it must not be
    awaited inside the round by a well-behaved adapter; the tracker still contains it)."""

    def __init__(self, raising: int) -> None:
        super().__init__()
        self.raising = raising

    async def job_changed(self, job: Job, outlook: Outlook | None = None) -> None:
        if job.id == self.raising:
            raise RuntimeError("edit failed")
        await super().job_changed(job)


async def test_a_listener_that_raises_does_not_end_the_round(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    jobs = [await running_job(store, f"v{i}") for i in range(3)]
    for job in jobs:
        vid = job.api_video_id or ""
        api.on("GET", f"/videos/{vid}", answer(200, video(vid, status="in_progress", progress=50)))
    listener = Unruly(raising=jobs[0].id)
    await Tracker(store, client_for(http, api.url, list=False), listener).poll_once()
    assert sorted(j.id for j in listener.changed) == [jobs[1].id, jobs[2].id]
    assert {(await store.get_job(j.id)).progress for j in jobs} == {50}  # type: ignore[union-attr]


class EditSink(QuietSink):
    """A delivery sink whose progress edits fail for one job and hang for another, as a
    Discord that refuses or never answers would."""

    def __init__(self, raising: int, hanging: int) -> None:
        self.raising = raising
        self.hanging = hanging
        self.shown: list[tuple[int, int | None]] = []
        self.attempted: list[tuple[int, int | None]] = []
        self.release = asyncio.Event()

    async def show_progress(self, job: Job, outlook: Outlook | None = None) -> None:
        self.attempted.append((job.id, job.progress))
        if job.id == self.raising and job.progress == 10:
            raise RuntimeError("Discord said no")
        if job.id == self.hanging:
            await self.release.wait()
        self.shown.append((job.id, job.progress))


async def test_discord_edits_never_hold_up_the_round(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    from bot.delivery import Deliverer

    jobs = [await running_job(store, f"v{i}") for i in range(3)]
    raising, hanging, fine = jobs
    client = client_for(http, api.url, list=False)
    sink = EditSink(raising=raising.id, hanging=hanging.id)
    deliverer = Deliverer(store, client, sink, tmp_path)
    tracker = Tracker(store, client, deliverer)

    def progress(value: int) -> None:
        for job in jobs:
            vid = job.api_video_id or ""
            api.on(
                "GET",
                f"/videos/{vid}",
                answer(200, video(vid, status="in_progress", progress=value)),
            )

    progress(10)
    stats = await asyncio.wait_for(tracker.poll_once(), 30)  # a hang would fail here
    assert stats.changed == 3
    progress(20)
    stats = await asyncio.wait_for(tracker.poll_once(), 30)
    assert stats.changed == 3
    sink.release.set()
    await deliverer.tasks.drain()
    # The failed edit was tried again with the job's next change; the hanging one showed its
    # newest state once it could (the one in between was superseded); the rest were not held up.
    assert [p for j, p in sink.attempted if j == raising.id] == [10, 20]
    assert [p for j, p in sink.shown if j == raising.id] == [20]
    assert [p for j, p in sink.shown if j == hanging.id] == [10, 20]
    assert [p for j, p in sink.shown if j == fine.id] == [10, 20]


# ---------------------------------------------------------------------- unconfirmed creates


async def _wired(
    store: Store,
    client: VideosClient,
    tmp_path: Path,
    clock: Clock,
    *,
    listener: Recorder | None = None,
    **options: Any,
) -> tuple[Tracker, Any]:
    """A tracker and a job service on one clock, wired the way the bot wires them."""
    from bot.catalog_files import load_catalog
    from bot.quota import QuotaDefaults, QuotaPolicy
    from bot.submit import JobService

    tracker = Tracker(
        store,
        client,
        listener or Recorder(),
        sender=Sender(store, client, tmp_path, clock=clock),
        clock=clock,
        sleep=clock.sleep,
        **options,
    )
    policy = QuotaPolicy(store, QuotaDefaults(cooldown_seconds=None, max_concurrent=None))
    service = JobService(
        store, client, load_catalog(None), tracker, tmp_path, policy=policy, clock=clock
    )
    return tracker, service


async def _submit(service: Any, prompt: str = "a fox") -> Job:
    from bot.api.models import CreateVideo
    from bot.submit import Origin

    request = CreateVideo(prompt=prompt, model="sora-2", seconds="4", size="1280x720")
    job = await service.submit(Origin(user_id=1, channel_id=2), request)
    assert isinstance(job, Job)
    return job


async def test_an_unconfirmed_create_shown_not_created_is_sent_again_within_seconds(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    clock = Clock()
    api.on("POST", "/videos", answer(500, "upstream hiccup"), answer(200, video("v-new")))
    api.on("GET", "/videos", answer(200, listing()))
    client = client_for(http, api.url)
    listener = Recorder()
    tracker, service = await _wired(store, client, tmp_path, clock, listener=listener)
    started = clock.now
    job = await _submit(service)
    assert job.state == "creating" and job.create_attempts == 1
    await tracker.looks.drain()
    fresh = await store.get_job(job.id)
    assert fresh is not None and (fresh.state, fresh.api_video_id) == ("running", "v-new")
    assert fresh.create_attempts == 2
    assert api.count("POST", "/videos") == 2
    # Two clean reads, at least ten seconds apart, before the second send; no more.
    assert api.count("GET", "/videos") == 2
    assert 10 <= clock.now - started < 30
    # The member saw that it was being sent again.
    retrying = [j for j in listener.changed if j.id == job.id and j.create_attempted_at is None]
    assert retrying and "Retrying" in _status_of(retrying[0])


def _status_of(job: Job) -> str:
    from bot.jobview import job_view

    return job_view(job, now=time.time()).status.plain()


async def test_an_unconfirmed_create_is_adopted_when_found_never_another_requests(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    clock = Clock()
    other = await running_job(store, "v-other")  # the same prompt, owned by another request
    now = int(clock.now)
    api.on("POST", "/videos", answer(500, "upstream hiccup"))
    api.on(
        "GET",
        "/videos",
        answer(200, listing(video("v-other", created_at=now), video("v-mine", created_at=now))),
    )
    client = client_for(http, api.url)
    tracker, service = await _wired(store, client, tmp_path, clock)
    job = await _submit(service)
    await tracker.looks.drain()
    fresh = await store.get_job(job.id)
    assert fresh is not None and (fresh.state, fresh.api_video_id) == ("running", "v-mine")
    assert (await store.get_job(other.id)).api_video_id == "v-other"  # type: ignore[union-attr]
    assert api.count("POST", "/videos") == 1


async def test_another_requests_video_is_never_taken_for_an_unconfirmed_create(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    clock = Clock()
    await running_job(store, "v-other")
    api.on("POST", "/videos", answer(500, "upstream hiccup"), answer(200, video("v-new")))
    api.on("GET", "/videos", answer(200, listing(video("v-other", created_at=int(clock.now)))))
    client = client_for(http, api.url)
    tracker, service = await _wired(store, client, tmp_path, clock)
    job = await _submit(service)
    await tracker.looks.drain()
    fresh = await store.get_job(job.id)
    assert fresh is not None and fresh.api_video_id == "v-new"
    assert api.count("POST", "/videos") == 2


async def test_a_create_still_on_its_way_is_never_taken_for_another_unconfirmed_one(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    """Two members ask for the same video at once. The first create made its job, which the
    listing already shows, but its answer is still on the way; the second create failed before
    the service acted. The second's search must not take the first's job for its own."""
    clock = Clock()
    first_answer = asyncio.Event()
    first_listed = video("v-first", created_at=int(clock.now))

    async def slow_first(request: web.Request) -> web.StreamResponse:
        await first_answer.wait()
        return web.json_response(first_listed)

    api.on(
        "POST",
        "/videos",
        slow_first,
        answer(500, "upstream hiccup"),  # the second: nothing was made
        answer(200, video("v-second")),  # the second, sent again once shown not created
    )
    api.on("GET", "/videos", answer(200, listing(first_listed)))
    client = client_for(http, api.url)
    tracker, service = await _wired(store, client, tmp_path, clock)
    first = asyncio.create_task(_submit(service))
    await asyncio.sleep(0)  # the first create leaves first
    for _ in range(200):
        if api.count("POST", "/videos") == 1:
            break
        await asyncio.sleep(0.01)
    second = await _submit(service)
    # While the first answer is out, the second's searches see the first's job and wait.
    for _ in range(5):
        await asyncio.sleep(0.05)
    waiting = await store.get_job(second.id)
    assert waiting is not None and waiting.api_video_id is None
    first_answer.set()
    first_job = await first
    await tracker.looks.drain()
    await tracker.poll_once()
    await tracker.looks.drain()
    mine, theirs = await store.get_job(first_job.id), await store.get_job(second.id)
    assert mine is not None and mine.api_video_id == "v-first"
    assert theirs is not None and theirs.api_video_id == "v-second"
    assert api.count("POST", "/videos") == 3


async def test_a_create_never_confirmed_is_sent_at_most_three_times(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    clock = Clock()
    api.on("POST", "/videos", answer(502, "bad gateway"))
    api.on("GET", "/videos", answer(200, listing()))
    client = client_for(http, api.url)
    listener = Recorder()
    tracker, service = await _wired(store, client, tmp_path, clock, listener=listener)
    job = await _submit(service)
    await tracker.looks.drain()
    await tracker.poll_once()  # nothing more is sent by a later round either
    await tracker.looks.drain()
    fresh = await store.get_job(job.id)
    assert fresh is not None and (fresh.state, fresh.error_code) == ("failed", "create_unconfirmed")
    assert fresh.create_attempts == 3
    assert api.count("POST", "/videos") == 3
    assert await held(store) == 0
    assert [j.id for j in listener.finished] == [job.id]


async def test_an_ambiguous_search_never_counts_as_not_created(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    clock = Clock()
    now = int(clock.now)
    api.on("POST", "/videos", answer(500, "upstream hiccup"))
    # Two unowned videos that could both be it: neither is adopted, nothing is sent again.
    api.on(
        "GET",
        "/videos",
        answer(200, listing(video("x1", created_at=now), video("x2", created_at=now))),
    )
    client = client_for(http, api.url)
    tracker, service = await _wired(store, client, tmp_path, clock, create_grace=600)
    job = await _submit(service)
    await tracker.looks.drain()
    clock.now += 30
    await tracker.poll_once()
    await tracker.looks.drain()
    assert (await store.get_job(job.id)).state == "creating"  # type: ignore[union-attr]
    clock.now += 600
    await tracker.poll_once()
    fresh = await store.get_job(job.id)
    assert fresh is not None and (fresh.state, fresh.error_code) == ("failed", "create_unconfirmed")
    assert api.count("POST", "/videos") == 1
    assert await held(store) == 0


async def test_a_backend_that_cannot_list_tells_the_member_at_once(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    from bot.jobview import job_view

    clock = Clock()
    api.on("POST", "/videos", answer(500, "upstream hiccup"))
    client = client_for(http, api.url, list=False)
    _, service = await _wired(store, client, tmp_path, clock)
    job = await _submit(service)
    assert (job.state, job.error_code) == ("failed", "create_unconfirmed")
    assert str(job_view(job, now=clock.now).note) == (
        "The video service did not confirm the request; nothing was charged to you."
    )
    assert await held(store) == 0
    assert api.count("GET", "/videos") == 0


async def test_a_yes_the_bot_cannot_use_is_never_sent_again(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    """The service made the job but named it with an id that cannot go into a path: the job
    exists, so sending again would make a second one. It is given up and refunded."""
    clock = Clock()
    api.on("POST", "/videos", answer(200, video("../../admin")), answer(200, video("v-second")))
    api.on("GET", "/videos", answer(200, listing()))
    client = client_for(http, api.url)
    tracker, service = await _wired(store, client, tmp_path, clock)
    job = await _submit(service)
    await tracker.looks.drain()
    clock.now += 60
    await tracker.poll_once()
    await tracker.looks.drain()
    fresh = await store.get_job(job.id)
    assert fresh is not None and (fresh.state, fresh.error_code) == ("failed", "create_unusable")
    assert api.count("POST", "/videos") == 1
    assert await held(store) == 0
