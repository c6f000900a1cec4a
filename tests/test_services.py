"""The core's objects opened in one place (`open_services`) against the simulator on loopback, a
real SQLite file and real video bytes: one request goes all the way to a delivered file, which
lies where the media layout says; leaving the context stops the rounds and closes the database."""

from __future__ import annotations

import asyncio
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot.api.models import CreateVideo
from bot.delivery import Result
from bot.files import DataFolderBusy, only_process
from bot.media import MediaFiles
from bot.services import SIMULATOR_KEY, Services, open_services
from bot.settings import Settings
from bot.sim import SimConfig, SimServer
from bot.store import Job
from bot.submit import Origin
from tests.sinks import QuietSink

KEY = "sk-services-test"


class Sink(QuietSink):
    """A real sink that keeps what it was given and notes where the video was."""

    def __init__(self, expect: int = 1) -> None:
        # Set once this many results were sent.
        self.expect = expect
        self.delivered = asyncio.Event()
        self.results: list[tuple[Job, Result, bool]] = []

    async def send_result(self, job: Job, result: Result) -> int | None:
        present = result.video is not None and result.video.exists()
        self.results.append((job, result, present))
        if len(self.results) >= self.expect:
            self.delivered.set()
        return 1


def settings(data_dir: Path, url: str, **values: Any) -> Settings:
    return Settings(
        _env_file=None,
        openai_base_url=url,
        openai_api_key=SecretStr(KEY),
        video_api_profile="openai",
        data_dir=data_dir,
        poll_interval_seconds=1.0,
        **values,
    )


async def test_one_request_travels_from_open_services_to_a_delivered_file(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    sink = Sink()
    async with SimServer(SimConfig(job_seconds=0.3, api_key=KEY)) as url:
        async with open_services(settings(data_dir, url), sink) as services:
            assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
            assert services.catalog.get("sora-2") is not None
            services.start()
            assert services.tracker.running
            request = CreateVideo(prompt="a fox", model="sora-2", seconds="4", size="1280x720")
            job = await services.jobs.submit(Origin(user_id=1, channel_id=2), request)
            assert isinstance(job, Job)
            await asyncio.wait_for(sink.delivered.wait(), 60)
            await asyncio.wait_for(services.deliverer.tasks.drain(), 60)
            store = services.store
            tracker = services.tracker
        # Leaving the context stopped the rounds and closed the database.
        assert not tracker.running
        with pytest.raises(ValueError, match="closed"):
            await store.get_job(job.id)
    ((delivered, result, present),) = sink.results
    assert delivered.id == job.id and result.failure is None
    assert result.video == MediaFiles(data_dir).video(job.id) and present
    # Delivered: the job's files are gone from the layout's place.
    assert not MediaFiles(data_dir).video(job.id).exists()


class FrontEndFailed(Exception):
    """The front end's own start-up failing after the services were opened."""


async def test_a_failing_front_end_still_closes_everything(tmp_path: Path) -> None:
    opened: list[Services] = []

    async def start_then_fail(url: str) -> None:
        async with open_services(settings(tmp_path / "data", url), Sink()) as services:
            services.start()
            opened.append(services)
            raise FrontEndFailed

    async with SimServer(SimConfig(api_key=KEY)) as url:
        with pytest.raises(FrontEndFailed):
            await start_then_fail(url)
    (services,) = opened
    assert not services.tracker.running
    with pytest.raises(ValueError, match="closed"):
        await services.store.get_job(1)


async def test_a_job_over_the_concurrency_cap_waits_in_the_queue_then_is_sent(
    tmp_path: Path,
) -> None:
    sink = Sink(expect=2)
    async with SimServer(SimConfig(job_seconds=0.3, api_key=KEY)) as url:
        values = settings(tmp_path / "data", url, quota_max_concurrent_jobs=1)
        async with open_services(values, sink) as services:
            services.start()
            # Two members (each member's cooldown is not what this is about).
            first, second = [
                await services.jobs.submit(
                    Origin(user_id=user, channel_id=2),
                    CreateVideo(prompt=prompt, model="sora-2", seconds="4", size="1280x720"),
                )
                for user, prompt in ((1, "a fox"), (2, "a hare"))
            ]
            assert isinstance(first, Job) and isinstance(second, Job)
            assert (first.state, second.state) == ("running", "queued_local")
            await asyncio.wait_for(sink.delivered.wait(), 60)
            await asyncio.wait_for(services.deliverer.tasks.drain(), 60)
    assert [job.id for job, _, _ in sink.results] == [first.id, second.id]
    assert all(result.failure is None and present for _, result, present in sink.results)


async def test_the_embedded_simulator_learns_under_a_fixed_key_and_cancel_is_wired(
    tmp_path: Path,
) -> None:
    """One job's duration is learned under the simulator's fixed key (its port changes at every
    start, its history must not); a job still waiting for the slot is cancelled through
    `services.canceller`, and its message is told by the delivery, as for any end."""
    sink = Sink(expect=2)
    values = Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        poll_interval_seconds=1.0,
        sim_job_seconds=0.3,
        quota_max_concurrent_jobs=1,
    )
    request = CreateVideo(prompt="a fox", model="sora-2", seconds="4", size="1280x720")
    async with open_services(values, sink) as services:
        assert services.backend.simulated and services.backend_key == SIMULATOR_KEY
        services.start()
        first = await services.jobs.submit(Origin(user_id=1, channel_id=2), request)
        second = await services.jobs.submit(Origin(user_id=2, channel_id=2), request)
        assert isinstance(first, Job) and isinstance(second, Job)
        assert second.state == "queued_local"
        outcome = await services.canceller.cancel(second.id, by_user_id=2)
        assert outcome.status == "cancelled"
        await asyncio.wait_for(sink.delivered.wait(), 60)
        await asyncio.wait_for(services.deliverer.tasks.drain(), 60)
        took = await services.store.recent_durations(
            backend=SIMULATOR_KEY, model="sora-2", size="1280x720", seconds="4", limit=50
        )
        expected = await services.durations.expected(SIMULATOR_KEY, "sora-2", "1280x720", "4")
    by_id = {job.id: result for job, result, _ in sink.results}
    assert by_id[first.id].failure is None and by_id[second.id].failure is not None
    # From its send to the service's completion stamp (whole seconds, as the API gives them).
    assert len(took) == 1 and 0 <= took[0] < 5
    assert expected.source == "history" and expected.median == took[0]


async def test_a_second_process_on_the_same_data_folder_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with SimServer(SimConfig(api_key=KEY)) as url:
        async with open_services(settings(data_dir, url), Sink()):
            # Another process: its own open file, which the kernel's lock tells apart.
            probe = (
                "import sys\n"
                "from pathlib import Path\n"
                "from bot.files import DataFolderBusy, only_process\n"
                "try:\n"
                "    with only_process(Path(sys.argv[1])):\n"
                "        print('free')\n"
                "except DataFolderBusy as exc:\n"
                "    print(exc)\n"
            )
            held = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-c", probe, str(data_dir)],
                capture_output=True,
                text=True,
                check=True,
            )
        after = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", probe, str(data_dir)],
            capture_output=True,
            text=True,
            check=True,
        )
    assert held.stdout.startswith("another bot process is using"), held.stdout
    assert after.stdout.strip() == "free"


async def test_a_sqlite_file_elsewhere_still_holds_the_data_folder(tmp_path: Path) -> None:
    """Two bots with their own SQLite files but one DATA_DIR would both number jobs from 1
    and write the same media files: the data folder is held too."""
    data_dir = tmp_path / "data"
    elsewhere = tmp_path / "db" / "bot.sqlite3"
    async with SimServer(SimConfig(api_key=KEY)) as url:
        values = settings(data_dir, url, database_url=SecretStr(f"sqlite:///{elsewhere}"))
        async with open_services(values, Sink()) as services:
            assert not services.store.shared
            assert elsewhere.exists()
            for folder in (data_dir, elsewhere.parent):
                with pytest.raises(DataFolderBusy), only_process(folder):
                    pass
