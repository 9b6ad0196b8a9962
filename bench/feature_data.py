"""Benchmark input for the feature benchmarks: a processed-like canonical table, cached under bench/out/.

The generator's CSV exports are converted with Polars to the canonical columns the features read
(ts in UTC, amounts in integer paise, the Asia/Kolkata business date as Hive partition, ip and
coordinates in the encrypted side table), without the ingest stage's validation and
pseudonymisation: those are benchmarked by bench_ingest.
"""
from __future__ import annotations

from pathlib import Path

import polars as pl

from finrisk import sensitive
from finrisk.config import get_settings
from finrisk.encryption import ensure_key_file
from finrisk.io import DataLayout, write_parquet_atomic
from finrisk.schema import BUSINESS_TZ, PROCESSED_COLUMNS, TRANSACTION_SCHEMA


def generated_raw(cache: Path, customers: int, days: int, seed: int = 7) -> Path:
    """The generator's CSV exports, made once per (customers, days, seed) and reused."""
    from finrisk.synthetic import generate

    raw = cache / f"raw-{customers}x{days}-s{seed}"
    done = raw / ".complete"
    if not done.exists():
        generate(raw, customers=customers, days=days, seed=seed)
        done.touch()
    return raw


def canonical_transactions(raw: Path) -> pl.LazyFrame:
    """The generator's transaction CSVs as canonical columns (no validation or pseudonymisation)."""
    ts = pl.col("txn_time").str.to_datetime("%Y-%m-%d %H:%M:%S", time_unit="us").dt.replace_time_zone(BUSINESS_TZ)
    return pl.scan_csv(raw / "transactions" / "*.csv", infer_schema=False).select(
        pl.col("txn_ref").alias("txn_id"),
        ts.dt.convert_time_zone("UTC").alias("ts"),
        "customer_id",
        pl.col("counterparty_id").alias("counterparty"),
        "counterparty_type",
        "mcc",
        "channel",
        "direction",
        (pl.col("amount_inr").str.replace(".", "", literal=True).cast(pl.Int64)).alias("amount_paise"),
        "status",
        "device_id",
        "city",
        "state",
        pl.col("latitude").cast(pl.Float64),
        pl.col("longitude").cast(pl.Float64),
        ts.dt.date().alias("date"),
    )


def processed_table(cache: Path, customers: int, days: int, seed: int = 7) -> Path:
    """A data dir with processed/transactions (Hive-partitioned by date) and processed/labels."""
    root = cache / f"processed-v3-{customers}x{days}-s{seed}"
    layout = DataLayout(root)
    done = root / ".complete"
    if done.exists():
        return root
    write_processed(generated_raw(cache, customers, days, seed), root)
    done.touch()
    return root


def canonical_labels(raw: Path) -> pl.DataFrame:
    return pl.read_csv(raw / "labels.csv", infer_schema=False).select(
        pl.col("txn_ref").alias("txn_id"),
        pl.col("label").cast(pl.Int8),
        "fraud_type",
        pl.col("reported_at").str.to_datetime("%Y-%m-%dT%H:%M:%S%z", time_unit="us").dt.convert_time_zone("UTC"),
    )


def write_processed(raw: Path, root: Path) -> Path:
    """processed/transactions (Hive-partitioned by business date) and processed/labels under root."""
    layout = DataLayout(root)
    table = canonical_transactions(raw).collect()
    missing = [c for c in TRANSACTION_SCHEMA if c not in table.columns]
    table = table.with_columns(pl.lit(None, TRANSACTION_SCHEMA[c]).alias(c) for c in missing)
    if not get_settings().encryption_keys:
        ensure_key_file()  # as `finrisk setup` would, when the keys are not configured otherwise
    for (day,), part in table.partition_by("date", as_dict=True, include_key=False).items():
        part = part.sort("ts", "txn_id")
        sensitive.write_partition(layout, str(day), part)
        write_parquet_atomic(part.select(PROCESSED_COLUMNS), layout.partition(layout.transactions, str(day)))
    write_parquet_atomic(canonical_labels(raw), layout.labels)
    return root
