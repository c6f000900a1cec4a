"""The core's long-lived objects, opened in one place and closed in reverse order.

A front end (the Discord client, a test) opens them with `open_services(settings, sink)` and
gets one `Services`: the private data folder, the database, the video backend (and the simulator
when it is used), the catalog in use, delivery, the learned durations, the tracker, the quota
policy, the job service, the deleter and the canceller, each built once, with what it needs
passed in. Leaving the context closes them
in reverse order: the tracker stops and the deliveries under way are cancelled first (so nothing
writes to the database or asks the server any more), then the HTTP client, then the database.

Starting the tracker is separate (`Services.start()`): the front end first resumes interrupted
deliveries and answers requests it acknowledged but never recorded, then lets the rounds begin.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from bot.backend import Backend, open_backend
from bot.cancel import JobCanceller
from bot.catalog import Catalog
from bot.deletion import VideoDeleter
from bot.delivery import Deliverer, DeliverySink
from bot.discovery import choose_catalog
from bot.durations import Durations, backend_key
from bot.files import make_private_tree, only_process, private_dir
from bot.leases import LeaseKeeper
from bot.memory import MemoryReleaser
from bot.quota import QuotaPolicy
from bot.sender import Sender
from bot.settings import Settings
from bot.store import Store
from bot.store.base import sqlite_path
from bot.submit import JobService
from bot.tracker import Tracker

log = logging.getLogger(__name__)

DATABASE_NAME = "bot.sqlite3"
# The embedded simulator listens on a new port each start: its durations are kept under this
# key, so what it learned survives restarts.
SIMULATOR_KEY = "simulator"


@dataclass
class Services:
    settings: Settings
    store: Store
    backend: Backend
    catalog: Catalog
    deliverer: Deliverer
    tracker: Tracker
    quota: QuotaPolicy
    jobs: JobService
    deleter: VideoDeleter
    # Hands what the last round freed back to the system (see bot/memory.py).
    memory: MemoryReleaser
    # How long jobs take, learned per backend and kind (bot/durations.py), under `backend_key`.
    durations: Durations
    backend_key: str
    # A member's Cancel (bot/cancel.py); what it ends is shown as delivery shows any end.
    canceller: JobCanceller

    # This process's hold on the jobs it looks after (bot/leases.py).
    leases: LeaseKeeper

    async def resume(self) -> None:
        """Take this process's jobs (on SQLite: all of them; on a shared database: those no
        live process holds) and carry on with them: interrupted deliveries settled and
        resumed, requests lost to a stop answered."""
        await self.leases.claim_now()

    def start(self) -> None:
        """Let the tracker's rounds and the lease renewals begin (after `resume`)."""
        self.tracker.start()
        self.leases.start()

    async def stop(self) -> None:
        """Stop producing work: the tracker's rounds, then the deliveries under way; then hand
        this process's jobs back to the others."""
        await self.tracker.stop()
        await self.deliverer.tasks.cancel_all()
        await self.leases.stop()


@asynccontextmanager
async def open_services(settings: Settings, sink: DeliverySink) -> AsyncIterator[Services]:
    """Everything the core needs for one process, closed in reverse order on exit."""
    async with AsyncExitStack() as stack:
        data_dir = Path(settings.data_dir)
        # Owner-only, whatever the umask and whatever an older version left (see bot/files.py).
        await asyncio.to_thread(make_private_tree, data_dir)
        url = settings.database_url
        target = url.get_secret_value() if url is not None else data_dir / DATABASE_NAME
        sqlite_file = sqlite_path(target)
        if sqlite_file is not None:
            # A SQLite file is one process's: a second would track and deliver the same jobs.
            # Its data folder too: another bot's job ids (its own file's) would name the same
            # media files.
            stack.enter_context(only_process(data_dir))
            folder = await asyncio.to_thread(private_dir, sqlite_file.parent)
            if not await asyncio.to_thread(folder.samefile, data_dir):
                stack.enter_context(only_process(folder))
        store = await Store.open(target)
        store.lease_seconds = settings.job_lease_seconds
        stack.push_async_callback(store.close)
        # Logs one line saying which backend (the simulator, or the server and its profile).
        backend = await open_backend(settings, stack, store=store)
        # The owner's catalog, else what the server says it serves (bot/discovery.py), else the
        # bundled one.
        offered = await choose_catalog(settings, backend.client, backend.profile)
        catalog = offered.catalog
        backend.use_catalog(catalog)
        log.info("catalog: %s", offered.origin)
        services = build_services(settings, store, backend, catalog, sink)
        # Registered last, so it runs first: nothing produces work while the rest closes.
        stack.push_async_callback(services.stop)
        yield services


def build_services(
    settings: Settings, store: Store, backend: Backend, catalog: Catalog, sink: DeliverySink
) -> Services:
    """The objects above the database and the backend, each wired once, here."""
    data_dir = Path(settings.data_dir)
    client = backend.client
    memory = MemoryReleaser()
    deliverer = Deliverer(
        store, client, sink, data_dir, max_attempts=settings.delivery_max_attempts
    )
    quota = QuotaPolicy.from_settings(settings, store)

    # Each tracker round (and each wake), after the queued jobs it starts: retry deliveries that
    # failed earlier (a Discord outage, a download error), so none waits for a restart, and hand
    # what the last round freed back to the system.
    async def round_work() -> None:
        await deliverer.sweep()
        await memory.release()

    key = services_backend_key(backend)
    durations = Durations(store, hint=catalog.expected_job_seconds)
    tracker = Tracker(
        store,
        client,
        deliverer,
        sender=Sender(store, client, data_dir),
        max_concurrent=quota.max_concurrent,
        round_work=round_work,
        interval=settings.poll_interval_seconds,
        create_grace=settings.create_grace_seconds,
        durations=durations,
        backend=key,
    )
    jobs = JobService(
        store,
        client,
        catalog,
        tracker,
        data_dir,
        policy=quota,
        deadline_seconds=settings.job_deadline_minutes * 60,
    )
    return Services(
        settings=settings,
        store=store,
        backend=backend,
        catalog=catalog,
        deliverer=deliverer,
        tracker=tracker,
        quota=quota,
        jobs=jobs,
        deleter=VideoDeleter(store, client),
        memory=memory,
        durations=durations,
        backend_key=key,
        canceller=JobCanceller(store, client, on_cancelled=deliverer.job_finished),
        leases=LeaseKeeper(store, deliverer, wake=tracker.wake),
    )


def services_backend_key(backend: Backend) -> str:
    """The key durations are learned under: the server's profile and address (never its key),
    or one fixed key for the embedded simulator."""
    if backend.simulated:
        return SIMULATOR_KEY
    return backend_key(backend.profile, backend.base_url)
