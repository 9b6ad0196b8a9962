"""The sensitive side table: ip, latitude and longitude of each transaction, encrypted at rest.

processed/sensitive/date=D/part-0.parquet holds txn_id plus the SENSITIVE_FIELDS of the rows of
processed/transactions/date=D that have any of them, written with Parquet modular encryption
(finrisk.encryption). Readers that need those fields (the location features, the twin) join it
on txn_id through `with_sensitive`; every other reader sees only the processed table and needs
no key. It is written before its transactions partition, so a run killed in between leaves rows
the next run's merge finds already there, never transactions whose coordinates were lost.
"""
from __future__ import annotations

from pathlib import Path

import polars as pl

from finrisk.encryption import current_key_id, footer_master_key, read_encrypted, write_encrypted
from finrisk.io import DataLayout, write_parquet_atomic
from finrisk.schema import PROCESSED_COLUMNS, SENSITIVE_FIELDS, TRANSACTION_SCHEMA

SIDE_SCHEMA = {"txn_id": pl.String, **{c: TRANSACTION_SCHEMA[c] for c in SENSITIVE_FIELDS}}


def sensitive_root(layout: DataLayout) -> Path:
    return layout.root / "processed" / "sensitive"


def side_rows(rows: pl.DataFrame) -> pl.DataFrame:
    """txn_id and the sensitive fields of the rows that have any of them."""
    present = [c for c in SENSITIVE_FIELDS if c in rows.columns]
    side = rows.select("txn_id", *present)
    if present:
        side = side.filter(pl.any_horizontal(pl.col(c).is_not_null() for c in present))
    else:
        side = side.clear()
    return side.with_columns(pl.lit(None, SIDE_SCHEMA[c]).alias(c) for c in SENSITIVE_FIELDS if c not in present).select(
        [pl.col(c).cast(t) for c, t in SIDE_SCHEMA.items()]
    )


def write_partition(layout: DataLayout, day: str, fresh: pl.DataFrame) -> int:
    """Merge the sensitive fields of rows new to partition `day` into its side file; rows
    already there keep their values (first write wins, as in the transactions partition)."""
    side = side_rows(fresh)
    if side.height == 0:
        return 0
    target = layout.partition(sensitive_root(layout), day)
    if target.exists():
        side = pl.concat([read_encrypted(target), side]).unique("txn_id", keep="first", maintain_order=True)
    write_encrypted(side.sort("txn_id"), target, list(SENSITIVE_FIELDS))
    return side.height


def read_side(layout: DataLayout, days: list[str] | None = None) -> pl.DataFrame | None:
    """The decrypted side table (of `days`, or all), None when there is none."""
    root = sensitive_root(layout)
    if days is None:
        files = sorted(root.glob("date=*/part-0.parquet")) if root.is_dir() else []
    else:
        files = [p for p in (layout.partition(root, d) for d in days) if p.exists()]
    if not files:
        return None
    return pl.concat([read_encrypted(p) for p in files])


def with_sensitive(tx: pl.LazyFrame, layout: DataLayout, days: list[str] | None = None) -> pl.LazyFrame:
    """The transactions with their sensitive fields joined back (null where a row has none)."""
    present = tx.collect_schema().names()
    side = read_side(layout, days)
    if side is None:
        return tx.with_columns(pl.lit(None, SIDE_SCHEMA[c]).alias(c) for c in SENSITIVE_FIELDS if c not in present)
    side = side.select("txn_id", *(c for c in SENSITIVE_FIELDS if c not in present))
    return tx.join(side.lazy(), on="txn_id", how="left", maintain_order="left")


def side_files(layout: DataLayout) -> list[Path]:
    root = sensitive_root(layout)
    return sorted(root.glob("date=*/part-0.parquet")) if root.is_dir() else []


def plaintext_partitions(layout: DataLayout) -> list[Path]:
    """Transactions partitions that still hold sensitive columns in the clear (written before
    the side table existed)."""
    parts = sorted(layout.transactions.glob("date=*/part-0.parquet")) if layout.transactions.is_dir() else []
    return [p for p in parts if set(SENSITIVE_FIELDS) & set(pl.read_parquet_schema(p))]


def key_usage(layout: DataLayout) -> dict[str, int]:
    """{master key id: side files whose keys it wraps}."""
    usage: dict[str, int] = {}
    for path in side_files(layout):
        key = footer_master_key(path) or "unknown"
        usage[key] = usage.get(key, 0) + 1
    return usage


def reencrypt(layout: DataLayout, on_step=None) -> dict:
    """Move sensitive columns still in the clear into the side table, and rewrite every side
    file not yet under the current master key. Each file is replaced atomically and a file
    already done is skipped, so an interrupted run is finished by running it again."""
    current = current_key_id()
    plain = plaintext_partitions(layout)
    pending = [p for p in side_files(layout) if footer_master_key(p) != current]
    total, done = len(plain) + len(pending), 0
    for part in plain:
        rows = pl.read_parquet(part, hive_partitioning=False)
        write_partition(layout, part.parent.name.removeprefix("date="), rows)
        write_parquet_atomic(rows.select(c for c in PROCESSED_COLUMNS if c in rows.columns), part)
        done += 1
        if on_step:
            on_step(done, total)
    # partitions split above were written under the current key already
    for path in (p for p in pending if footer_master_key(p) != current):
        write_encrypted(read_encrypted(path), path, list(SENSITIVE_FIELDS))
        done += 1
        if on_step:
            on_step(done, total)
    return {"master_key": current, "partitions_split": len(plain), "files_reencrypted": len(pending)}
