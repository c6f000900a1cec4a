"""Turning a request into a tracked job: validate, reserve and record, then hand it on to be sent.

The job row (with its reservation) is written before anything is sent, so a crash at any point
leaves a record the tracker can finish (bot/sender.py says how a send is recorded). A request
turned away is `Refused`, with a notice for the member, before any API call.

Follow-up jobs (remix, edit, extend) start from a finished job's video and take exactly the same
path: guild rules, quota plan and reservation in one transaction, the local queue, then the send,
which picks the API call from the job's kind.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bot.api.client import VideosClient
from bot.api.models import CreateVideo, ReferenceImage
from bot.api.profiles import Capabilities
from bot.catalog import Catalog, NotOffered, format_dollars
from bot.guildsettings import check_request, load_guild_settings
from bot.media import MediaFiles
from bot.notice import Code, Notice, notice
from bot.options import option_refusal
from bot.prompt import clean_prompt, prompt_problem
from bot.quota import QuotaPolicy
from bot.store import Job, NewJob, Refusal, Store
from bot.tracker import Tracker

log = logging.getLogger(__name__)

JobKind = Literal["create", "remix", "edit", "extend"]
FollowUpKind = Literal["remix", "edit", "extend"]
# What the extensions endpoint accepts as the length of the added segment.
EXTEND_SECONDS: tuple[str, ...] = ("4", "8", "12", "16", "20")
# Why a follow-up is refused, in the words of its kind (each sentence whole, to translate).
_CANNOT_MAKE: dict[FollowUpKind, Notice] = {
    "remix": notice("The video service here can't make remixed videos."),
    "edit": notice("The video service here can't make edited videos."),
    "extend": notice("The video service here can't make extended videos."),
}
_ONLY_FINISHED: dict[FollowUpKind, Notice] = {
    "remix": notice("Only a finished video can be remixed."),
    "edit": notice("Only a finished video can be edited."),
    "extend": notice("Only a finished video can be extended."),
}
_EXPIRED: dict[FollowUpKind, Notice] = {
    "remix": notice("That video has expired at the video service, so it can't be remixed."),
    "edit": notice("That video has expired at the video service, so it can't be edited."),
    "extend": notice("That video has expired at the video service, so it can't be extended."),
}
_CAPABILITY: dict[FollowUpKind, str] = {"remix": "remix", "edit": "edits", "extend": "extensions"}


def followup_problem(
    source: Job, kind: FollowUpKind, caps: Capabilities, now: float
) -> Notice | None:
    """Why `source`'s video cannot be the start of a `kind` follow-up here, or None: the one
    wording of these checks, for the job service and for a button before its form opens."""
    if not getattr(caps, _CAPABILITY[kind]):
        return _CANNOT_MAKE[kind]
    if source.state != "succeeded" or source.api_video_id is None:
        return _ONLY_FINISHED[kind]
    if source.expires_at is not None and source.expires_at <= now:
        return _EXPIRED[kind]
    return None


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
    # The member's language (their client's locale, e.g. 'es-ES'), kept with the job.
    locale: str | None = None


@dataclass(frozen=True)
class Refused:
    """A request turned away before any API call; `message` is for the member."""

    message: Notice


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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.client = client
        self.catalog = catalog
        # Sends each reserved job (or queues it while the concurrency cap is reached).
        self.tracker = tracker
        self.media = MediaFiles(media_dir)
        self.policy = policy
        self.deadline_seconds = deadline_seconds
        self.clock = clock

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
            return Refused(exc.notice)
        guild = await load_guild_settings(self.store, origin.guild_id)
        ruled = check_request(
            guild,
            request.model,
            request.seconds,
            origin.channel_id,
            parent_channel_id=origin.parent_channel_id,
        )
        if ruled:
            return Refused(ruled)
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
            return Refused(notice("Only the member who made this video can do that."))
        now = self.clock()
        unusable = followup_problem(source, kind, self.client.caps, now)
        if unusable:
            return Refused(unusable)
        spec = self.catalog.get(source.model)
        if spec is None or source.size not in spec.price_per_second:
            return Refused(
                notice(
                    "Model {model} at {size} is no longer offered here.",
                    model=Code(source.model),
                    size=source.size,
                )
            )
        generated = source.seconds
        length = source.seconds
        if kind == "extend":
            if seconds not in EXTEND_SECONDS:
                return Refused(
                    notice(
                        "An extension adds {seconds} seconds.", seconds=", ".join(EXTEND_SECONDS)
                    )
                )
            generated = seconds
            length = str(int(source.seconds) + int(seconds))
        guild = await load_guild_settings(self.store, origin.guild_id)
        ruled = check_request(
            guild,
            source.model,
            length,
            origin.channel_id,
            parent_channel_id=origin.parent_channel_id,
        )
        if ruled:
            return Refused(ruled)
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
            locale=origin.locale,
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
            # Kept until the job is sent: a queued job, or one interrupted by a restart, can
            # still be sent with it.
            await asyncio.to_thread(self.media.save_reference, job.id, reference)
            if self.store.shared:
                # And in the database: another process may be the one that sends it.
                await self.store.keep_reference(job.id, reference.content_type, reference.data)
        if await self.tracker.at_capacity(job.id):
            await self.store.set_state(job.id, "queued_local")
            return await self._reload(job)
        await self.tracker.send(job)
        return await self._reload(job)

    async def _reload(self, job: Job) -> Job:
        fresh = await self.store.get_job(job.id)
        return fresh if fresh is not None else job
