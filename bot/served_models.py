"""A self-hosted server's served models (vLLM-Omni and SGLang name them at `GET /models`) as a
catalog: each id is matched to a preset (`Wan-AI/Wan2.2-T2V-A14B` -> wan-2.2, renamed to the
served id); an unknown one gets the `served` template.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from bot.catalog import Catalog
from bot.catalog_files import CatalogError, load_catalog, load_preset, load_presets, preset_names
from bot.openrouter_models import MAX_ENTRIES, MODEL_ID

# Served models of a self-hosted server mapped at most (they serve one).
MAX_SERVED = 10

# Served model -> preset, by the family its id names (case-insensitive).
SERVED_PRESETS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"wan[-_ ]?2[._-]?2(?![0-9])", re.IGNORECASE), "wan-2.2"),
    (re.compile(r"wan[-_ ]?2[._-]?5(?![0-9])", re.IGNORECASE), "wan-2.5"),
    (re.compile(r"wan[-_ ]?2[._-]?6(?![0-9])", re.IGNORECASE), "wan-2.6"),
    (re.compile(r"wan[-_ ]?2[._-]?7(?![0-9])", re.IGNORECASE), "wan-2.7"),
    (re.compile(r"ltx", re.IGNORECASE), "ltx-video"),
)
SERVED_TEMPLATE = "served"


def served_ids(body: Any) -> tuple[list[str], list[str]]:
    """Model ids from a `GET /models` answer (at most MAX_SERVED), and why others were skipped."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        return [], ["the answer has no list of models (`data`)"]
    ids: list[str] = []
    skipped: list[str] = []
    for index, entry in enumerate(data[:MAX_ENTRIES]):
        raw = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(raw, str) or not MODEL_ID.match(raw):
            skipped.append(f"skipped entry {index + 1}: its id is not a model id")
            continue
        if raw not in ids:
            ids.append(raw)
    if len(ids) > MAX_SERVED:
        skipped.append(f"only the first {MAX_SERVED} of {len(ids)} served models are offered")
        ids = ids[:MAX_SERVED]
    return ids, skipped


def preset_for(model_id: str) -> str:
    """The preset a served model's id names (exactly, or by its family), or the `served`
    template."""
    for name in preset_names():
        preset = load_preset(name)
        if not preset.needs_model_id and any(m.id == model_id for m in preset.models):
            return name
    for pattern, preset_name in SERVED_PRESETS:
        if pattern.search(model_id):
            return preset_name
    return SERVED_TEMPLATE


def from_served(ids: Sequence[str]) -> tuple[Catalog, list[tuple[str, str]]]:
    """A catalog of the served models: the bundled default's where it has them all, else each
    its preset renamed to the served id."""
    default = load_catalog(None)
    if all(default.get(model_id) is not None for model_id in ids):
        models = tuple(spec for model_id in ids if (spec := default.get(model_id)) is not None)
        return default.model_copy(update={"models": models}), [(i, "default") for i in ids]
    mapped = [(model_id, preset_for(model_id)) for model_id in ids]
    try:
        catalog = load_presets([_preset_entry(model_id, preset) for model_id, preset in mapped])
    except CatalogError:
        # Presets that cannot take the ids (a many-model preset): the template does.
        mapped = [(model_id, SERVED_TEMPLATE) for model_id in ids]
        catalog = load_presets([f"{SERVED_TEMPLATE}:{model_id}" for model_id in ids])
    return catalog, mapped


def _preset_entry(model_id: str, preset: str) -> str:
    # A preset that has the model under its own id is taken as it is.
    if any(m.id == model_id for m in load_preset(preset).models):
        return preset
    return f"{preset}:{model_id}"
