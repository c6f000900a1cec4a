"""Backend profiles: what each family of servers that speaks the Videos API can do.

Code that uses an optional operation asks the profile first, so one bot serves OpenAI-shaped
servers that differ in small ways. Every capability can also be overridden one by one in settings.
The values come from each server's source (see the README's profiles table): where a server cannot
do something, the bot must not ask, because the answer would be an error or, worse, the wrong thing
(a gateway that drops `variant` answers a thumbnail request with the mp4).
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict

ProfileName = Literal[
    "openai", "azure", "litellm", "vllm-omni", "sglang", "fastvideo", "openrouter"
]
# What VIDEO_API_PROFILE may say: a profile, `auto` (probe the server at start) or `simulator`
# (the built-in simulator even though a server is configured).
ProfileSetting = Literal[
    "auto",
    "simulator",
    "openai",
    "azure",
    "litellm",
    "vllm-omni",
    "sglang",
    "fastvideo",
    "openrouter",
]
PROFILE_NAMES: tuple[ProfileName, ...] = get_args(ProfileName)
CreateEncoding = Literal["json", "multipart"]
# How a create is worded: OpenAI's (`seconds` a string, `size`, an `input_reference` file) or
# OpenRouter's (`duration` an integer, `resolution` + `aspect_ratio`, `frame_images` as data URLs,
# content by `?index=`); see bot/api/openrouter.py.
Dialect = Literal["openai", "openrouter"]
AuthHeader = Literal["authorization", "api-key"]


class Capabilities(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # How a create without a reference image is encoded (with one it is always multipart).
    create_encoding: CreateEncoding = "json"
    # Whether `?variant=` may be sent; where not, only the video itself is downloadable and the
    # thumbnail is made locally from its first frame (bot/thumbnail.py).
    variants: bool = True
    list: bool = True
    # Whether list pages carry `has_more`; where not, a short page ends the listing.
    list_has_more: bool = True
    delete: bool = True
    remix: bool = True
    edits: bool = True
    extensions: bool = True
    # Whether progress is reported; where not, the display carries elapsed time alone.
    progress: bool = True
    # Whether the job object echoes the request's `prompt` (adoption after a lost answer compares
    # it only where it does).
    echoes_prompt: bool = True
    # Whether the job object reports the model that was asked for; where it may report another
    # name (a served model, a deployment's base model) adoption does not compare models.
    reports_requested_model: bool = True
    # The create field for sound on/off: `generate_audio`, or vLLM-Omni's `generate_sound`.
    audio_field: str = "generate_audio"
    # Headers sent with list requests only (a gateway may need to know which provider to ask).
    list_headers: dict[str, str] = {}
    dialect: Dialect = "openai"


_SELF_HOSTED = {
    "variants": False,
    "list_has_more": False,
    "remix": False,
    "edits": False,
    "extensions": False,
    # Queued, then completed: progress goes 0 -> 100 with nothing between.
    "progress": False,
    "echoes_prompt": False,
}

PROFILES: dict[ProfileName, Capabilities] = {
    "openai": Capabilities(),
    # The model sent is the deployment's name; the job may name the base model instead.
    "azure": Capabilities(reports_requested_model=False),
    # LiteLLM drops `variant` (a thumbnail request answers the mp4), has no DELETE route, no
    # edits or extensions, reports Veo jobs as `processing` without progress, and can list only
    # where the owner names a provider that can (VIDEO_API_LIST_HEADERS turns listing on).
    "litellm": Capabilities(
        variants=False,
        list=False,
        delete=False,
        edits=False,
        extensions=False,
        progress=False,
    ),
    # Multipart creates only; the job reports the served model; DELETE cancels; no variants.
    "vllm-omni": Capabilities(
        create_encoding="multipart",
        variants=False,
        remix=False,
        edits=False,
        extensions=False,
        progress=False,
        reports_requested_model=False,
        audio_field="generate_sound",
    ),
    # DELETE removes the record and answers the video object with status `deleted`.
    "sglang": Capabilities.model_validate(_SELF_HOSTED),
    "fastvideo": Capabilities.model_validate(_SELF_HOSTED),
    # OpenRouter: its own create body, 202 + polling, `pending` while queued, content by
    # `?index=0`; no list (so no adoption after a lost answer), no delete, remix, edits or
    # extensions, and no `prompt` in the job object.
    "openrouter": Capabilities(
        dialect="openrouter",
        variants=False,
        list=False,
        list_has_more=False,
        delete=False,
        remix=False,
        edits=False,
        extensions=False,
        echoes_prompt=False,
    ),
}

# How each profile expects the key when OPENAI_AUTH_HEADER does not say.
DEFAULT_AUTH_HEADERS: dict[ProfileName, AuthHeader] = {
    name: ("api-key" if name == "azure" else "authorization") for name in PROFILE_NAMES
}


def capabilities(name: ProfileName, overrides: dict[str, object] | None = None) -> Capabilities:
    """The profile's capabilities with any non-None per-setting overrides applied.

    Naming list headers turns listing on unless the list override says otherwise: a gateway that
    lists only for a named provider (LiteLLM) can list once the owner names one.
    """
    base = PROFILES[name]
    changes = {k: v for k, v in (overrides or {}).items() if v is not None}
    if changes.get("list_headers") and "list" not in changes:
        changes["list"] = True
    return Capabilities.model_validate({**base.model_dump(), **changes}) if changes else base
