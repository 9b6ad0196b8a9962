"""The canonical columns the features read, checked and put in time order once."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from finrisk.schema import BUSINESS_TZ, TRANSACTION_SCHEMA

REQUIRED_FIELDS = ("txn_id", "ts", "customer_id", "amount_paise")
OPTIONAL_FIELDS = (
    "counterparty", "counterparty_type", "mcc", "channel", "direction", "status",
    "device_id", "city", "state", "latitude", "longitude",
)
FEATURE_FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS


class FeatureInputError(ValueError):
    """The transactions cannot be turned into features; the message says what is wrong."""


def _check_schema(schema: pl.Schema) -> None:
    missing = [c for c in REQUIRED_FIELDS if c not in schema]
    if missing:
        raise FeatureInputError(f"transactions lack required column(s) {', '.join(missing)}")
    ts = schema["ts"]
    if not isinstance(ts, pl.Datetime) or ts.time_zone is None:
        raise FeatureInputError(f"column ts must be a timezone-aware datetime, got {ts}")
    if not schema["amount_paise"].is_integer():
        raise FeatureInputError(f"column amount_paise must hold integer paise, got {schema['amount_paise']}")


def prepare_events(tx: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """All input columns kept, absent optional fields added as typed nulls, sorted by (ts, txn_id).

    Adds `_ms` (epoch milliseconds, UTC): instants are compared at millisecond resolution, so two
    events of one entity within the same millisecond count as simultaneous and never see each other.
    """
    lf = tx.lazy()
    schema = lf.collect_schema()
    _check_schema(schema)
    absent = [c for c in OPTIONAL_FIELDS if c not in schema]
    lf = lf.with_columns(pl.lit(None, TRANSACTION_SCHEMA[c]).alias(c) for c in absent)
    if "date" in schema:
        # Recomputed below from ts: a Hive partition column comes back chunked unlike the other
        # columns, and every later query on a misaligned frame would copy all of it first.
        lf = lf.drop("date")
    df = (
        lf.with_columns(pl.col("ts").dt.convert_time_zone("UTC").dt.cast_time_unit("us"))
        .with_columns(pl.col("ts").dt.epoch("ms").alias("_ms"))
        .collect()
    )
    if not _in_time_order(df):  # processed partitions usually are: skip the sort then
        df = df.sort("ts", "txn_id")
    df = df.with_columns(business_date(df))
    if len(set(df.n_chunks("all"))) > 1:
        df = df.rechunk()
    nulls = df.select(pl.col(c).is_null().any() for c in REQUIRED_FIELDS).row(0)
    bad = [c for c, has_null in zip(REQUIRED_FIELDS, nulls) if has_null]
    if bad:
        raise FeatureInputError(f"required column(s) {', '.join(bad)} contain nulls")
    return df


def business_offset_ms(first_ms: int, last_ms: int) -> int | None:
    """The business zone's UTC offset if it is the same all through [first, last] (Asia/Kolkata: no
    daylight saving since 1945), else None. Checked at least weekly, shorter than any DST period."""
    zone = ZoneInfo(BUSINESS_TZ)
    steps = max(2, (last_ms - first_ms) // (7 * 86_400_000) + 2)
    offsets = {datetime.fromtimestamp(m / 1000, zone).utcoffset() for m in np.linspace(first_ms, last_ms, int(steps))}
    return int(offsets.pop().total_seconds() * 1000) if len(offsets) == 1 else None


def business_date(events: pl.DataFrame) -> pl.Expr:
    """`date`: the Asia/Kolkata calendar date of ts (the business date of the partitions)."""
    offset = business_offset_ms(*ms_range(events))
    if offset is None:
        return pl.col("ts").dt.convert_time_zone(BUSINESS_TZ).dt.date().alias("date")
    # integer arithmetic on epoch milliseconds: far cheaper than converting each instant's zone
    return ((pl.col("_ms") + offset) // 86_400_000).cast(pl.Int32).cast(pl.Date).alias("date")


def ms_range(events: pl.DataFrame) -> tuple[int, int]:
    if events.height == 0:
        return 0, 0
    ms = events.get_column("_ms")
    return int(ms.min()), int(ms.max())


def _in_time_order(df: pl.DataFrame) -> bool:
    ordered = df.select(
        pl.col("ts").is_sorted().alias("ts_sorted"),
        ((pl.col("ts") == pl.col("ts").shift(1)) & (pl.col("txn_id") < pl.col("txn_id").shift(1))).any().alias("ties_out"),
    ).row(0)
    return bool(ordered[0]) and not ordered[1]


def present_fields(events: pl.DataFrame) -> frozenset[str]:
    """Canonical fields with at least one value: features needing any other field come out null."""
    if events.height == 0:
        return frozenset(REQUIRED_FIELDS)
    has = events.select(pl.col(c).is_not_null().any() for c in FEATURE_FIELDS).row(0)
    return frozenset(c for c, present in zip(FEATURE_FIELDS, has) if present)


@dataclass(frozen=True)
class Coding:
    """How one column's values were numbered; other values can be numbered the same way while it lives."""

    dtype: pl.Categorical
    size: int  # codes are 0 .. size-1
    keepalive: pl.Series  # the categories live as long as some data uses them


def dense_codes(values: pl.Series) -> tuple[np.ndarray, Coding]:
    """Small integer codes for the distinct non-null values, -1 for null.

    A categorical cast (in a private set of categories) interns the strings without sorting them.
    """
    return columns_codes(pl.DataFrame({"v": values}), ["v"])["v"]


def columns_codes(frame: pl.DataFrame, columns: list[str]) -> dict[str, tuple[np.ndarray, Coding]]:
    """dense_codes of several columns in one query (Polars runs the casts in parallel)."""
    dtypes = {c: pl.Categorical(pl.Categories(f"finrisk-features-{uuid.uuid4().hex}")) for c in columns}
    categorical = frame.select(pl.col(c).cast(pl.String).cast(dtypes[c]) for c in columns)
    result = {}
    for c in columns:
        codes = categorical.get_column(c).to_physical().cast(pl.Int64).fill_null(-1).to_numpy()
        size = int(codes.max()) + 1 if len(codes) else 0
        result[c] = (codes, Coding(dtypes[c], max(size, 0), categorical.get_column(c)))
    return result


def codes_in(values: pl.Series, coding: Coding) -> np.ndarray:
    """Codes of other values (e.g. the counterparties of labels) in an existing numbering; -1 for
    null or unknown values."""
    codes = values.cast(pl.String).cast(coding.dtype).to_physical().cast(pl.Int64).fill_null(-1).to_numpy()
    return np.where(codes < coding.size, codes, -1)
