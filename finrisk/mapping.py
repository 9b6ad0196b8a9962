"""Source mappings: which source column feeds each canonical field, and how to read it."""
from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from finrisk.schema import LABEL_SCHEMA, TRANSACTION_SCHEMA

DEFAULT_MAPPING = Path(__file__).parent / "mappings" / "synthetic.yaml"


class LabelSource(BaseModel):
    path: str
    columns: dict[str, str]


class Mapping(BaseModel):
    source: str = "unnamed"
    transactions: str = "*.csv"
    format: Literal["csv", "parquet", "jsonl"] = "csv"
    timezone: str = "UTC"
    timestamp_format: str | None = None
    amount_unit: Literal["rupees", "paise"] = "rupees"
    columns: dict[str, str] = Field(default_factory=dict)
    static: dict[str, str | int | float] = Field(default_factory=dict)
    labels: LabelSource | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, tz: str) -> str:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {tz!r}") from exc
        return tz

    @field_validator("columns", "static")
    @classmethod
    def _canonical_fields(cls, fields: dict) -> dict:
        unknown = sorted(set(fields) - set(TRANSACTION_SCHEMA))
        if unknown:
            raise ValueError(f"not canonical transaction fields: {', '.join(unknown)}")
        return fields

    @field_validator("labels")
    @classmethod
    def _label_fields(cls, labels: LabelSource | None) -> LabelSource | None:
        if labels is not None:
            unknown = sorted(set(labels.columns) - set(LABEL_SCHEMA))
            if unknown:
                raise ValueError(f"not canonical label fields: {', '.join(unknown)}")
        return labels


class MappingError(ValueError):
    """The mapping file cannot be used; the message names the problem."""


def load_mapping(path: Path | None = None) -> Mapping:
    path = Path(path) if path else DEFAULT_MAPPING
    if not path.exists():
        raise MappingError(f"mapping file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return Mapping.model_validate(raw)
    except (yaml.YAMLError, ValidationError, ValueError) as exc:
        raise MappingError(f"mapping {path} is not valid: {exc}") from exc
