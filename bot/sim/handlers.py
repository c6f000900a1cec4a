"""The simulated API's routes below /v1: create, remix, edit, extend, retrieve, list, delete and
the model lists. Each validates its request as the reference API does, asks the configured
profile's dialect what that server would do differently, and acts on the jobs. Content downloads
are in bot/sim/content.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web

from bot.sim.config import SimConfig
from bot.sim.dialect import Dialect
from bot.sim.errors import ApiError, no_such_video
from bot.sim.jobs import Jobs
from bot.sim.openrouter import parse_create as parse_openrouter_create
from bot.sim.records import ENTRY, SimVideo
from bot.sim.reference import Reference, check_reference, reference_from_object
from bot.sim.wire import (
    DEFAULT_MODEL,
    DEFAULT_SECONDS,
    DEFAULT_SIZE,
    EXTEND_SECONDS,
    choice_field,
    offered_default,
    parse_json_object,
    parse_limit,
    prompt_field,
    read_fields,
    string_field,
    video_id_field,
)

POLL_AFTER_HEADER = "openai-poll-after-ms"


class VideoRoutes:
    """The handlers, bound to one server's jobs; `base_url` is where the server listens (jobs
    that link to themselves, as OpenRouter's do, need it)."""

    def __init__(
        self,
        config: SimConfig,
        dialect: Dialect,
        jobs: Jobs,
        clock: Callable[[], float],
        base_url: Callable[[], str],
    ) -> None:
        self.config = config
        self.dialect = dialect
        self.jobs = jobs
        self._clock = clock
        self._base_url = base_url

    def _present(self, video: SimVideo) -> dict[str, Any]:
        return self.dialect.present(video, self._base_url())

    def _require_route(self, request: web.Request) -> None:
        self.dialect.require_route(request, request[ENTRY].route)

    async def unknown_route(self, request: web.Request) -> web.StreamResponse:
        raise self.dialect.no_route(request)

    # ------------------------------------------------------------------ jobs made

    async def create(self, request: web.Request) -> web.StreamResponse:
        fields, is_json = await read_fields(request)
        if self.config.profile == "openrouter":
            return self._create_openrouter(fields, is_json)
        if is_json and self.config.profile == "vllm-omni":
            raise ApiError(
                400,
                "Video generation requests must be sent as multipart/form-data.",
                type="BadRequestError",
            )
        allowed = {"prompt", "model", "seconds", "size", "input_reference"}
        if self.config.profile == "litellm":
            # The proxy passes a provider's own options through (seed, negative prompt, sound).
            allowed |= {"negative_prompt", "seed", "generate_audio"}
        self.dialect.strict(fields, allowed)
        prompt = prompt_field(fields)
        model = string_field(fields, "model", required=False) or DEFAULT_MODEL
        self.dialect.check_model(model)
        cfg = self.config
        seconds = choice_field(
            fields, "seconds", cfg.seconds, offered_default(cfg.seconds, DEFAULT_SECONDS)
        )
        size = choice_field(fields, "size", cfg.sizes, offered_default(cfg.sizes, DEFAULT_SIZE))
        reference = await self._reference(fields.get("input_reference"), size, is_json)
        video = self.jobs.create(
            model=model,
            prompt=prompt,
            size=size,
            seconds=seconds,
            reference=reference.data if reference else None,
            reference_content_type=reference.content_type if reference else None,
        )
        return web.json_response(self._present(video))

    @staticmethod
    async def _reference(raw: object, size: str, is_json: bool) -> Reference | None:
        """A create's `input_reference`: an upload, a JSON object, or (in a form) JSON text."""
        if isinstance(raw, web.FileField):
            data = await asyncio.to_thread(raw.file.read)
            return await asyncio.to_thread(check_reference, data, raw.content_type, size)
        if isinstance(raw, str) and not is_json:
            try:
                parsed = parse_json_object(raw.encode("utf-8"))
            except ApiError:
                raise ApiError(
                    400,
                    "Invalid type for 'input_reference': expected a file, "
                    "but got a string instead.",
                    param="input_reference",
                    code="invalid_type",
                ) from None
            return await asyncio.to_thread(reference_from_object, parsed, size)
        if raw is not None:
            return await asyncio.to_thread(reference_from_object, raw, size)
        return None

    def _create_openrouter(self, fields: dict[str, Any], is_json: bool) -> web.StreamResponse:
        if not is_json:
            raise ApiError(400, "The request body must be JSON.", code="invalid_request")
        cfg = self.config
        job = parse_openrouter_create(fields, cfg.openrouter_models, check_model=cfg.check_model)
        video = self.jobs.create(
            model=job.model,
            prompt=job.prompt,
            size=job.size,
            seconds=str(job.seconds),
            cost=job.cost,
            frame_types=job.frame_types,
        )
        body = {
            "id": video.id,
            "polling_url": f"{self._base_url()}/videos/{video.id}",
            "status": "pending",
        }
        return web.json_response(body, status=202)

    async def remix(self, request: web.Request) -> web.StreamResponse:
        self._require_route(request)
        source_id = request.match_info["video_id"]
        if source_id not in self.jobs.videos:
            raise no_such_video(source_id)
        fields, _ = await read_fields(request)
        self.dialect.strict(fields, {"prompt"})
        prompt = prompt_field(fields)
        source = self.jobs.completed_source(source_id, "remixed")
        video = self.jobs.create(
            model=source.model,
            prompt=prompt,
            size=source.size,
            seconds=source.seconds,
            kind="remix",
            source_video_id=source.id,
            remixed_from_video_id=source.id,
        )
        return web.json_response(self._present(video))

    async def edit(self, request: web.Request) -> web.StreamResponse:
        self._require_route(request)
        fields, is_json = await read_fields(request)
        self.dialect.strict(fields, {"video", "video[id]", "prompt"})
        source_id = video_id_field(fields, form=not is_json)
        prompt = prompt_field(fields)
        source = self.jobs.completed_source(source_id, "edited")
        video = self.jobs.create(
            model=source.model,
            prompt=prompt,
            size=source.size,
            seconds=source.seconds,
            kind="edit",
            source_video_id=source.id,
        )
        return web.json_response(self._present(video))

    async def extend(self, request: web.Request) -> web.StreamResponse:
        self._require_route(request)
        fields, is_json = await read_fields(request)
        self.dialect.strict(fields, {"video", "video[id]", "prompt", "seconds"})
        source_id = video_id_field(fields, form=not is_json)
        prompt = prompt_field(fields)
        added = choice_field(fields, "seconds", EXTEND_SECONDS, None)
        source = self.jobs.completed_source(source_id, "extended")
        video = self.jobs.create(
            model=source.model,
            prompt=prompt,
            size=source.size,
            seconds=str(int(source.seconds) + int(added)),
            kind="extension",
            source_video_id=source.id,
        )
        return web.json_response(self._present(video))

    # ------------------------------------------------------------------ jobs read and removed

    async def retrieve(self, request: web.Request) -> web.StreamResponse:
        video = self.jobs.get(request.match_info["video_id"])
        headers = {}
        if self.config.poll_after_ms is not None:
            headers[POLL_AFTER_HEADER] = str(int(self.config.poll_after_ms))
        return web.json_response(self._present(video), headers=headers)

    async def list_videos(self, request: web.Request) -> web.StreamResponse:
        self._require_route(request)
        cfg = self.config
        provider = request.headers.get("custom-llm-provider", "")
        provider = provider or request.query.get("custom_llm_provider", "")
        if cfg.profile == "litellm" and not provider.strip():
            raise ApiError(
                400,
                "Missing header 'custom-llm-provider': say which provider's videos to list "
                "(for example 'custom-llm-provider: openai').",
                param="custom-llm-provider",
                code="missing_required_parameter",
            )
        limit = parse_limit(request.query.get("limit"), cfg.page_limit_max)
        order = choice_field(dict(request.query), "order", ("asc", "desc"), "desc")
        ids = self.jobs.order if order == "asc" else self.jobs.order[::-1]
        after = request.query.get("after")
        if after:
            if after not in ids:
                raise ApiError(
                    400,
                    f"Invalid 'after': no video with id '{after}'.",
                    param="after",
                    code="invalid_value",
                )
            ids = ids[ids.index(after) + 1 :]
        videos = self.jobs.videos
        live = [videos[i] for i in ids if i in videos]
        page = [self._present(self.jobs.refresh(v)) for v in live[:limit]]
        if self.dialect.queued_then_done:
            # SGLang and FastVideo answer `{data}` alone.
            return web.json_response({"data": page})
        body: dict[str, Any] = {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(live) > limit,
        }
        return web.json_response(body)

    async def delete(self, request: web.Request) -> web.StreamResponse:
        self._require_route(request)
        video = self.jobs.get(request.match_info["video_id"])
        self.jobs.delete(video)
        if self.dialect.queued_then_done:
            body = self._present(video)
            body["status"] = "deleted"
            return web.json_response(body)
        return web.json_response({"id": video.id, "object": "video.deleted", "deleted": True})

    # ------------------------------------------------------------------ models

    async def models(self, request: web.Request) -> web.StreamResponse:
        owner = {"litellm": "openai", "vllm-omni": "vllm-omni", "sglang": "sglang"}
        data = [
            {
                "id": model,
                "object": "model",
                "created": int(self._clock()),
                "owned_by": owner.get(self.config.profile, "system"),
            }
            for model in self.dialect.model_ids()
        ]
        return web.json_response({"object": "list", "data": data})

    async def video_models(self, request: web.Request) -> web.StreamResponse:
        """OpenRouter's `GET /videos/models`: the video models and what each takes."""
        return web.json_response({"data": [dict(m) for m in self.config.openrouter_models]})
