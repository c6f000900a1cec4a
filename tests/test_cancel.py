"""Cancelling a job for its member (bot/cancel.py) over a real SQLite file and a scripted video
service on loopback: what is sent, what the ledger holds afterwards, and what the tracker still
follows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from pydantic import SecretStr

from bot.api.client import VideosClient
from bot.api.config import ClientConfig
from bot.api.models import CreateVideo
from bot.api.profiles import DEFAULT_AUTH_HEADERS, PROFILES, Capabilities, ProfileName
from bot.cancel import (
    ALREADY_CANCELLED,
    ALREADY_DONE,
    BEING_SENT,
    CANCELLED_STOPPED,
    CANCELLED_UNSENT,
    CANCELLED_UNSTOPPABLE,
    NOT_OWNER,
    NOT_REACHED,
    JobCanceller,
    cancellable,
)
from bot.own_job import UNKNOWN
from bot.queueview import Outlook
from bot.sim import SimClock, SimConfig, SimServer
from bot.store import CANCELLED_CODE, InvalidTransition, Job, JobState, Store
from bot.tracker import Tracker
from tests.jobs import job_record, job_request
from tests.scripted_api import Responder, ScriptedAPI, answer, video, video_deleted
from tests.scripted_client import client_for

OWNER = 1
OTHER = 2
COST = 400_000
T0 = 1_000_000.0
VIDEO = "video_1"
PATH = f"/videos/{VIDEO}"
DELETED = video_deleted(VIDEO)


class Recorder:
    """The tracker's listener, and the canceller's `on_cancelled`: what each was told."""

    def __init__(self) -> None:
        self.changed: list[Job] = []
        self.finished: list[Job] = []
        self.cancelled: list[Job] = []

    async def job_changed(self, job: Job, outlook: Outlook | None = None) -> None:
        self.changed.append(job)

    async def job_finished(self, job: Job) -> None:
        self.finished.append(job)

    async def on_cancelled(self, job: Job) -> None:
        self.cancelled.append(job)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "bot.sqlite3", clock=SimClock(T0)) as s:
        yield s


@pytest.fixture
def seen() -> Recorder:
    return Recorder()


def canceller(
    store: Store, http: httpx.AsyncClient, api: ScriptedAPI, seen: Recorder, **caps: Any
) -> JobCanceller:
    return JobCanceller(store, client_for(http, api.url, **caps), on_cancelled=seen.on_cancelled)


async def job_in(store: Store, state: JobState) -> Job:
    """A job of OWNER's with its reservation, in `state` ('creating' sent: see `sent`)."""
    new = job_request(user_id=OWNER, guild_id=100, prompt="a fox in the snow", cost_micros=COST)
    job = await store.insert_job(
        new, state="queued_local" if state == "queued_local" else "creating"
    )
    if state == "running":
        attached = await store.attach_video(job.id, VIDEO, "in_progress", 10)
        assert attached is not None
        return attached
    return job


async def sent(store: Store) -> Job:
    """A job whose create has left and whose answer has not come."""
    job = await job_in(store, "creating")
    assert await store.mark_create_attempted(job.id, T0)
    fresh = await store.get_job(job.id)
    assert fresh is not None
    return fresh


async def current(store: Store, job_id: int) -> Job:
    job = await store.get_job(job_id)
    assert job is not None
    return job


async def assert_refunded_once(store: Store, job_id: int) -> None:
    entries = await store.ledger_entries(job_id)
    assert [(e.reason, e.amount_micros) for e in entries] == [("reserve", COST), ("refund", -COST)]
    assert await store.open_hold(job_id) == 0


async def assert_untouched(store: Store, job: Job) -> None:
    now = await current(store, job.id)
    assert (now.state, now.cancelled_by, now.error_code) == (job.state, None, None)
    assert [e.reason for e in await store.ledger_entries(job.id)] == ["reserve"]
    assert await store.open_hold(job.id) == COST


def status_is(status: str, **fields: Any) -> Responder:
    return answer(200, video(VIDEO, status=status, **fields))


# ---------------------------------------------------------------------- not yet sent


async def test_a_queued_job_is_cancelled_and_refunded_with_nothing_sent(
    store: Store, http: httpx.AsyncClient, api: ScriptedAPI, seen: Recorder
) -> None:
    job = await job_in(store, "queued_local")

    outcome = await canceller(store, http, api, seen).cancel(job.id, OWNER)

    assert (outcome.status, outcome.notice) == ("cancelled", CANCELLED_UNSENT)
    assert api.seen == []
    ended = await current(store, job.id)
    assert (ended.state, ended.error_code, ended.cancelled_by) == ("failed", CANCELLED_CODE, OWNER)
    assert ended.cancelled and outcome.job == ended
    await assert_refunded_once(store, job.id)
    assert await store.active_jobs() == []
    assert seen.cancelled == [ended]
    # `/videos` lists it, as cancelled.
    (listed,) = await store.recent_jobs(OWNER, 10)
    assert listed.id == job.id and listed.cancelled


async def test_a_job_whose_create_has_not_left_is_never_sent_after_its_cancel(
    store: Store, http: httpx.AsyncClient, api: ScriptedAPI, seen: Recorder
) -> None:
    job = await job_in(store, "creating")

    outcome = await canceller(store, http, api, seen).cancel(job.id, OWNER)

    assert (outcome.status, outcome.notice) == ("cancelled", CANCELLED_UNSENT)
    await assert_refunded_once(store, job.id)
    # The sender's claim of the send is what every create goes through: it no longer can.
    with pytest.raises(InvalidTransition):
        await store.mark_create_attempted(job.id, T0)
    assert api.seen == []


async def test_a_job_being_sent_is_not_cancelled_until_its_answer_is_in(
    store: Store, http: httpx.AsyncClient, api: ScriptedAPI, seen: Recorder
) -> None:
    job = await sent(store)

    outcome = await canceller(store, http, api, seen).cancel(job.id, OWNER)

    assert (outcome.status, outcome.notice) == ("failed", BEING_SENT)
    assert api.seen == [] and seen.cancelled == []
    await assert_untouched(store, job)


# ---------------------------------------------------------------------- at the service


async def test_a_running_job_is_deleted_at_the_service_refunded_and_no_longer_tracked(
    store: Store, http: httpx.AsyncClient, api: ScriptedAPI, seen: Recorder
) -> None:
    api.on("GET", PATH, status_is("in_progress", progress=40))
    api.on("DELETE", PATH, answer(200, DELETED))
    job = await job_in(store, "running")
    client = client_for(http, api.url)

    outcome = await JobCanceller(store, client, on_cancelled=seen.on_cancelled).cancel(
        job.id, OWNER
    )

    assert (outcome.status, outcome.notice, outcome.stopped) == (
        "cancelled",
        CANCELLED_STOPPED,
        True,
    )
    assert (api.count("GET", PATH), api.count("DELETE", PATH)) == (1, 1)
    await assert_refunded_once(store, job.id)
    ended = await current(store, job.id)
    assert ended.cancelled and ended.state == "failed"
    # The tracker's next round has nothing to follow: the video is never asked about again.
    tracker = Tracker(store, client, seen, clock=SimClock(T0))
    stats = await tracker.poll_once()
    assert stats.jobs == 0
    assert api.count("GET", PATH) == 1
    assert seen.finished == [] and seen.cancelled == [ended]


async def test_a_job_completed_meanwhile_is_delivered_as_usual_and_nothing_refunded(
    store: Store, http: httpx.AsyncClient, api: ScriptedAPI, seen: Recorder
) -> None:
    api.on("GET", PATH, status_is("completed", progress=100, completed_at=T0 + 60))
    api.on("DELETE", PATH, answer(200, DELETED))
    job = await job_in(store, "running")
    client = client_for(http, api.url)

    outcome = await JobCanceller(store, client, on_cancelled=seen.on_cancelled).cancel(
        job.id, OWNER
    )

    assert (outcome.status, outcome.notice) == ("finished", ALREADY_DONE)
    assert api.count("DELETE", PATH) == 0 and seen.cancelled == []
    await assert_untouched(store, job)
    # The tracker finds it done and hands it to the delivery, as for any success.
    await Tracker(store, client, seen, clock=SimClock(T0)).poll_once()
    (finished,) = seen.finished
    assert (finished.id, finished.state) == (job.id, "succeeded")
    assert await store.open_hold(job.id) == COST


async def test_a_job_the_tracker_finishes_during_the_cancel_is_left_to_it(
    store: Store, http: httpx.AsyncClient, api: ScriptedAPI, seen: Recorder
) -> None:
    job = await job_in(store, "running")

    async def tracker_wins(request: web.Request) -> web.StreamResponse:
        # Between the cancel's status read and its end, the tracker sees the job complete.
        assert await store.mark_succeeded(job.id, T0 + 60, None) is not None
        return web.json_response(DELETED)

    api.on("GET", PATH, status_is("in_progress"))
    api.on("DELETE", PATH, tracker_wins)

    outcome = await canceller(store, http, api, seen).cancel(job.id, OWNER)

    assert (outcome.status, outcome.notice) == ("finished", ALREADY_DONE)
    done = await current(store, job.id)
    assert (done.state, done.cancelled_by) == ("succeeded", None)
    assert [e.reason for e in await store.ledger_entries(job.id)] == ["reserve"]
    assert seen.cancelled == []


async def test_a_stop_the_tracker_saw_first_is_still_a_cancel_refunded_once(
    store: Store, http: httpx.AsyncClient, api: ScriptedAPI, seen: Recorder
) -> None:
    job = await job_in(store, "running")

    async def tracker_sees_it(request: web.Request) -> web.StreamResponse:
        # The tracker reads "cancelled" from the service and fails the job (refunding it).
        assert await store.mark_failed(job.id, "cancelled", "cancelled at the service")
        return web.json_response(DELETED)

    api.on("GET", PATH, status_is("in_progress"))
    api.on("DELETE", PATH, tracker_sees_it)

    outcome = await canceller(store, http, api, seen).cancel(job.id, OWNER)

    assert (outcome.status, outcome.notice) == ("cancelled", CANCELLED_STOPPED)
    await assert_refunded_once(store, job.id)
    assert seen.cancelled == []  # the tracker told the delivery already


@pytest.mark.parametrize(
    ("status", "body"),
    [(404, "no such video"), (409, "cancellation already in progress")],
)
async def test_a_video_gone_or_being_stopped_counts_as_stopped(
    store: Store,
    http: httpx.AsyncClient,
    api: ScriptedAPI,
    seen: Recorder,
    status: int,
    body: str,
) -> None:
    api.on("GET", PATH, status_is("queued"))
    api.on("DELETE", PATH, answer(status, body))
    job = await job_in(store, "running")

    outcome = await canceller(store, http, api, seen).cancel(job.id, OWNER)

    assert (outcome.status, outcome.notice, outcome.stopped) == (
        "cancelled",
        CANCELLED_STOPPED,
        True,
    )
    await assert_refunded_once(store, job.id)


async def test_a_video_the_service_no_longer_knows_is_cancelled_without_a_delete(
    store: Store, http: httpx.AsyncClient, api: ScriptedAPI, seen: Recorder
) -> None:
    api.on("GET", PATH, answer(404, "no such video"))
    job = await job_in(store, "running")

    outcome = await canceller(store, http, api, seen).cancel(job.id, OWNER)

    assert outcome.status == "cancelled"
    assert api.count("DELETE", PATH) == 0
    await assert_refunded_once(store, job.id)


@pytest.mark.parametrize("failing", ["GET", "DELETE"])
async def test_a_service_that_cannot_be_asked_changes_nothing_and_the_job_goes_on(
    store: Store, http: httpx.AsyncClient, api: ScriptedAPI, seen: Recorder, failing: str
) -> None:
    api.on("GET", PATH, answer(503, "overloaded") if failing == "GET" else status_is("queued"))
    api.on("DELETE", PATH, answer(503, "overloaded"))
    job = await job_in(store, "running")

    outcome = await canceller(store, http, api, seen).cancel(job.id, OWNER)

    assert (outcome.status, outcome.notice) == ("failed", NOT_REACHED)
    assert api.count("DELETE", PATH) == (1 if failing == "DELETE" else 0)
    await assert_untouched(store, job)
    assert seen.cancelled == []


async def test_without_delete_the_job_is_cancelled_here_and_the_member_told_it_may_finish(
    store: Store, http: httpx.AsyncClient, api: ScriptedAPI, seen: Recorder
) -> None:
    api.on("GET", PATH, status_is("processing", progress=None))
    job = await job_in(store, "running")

    outcome = await canceller(store, http, api, seen, delete=False).cancel(job.id, OWNER)

    assert (outcome.status, outcome.notice, outcome.stopped) == (
        "cancelled",
        CANCELLED_UNSTOPPABLE,
        False,
    )
    assert api.count("DELETE", PATH) == 0
    await assert_refunded_once(store, job.id)
    assert await store.active_jobs() == []


async def test_a_delete_refused_outright_is_treated_as_a_service_that_cannot_stop(
    store: Store, http: httpx.AsyncClient, api: ScriptedAPI, seen: Recorder
) -> None:
    api.on("GET", PATH, status_is("in_progress"))
    api.on("DELETE", PATH, answer(400, "an in-progress video cannot be deleted"))
    job = await job_in(store, "running")

    outcome = await canceller(store, http, api, seen).cancel(job.id, OWNER)

    assert (outcome.status, outcome.notice) == ("cancelled", CANCELLED_UNSTOPPABLE)
    await assert_refunded_once(store, job.id)


@pytest.mark.parametrize(
    ("profile", "stops"), [("vllm-omni", True), ("openai", True), ("openrouter", False)]
)
async def test_a_job_at_the_simulator_is_stopped_where_its_profile_can(
    store: Store, http: httpx.AsyncClient, seen: Recorder, profile: ProfileName, stops: bool
) -> None:
    clock = SimClock()
    sim = SimServer(SimConfig(profile=profile, job_seconds=60.0, api_key="sk-sim"), clock=clock.now)
    async with sim as url:
        client = VideosClient(
            http,
            ClientConfig(
                base_url=url,
                api_key=SecretStr("sk-sim"),
                auth_header=DEFAULT_AUTH_HEADERS[profile],
                capabilities=PROFILES[profile],
                max_retries=0,
            ),
        )
        reserved = await job_in(store, "creating")
        started = await client.create(
            CreateVideo(prompt="a fox in the snow", model="sora-2", seconds="4", size="1280x720")
        )
        job = await store.attach_video(reserved.id, started.id, started.status, None)
        assert job is not None
        clock.advance(10)  # under way at the service

        outcome = await JobCanceller(store, client).cancel(job.id, OWNER)

        assert outcome.status == "cancelled" and outcome.stopped is stops
        assert outcome.notice == (CANCELLED_STOPPED if stops else CANCELLED_UNSTOPPABLE)
        deletes = [r for r in sim.requests if r.method == "DELETE"]
        assert len(deletes) == (1 if stops else 0)
        # Where it was stopped the service has no job left to finish (and bill).
        assert (started.id in sim.videos) is not stops
        await assert_refunded_once(store, job.id)


# ---------------------------------------------------------------------- who and when


async def test_another_member_is_refused_and_the_job_goes_on(
    store: Store, http: httpx.AsyncClient, api: ScriptedAPI, seen: Recorder
) -> None:
    api.on("GET", PATH, status_is("in_progress"))
    api.on("DELETE", PATH, answer(200, DELETED))
    job = await job_in(store, "running")
    cancel = canceller(store, http, api, seen)

    assert await cancel.check(job.id, OTHER) == await cancel.cancel(job.id, OTHER)
    outcome = await cancel.cancel(job.id, OTHER)

    assert (outcome.status, outcome.notice, outcome.job) == ("refused", NOT_OWNER, None)
    assert api.seen == []
    await assert_untouched(store, job)
    assert await cancel.check(job.id, OWNER) is None


async def test_an_unknown_job_is_refused(
    store: Store, http: httpx.AsyncClient, api: ScriptedAPI, seen: Recorder
) -> None:
    outcome = await canceller(store, http, api, seen).cancel(404, OWNER)
    assert (outcome.status, outcome.notice) == ("refused", UNKNOWN)


async def test_a_second_cancel_says_so_and_refunds_nothing_more(
    store: Store, http: httpx.AsyncClient, api: ScriptedAPI, seen: Recorder
) -> None:
    job = await job_in(store, "queued_local")
    cancel = canceller(store, http, api, seen)
    await cancel.cancel(job.id, OWNER)

    again = await cancel.cancel(job.id, OWNER)

    assert (again.status, again.notice) == ("cancelled", ALREADY_CANCELLED)
    await assert_refunded_once(store, job.id)
    assert len(seen.cancelled) == 1


async def test_cancel_is_offered_while_it_can_do_something() -> None:
    def job(state: JobState) -> Job:
        video = VIDEO if state in ("running", "succeeded") else None
        return job_record(state=state, api_video_id=video, user_id=OWNER)

    stops, cannot = Capabilities(), Capabilities(delete=False)
    assert [cancellable(job(s), stops) for s in ("queued_local", "creating", "running")] == [
        True,
        True,
        True,
    ]
    assert [cancellable(job(s), cannot) for s in ("queued_local", "creating", "running")] == [
        True,
        True,
        False,
    ]
    assert not cancellable(job("succeeded"), stops)
    assert not cancellable(job("failed"), stops)
