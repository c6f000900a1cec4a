"""Where a catalog comes from: a file the owner wrote (`VIDEO_CATALOG_FILE`), bundled presets
picked by name (`VIDEO_CATALOG=veo-3.1,wan-2.5`, files in `bot/presets/`), or the bundled default
(`bot/default_catalog.json`). What is wrong with a file is said in one line (`CatalogError`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from bot.catalog import Catalog
from bot.model_spec import NAME_LIMIT, ModelSpec

PRESET_DIR = "presets"


class CatalogError(ValueError):
    """The catalog file is missing, unreadable or inconsistent, or a preset name is unknown."""


def _validated(data: object, where: str) -> Catalog:
    try:
        return Catalog.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        raise CatalogError(f"catalog {where}: {loc + ': ' if loc else ''}{message}") from None


def _parse(text: str, where: str) -> Catalog:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CatalogError(
            f"catalog {where} is not valid JSON: {exc.msg} at line {exc.lineno}"
        ) from None
    return _validated(data, where)


def load_catalog(path: Path | None = None) -> Catalog:
    """Read the catalog from `path`, or the bundled default when no path is configured."""
    try:
        if path is None:
            text = resources.files("bot").joinpath("default_catalog.json").read_text("utf-8")
        else:
            text = path.read_text("utf-8")
    except OSError as exc:
        raise CatalogError(f"cannot read catalog {path}: {exc.strerror}") from None
    return _parse(text, str(path) if path is not None else "default")


def preset_names() -> list[str]:
    """The bundled presets, by the name `VIDEO_CATALOG` uses."""
    folder = resources.files("bot").joinpath(PRESET_DIR)
    return sorted(
        entry.name.removesuffix(".json")
        for entry in folder.iterdir()
        if entry.name.endswith(".json")
    )


def load_preset(name: str) -> Catalog:
    """One bundled preset as it is written (a template keeps its placeholder id)."""
    if name not in preset_names():
        raise CatalogError(f"unknown preset {name!r}; known presets: {', '.join(preset_names())}")
    text = resources.files("bot").joinpath(PRESET_DIR, f"{name}.json").read_text("utf-8")
    return _parse(text, f"preset {name}")


def load_presets(names: Sequence[str]) -> Catalog:
    """The presets named (in order) merged into one catalog. `name:model-id` gives a one-model
    preset the id the server knows it by (a self-hosted server's served model)."""
    if not names:
        raise CatalogError(f"no preset named; known presets: {', '.join(preset_names())}")
    models: list[ModelSpec] = []
    origin: dict[str, str] = {}
    for entry in names:
        name, sep, model_id = (part.strip() for part in entry.partition(":"))
        preset = load_preset(name)
        if sep:
            if len(preset.models) != 1:
                raise CatalogError(
                    f"preset {name!r} has {len(preset.models)} models; only a one-model "
                    "preset takes a model id"
                )
            if not model_id or len(model_id) > NAME_LIMIT:
                raise CatalogError(
                    f"preset {name!r}: write the model id after the colon, as {name}:<model id>"
                )
            update = {"id": model_id}
            if preset.needs_model_id:
                # A template's label says nothing; the served model's own name does.
                update["label"] = model_id.rsplit("/", 1)[-1] or model_id
            preset = preset.model_copy(
                update={"models": (preset.models[0].model_copy(update=update),)}
            )
        elif preset.needs_model_id:
            raise CatalogError(
                f"preset {name!r} needs the id of the model your server serves: "
                f"VIDEO_CATALOG={name}:<model id>"
            )
        for spec in preset.models:
            if spec.id in origin:
                raise CatalogError(
                    f"model {spec.id!r} is in both preset {origin[spec.id]!r} and {name!r}"
                )
            origin[spec.id] = name
            models.append(spec)
    return Catalog(models=tuple(models), name=",".join(names))
