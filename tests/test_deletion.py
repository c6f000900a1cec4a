"""Deleting a video for its owner (bot/deletion.py) over a real SQLite file and a scripted video
service on loopback: what is sent, what is refused, and what the store keeps afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.deletion import CANNOT_DELETE, FAILED, NO_VIDEO, NOT_OWNER, VideoDeleter
from bot.own_job import UNKNOWN
from bot.sim.clock import SimClock
from bot.store import Job, Store
from tests.jobs import job_request
from tests.scripted_api import ScriptedAPI, answer, video_deleted
from tests.scripted_client import client_for

OWNER = 1
OTHER = 2
T0 = 1_000_000.0
VIDEO = "video_1"
PATH = f"/videos/{VIDEO}"
DELETED = video_deleted(VIDEO)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "bot.sqlite3", clock=SimClock(T0)) as s:
        yield s


def deleter(store: Store, http: httpx.AsyncClient, api: ScriptedAPI, **caps: Any) -> VideoDeleter:
    return VideoDeleter(store, client_for(http, api.url, **caps))


async def finished_job(store: Store, video: str | None = VIDEO) -> Job:
    new = job_request(user_id=OWNER, guild_id=100, prompt="a fox in the snow")
    job = await store.insert_job(new)
    if video is None:
        return job
    await store.attach_video(job.id, video, "queued", 0)
    done = await store.mark_succeeded(job.id, T0, None)
    assert done is not None
    return done


async def test_a_deleted_video_is_recorded_with_who_and_when(
    store: Store, http: httpx.AsyncClient, api: ScriptedAPI
) -> None:
    api.on("DELETE", PATH, answer(200, DELETED))
    job = await finished_job(store)

    outcome = await deleter(store, http, api).delete(job.id, OWNER)

    assert (outcome.status, outcome.done, outcome.notice) == ("deleted", True, None)
    assert api.count("DELETE", PATH) == 1
    kept = await store.get_job(job.id)
    assert kept is not None
    assert (kept.deleted_at, kept.deleted_by) == (T0, OWNER)
    assert outcome.job == kept
    # The rest of the job is as it was: still a success, its charge untouched.
    assert (kept.state, kept.cost_micros, kept.api_video_id) == ("succeeded", 400_000, VIDEO)


async def test_a_second_click_does_not_ask_the_service_again(
    store: Store, http: httpx.AsyncClient, api: ScriptedAPI
) -> None:
    api.on("DELETE", PATH, answer(200, DELETED))
    job = await finished_job(store)
    videos = deleter(store, http, api)
    await videos.delete(job.id, OWNER)

    again = await videos.delete(job.id, OWNER)

    assert (again.status, again.done) == ("gone", True)
    assert api.count("DELETE", PATH) == 1
    assert again.job is not None and again.job.deleted_at == T0


async def test_another_member_is_refused_and_nothing_is_sent(
    store: Store, http: httpx.AsyncClient, api: ScriptedAPI
) -> None:
    api.on("DELETE", PATH, answer(200, DELETED))
    job = await finished_job(store)
    videos = deleter(store, http, api)

    outcome = await videos.delete(job.id, OTHER)

    assert (outcome.status, outcome.done, outcome.notice) == ("refused", False, NOT_OWNER)
    assert await videos.check(job.id, OTHER) == outcome
    # Nothing about someone else's job comes back to the asker.
    assert outcome.job is None
    assert api.seen == []
    kept = await store.get_job(job.id)
    assert kept is not None and kept.deleted_at is None


async def test_a_service_failure_changes_nothing_and_a_retry_can_succeed(
    store: Store, http: httpx.AsyncClient, api: ScriptedAPI
) -> None:
    api.on("DELETE", PATH, answer(500, "internal error"), answer(200, DELETED))
    job = await finished_job(store)
    videos = deleter(store, http, api)

    failed = await videos.delete(job.id, OWNER)

    assert (failed.status, failed.done, failed.notice) == ("failed", False, FAILED)
    kept = await store.get_job(job.id)
    assert kept is not None and (kept.deleted_at, kept.deleted_by) == (None, None)

    retried = await videos.delete(job.id, OWNER)
    assert retried.status == "deleted"
    assert api.count("DELETE", PATH) == 2


async def test_a_video_already_gone_at_the_service_is_recorded_as_gone(
    store: Store, http: httpx.AsyncClient, api: ScriptedAPI
) -> None:
    api.on("DELETE", PATH, answer(404, "no such video"))
    job = await finished_job(store)

    outcome = await deleter(store, http, api).delete(job.id, OWNER)

    assert (outcome.status, outcome.done, outcome.notice) == ("gone", True, None)
    kept = await store.get_job(job.id)
    assert kept is not None and (kept.deleted_at, kept.deleted_by) == (T0, OWNER)


@pytest.mark.parametrize("case", ["no delete here", "no video", "unknown job"])
async def test_what_cannot_be_deleted_is_refused_without_a_call(
    store: Store, http: httpx.AsyncClient, api: ScriptedAPI, case: str
) -> None:
    api.on("DELETE", PATH, answer(200, DELETED))
    job = await finished_job(store, video=None if case == "no video" else VIDEO)
    videos = deleter(store, http, api, delete=case != "no delete here")
    expected = {"no delete here": CANNOT_DELETE, "no video": NO_VIDEO, "unknown job": UNKNOWN}

    outcome = await videos.delete(job.id + 1 if case == "unknown job" else job.id, OWNER)

    assert (outcome.status, outcome.notice) == ("refused", expected[case])
    assert api.seen == []
    kept = await store.get_job(job.id)
    assert kept is not None and kept.deleted_at is None


async def test_the_record_survives_a_restart(
    tmp_path: Path, http: httpx.AsyncClient, api: ScriptedAPI
) -> None:
    api.on("DELETE", PATH, answer(200, DELETED))
    path = tmp_path / "bot.sqlite3"
    async with await Store.open(path, clock=SimClock(T0)) as store:
        job = await finished_job(store)
        await deleter(store, http, api).delete(job.id, OWNER)
    async with await Store.open(path, clock=SimClock(T0)) as reopened:
        kept = await reopened.get_job(job.id)
        again = await deleter(reopened, http, api).delete(job.id, OWNER)
    assert kept is not None and (kept.deleted_at, kept.deleted_by) == (T0, OWNER)
    assert again.status == "gone"
    assert api.count("DELETE", PATH) == 1
