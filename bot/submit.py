"""Turning a request into a tracked job: validate, reserve, record, then create at the API.

The job row (with its reservation) is written before the create is sent, and the time of the
attempt is written before the request leaves, so a crash at any point leaves a record the tracker
can finish: never sent -> send it; sent with unknown outcome -> find it among recent videos.

Follow-up jobs (remix, edit, extend) start from a finished job's video and take exactly the same
path: guild rules, quota plan and reservation in one transaction, the local queue, then `send`,
which picks the API call from the job's kind.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bot.api.client import VideosClient
from bot.api.errors import (
    APIConnectionError,
    BadRequestError,
    CreateOutcomeUnknown,
    VideoAPIError,
    describe_error,
)
from bot.api.models import CreateVideo, ReferenceImage, Video
from bot.catalog import Catalog, NotOffered, format_dollars
from bot.files import open_private
from bot.options import option_refusal
from bot.prompt import clean_prompt, prompt_problem
from bot.quota import QuotaPolicy, check_request, load_guild_settings
from bot.redact import redact
from bot.store import InvalidTransition, Job, NewJob, Refusal, Store
from bot.tracker import NO_LIST_MESSAGE, Tracker

log = logging.getLogger(__name__)

JobKind = Literal["create", "remix", "edit", "extend"]
FollowUpKind = Literal["remix", "edit", "extend"]
# What the extensions endpoint accepts as the length of the added segment.
EXTEND_SECONDS: tuple[str, ...] = ("4", "8", "12", "16", "20")
_VERBS: dict[FollowUpKind, str] = {"remix": "remixed", "edit": "edited", "extend": "extended"}
_CAPABILITY: dict[FollowUpKind, str] = {"remix": "remix", "edit": "edits", "extend": "extensions"}
_REFERENCE_TYPES = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp"}


@dataclass(frozen=True)
class Origin:
    """Where a request came from and how to answer it; plain data, no Discord objects."""

    user_id: int
    channel_id: int
    guild_id: int | None = None
    interaction_id: int | None = None
    interaction_token: str | None = None
    token_expires_at: float | None = None
    application_id: int | None = None
    upload_limit: int | None = None
    role_ids: tuple[int, ...] = ()
    # For a thread: its parent channel, which the guild's channel allow-list is about.
    parent_channel_id: int | None = None


@dataclass(frozen=True)
class Refused:
    """A request turned away before any API call; `message` is for the user."""

    message: str


class JobService:
    def __init__(
        self,
        store: Store,
        client: VideosClient,
        catalog: Catalog,
        tracker: Tracker,
        media_dir: Path,
        *,
        policy: QuotaPolicy,
        deadline_seconds: float = 3600.0,
        max_concurrent: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.client = client
        self.catalog = catalog
        self.tracker = tracker
        self.media_dir = media_dir
        self.policy = policy
        self.deadline_seconds = deadline_seconds
        self.max_concurrent = max_concurrent
        self.clock = clock
        tracker.resubmit = self.send
        tracker.before_round = self.start_queued

    async def submit(
        self,
        origin: Origin,
        request: CreateVideo,
        reference: ReferenceImage | None = None,
    ) -> Job | Refused:
        """Validate and reserve (refusing before any API call), then create. Never raises for
        API failures: the returned job carries the outcome (running, failed, or still creating)."""
        admitted = await self._admit(origin, request, has_reference=reference is not None)
        if isinstance(admitted, Refused):
            return admitted
        new, now = admitted
        return await self._reserve_and_start(origin, new, now, reference)

    async def precheck(
        self, origin: Origin, request: CreateVideo, *, has_reference: bool = False
    ) -> Refused | None:
        """Every check `submit` makes (prompt, catalog, options, the server's rules, budgets,
        cooldown, active jobs), reserving nothing: run before a reference image is downloaded
        or decoded, so a request that would be refused costs nothing. `submit` checks again,
        atomically, when it reserves."""
        admitted = await self._admit(origin, request, has_reference=has_reference)
        if isinstance(admitted, Refused):
            return admitted
        new, now = admitted
        refusal = await self.policy.check(origin, new, now)
        return Refused(self.policy.describe(refusal)) if refusal is not None else None

    async def _admit(
        self, origin: Origin, request: CreateVideo, *, has_reference: bool
    ) -> tuple[NewJob, float] | Refused:
        """The job `request` would be (and the time it was judged at), or why it is refused;
        nothing is written."""
        assert request.model and request.seconds and request.size
        text = clean_prompt(request.prompt)
        problem = prompt_problem(text)
        if problem:
            return Refused(problem)
        spec = self.catalog.get(request.model)
        problem = (
            option_refusal(
                spec,
                negative_prompt=request.negative_prompt,
                seed=request.seed,
                audio=request.audio,
            )
            if spec is not None
            else None
        )
        if problem:
            return Refused(problem)
        try:
            # The options checked against the model too: one it does not take is refused here,
            # before anything is sent; where the server would fix a seed, one is drawn.
            picked = self.catalog.resolve(
                request.model,
                request.seconds,
                request.size,
                negative_prompt=request.negative_prompt,
                seed=request.seed,
                audio=request.audio,
            )
        except NotOffered as exc:
            return Refused(str(exc))
        guild = await load_guild_settings(self.store, origin.guild_id)
        problem = check_request(
            guild,
            request.model,
            request.seconds,
            origin.channel_id,
            parent_channel_id=origin.parent_channel_id,
        )
        if problem:
            return Refused(problem)
        now = self.clock()
        cost = self.catalog.cost_micros(request.model, request.size, request.seconds)
        new = self._new_job(
            origin,
            now,
            prompt=text,
            model=request.model,
            seconds=request.seconds,
            size=request.size,
            cost=cost,
            has_reference=has_reference,
            negative_prompt=picked.negative_prompt,
            seed=picked.seed,
            # Sent only when asked for: the model's own default needs no field.
            audio=picked.audio if request.audio is not None else None,
        )
        return new, now

    async def submit_followup(
        self,
        origin: Origin,
        source: Job,
        kind: FollowUpKind,
        prompt: str,
        *,
        seconds: str | None = None,
    ) -> Job | Refused:
        """A remix, edit or extension of `source`'s video, refused or reserved exactly like a
        create. `seconds` is the length an extension adds. The new job keeps the source's model
        and size; its `seconds` is the length of the video it makes (for an extension, the
        stitched total), and its cost is the catalog price of the seconds it generates."""
        text = clean_prompt(prompt)
        problem = prompt_problem(text)
        if problem:
            return Refused(problem)
        if origin.user_id != source.user_id:
            return Refused("Only the member who made this video can do that.")
        verb = _VERBS[kind]
        if not getattr(self.client.caps, _CAPABILITY[kind]):
            return Refused(f"The video service here can't make {verb} videos.")
        if source.state != "succeeded" or source.api_video_id is None:
            return Refused(f"Only a finished video can be {verb}.")
        now = self.clock()
        if source.expires_at is not None and source.expires_at <= now:
            return Refused(f"That video has expired at the video service, so it can't be {verb}.")
        spec = self.catalog.get(source.model)
        if spec is None or source.size not in spec.price_per_second:
            return Refused(f"Model `{source.model}` at {source.size} is no longer offered here.")
        generated = source.seconds
        length = source.seconds
        if kind == "extend":
            if seconds not in EXTEND_SECONDS:
                return Refused(f"An extension adds {', '.join(EXTEND_SECONDS)} seconds.")
            generated = seconds
            length = str(int(source.seconds) + int(seconds))
        guild = await load_guild_settings(self.store, origin.guild_id)
        problem = check_request(
            guild,
            source.model,
            length,
            origin.channel_id,
            parent_channel_id=origin.parent_channel_id,
        )
        if problem:
            return Refused(problem)
        cost = self.catalog.cost_micros(source.model, source.size, generated)
        new = self._new_job(
            origin,
            now,
            prompt=text,
            model=source.model,
            seconds=length,
            size=source.size,
            cost=cost,
            kind=kind,
            source_job_id=source.id,
        )
        return await self._reserve_and_start(origin, new, now, None)

    def _new_job(
        self,
        origin: Origin,
        now: float,
        *,
        prompt: str,
        model: str,
        seconds: str,
        size: str,
        cost: int,
        has_reference: bool = False,
        kind: JobKind = "create",
        source_job_id: int | None = None,
        negative_prompt: str | None = None,
        seed: int | None = None,
        audio: bool | None = None,
    ) -> NewJob:
        return NewJob(
            negative_prompt=negative_prompt,
            seed=seed,
            audio=audio,
            kind=kind,
            source_job_id=source_job_id,
            user_id=origin.user_id,
            guild_id=origin.guild_id,
            channel_id=origin.channel_id,
            interaction_id=origin.interaction_id,
            interaction_token=origin.interaction_token,
            token_expires_at=origin.token_expires_at,
            application_id=origin.application_id,
            prompt=prompt,
            model=model,
            seconds=seconds,
            size=size,
            has_reference=has_reference,
            cost_micros=cost,
            deadline_at=now + self.deadline_seconds,
            upload_limit=origin.upload_limit,
        )

    async def _reserve_and_start(
        self, origin: Origin, new: NewJob, now: float, reference: ReferenceImage | None
    ) -> Job | Refused:
        cost = new.cost_micros
        result = await self.policy.reserve(origin, new, now)
        if isinstance(result, Refusal):
            return Refused(self.policy.describe(result))
        job = result
        log.info(
            "job %s (%s) reserved %s for user %s",
            job.id,
            job.kind,
            format_dollars(cost),
            origin.user_id,
        )
        if reference is not None:
            await asyncio.to_thread(self._save_reference, job.id, reference)
        if self.max_concurrent is not None and await self._at_capacity(job.id):
            await self.store.set_state(job.id, "queued_local")
            return await self._reload(job)
        await self.send(job)
        return await self._reload(job)

    async def _at_capacity(self, job_id: int) -> bool:
        assert self.max_concurrent is not None
        # A count, not the job list: this runs for every request, bursts included.
        return await self.store.count_working(exclude_id=job_id) >= self.max_concurrent

    async def start_queued(self) -> None:
        """Send queued jobs, oldest first, while the concurrency cap leaves room."""
        if self.max_concurrent is None:
            return
        active = await self.store.active_jobs()
        working = sum(1 for j in active if j.state in ("creating", "running"))
        for job in (j for j in active if j.state == "queued_local"):
            if working >= self.max_concurrent:
                break
            try:
                moved = await self.store.set_state(job.id, "creating")
            except InvalidTransition:
                moved = False
            except Exception:
                log.exception("job %s: could not be taken from the queue", job.id)
                continue
            if not moved:
                continue  # started or failed meanwhile by another path
            working += 1
            try:
                fresh = await self.store.get_job(job.id)
                if fresh is not None:
                    await self.send(fresh)
            except Exception:
                # One job's trouble never keeps the queue from moving; the tracker finds it in
                # 'creating' and carries on with it.
                log.exception("job %s: sending it failed", job.id)

    async def send(self, job: Job) -> None:
        """Send the create (or the remix, edit or extension) for a job that has never been sent;
        leaves the outcome in the store."""
        # Checked and marked with no await in between: the tracker and the queue may both try
        # to send the same job, and only one of them may.
        if job.create_attempted_at is not None or job.id in self.tracker.in_flight:
            return
        self.tracker.in_flight.add(job.id)
        try:
            start = await self._starter(job)
            if start is None:
                return
            try:
                claimed = await self.store.mark_create_attempted(job.id, self.clock())
            except InvalidTransition:
                claimed = False
            if not claimed:
                # Sent already (by another path, or before a restart): never a second request.
                return
            try:
                video = await start()
            except CreateOutcomeUnknown as exc:
                log.warning("job %s: create outcome unknown (%s)", job.id, describe_error(exc))
                status = exc.cause.status
                if status is not None and 200 <= status < 300:
                    # A "yes" the bot cannot use (an unsafe id, a body that does not parse):
                    # the service made a job, so it is looked for but never sent again.
                    await self.store.mark_create_answered(job.id)
                if not self.client.caps.list:
                    # Nothing can tell whether the service started a job: the member is told
                    # at once, and refunded.
                    await self.store.mark_failed(job.id, "create_unconfirmed", NO_LIST_MESSAGE)
                    return
                # Left in 'creating' with its attempt time: the tracker looks for it at once,
                # sends it again once shown not to have started, or adopts it when found.
                self.tracker.look_now(job.id)
                return
            except APIConnectionError as exc:
                # The client lets through only connections that carried nothing (refused, name
                # not resolved): no job was started, so the request waits for the service like
                # the jobs already there, and the tracker sends it once it answers.
                log.warning(
                    "job %s: video service unreachable (%s); waiting", job.id, describe_error(exc)
                )
                await self.store.release_create_attempt(job.id)
                await self.tracker.set_service_ok(False)
                return
            except BadRequestError as exc:
                # A 400's text (validation, moderation) is what the member can act on; it is
                # kept only in the bot's wording (redacted), never raw.
                await self.store.mark_failed(
                    job.id, redact(exc.code or "bad_request", 64), describe_error(exc)
                )
                return
            except VideoAPIError as exc:
                # Every other error here is one where the server certainly did not start a job
                # (ambiguous ones became CreateOutcomeUnknown), so refunding is safe.
                await self.store.mark_failed(
                    job.id, redact(exc.code or type(exc).__name__, 64), describe_error(exc)
                )
                return
            await self.store.attach_video(job.id, video.id, video.status, video.progress)
            await self.tracker.set_service_ok(True)
        finally:
            self.tracker.in_flight.discard(job.id)
            self.tracker.wake()

    async def _starter(self, job: Job) -> Callable[[], Awaitable[Video]] | None:
        """The API call that starts `job`, or None after failing the job (and refunding it)
        when what it needs is gone. Nothing here has reached the API yet."""
        if job.kind == "create":
            reference = await asyncio.to_thread(self._load_reference, job.id)
            if job.has_reference and reference is None:
                await self.store.mark_failed(
                    job.id, "reference_lost", "The reference image was lost before sending."
                )
                return None
            request = CreateVideo(
                prompt=job.prompt,
                model=job.model,
                seconds=job.seconds,
                size=job.size,
                negative_prompt=job.negative_prompt,
                seed=job.seed,
                audio=job.audio,
            )
            return lambda: self.client.create(request, reference)
        source = await self.store.get_job(job.source_job_id) if job.source_job_id else None
        if source is None or source.api_video_id is None:
            await self.store.mark_failed(
                job.id, "source_lost", "The video this was made from is no longer known."
            )
            return None
        video_id = source.api_video_id
        if job.kind == "remix":
            return lambda: self.client.remix(video_id, job.prompt)
        if job.kind == "edit":
            return lambda: self.client.edit(video_id, job.prompt)
        added = str(int(job.seconds) - int(source.seconds))
        return lambda: self.client.extend(video_id, job.prompt, added)

    async def _reload(self, job: Job) -> Job:
        fresh = await self.store.get_job(job.id)
        return fresh if fresh is not None else job

    # A fitted reference is kept until the job is sent, so a queued job or one interrupted by a
    # restart can still be sent with it.
    def _reference_path(self, job_id: int, ext: str) -> Path:
        return self.media_dir / "references" / f"job-{job_id}{ext}"

    def _save_reference(self, job_id: int, reference: ReferenceImage) -> None:
        path = self._reference_path(job_id, _REFERENCE_TYPES[reference.content_type])
        with open_private(path) as handle:
            handle.write(reference.data)

    def _load_reference(self, job_id: int) -> ReferenceImage | None:
        for content_type, ext in _REFERENCE_TYPES.items():
            path = self._reference_path(job_id, ext)
            if path.exists():
                return ReferenceImage(
                    data=path.read_bytes(),
                    filename=f"reference{ext}",
                    content_type=content_type,
                )
        return None
