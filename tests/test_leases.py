"""Leases (bot/store/leases.py): two Store objects on one PostgreSQL database stand for two bot
processes. A job is looked after by exactly one of them; a dead one's jobs pass to a live one
once its leases expire; a clean stop hands them over at once; the queue's slots are counted
across both. On SQLite (one process per data folder) a new process takes everything at once."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from PIL import Image
from pydantic import SecretStr

from bot.api.client import VideosClient
from bot.api.config import ClientConfig
from bot.api.models import CreateVideo, ReferenceImage
from bot.catalog_files import load_catalog
from bot.delivery import Deliverer
from bot.leases import LeaseKeeper
from bot.quota import QuotaDefaults, QuotaPolicy
from bot.sender import Sender
from bot.sim import SimConfig, SimServer
from bot.store import Intake, Job, NewJob, Store
from bot.store.db import fetch_all
from bot.store.pg import POOL_SIZE, WRITE_LOCK
from bot.submit import JobService, Origin
from bot.tracker import Tracker
from tests.clock import Clock
from tests.sinks import QuietSink

LEASE = 30.0
KEY = "sk-sim-test"


class Quiet:
    """A tracker listener that is told and does nothing."""

    async def job_changed(self, job: Job, outlook: object = None) -> None:
        return None

    async def job_finished(self, job: Job) -> None:
        return None


def new_job(n: int) -> NewJob:
    return NewJob(
        user_id=n,
        guild_id=100,
        channel_id=10,
        prompt=f"job {n}",
        model="sora-2",
        seconds="4",
        size="1280x720",
        cost_micros=1000,
    )


def intake(clock: Clock, interaction_id: int) -> Intake:
    return Intake(
        interaction_id=interaction_id,
        application_id=5,
        token=f"tok-{interaction_id}",
        token_expires_at=clock() + 900,
        user_id=7,
        received_at=clock(),
    )


@pytest.fixture
def clock() -> Clock:
    return Clock(1_000_000.0)


@pytest.fixture
async def two(pg_url: str, clock: Clock) -> AsyncIterator[tuple[Store, Store]]:
    a = await Store.open(pg_url, clock=clock)
    b = await Store.open(pg_url, clock=clock)
    for store in (a, b):
        store.lease_seconds = LEASE
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def test_a_new_job_is_its_creators_and_no_one_else_takes_it(
    two: tuple[Store, Store],
) -> None:
    a, b = two
    assert a.shared and b.shared and a.worker != b.worker
    job = await a.insert_job(new_job(1))
    assert job.lease_owner == a.worker and a.looks_after(job) and not b.looks_after(job)
    claimed = await b.claim_leases()
    assert claimed.mine == set() and claimed.taken == []
    assert (await a.claim_leases()).mine == {job.id}


async def test_a_dead_processs_jobs_pass_to_a_live_one_once_its_leases_expire(
    two: tuple[Store, Store], clock: Clock
) -> None:
    a, b = two
    jobs = [await a.insert_job(new_job(n)) for n in range(5)]
    clock.now += LEASE - 1
    # Still within the lease: b takes nothing, however often it asks.
    assert (await b.claim_leases()).mine == set()
    clock.now += 2  # a stopped renewing (it died): its leases have run out
    claimed = await b.claim_leases()
    assert claimed.mine == {j.id for j in jobs}
    assert sorted(j.id for j in claimed.taken) == [j.id for j in jobs]
    # Now b's: a coming back to life finds them held.
    assert (await a.claim_leases()).mine == set()
    for job in jobs:
        fresh = await b.get_job(job.id)
        assert fresh is not None and b.looks_after(fresh) and not a.looks_after(fresh)
    # b renews without "taking" its own again.
    assert (await b.claim_leases()).taken == []


async def test_a_renewing_process_keeps_its_jobs_past_the_first_lease(
    two: tuple[Store, Store], clock: Clock
) -> None:
    a, b = two
    job = await a.insert_job(new_job(1))
    for _ in range(4):
        clock.now += LEASE / 3
        assert (await a.claim_leases()).mine == {job.id}
        assert (await b.claim_leases()).mine == set()


async def test_a_clean_stop_hands_the_jobs_over_at_once(two: tuple[Store, Store]) -> None:
    a, b = two
    job = await a.insert_job(new_job(1))
    assert await a.release_leases() == 1
    claimed = await b.claim_leases()
    assert claimed.mine == {job.id} and [j.id for j in claimed.taken] == [job.id]


async def test_processes_claiming_at_once_never_take_the_same_job(
    two: tuple[Store, Store], clock: Clock
) -> None:
    a, b = two
    seeded = [await a.insert_job(new_job(n)) for n in range(200)]
    await a.release_leases()
    results = await asyncio.gather(*(s.claim_leases() for s in (a, b, a, b)))
    owners: dict[int, str] = {}
    for store, claimed in zip((a, b, a, b), results, strict=True):
        for job_id in claimed.mine:
            assert owners.setdefault(job_id, store.worker) == store.worker
    assert set(owners) == {j.id for j in seeded}
    # What the database says agrees with what each was told.
    for job in seeded:
        fresh = await a.get_job(job.id)
        assert fresh is not None and fresh.lease_owner == owners[job.id]


async def test_finished_and_delivered_jobs_are_nobodys(two: tuple[Store, Store]) -> None:
    a, b = two
    job = await a.insert_job(new_job(1))
    await a.mark_failed(job.id, "boom", "it broke")
    assert await a.claim_delivery(job.id)
    await a.finish_delivery(job.id, None)
    await a.release_leases()
    assert (await b.claim_leases()).mine == set()


async def test_the_queues_slots_are_counted_across_processes(
    two: tuple[Store, Store],
) -> None:
    a, b = two
    queued = [await a.insert_job(new_job(n), state="queued_local") for n in range(3)]
    first, second = await asyncio.gather(a.take_queued(1), b.take_queued(1))
    taken = [j for j in (first, second) if j is not None]
    assert len(taken) == 1 and taken[0].id == queued[0].id
    assert taken[0].state == "creating"
    taker = a if first is not None else b
    assert taken[0].lease_owner == taker.worker
    # With two slots the next oldest goes, to whoever asks.
    job = await b.take_queued(2)
    assert job is not None and job.id == queued[1].id and job.lease_owner == b.worker
    assert await a.take_queued(2) is None


async def test_a_dead_processs_unanswered_requests_are_answered_by_a_live_one(
    two: tuple[Store, Store], clock: Clock
) -> None:
    a, b = two
    await a.record_intake(intake(clock, 11))
    await a.record_intake(intake(clock, 12))
    await a.insert_job(new_job(1).model_copy(update={"interaction_id": 12}))
    # a is alive and handling 11: not an orphan, for b nor for a itself.
    assert await b.claim_orphan_intakes() == []
    assert await a.claim_orphan_intakes() == []
    clock.now += LEASE + 1
    orphans = await b.claim_orphan_intakes()
    # 12 became a job (the job is looked after instead); 11 is b's to answer now.
    assert [i.interaction_id for i in orphans] == [11]
    assert await b.claim_orphan_intakes() == []
    await b.drop_intake(11)
    clock.now += LEASE + 1
    assert await a.claim_orphan_intakes() == []


async def test_a_job_of_this_process_is_renewed_with_its_requests(
    two: tuple[Store, Store], clock: Clock
) -> None:
    a, b = two
    await a.record_intake(intake(clock, 21))
    for _ in range(4):
        clock.now += LEASE / 3
        await a.claim_leases()
    assert await b.claim_orphan_intakes() == []


async def test_on_sqlite_a_new_process_takes_every_job_at_once(
    tmp_path: Path, clock: Clock
) -> None:
    path = tmp_path / "bot.sqlite3"
    async with await Store.open(path, clock=clock) as before:
        jobs: list[Job] = [await before.insert_job(new_job(n)) for n in range(3)]
        await before.record_intake(intake(clock, 31))
    # The next process on the file: nothing has expired yet, and it takes everything.
    async with await Store.open(path, clock=clock) as after:
        assert not after.shared
        claimed = await after.claim_leases()
        assert claimed.mine == {j.id for j in jobs}
        assert [i.interaction_id for i in await after.claim_orphan_intakes()] == [31]
        assert all(after.looks_after(j) for j in jobs)


def png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (30, 140, 90)).save(buf, "PNG")
    return buf.getvalue()


async def test_a_reference_kept_by_one_process_is_read_by_another_until_sent(
    two: tuple[Store, Store],
) -> None:
    a, b = two
    job = await a.insert_job(new_job(1).model_copy(update={"has_reference": True}))
    await a.keep_reference(job.id, "image/png", b"\x89PNG fake")
    assert await b.kept_reference(job.id) == ("image/png", b"\x89PNG fake")
    assert await b.drop_sent_references() == 0  # not sent yet
    await a.mark_create_attempted(job.id, 1.0)
    await a.attach_video(job.id, "video_1", "queued", 0)
    assert await b.drop_sent_references() == 1
    assert await a.kept_reference(job.id) is None


async def test_a_queued_job_with_a_reference_is_sent_by_another_process_with_its_image(
    two: tuple[Store, Store], tmp_path: Path
) -> None:
    """The request reached process a (which keeps the image under its own DATA_DIR); the slot
    freed in process b, whose folder has no such file: b sends the job with the image the
    database kept."""
    a, b = two
    image = png(1280, 720)
    sim = SimServer(SimConfig(api_key=KEY, job_seconds=60))
    async with sim as url, httpx.AsyncClient() as http:
        config = ClientConfig(base_url=url, api_key=SecretStr(KEY), max_retries=0)
        client = VideosClient(http, config)
        folder_a, folder_b = tmp_path / "a", tmp_path / "b"
        tracker_a = Tracker(
            a, client, Quiet(), sender=Sender(a, client, folder_a), max_concurrent=1
        )
        tracker_b = Tracker(
            b, client, Quiet(), sender=Sender(b, client, folder_b), max_concurrent=1
        )
        policy = QuotaPolicy(a, QuotaDefaults(cooldown_seconds=None, max_concurrent=1))
        service = JobService(a, client, load_catalog(None), tracker_a, folder_a, policy=policy)
        request = CreateVideo(prompt="a fox", model="sora-2", seconds="4", size="1280x720")
        reference = ReferenceImage(data=image, filename="ref.png", content_type="image/png")
        first = await service.submit(Origin(user_id=1, channel_id=2), request)
        queued = await service.submit(
            Origin(user_id=2, channel_id=2),
            request.model_copy(update={"prompt": "a hare"}),
            reference=reference,
        )
        assert isinstance(first, Job) and isinstance(queued, Job)
        assert queued.state == "queued_local"
        # The first job ends; the slot frees where b looks first.
        await a.mark_failed(first.id, "boom", "it broke")
        await tracker_b.start_queued()
        sent = await b.get_job(queued.id)
        assert sent is not None and sent.state == "running" and sent.lease_owner == b.worker
        assert not list((folder_b / "references").glob("*"))  # b never had the file
        (made,) = [v for v in sim.videos.values() if v.prompt == "a hare"]
        assert made.reference == image and made.reference_content_type == "image/png"


class BlockedSink(QuietSink):
    """A sink whose answers to lost requests never return while `blocked` is set."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def answer_unrecorded(self, intake: Intake) -> bool:
        self.entered.set()
        await self.release.wait()
        return True


async def test_renewals_go_on_while_the_takeover_work_waits_on_discord(
    two: tuple[Store, Store], clock: Clock, tmp_path: Path
) -> None:
    """Answering a dead process's requests may wait on Discord for a minute: the live process
    must keep renewing meanwhile, or it would lose its own jobs to another."""
    a, b = two
    mine = await b.insert_job(new_job(1))
    await a.record_intake(intake(clock, 41))
    clock.now += LEASE + 1  # a died; its request is an orphan now
    sink = BlockedSink()
    async with httpx.AsyncClient() as http:
        client = VideosClient(
            http, ClientConfig(base_url="http://127.0.0.1:9", api_key=SecretStr(KEY))
        )
        deliverer = Deliverer(b, client, sink, tmp_path, clock=clock)
        renewed = asyncio.Event()

        async def sleep(seconds: float) -> None:
            clock.now += seconds
            renewed.set()
            await asyncio.sleep(0.01)

        keeper = LeaseKeeper(b, deliverer, wake=lambda: None, sleep=sleep)
        keeper.start()
        try:
            await asyncio.wait_for(sink.entered.wait(), 10)  # the takeover work is stuck
            start = clock.now
            # Three more lease periods go by with the answer still hanging.
            while clock.now < start + 3 * LEASE:
                renewed.clear()
                await asyncio.wait_for(renewed.wait(), 10)
            fresh = await b.get_job(mine.id)
            assert fresh is not None and b.looks_after(fresh)
            assert (await a.claim_leases()).mine == set()  # nothing of b's was free to take
        finally:
            sink.release.set()
            await keeper.stop()
            await deliverer.tasks.cancel_all()


async def test_a_write_waiting_for_another_process_leaves_reads_and_requests_alone(
    two: tuple[Store, Store], pg_url: str, clock: Clock
) -> None:
    """Another process holds the write lock: this process's writes wait (one of them on the
    lock, the rest for their turn), and its reads and request records still go through."""
    a, _ = two
    job = await a.insert_job(new_job(1))
    holder = await asyncpg.connect(pg_url)
    try:
        held = holder.transaction()
        await held.start()
        await holder.execute("SELECT pg_advisory_xact_lock($1)", WRITE_LOCK)
        writes = [asyncio.create_task(a.set_meta(f"k{n}", "v")) for n in range(POOL_SIZE + 5)]
        await asyncio.sleep(0.2)
        assert not any(w.done() for w in writes)
        assert await asyncio.wait_for(a.get_job(job.id), 5) is not None
        await asyncio.wait_for(a.record_intake(intake(clock, 51)), 5)
        await held.rollback()
        await asyncio.wait_for(asyncio.gather(*writes), 10)
    finally:
        await holder.close()


async def test_the_servers_end_a_stuck_sessions_hold(two: tuple[Store, Store]) -> None:
    """A frozen process inside a transaction would hold the write lock for every process:
    the pool's sessions ask the server to end such a session and to notice a vanished host."""
    a, _ = two
    async with a._db.reading() as conn:
        rows = await fetch_all(conn, "SHOW idle_in_transaction_session_timeout")
        assert rows[0][0] == "30s"
        rows = await fetch_all(conn, "SHOW lock_timeout")
        assert rows[0][0] == "1min"


async def test_one_interaction_twice_in_a_batch_fails_no_request(
    two: tuple[Store, Store], clock: Clock
) -> None:
    a, _ = two
    first, again, other = intake(clock, 61), intake(clock, 61), intake(clock, 62)
    await asyncio.gather(*(a.record_intake(i) for i in (first, again, other)))
    assert {i.interaction_id for i in await a.unrecorded_intakes()} == {61, 62}
