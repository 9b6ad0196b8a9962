"""Prefect tasks: the point-in-time feature table and the daily Customer Financial Twin."""
from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import polars as pl
from prefect import get_run_logger, task

from features.inputs import FEATURE_FIELDS
from features.store import all_null_features, feature_table, write_feature_table
from features.transactions import transaction_features
from features.twin import build_twin, write_twin
from finrisk.config import get_settings
from finrisk.io import DataLayout, has_parquet, scan_partitioned


def _processed(layout: DataLayout) -> pl.LazyFrame:
    """The processed transactions, only the columns features read (not the pseudonymised PII)."""
    if not has_parquet(layout.transactions):
        raise FileNotFoundError(f"no processed transactions under {layout.transactions}; run ingest first")
    tx = scan_partitioned(layout.transactions)
    present = tx.collect_schema().names()
    return tx.select(c for c in (*FEATURE_FIELDS, "date") if c in present)


def _labels(layout: DataLayout) -> pl.DataFrame | None:
    return pl.read_parquet(layout.labels) if layout.labels.exists() else None


def _delay(label_delay_days: float | None) -> float:
    return get_settings().label_delay_days if label_delay_days is None else label_delay_days


@task(name="build-features")
def build_features(data_dir: Path, label_delay_days: float | None = None) -> dict:
    """Recompute every feature for every processed transaction; one Parquet file per business date."""
    logger = get_run_logger()
    layout = DataLayout(Path(data_dir))
    delay = _delay(label_delay_days)
    table = feature_table(transaction_features(_processed(layout), _labels(layout), delay))
    dates = write_feature_table(table, layout.features)
    missing = all_null_features(table)
    logger.info("features for %d transactions over %d days (label delay %s d)", table.height, len(dates), delay)
    if missing:
        logger.info("no data for %d feature(s), left null: %s", len(missing), ", ".join(missing))
    return {
        "rows": table.height, "first_date": dates[0] if dates else None, "last_date": dates[-1] if dates else None,
        "features": len(table.columns), "null_features": missing, "label_delay_days": delay,
    }


@task(name="build-twin")
def build_customer_twin(data_dir: Path, as_of: date | None = None, label_delay_days: float | None = None) -> dict:
    """The twin as of `as_of` (default: the day after the last processed date), written as a snapshot."""
    logger = get_run_logger()
    layout = DataLayout(Path(data_dir))
    tx = _processed(layout)
    if as_of is None:
        last = tx.select(pl.col("date").max()).collect().item()
        as_of = date.fromisoformat(str(last)) + timedelta(days=1)
    twin = build_twin(tx, as_of, _labels(layout), _delay(label_delay_days))
    path = write_twin(twin, Path(data_dir))
    logger.info("twin as of %s: %d customers from %d transactions -> %s", as_of, twin.profiles.height,
                twin.meta["history_rows"], path)
    return {"as_of": as_of.isoformat(), "customers": twin.profiles.height, "path": str(path)}


def read_features(data_dir: Path) -> pl.DataFrame:
    return scan_partitioned(DataLayout(Path(data_dir)).features).collect()
