"""Source mappings: which source column feeds each canonical field, and how to read the files.

A mapping is a small YAML file (see docs/ingest.md). Everything a source lacks stays null unless
the mapping gives it a static value; the canonical names are those of `finrisk.schema`.
"""
from __future__ import annotations

import codecs
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from finrisk.schema import LABEL_SCHEMA, TRANSACTION_SCHEMA

DEFAULT_MAPPING = Path(__file__).parent / "mappings" / "synthetic.yaml"

FileFormat = Literal["csv", "parquet", "jsonl"]
FORMAT_BY_SUFFIX: dict[str, FileFormat] = {
    ".csv": "csv", ".tsv": "csv", ".txt": "csv",
    ".parquet": "parquet", ".pq": "parquet",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
}
# Text formats for timestamps held as numbers.
EPOCH_FORMATS = {"epoch_s": "s", "epoch_ms": "ms", "epoch_us": "us"}
# Fields a transaction cannot be identified, placed in time or valued without.
MAPPED_REQUIRED = ("txn_id", "ts", "amount_paise")
# Coded fields: trimmed and upper-cased before `values` recodes them and validation checks them.
UPPERCASE_FIELDS = ("channel", "direction", "status", "counterparty_type", "currency", "ifsc")


class MappingError(ValueError):
    """The mapping file cannot be used; the message names the problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CsvOptions(_Strict):
    delimiter: str = ","
    quote_char: str | None = '"'
    # utf8 (strict), utf8-lossy (bad bytes become U+FFFD) or any Python codec name, e.g. cp1252.
    encoding: str = "utf8"

    @field_validator("delimiter")
    @classmethod
    def _one_char(cls, value: str) -> str:
        value = "\t" if value in ("\\t", "tab") else value
        if len(value) != 1:
            raise ValueError(f"delimiter must be one character, got {value!r}")
        return value

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        if value in ("utf8", "utf8-lossy"):
            return value
        try:
            codecs.lookup(value)
        except LookupError as exc:
            raise ValueError(f"unknown encoding {value!r}") from exc
        return "utf8" if codecs.lookup(value).name == "utf-8" else value


def _check_zone(tz: str | None) -> str | None:
    if tz is None:
        return tz
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {tz!r}") from exc
    return tz


class LabelSource(_Strict):
    """Where fraud labels come from: a separate file (glob) or, without `path`, the transaction files."""

    path: str | None = None
    format: FileFormat | None = None
    csv: CsvOptions = Field(default_factory=CsvOptions)
    timezone: str | None = None  # default: the transactions' timezone
    timestamp_format: str | None = None
    columns: dict[str, str] = Field(default_factory=dict)
    static: dict[str, str | int] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, tz: str | None) -> str | None:
        return _check_zone(tz)

    @field_validator("columns", "static")
    @classmethod
    def _label_fields(cls, fields: dict) -> dict:
        unknown = sorted(set(fields) - set(LABEL_SCHEMA))
        if unknown:
            raise ValueError(f"not canonical label fields: {', '.join(unknown)} (known: {', '.join(LABEL_SCHEMA)})")
        return fields


class Mapping(_Strict):
    source: str = "unnamed"
    # Glob of transaction files, relative to a source folder given on the command line.
    transactions: str = "**/*"
    format: FileFormat | None = None  # default: from each file's extension
    csv: CsvOptions = Field(default_factory=CsvOptions)
    timezone: str = "UTC"  # the zone of timestamps that carry none
    timestamp_format: str | None = None  # strftime pattern, or epoch_s / epoch_ms / epoch_us
    amount_unit: Literal["rupees", "paise"] = "rupees"
    columns: dict[str, str] = Field(default_factory=dict)
    static: dict[str, str | int | float] = Field(default_factory=dict)
    # Recoding of source values, per canonical field: e.g. direction: {DR: DEBIT, CR: CREDIT}.
    values: dict[str, dict[str, str]] = Field(default_factory=dict)
    labels: LabelSource | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, tz: str) -> str:
        return _check_zone(tz)

    @field_validator("columns", "static")
    @classmethod
    def _canonical_fields(cls, fields: dict) -> dict:
        unknown = sorted(set(fields) - set(TRANSACTION_SCHEMA))
        if unknown:
            raise ValueError(f"not canonical transaction fields: {', '.join(unknown)}")
        return fields

    @field_validator("values")
    @classmethod
    def _recodable(cls, values: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        wrong = sorted(f for f in values if TRANSACTION_SCHEMA.get(f) != pl.String)
        if wrong:
            raise ValueError(f"values can only recode text fields, not: {', '.join(wrong)}")
        return {
            field: {(str(k).strip().upper() if field in UPPERCASE_FIELDS else str(k).strip()): str(v)
                    for k, v in codes.items()}
            for field, codes in values.items()
        }

    @model_validator(mode="after")
    def _complete(self) -> "Mapping":
        both = sorted(set(self.columns) & set(self.static))
        if both:
            raise ValueError(f"fields both mapped and static: {', '.join(both)}")
        missing = [f for f in MAPPED_REQUIRED if f not in self.columns]
        if missing:
            raise ValueError(f"columns must map the required field(s): {', '.join(missing)}")
        if "customer_id" not in self.columns and "customer_id" not in self.static:
            raise ValueError("columns (or static) must give customer_id")
        return self

    def label_columns(self) -> dict[str, str]:
        """Source column for each label field; labels in the transaction files share its txn_id column."""
        assert self.labels is not None
        columns = dict(self.labels.columns)
        if self.labels.path is None:
            columns.setdefault("txn_id", self.columns["txn_id"])
        return columns


def load_mapping(path: Path | None = None) -> Mapping:
    path = Path(path) if path else DEFAULT_MAPPING
    if not path.is_file():
        raise MappingError(f"mapping file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise MappingError(f"mapping {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise MappingError(f"mapping {path} must be a YAML mapping of settings, not {type(raw).__name__}")
    try:
        mapping = Mapping.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'mapping'}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise MappingError(f"mapping {path} is not valid: {problems}") from exc
    if mapping.labels is not None:
        cols = mapping.label_columns()
        if "txn_id" not in cols:
            raise MappingError(f"mapping {path}: labels.columns must map txn_id")
        if "reported_at" not in cols:
            raise MappingError(f"mapping {path}: labels.columns must map reported_at")
        if "label" not in cols and "label" not in mapping.labels.static:
            raise MappingError(f"mapping {path}: labels must map `label` or give it as static (e.g. label: 1)")
    return mapping
