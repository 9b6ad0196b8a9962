"""The feature table on disk: <data_dir>/features/transactions/date=YYYY-MM-DD/part-0.parquet.

Each row carries the transaction's keys and a few descriptive columns (joinable to the processed
table by txn_id) and one column per catalogue feature.
"""
from __future__ import annotations

from pathlib import Path

import polars as pl

from features.catalogue import CATALOGUE
from finrisk.io import write_parquet_atomic

KEY_COLUMNS = ("txn_id", "ts", "date", "customer_id", "counterparty", "channel", "direction", "amount_paise")


def feature_table(features: pl.DataFrame) -> pl.DataFrame:
    """Keys, then features, with `date` as text (the partition value)."""
    keys = [c for c in KEY_COLUMNS if c in features.columns]
    return features.select(*keys, *(f.name for f in CATALOGUE)).with_columns(pl.col("date").cast(pl.String))


def write_feature_table(table: pl.DataFrame, base: Path) -> list[str]:
    """One file per business date, each replaced atomically; returns the dates written."""
    written = []
    for (day,), part in table.partition_by("date", as_dict=True, include_key=False, maintain_order=True).items():
        write_parquet_atomic(part, Path(base) / f"date={day}" / "part-0.parquet")
        written.append(day)
    return sorted(written)


def all_null_features(table: pl.DataFrame) -> list[str]:
    """Features with no value at all (their fields are missing from the data)."""
    if table.height == 0:
        return [f.name for f in CATALOGUE]
    counts = table.select(pl.col(f.name).null_count() for f in CATALOGUE).row(0)
    return [f.name for f, nulls in zip(CATALOGUE, counts) if nulls == table.height]
