"""Prefect task: compute the feature table from processed transactions."""
from __future__ import annotations

from pathlib import Path

import polars as pl
from prefect import get_run_logger, task

from features.transactions import customer_velocity_features
from finrisk.io import DataLayout, has_parquet, scan_partitioned, write_parquet_atomic


@task(name="build-features")
def build_features(data_dir: Path) -> dict:
    logger = get_run_logger()
    layout = DataLayout(Path(data_dir))
    if not has_parquet(layout.transactions):
        raise FileNotFoundError(f"no processed transactions under {layout.transactions}; run ingest first")
    features = customer_velocity_features(scan_partitioned(layout.transactions)).collect()
    dates = sorted(features.get_column("date").unique().to_list())
    for (day,), part in features.partition_by("date", as_dict=True, include_key=False).items():
        write_parquet_atomic(part.sort("ts", "txn_id"), layout.partition(layout.features, day))
    logger.info("features for %d transactions over %d days", features.height, len(dates))
    return {"rows": features.height, "first_date": dates[0], "last_date": dates[-1]}


def read_features(data_dir: Path) -> pl.DataFrame:
    return scan_partitioned(DataLayout(Path(data_dir)).features).collect()
