"""Backend profiles: what each family of servers that speaks the Videos API can do.

Code that uses an optional operation asks the profile first, so one bot serves OpenAI-shaped
servers that differ in small ways. Every capability can also be overridden one by one in settings.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

ProfileName = Literal["openai", "litellm", "vllm-omni", "sglang"]
CreateEncoding = Literal["json", "multipart"]


class Capabilities(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # How a create without a reference image is encoded (with one it is always multipart).
    create_encoding: CreateEncoding = "json"
    # Whether `?variant=` may be sent; where not, only the video itself is downloadable.
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
    # Headers sent with list requests only (a gateway may need to know which provider to ask).
    list_headers: dict[str, str] = {}


PROFILES: dict[ProfileName, Capabilities] = {
    "openai": Capabilities(),
    "litellm": Capabilities(
        edits=False,
        extensions=False,
        progress=False,
        list_headers={"custom-llm-provider": "openai"},
    ),
    "vllm-omni": Capabilities(
        create_encoding="multipart",
        variants=False,
        remix=False,
        edits=False,
        extensions=False,
    ),
    "sglang": Capabilities(
        variants=False,
        list_has_more=False,
        remix=False,
        edits=False,
        extensions=False,
    ),
}


def capabilities(name: ProfileName, overrides: dict[str, object] | None = None) -> Capabilities:
    """The profile's capabilities with any non-None per-setting overrides applied."""
    base = PROFILES[name]
    changes = {k: v for k, v in (overrides or {}).items() if v is not None}
    return Capabilities.model_validate({**base.model_dump(), **changes}) if changes else base
