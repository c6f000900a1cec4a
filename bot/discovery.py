"""Which catalog the bot offers, and where it came from: the owner's, or the server's own account.

Precedence: `VIDEO_CATALOG_FILE` > `VIDEO_CATALOG` (presets by name) > discovered from the server >
a profile's fallback presets > the bundled default. Discovery is a cheap read at start, like the
probe (never a create): OpenRouter tells its whole catalog at `GET /videos/models`
(bot/openrouter_models.py); vLLM-Omni and SGLang name the model they serve at `GET /models`
(bot/served_models.py). When nothing usable is left of what a server sends, the bot falls back,
saying why in the log and in `doctor`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from bot.api.client import VideosClient
from bot.api.errors import VideoAPIError
from bot.api.probe import VIDEO_MODELS_PATH
from bot.api.profiles import ProfileName
from bot.catalog import Catalog
from bot.catalog_files import load_catalog, load_presets
from bot.model_spec import ModelSpec
from bot.openrouter_models import from_openrouter
from bot.redact import redact
from bot.served_models import from_served, served_ids
from bot.settings import Settings

log = logging.getLogger(__name__)

MODELS_PATH = "/models"
# Profiles whose servers tell their catalog.
DISCOVERING: frozenset[ProfileName] = frozenset({"openrouter", "vllm-omni", "sglang"})
# Where a server's list cannot be read, the presets its models most likely are.
FALLBACK_PRESETS: dict[ProfileName, tuple[str, ...]] = {"openrouter": ("sora-2", "sora-2-pro")}


@dataclass
class CatalogChoice:
    """The catalog the bot offers, where it came from (one line), and what the owner should know
    (each model's origin, entries skipped and why, a fallback's reason)."""

    catalog: Catalog
    origin: str
    notes: list[str] = field(default_factory=list)
    discovered: bool = False
    # Where a model came from when the catalog has several sources (a preset's name).
    model_origins: dict[str, str] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """The catalog as `doctor` prints it."""
        out = [f"catalog: {self.origin}"]
        for spec in self.catalog.models:
            shapes = (
                f"{', '.join(spec.aspect_ratios)} at {', '.join(spec.resolutions)}"
                if spec.by_shape
                else ", ".join(spec.sizes)
            )
            prices = ", ".join(
                f"{key} ${value.normalize():f}/s" for key, value in _shown_prices(spec).items()
            )
            whence = self.model_origins.get(spec.id)
            name = f"{spec.id} ({whence})" if whence else spec.id
            out.append(f"- {name}: {', '.join(spec.seconds)} s; {shapes}; {prices}")
        out.extend(f"- note: {note}" for note in self.notes)
        return out


def configured(settings: Settings) -> CatalogChoice | None:
    """The owner's catalog (file, then presets), or None when the owner named none. Raises
    CatalogError as `settings.catalog()` does."""
    if settings.video_catalog_file is not None:
        path = settings.video_catalog_file
        return CatalogChoice(load_catalog(path), f"the file {path} (VIDEO_CATALOG_FILE)")
    if settings.video_catalog:
        names = ",".join(settings.video_catalog)
        choice = CatalogChoice(
            load_presets(settings.video_catalog), f"presets {names} (VIDEO_CATALOG)"
        )
        for entry in settings.video_catalog:
            for spec in load_presets([entry]).models:
                choice.model_origins[spec.id] = f"preset {entry.partition(':')[0].strip()}"
        return choice
    return None


def default_choice(profile: ProfileName, reason: str | None = None) -> CatalogChoice:
    fallback = FALLBACK_PRESETS.get(profile)
    if fallback:
        choice = CatalogChoice(
            load_presets(fallback), f"presets {','.join(fallback)} ({profile}'s fallback)"
        )
    else:
        choice = CatalogChoice(load_catalog(None), "the bundled default")
    if reason:
        choice.notes.append(reason)
    return choice


async def choose_catalog(
    settings: Settings, client: VideosClient, profile: ProfileName
) -> CatalogChoice:
    """The catalog to offer (see the module's precedence). Never raises for what a server
    sends; CatalogError only for the owner's own catalog, as at start-up."""
    own = configured(settings)
    if own is not None:
        return own
    if profile == "openrouter":
        return await _discover_openrouter(client, profile)
    if profile in ("vllm-omni", "sglang"):
        return await _discover_served(client, profile)
    return default_choice(profile)


async def _discover_openrouter(client: VideosClient, profile: ProfileName) -> CatalogChoice:
    where = f"GET {VIDEO_MODELS_PATH}"
    try:
        body = await client.read_catalog(VIDEO_MODELS_PATH)
    except VideoAPIError as exc:
        return _fallback(profile, f"{where} failed ({redact(exc.message, 200)})")
    models, skipped = from_openrouter(body)
    if not models:
        why = "; ".join(skipped[:3]) or "it lists no models"
        return _fallback(profile, f"{where} gave no usable model ({why})")
    choice = CatalogChoice(
        Catalog(
            models=tuple(models), name="discovered", source=f"{where} at {client.config.base_url}"
        ),
        f"discovered from {where} ({len(models)} models)",
        notes=skipped,
        discovered=True,
    )
    _log_skipped(skipped)
    return choice


async def _discover_served(client: VideosClient, profile: ProfileName) -> CatalogChoice:
    where = f"GET {MODELS_PATH}"
    try:
        body = await client.read_catalog(MODELS_PATH)
    except VideoAPIError as exc:
        return _fallback(profile, f"{where} failed ({redact(exc.message, 200)})")
    served, skipped = served_ids(body)
    if not served:
        why = "; ".join(skipped[:3]) or "it names no model"
        return _fallback(profile, f"{where} gave no usable model ({why})")
    catalog, mapped = from_served(served)
    origins = {
        model: "the bundled default" if preset == "default" else f"preset {preset}"
        for model, preset in mapped
    }
    origin = ", ".join(f"{model} -> {whence}" for model, whence in origins.items())
    _log_skipped(skipped)
    return CatalogChoice(
        catalog,
        f"discovered from {where} ({origin})",
        notes=skipped,
        discovered=True,
        model_origins=origins,
    )


def _fallback(profile: ProfileName, reason: str) -> CatalogChoice:
    choice = default_choice(profile, reason)
    log.warning("catalog discovery: %s; offering %s", reason, choice.origin)
    return choice


def _log_skipped(skipped: Sequence[str]) -> None:
    for reason in skipped[:10]:
        log.warning("catalog discovery: %s", reason)


def _shown_prices(spec: ModelSpec) -> dict[str, Decimal]:
    # Prices as the catalog states them (by resolution where given), not the per-size copies.
    keys = set(spec.resolutions) or set(spec.sizes)
    named = {k: v for k, v in spec.price_per_second.items() if k in keys}
    return named or dict(spec.price_per_second)
