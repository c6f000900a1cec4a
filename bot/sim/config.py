"""What a simulator serves and how it behaves: one `SimConfig` per `SimServer`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bot.api.profiles import ProfileName
from bot.sim.errors import MODERATION_MESSAGE
from bot.sim.openrouter import MODELS as OPENROUTER_MODELS
from bot.sim.wire import SECONDS, SIZES


@dataclass
class SimConfig:
    """Every field's default behaves as the reference API does, with no faults."""

    job_seconds: float = 20.0
    retention_seconds: float = 3600.0
    profile: ProfileName = "openai"
    # Sent as `openai-poll-after-ms` on retrieves, the client's hint for its poll interval.
    poll_after_ms: int | None = None
    # None: any non-empty key is accepted.
    api_key: str | None = None
    fail_rate: float = 0.0
    fail_code: str = "moderation_blocked"
    fail_message: str = MODERATION_MESSAGE
    moderation_word: str | None = None
    rate_limit_rate: float = 0.0
    retry_after_seconds: float = 1.0
    server_error_rate: float = 0.0
    # Of those random 5xx answers to a create, the share given after the job was really made:
    # the ambiguous case the client must reconcile instead of sending again.
    server_error_after_action: float = 0.0
    latency_ms: float = 0.0
    fps: int = 12
    seed: int | None = None
    cache_dir: Path | None = None
    page_limit_max: int = 100
    # Served videos grow by this many bytes (an mp4 `free` box): for streaming tests, < 4 GiB.
    pad_video_bytes: int = 0
    # Log every request at INFO (the command line does; in-process use stays quiet).
    log_requests: bool = False
    # The models GET /models lists (and, with `check_model`, the only ones a create may name).
    served_models: tuple[str, ...] = ("sora-2", "sora-2-pro")
    # Refuse a create naming a model not served, as LiteLLM ("Invalid model name") and the
    # newest vLLM-Omni ("Model mismatch") do.
    check_model: bool = False
    # The model a job reports instead of the one asked for: a deployment's base model (azure).
    # vLLM-Omni always reports its served model (the first of `served_models`).
    report_model: str | None = None
    # Whether a key is needed: None = the profile's way (fastvideo never; vllm-omni and sglang
    # only when `api_key` is set; the others always, any non-empty key unless `api_key` is set).
    auth: bool | None = None
    # The durations and sizes a create may ask for: the bot's embedded simulator takes those of
    # the catalog in use; the default is the reference API's.
    seconds: tuple[str, ...] = SECONDS
    sizes: tuple[str, ...] = SIZES
    # The video models the OpenRouter profile lists at GET /videos/models and validates creates
    # against (a model not listed is taken with generic limits unless `check_model`).
    openrouter_models: tuple[dict[str, Any], ...] = OPENROUTER_MODELS
    # "render": each distinct prompt gets its own clip, showing it. "prepared": every job of a
    # size and duration gets the same real clip, rendered once per process (for tests that
    # never look at frames); statuses, timing, variants and faults are the same either way.
    clip: Literal["render", "prepared"] = "render"
