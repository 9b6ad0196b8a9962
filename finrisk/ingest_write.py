"""Writing an ingest run's results: date partitions, quarantine files, the labels table.

Every file is written under a hidden temporary name in its final folder and renamed into place
(`finrisk.io.write_parquet_atomic`), so a reader globbing `*.parquet` sees a partition whole or
not at all. A run killed half-way leaves complete partitions plus hidden `.tmp` files; the next
run deletes the leftovers, counts the rows already published as duplicates and writes the rest,
which ends in the same state as a run that was never interrupted.
"""
from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl

from finrisk import sensitive
from finrisk.io import DataLayout, ExclusiveLock, write_parquet_atomic
from finrisk.schema import BUSINESS_TZ, LABEL_SCHEMA, PROCESSED_COLUMNS

WRITERS = 2  # partitions written in parallel (Polars' Parquet writer releases the GIL)
ZSTD_LEVEL = 1  # a third less CPU than the default level for files a few per cent larger


class RunLock(ExclusiveLock):
    """One ingest (or erasure) at a time per data directory."""

    def __init__(self, root: Path, error: type[Exception]):
        message = f"another ingest is running on {root}; try again when it has finished"
        super().__init__(Path(root) / ".ingest.lock", lambda: error(message))


def quarantine_root(layout: DataLayout, table: str) -> Path:
    return layout.root / "quarantine" / table


def sweep_leftovers(layout: DataLayout) -> int:
    """Delete what a killed run left behind: its staging folder and hidden temporary files."""
    removed = 0
    if layout.staging.exists():
        for child in layout.staging.iterdir():
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
                removed += 1
    for base in (layout.root / "processed", layout.root / "quarantine"):
        if base.exists():
            for tmp in base.rglob(".*.tmp"):
                tmp.unlink(missing_ok=True)
                removed += 1
    return removed


def business_date(ts: pl.Expr) -> pl.Expr:
    return ts.dt.convert_time_zone(BUSINESS_TZ).dt.date()


def _write_partition(layout: DataLayout, day: str, part: pl.DataFrame) -> int:
    """Write (or merge into) one date partition; returns how many rows it gained.

    A transaction already in the partition keeps its first version. The rows' sensitive fields
    go to the encrypted side table first (finrisk.sensitive), the rest to the partition.
    """
    target = layout.partition(layout.transactions, day)
    fresh = part.unique("txn_id", keep="first", maintain_order=True)
    before = 0
    if target.exists():
        existing = sensitive.read_partition(layout, day)
        before = existing.height
        fresh = fresh.filter(~pl.col("txn_id").is_in(existing.get_column("txn_id").implode()))
        rows = pl.concat([existing, fresh], how="diagonal_relaxed").sort("ts", "txn_id")
    else:
        rows = fresh if fresh.get_column("ts").is_sorted() else fresh.sort("ts", "txn_id")
    sensitive.write_partition(layout, day, rows)
    write_parquet_atomic(rows.select(PROCESSED_COLUMNS), target, compression_level=ZSTD_LEVEL)
    return rows.height - before


def publish_transactions(good: pl.DataFrame, layout: DataLayout) -> tuple[list[str], int]:
    """Merge rows into their business-date partitions; returns the dates written and the rows
    the partitions gained (counted on the files, so the run's accounting is checked, not assumed).

    Rows arrive mostly in date order (daily exports), so partitions are zero-copy slices of the
    batch; only out-of-order input pays for a sort.
    """
    if good.height == 0:
        return [], 0
    dates = good.select(business_date(pl.col("ts")).alias("d")).get_column("d")
    if not dates.is_sorted():
        order = dates.to_frame().select(pl.arg_sort_by("d", maintain_order=True)).to_series()
        good, dates = good[order], dates.gather(order)
    runs = dates.rle()
    slices, offset = [], 0
    for length, day in runs.struct.unnest().iter_rows():
        slices.append((day.isoformat(), good.slice(offset, length)))
        offset += length
    with ThreadPoolExecutor(WRITERS) as pool:
        gained = sum(pool.map(lambda item: _write_partition(layout, *item), slices))
    return [day for day, _ in slices], gained


def write_quarantine(bad: pl.DataFrame, root: Path, sources: list[str]) -> list[Path]:
    """One file per source file (a re-run replaces it); a source with no bad rows loses its old file."""
    written = []
    by_source = bad.partition_by("_source", as_dict=True) if bad.height else {}
    for name in sources:
        target = root / f"source={name}" / "part-0.parquet"
        part = by_source.get((name,))
        if part is None or part.height == 0:
            if target.exists():
                target.unlink()
            continue
        written.append(write_parquet_atomic(part, target))
    return written


def merge_labels(new: pl.DataFrame, layout: DataLayout) -> tuple[int, int]:
    """Add new labels to the labels table (first report of a transaction wins); returns the
    table's size before and after."""
    table = new.select(list(LABEL_SCHEMA))
    before = 0
    if layout.labels.exists():
        existing = pl.read_parquet(layout.labels)
        before = existing.height
        table = pl.concat([existing, table], how="diagonal_relaxed")
    table = table.unique("txn_id", keep="first", maintain_order=True).sort("txn_id")
    write_parquet_atomic(table.select(list(LABEL_SCHEMA)), layout.labels)
    return before, table.height
