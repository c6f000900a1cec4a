"""The model catalog: which models, sizes and durations a server owner offers, and what they cost.

The catalog is configuration (a JSON file), not code, because every backend that speaks the Videos
API serves different models at different prices. The bundled default mirrors the spec's values.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.api.models import parse_size

# Amounts are integer micro-dollars in the ledger so sums are exact; the catalog file uses Decimal.
MICROS_PER_DOLLAR = 1_000_000


class CatalogError(ValueError):
    """The catalog file is missing, unreadable or inconsistent."""


class ModelSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    label: str = Field(min_length=1)
    sizes: tuple[str, ...] = Field(min_length=1)
    seconds: tuple[str, ...] = Field(min_length=1)
    price_per_second: dict[str, Decimal]

    @field_validator("sizes")
    @classmethod
    def _sizes_are_wxh(cls, sizes: tuple[str, ...]) -> tuple[str, ...]:
        for size in sizes:
            parse_size(size)
        return sizes

    @field_validator("seconds", mode="before")
    @classmethod
    def _seconds_as_strings(cls, value: object) -> object:
        # Accept 4 or "4" in the file; the wire format is always a string.
        if isinstance(value, list | tuple):
            return tuple(str(v) for v in value)
        return value

    @field_validator("seconds")
    @classmethod
    def _seconds_are_positive_ints(cls, seconds: tuple[str, ...]) -> tuple[str, ...]:
        for s in seconds:
            if not s.isdigit() or int(s) <= 0:
                raise ValueError(f"seconds must be positive whole numbers, got {s!r}")
        return seconds

    @model_validator(mode="after")
    def _every_size_has_a_price(self) -> ModelSpec:
        missing = [s for s in self.sizes if s not in self.price_per_second]
        if missing:
            raise ValueError(f"model {self.id}: no price for size(s) {', '.join(missing)}")
        return self


class Catalog(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    models: tuple[ModelSpec, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> Catalog:
        ids = [m.id for m in self.models]
        if len(set(ids)) != len(ids):
            raise ValueError("model ids must be unique")
        return self

    @property
    def default(self) -> ModelSpec:
        return self.models[0]

    def get(self, model_id: str) -> ModelSpec | None:
        return next((m for m in self.models if m.id == model_id), None)

    def all_sizes(self) -> list[str]:
        return _ordered_union(m.sizes for m in self.models)

    def all_seconds(self) -> list[str]:
        return sorted(_ordered_union(m.seconds for m in self.models), key=int)

    def check(self, model_id: str, seconds: str, size: str) -> str | None:
        """Return why this combination is not offered, or None when it is."""
        spec = self.get(model_id)
        if spec is None:
            offered = ", ".join(m.id for m in self.models)
            return f"Model `{model_id}` is not offered here. Choose one of: {offered}."
        if size not in spec.sizes:
            return f"{spec.label} does not make {size} videos. Sizes: {', '.join(spec.sizes)}."
        if seconds not in spec.seconds:
            return (
                f"{spec.label} does not make {seconds}-second videos. "
                f"Durations: {', '.join(spec.seconds)} seconds."
            )
        return None

    def cost_micros(self, model_id: str, size: str, seconds: str) -> int:
        """Price of one request in micro-dollars (exact integer arithmetic)."""
        spec = self.get(model_id)
        if spec is None or size not in spec.price_per_second:
            raise KeyError(f"no price for {model_id} at {size}")
        return int(spec.price_per_second[size] * int(seconds) * MICROS_PER_DOLLAR)


def size_label(size: str) -> str:
    """'1280x720' -> '1280x720 (landscape)' for choice menus."""
    w, h = parse_size(size)
    shape = "landscape" if w > h else "portrait" if h > w else "square"
    return f"{size} ({shape})"


def format_dollars(micros: int) -> str:
    return f"${Decimal(micros) / MICROS_PER_DOLLAR:.2f}"


def _ordered_union(groups: Iterable[Iterable[str]]) -> list[str]:
    seen: dict[str, None] = {}
    for group in groups:
        for item in group:
            seen.setdefault(item, None)
    return list(seen)


def load_catalog(path: Path | None = None) -> Catalog:
    """Read the catalog from `path`, or the bundled default when no path is configured."""
    try:
        if path is None:
            text = resources.files("bot").joinpath("default_catalog.json").read_text("utf-8")
        else:
            text = path.read_text("utf-8")
        return Catalog.model_validate(json.loads(text))
    except OSError as exc:
        raise CatalogError(f"cannot read catalog {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise CatalogError(
            f"catalog {path} is not valid JSON: {exc.msg} at line {exc.lineno}"
        ) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CatalogError(f"catalog {path or 'default'}: {where}: {first['msg']}") from None
