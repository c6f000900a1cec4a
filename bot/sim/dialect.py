"""How each backend profile's server differs from the reference API: the routes it lacks or
refuses, the key it asks for, the error envelope, which parameters it refuses, the model it
reports, its content variants and the job object it answers with.

The job lifecycle and the handlers speak the reference API; everything a profile changes about
that is decided here, from the configuration, so a new profile is taught here first.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping
from typing import Any

from aiohttp import web

from bot.sim.config import SimConfig
from bot.sim.errors import (
    AZURE_AUTH_MESSAGE,
    MISSING_KEY_MESSAGE,
    WRONG_KEY_MESSAGE,
    ApiError,
    ErrorShape,
    not_found_route,
)
from bot.sim.openrouter import job_object as openrouter_job_object
from bot.sim.records import SimVideo
from bot.sim.wire import VARIANTS, choice_field, reject_unknown

_NO_DERIVED = frozenset(
    {"POST /videos/{id}/remix", "POST /videos/edits", "POST /videos/extensions"}
)
# Routes a profile's server does not have: a 404 (no such route).
_UNSUPPORTED: dict[str, frozenset[str]] = {
    "openai": frozenset(),
    "azure": frozenset(),
    "litellm": frozenset(),
    "vllm-omni": _NO_DERIVED,
    "sglang": _NO_DERIVED,
    "fastvideo": _NO_DERIVED | {"GET /models"},
    # OpenRouter: no job list, no delete, nothing made from a finished video.
    "openrouter": _NO_DERIVED | {"GET /videos", "DELETE /videos/{id}"},
}
# Routes LiteLLM's proxy knows but refuses with 405 (it has no delete, edits or extensions).
_NOT_ALLOWED: dict[str, frozenset[str]] = {
    "litellm": frozenset({"DELETE /videos/{id}", "POST /videos/edits", "POST /videos/extensions"}),
}
# Profiles that, like the reference API, refuse parameters they do not know.
_STRICT_PROFILES = frozenset({"openai", "azure", "litellm"})
# Each profile's error envelope.
_ERROR_SHAPES: dict[str, ErrorShape] = {
    "openai": "openai",
    "azure": "openai",
    "litellm": "openai",
    "vllm-omni": "vllm",
    "sglang": "fastapi",
    "fastvideo": "fastapi",
    "openrouter": "openrouter",
}
# Servers built on FastAPI answer an unknown route with its own `{"detail": "Not Found"}`.
_FASTAPI_PROFILES = frozenset({"litellm", "vllm-omni", "sglang", "fastvideo"})
# Self-hosted servers whose jobs never say `in_progress` and do not echo the prompt.
_QUEUED_THEN_DONE = frozenset({"sglang", "fastvideo"})
LITELLM_VERSION = "1.80.0"


class Dialect:
    """The configured profile's ways."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config

    @property
    def profile(self) -> str:
        return self.config.profile

    @property
    def queued_then_done(self) -> bool:
        """SGLang and FastVideo: jobs go from queued to done, lists are `{data}` alone, and a
        delete answers the job itself."""
        return self.profile in _QUEUED_THEN_DONE

    # ------------------------------------------------------------------ errors and routes

    def error(self, exc: ApiError) -> web.Response:
        return exc.response(_ERROR_SHAPES[self.profile])

    def has_route(self, route: str) -> bool:
        return route not in _UNSUPPORTED[self.profile]

    def require_route(self, request: web.Request, route: str | None) -> None:
        """Refuse a route this profile's server lacks (404) or refuses (405)."""
        if route in _NOT_ALLOWED.get(self.profile, ()):
            raise ApiError(405, "Method Not Allowed", shape="fastapi")
        if route in _UNSUPPORTED[self.profile]:
            raise self.no_route(request)

    def no_route(self, request: web.Request) -> ApiError:
        if self.profile in _FASTAPI_PROFILES:
            return ApiError(404, "Not Found", shape="fastapi")
        if self.profile == "azure":
            return ApiError(404, "Resource not found", code="404", shape="azure")
        return not_found_route(request.method, request.path)

    def stamp(self, response: web.StreamResponse, rng: random.Random) -> None:
        """Headers a profile adds to every answer not yet sent."""
        if self.profile == "litellm" and not response.prepared:
            # LiteLLM's proxy stamps its answers; a client can tell it apart by these.
            response.headers["x-litellm-version"] = LITELLM_VERSION
            response.headers["x-litellm-call-id"] = f"{rng.getrandbits(128):032x}"

    # ------------------------------------------------------------------ keys

    def auth_required(self) -> bool:
        cfg = self.config
        if cfg.auth is not None:
            return cfg.auth
        if cfg.profile == "fastvideo":
            return False
        if cfg.profile in ("vllm-omni", "sglang"):
            return cfg.api_key is not None
        return True

    def check_auth(self, request: web.Request) -> None:
        if not self.auth_required():
            return
        expected = self.config.api_key
        key = request.headers.get("api-key", "").strip()
        if self.profile == "azure":
            # Azure takes the key in `api-key` (Bearer only carries an Entra token).
            if not key or (expected is not None and key != expected):
                raise ApiError(401, AZURE_AUTH_MESSAGE, code="401", shape="azure")
            return
        scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            key = token.strip()
        if not key:
            if self.profile == "openrouter":
                raise ApiError(401, "No auth credentials found")
            raise ApiError(401, MISSING_KEY_MESSAGE)
        if expected is not None and key != expected:
            raise ApiError(401, WRONG_KEY_MESSAGE, code="invalid_api_key")

    # ------------------------------------------------------------------ request fields

    def strict(self, fields: Mapping[str, Any], allowed: Collection[str]) -> None:
        if self.profile in _STRICT_PROFILES:
            reject_unknown(fields, allowed)

    def check_model(self, model: str) -> None:
        cfg = self.config
        if not cfg.check_model or model in cfg.served_models:
            return
        served = ", ".join(cfg.served_models)
        if cfg.profile == "vllm-omni":
            message = f"Model mismatch: this server serves {served}, not {model!r}."
        elif cfg.profile == "litellm":
            message = (
                f"Invalid model name passed in model={model}. Call `/v1/models` to view "
                "available models for your key."
            )
        else:
            message = f"The model '{model}' does not exist or you do not have access to it."
        raise ApiError(400, message, param="model", code="model_not_found")

    def variant(self, raw: str | None) -> str:
        # vLLM-Omni has no variants, LiteLLM drops the parameter, OpenRouter has none: all answer
        # the mp4.
        if self.profile in ("vllm-omni", "litellm", "openrouter") or raw is None:
            return "video"
        if self.queued_then_done:
            # Here `variant` is an output index; the simulator makes one output per job, and a
            # name (`video`, `thumbnail`) is no index: no such output.
            index = int(raw) if raw.strip().isdigit() else -1
            if index != 0:
                raise ApiError(404, f"Video variant {raw} not found", param="variant")
            return "video"
        return choice_field({"variant": raw}, "variant", VARIANTS, "video")

    # ------------------------------------------------------------------ what a job looks like

    def model_ids(self) -> tuple[str, ...]:
        if self.profile == "openrouter":
            return tuple(str(m.get("id")) for m in self.config.openrouter_models)
        return self.config.served_models

    def reported_model(self, requested: str) -> str:
        cfg = self.config
        if cfg.profile == "vllm-omni" and cfg.served_models:
            return cfg.served_models[0]
        if cfg.profile == "azure" and cfg.report_model:
            return cfg.report_model
        return requested

    def present(self, video: SimVideo, base_url: str) -> dict[str, Any]:
        """The Video object as this profile reports it."""
        if self.profile == "openrouter":
            return openrouter_job_object(video, base_url)
        done = video.status in ("completed", "expired")
        completed_at = video.completed_at if done else None
        retention = self.config.retention_seconds
        body: dict[str, Any] = {
            "id": video.id,
            "object": "video",
            "model": self.reported_model(video.model),
            "status": video.status,
            "progress": video.progress,
            "created_at": int(video.created_at),
            "completed_at": None if completed_at is None else int(completed_at),
            "expires_at": None if completed_at is None else int(completed_at + retention),
            "prompt": video.prompt,
            "size": video.size,
            "seconds": video.seconds,
            "remixed_from_video_id": video.remixed_from_video_id,
            "error": dict(video.error) if video.error is not None else None,
        }
        if self.profile == "litellm":
            # Veo-like jobs through LiteLLM: `processing`, and no progress until done.
            if video.status == "in_progress":
                body["status"] = "processing"
            del body["progress"]
        elif self.queued_then_done:
            if video.status == "in_progress":
                body["status"], body["progress"] = "queued", 0
            del body["prompt"]
        elif self.profile == "vllm-omni":
            if video.status in ("queued", "in_progress"):
                body["progress"] = 0
            if video.error is not None:
                # vLLM-Omni's failed job: the code is an integer.
                body["error"] = {"code": 500, "message": video.error["message"]}
            if video.status == "completed":
                body["inference_time_s"] = round(video.job_seconds, 2)
                body["stage_durations"] = {"denoise": round(video.job_seconds, 2)}
                body["peak_memory_mb"] = 20480
        return body
