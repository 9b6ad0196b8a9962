"""The Customer Financial Twin: a daily, versioned snapshot of every customer's normal behaviour.

A twin "as of D" summarises every transaction before D (business date, Asia/Kolkata). It holds what a
person wants to read (amount quantiles by channel and merchant category, the hour x weekday profile,
usual counterparties, devices and places, salary cadence, balance velocity, recent trend) and what the
online feature path needs: the running totals behind every history feature, the recent events that
time windows still reach, and the fraud labels known at build time.

Layout: <data_dir>/processed/twins/date=YYYY-MM-DD/ with one Parquet file per table and twin.json;
the folder is written next to its final place and renamed in, so readers never see half a twin.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from features.basic import amount_log10_rupees, mcc_group
from features.context import FeatureContext, HistoryState
from features.inputs import FEATURE_FIELDS, prepare_events, present_fields
from features.merchant import label_events
from features.spec import DAY_MS
from features.timing import clock_angle, local_time, salary_credit
from features.velocity import AMOUNT_BUCKETS, amount_bucket, large_amount_flags
from finrisk.io import write_parquet_atomic
from finrisk.schema import BUSINESS_TZ

TWIN_FORMAT = 2  # 2: label_events name the customer as well as the counterparty
QUANTILES = (0.5, 0.9, 0.99)
TABLES = ("profiles", "counterparties", "devices", "places", "amounts", "recent", "label_events")


class TwinNotFoundError(FileNotFoundError):
    """No twin snapshot where one was asked for."""


def lookback_days(label_delay_days: float) -> int:
    """Days of recent events the online path needs: the longest window (30 d) plus the label delay."""
    return 30 + int(np.ceil(label_delay_days)) + 1


def day_start_ms(day: date) -> int:
    """00:00 Asia/Kolkata of `day`, as epoch milliseconds."""
    local = datetime.combine(day, time(0), ZoneInfo(BUSINESS_TZ))
    return int(local.astimezone(timezone.utc).timestamp() * 1000)


@dataclass
class Twin:
    as_of: date
    meta: dict
    profiles: pl.DataFrame
    counterparties: pl.DataFrame
    devices: pl.DataFrame
    places: pl.DataFrame
    amounts: pl.DataFrame
    recent: pl.DataFrame
    label_events: pl.DataFrame
    tables: tuple[str, ...] = field(default=TABLES, repr=False)

    @property
    def label_delay_days(self) -> float:
        return float(self.meta["label_delay_days"])

    @property
    def since_ms(self) -> int:
        return day_start_ms(self.as_of)

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(self.meta["fields"])

    def customer(self, customer_id: str) -> dict | None:
        rows = self.profiles.filter(pl.col("customer_id") == customer_id)
        return rows.row(0, named=True) if rows.height else None


# ---- building ------------------------------------------------------------------------------------


def _list_of_counts(frame: pl.DataFrame, bucket: str, width: int, name: str) -> pl.DataFrame:
    """customer_id, name: each customer's row counts per bucket 0..width-1, as a list."""
    customers = frame.get_column("customer_id").unique().sort()
    codes = frame.get_column("customer_id").cast(pl.Enum(customers)).to_physical().cast(pl.Int64).to_numpy()
    flat = codes * width + frame.get_column(bucket).cast(pl.Int64).to_numpy()
    counts = np.bincount(flat, minlength=len(customers) * width).reshape(len(customers), width)
    return pl.DataFrame({"customer_id": customers, name: pl.Series(counts).cast(pl.List(pl.Int64))})


def _quantiles(column: str, prefix: str = "") -> list[pl.Expr]:
    return [
        pl.col(column).quantile(q, interpolation="nearest").alias(f"{prefix}p{round(q * 100)}_paise") for q in QUANTILES
    ]


def _profiles(history: pl.DataFrame, as_of_ms: int, fields: frozenset[str]) -> pl.DataFrame:
    hist = history.with_columns(local_time(history)).with_columns(
        amount_log10_rupees().alias("_x"),
        clock_angle().alias("_angle"),
        pl.Series("_bucket", amount_bucket(history.get_column("amount_paise").to_numpy())),
        (pl.col("_hour") + 24 * pl.col("_weekday").cast(pl.Int64)).alias("_hour_weekday"),
        pl.col("direction").eq("CREDIT").fill_null(False).alias("_credit"),
    )
    credit_paise = pl.when(pl.col("_credit")).then(pl.col("amount_paise")).otherwise(0)
    debit_paise = pl.when(pl.col("direction").eq("DEBIT").fill_null(False)).then(pl.col("amount_paise")).otherwise(0)
    spend_paise = pl.when(~pl.col("_credit")).then(pl.col("amount_paise")).otherwise(0)
    last_7d = pl.col("_ms") >= as_of_ms - 7 * DAY_MS
    last_30d = pl.col("_ms") >= as_of_ms - 30 * DAY_MS
    base = hist.group_by("customer_id").agg(
        pl.len().alias("txn_count"),
        pl.col("_ms").min().alias("first_ms"),
        pl.col("_ms").max().alias("last_ms"),
        pl.col("amount_paise").sum().alias("amount_sum_paise"),
        *_quantiles("amount_paise"),
        pl.col("_x").sum().alias("log_amount_sum"),
        (pl.col("_x") ** 2).sum().alias("log_amount_sq_sum"),
        pl.col("_angle").sin().sum().alias("hour_sin_sum"),
        pl.col("_angle").cos().sum().alias("hour_cos_sum"),
        (pl.col("_hour") < 6).sum().cast(pl.Int64).alias("night_count"),
        pl.col("city").drop_nulls().last().alias("last_city"),
        pl.col("state").drop_nulls().last().alias("last_state"),
        pl.col("device_id").drop_nulls().n_unique().cast(pl.Int64).alias("device_count"),
        credit_paise.filter(last_30d).sum().alias("credits_30d_paise"),
        debit_paise.filter(last_30d).sum().alias("debits_30d_paise"),
        (credit_paise - debit_paise).filter(last_7d).sum().alias("net_flow_7d_paise"),
        spend_paise.filter(last_7d).sum().alias("spend_7d_paise"),
        spend_paise.filter(last_30d).sum().alias("spend_30d_paise"),
    ).with_columns(
        (pl.col("credits_30d_paise") - pl.col("debits_30d_paise")).alias("net_flow_30d_paise"),
        pl.when(pl.col("spend_30d_paise") > 0)
        .then((pl.col("spend_7d_paise") / 7) / (pl.col("spend_30d_paise") / 30))
        .alias("spend_trend_7d_vs_30d"),
    )
    located = hist.filter(pl.col("latitude").is_not_null() & pl.col("longitude").is_not_null())
    geo = located.group_by("customer_id").agg(
        pl.col("_ms").last().alias("last_geo_ms"), pl.col("latitude").last().alias("last_lat"),
        pl.col("longitude").last().alias("last_lon"),
    )
    hour_weekday = _list_of_counts(hist, "_hour_weekday", 168, "hour_weekday_counts")  # index: hour + 24 * weekday
    grid = hour_weekday.get_column("hour_weekday_counts").list.to_array(168).to_numpy().reshape(-1, 7, 24)
    hour_weekday = hour_weekday.with_columns(
        pl.Series("hour_counts", grid.sum(axis=1)).cast(pl.List(pl.Int64)),
        pl.Series("weekday_counts", grid.sum(axis=2)).cast(pl.List(pl.Int64)),
    )
    histogram = _list_of_counts(hist, "_bucket", AMOUNT_BUCKETS, "amount_hist")
    profiles = (
        base.join(geo, on="customer_id", how="left")
        .join(hour_weekday, on="customer_id", how="left")
        .join(histogram, on="customer_id", how="left")
    )
    if "counterparty_type" in fields:
        salaries = hist.filter(salary_credit().fill_null(False)).sort("customer_id", "_ms")
        cadence = salaries.group_by("customer_id").agg(
            pl.len().alias("salary_count"),
            pl.col("_ms").max().alias("last_salary_ms"),
            pl.col("amount_paise").median().alias("salary_median_paise"),
            (pl.col("_ms").diff().median() / DAY_MS).alias("salary_interval_days"),
            pl.col("_day").median().alias("salary_day_of_month"),
        )
        profiles = profiles.join(cadence, on="customer_id", how="left")
    else:
        profiles = profiles.with_columns(
            pl.lit(None, pl.UInt32).alias("salary_count"), pl.lit(None, pl.Int64).alias("last_salary_ms"),
            pl.lit(None, pl.Float64).alias("salary_median_paise"), pl.lit(None, pl.Float64).alias("salary_interval_days"),
            pl.lit(None, pl.Float64).alias("salary_day_of_month"),
        )
    return profiles.sort("customer_id")


def _amounts(history: pl.DataFrame) -> pl.DataFrame:
    """Amount quantiles per customer by channel and by merchant category group."""
    frames = []
    for dimension, expr in (("channel", pl.col("channel")), ("mcc_group", mcc_group(history.get_column("mcc")))):
        frames.append(
            history.with_columns(expr.alias("_value"))
            .filter(pl.col("_value").is_not_null())
            .group_by("customer_id", "_value")
            .agg(pl.len().alias("txn_count"), *_quantiles("amount_paise"))
            .select(
                "customer_id", pl.lit(dimension).alias("dimension"), pl.col("_value").alias("value"),
                pl.all().exclude("customer_id", "_value"),
            )
        )
    return pl.concat(frames).sort("customer_id", "dimension", "txn_count", descending=[False, False, True])


def build_twin(
    tx: pl.LazyFrame | pl.DataFrame,
    as_of: date,
    labels: pl.DataFrame | None = None,
    label_delay_days: float = 7,
) -> Twin:
    """The twin of every customer from the transactions before `as_of` (00:00 Asia/Kolkata)."""
    since = day_start_ms(as_of)
    history = prepare_events(tx.lazy().filter(pl.col("ts") < datetime.fromtimestamp(since / 1000, timezone.utc)))
    fields = present_fields(history)
    known = None if labels is None else label_events(history, labels, label_delay_days)
    recent_from = since - lookback_days(label_delay_days) * DAY_MS
    ctx = FeatureContext(history, label_delay_days, known)
    flags = pl.Series("_large", large_amount_flags(ctx)).cast(pl.Int8) if history.height else pl.Series("_large", [], pl.Int8)
    recent = (
        history.select(*FEATURE_FIELDS, "date", "_ms").with_columns(flags)
        .filter(pl.col("_ms") >= recent_from)
        .drop("_ms")
    )
    counterparties = (
        history.filter(pl.col("counterparty").is_not_null())
        .group_by("customer_id", "counterparty")
        .agg(
            pl.len().alias("txn_count"), pl.col("amount_paise").sum().alias("amount_sum_paise"),
            pl.col("_ms").min().alias("first_ms"), pl.col("_ms").max().alias("last_ms"),
        )
        .sort("customer_id", "txn_count", "counterparty", descending=[False, True, False])
    )
    devices = (
        history.filter(pl.col("device_id").is_not_null())
        .group_by("customer_id", "device_id")
        .agg(pl.len().alias("txn_count"), pl.col("_ms").min().alias("first_ms"), pl.col("_ms").max().alias("last_ms"))
        .sort("customer_id", "txn_count", "device_id", descending=[False, True, False])
    )
    places = (
        history.filter(pl.col("city").is_not_null())
        .group_by("customer_id", "city", "state")
        .agg(pl.len().alias("txn_count"), pl.col("_ms").max().alias("last_ms"))
        .sort("customer_id", "txn_count", "city", descending=[False, True, False])
    )
    meta = {
        "format": TWIN_FORMAT,
        "as_of": as_of.isoformat(),
        "label_delay_days": label_delay_days,
        "lookback_days": lookback_days(label_delay_days),
        "fields": sorted(fields),
        "history_rows": history.height,
        "customers": history.get_column("customer_id").n_unique(),
        "history_from": _iso(history.get_column("ts").min()) if history.height else None,
        "history_to": _iso(history.get_column("ts").max()) if history.height else None,
        "labels": None if known is None else known.height,
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return Twin(
        as_of=as_of,
        meta=meta,
        profiles=_profiles(history, since, fields),
        counterparties=counterparties,
        devices=devices,
        places=places,
        amounts=_amounts(history),
        recent=recent,
        label_events=known if known is not None else pl.DataFrame(
            schema={"counterparty": pl.String, "customer_id": pl.String, "available_ms": pl.Int64}
        ),
    )


def _iso(value) -> str | None:
    return None if value is None else value.isoformat()


def behaviour_vectors(twin: Twin) -> pl.DataFrame:
    """customer_id and numeric descriptors of normal behaviour, one row per customer: the input for
    clustering customers into peer groups (scale-free: shares, logs, rates)."""
    p = twin.profiles
    n = pl.col("txn_count")
    mean = pl.col("log_amount_sum") / n
    days = ((pl.col("last_ms") - pl.col("first_ms")) / DAY_MS + 1).clip(lower_bound=1)
    counterparties = twin.counterparties.group_by("customer_id").agg(pl.len().alias("counterparties"))
    return p.join(counterparties, on="customer_id", how="left").select(
        "customer_id",
        (n / days).alias("txns_per_day"),
        mean.alias("log_amount_mean"),
        ((pl.col("log_amount_sq_sum") / n - mean**2).clip(lower_bound=0).sqrt()).alias("log_amount_std"),
        (pl.col("p99_paise") / 100).clip(lower_bound=0.01).log10().alias("log_amount_p99"),
        (pl.col("night_count") / n).alias("night_share"),
        ((pl.col("weekday_counts").list.get(5) + pl.col("weekday_counts").list.get(6)) / n).alias("weekend_share"),
        (pl.col("counterparties").fill_null(0) / n).alias("counterparties_per_txn"),
        pl.col("device_count").cast(pl.Float64),
        pl.col("salary_count").fill_null(0).cast(pl.Float64),
        pl.col("spend_trend_7d_vs_30d").fill_null(1.0),
    )


def history_state(twin: Twin, peer_groups: pl.DataFrame | None = None) -> HistoryState:
    """The twin's running totals, keyed the way the feature families look them up."""
    peers = None
    if peer_groups is not None:
        peers = (
            twin.profiles.join(peer_groups.select("customer_id", pl.col("peer_group").cast(pl.Int64)), on="customer_id")
            .group_by("peer_group")
            .agg(pl.col("txn_count").sum(), pl.col("log_amount_sum").sum(), pl.col("log_amount_sq_sum").sum())
            .with_columns(pl.col("peer_group").cast(pl.String))
        )
    return HistoryState(
        since_ms=twin.since_ms,
        customers=twin.profiles,
        pairs=twin.counterparties,
        device_pairs=twin.devices,
        devices=twin.devices.group_by("device_id").agg(
            pl.len().alias("customer_count"), pl.col("txn_count").sum()
        ),
        counterparties=twin.counterparties.group_by("counterparty").agg(
            pl.len().alias("fan_in"), pl.col("txn_count").sum()
        ),
        label_events=twin.label_events,
        peers=peers,
    )


# ---- storage -------------------------------------------------------------------------------------


def twins_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "processed" / "twins"


def twin_path(data_dir: Path, as_of: date) -> Path:
    return twins_dir(data_dir) / f"date={as_of.isoformat()}"


def write_twin(twin: Twin, data_dir: Path) -> Path:
    """Write the snapshot into a sibling folder, then rename it into place (replacing an older one)."""
    final = twin_path(data_dir, twin.as_of)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
    try:
        staging.mkdir()
        for name in TABLES:
            write_parquet_atomic(getattr(twin, name), staging / f"{name}.parquet")
        (staging / "twin.json").write_text(json.dumps(twin.meta, indent=2))
        retired = None
        if final.exists():
            retired = final.with_name(f".{final.name}.{uuid.uuid4().hex}.old")
            os.replace(final, retired)
        os.replace(staging, final)
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return final


def twin_dates(data_dir: Path) -> list[date]:
    root = twins_dir(data_dir)
    if not root.exists():
        return []
    found = []
    for path in root.glob("date=*"):
        if (path / "twin.json").exists():
            try:
                found.append(date.fromisoformat(path.name.removeprefix("date=")))
            except ValueError:
                continue
    return sorted(found)


def read_twin(data_dir: Path, as_of: date | None = None) -> Twin:
    """The snapshot for `as_of`, or the latest one when as_of is None."""
    dates = twin_dates(data_dir)
    if as_of is None:
        if not dates:
            raise TwinNotFoundError(f"no twin snapshots under {twins_dir(data_dir)}; run `finrisk features` first")
        as_of = dates[-1]
    path = twin_path(data_dir, as_of)
    if not (path / "twin.json").exists():
        known = ", ".join(d.isoformat() for d in dates[-5:]) or "none"
        raise TwinNotFoundError(f"no twin as of {as_of.isoformat()} under {twins_dir(data_dir)} (latest: {known})")
    meta = json.loads((path / "twin.json").read_text())
    if meta.get("format") != TWIN_FORMAT:
        raise TwinNotFoundError(f"twin at {path} has format {meta.get('format')}, this code reads {TWIN_FORMAT}")
    frames = {name: pl.read_parquet(path / f"{name}.parquet") for name in TABLES}
    return Twin(as_of=as_of, meta=meta, **frames)
