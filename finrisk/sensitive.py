"""The sensitive side table: ip, latitude and longitude of each transaction, encrypted at rest.

processed/sensitive/date=D/part-0.parquet holds txn_id plus the SENSITIVE_FIELDS of every row of
processed/transactions/date=D, in the same order, written with Parquet modular encryption
(finrisk.encryption); a partition with none of those fields has no side file. Readers that need
them (the location features, the twin, score-recent) get them back through `with_sensitive`;
every other reader sees only the processed table and needs no key.

Row-aligned rather than only keyed, because putting two aligned columns side by side costs
nothing while joining ten million rows on txn_id costs seconds. `with_sensitive` checks the
alignment (same txn_ids in the same order) and joins on txn_id when it does not hold, e.g. after
a run was killed between writing a side file and its partition; the next write aligns them again.
"""
from __future__ import annotations

from pathlib import Path

import polars as pl

from finrisk.encryption import current_key_id, footer_master_key, read_encrypted, write_encrypted
from finrisk.io import DataLayout, write_parquet_atomic
from finrisk.sealing import has_clear_fields, key_master, rewrap, seal_file
from finrisk.schema import PROCESSED_COLUMNS, SENSITIVE_FIELDS, TRANSACTION_SCHEMA


def sensitive_root(layout: DataLayout) -> Path:
    return layout.root / "processed" / "sensitive"


def write_partition(layout: DataLayout, day: str, rows: pl.DataFrame) -> bool:
    """The side file of partition `day`, from all of the partition's rows in their stored order
    (written before the partition itself); returns whether there is one."""
    target = layout.partition(sensitive_root(layout), day)
    present = [c for c in SENSITIVE_FIELDS if c in rows.columns]
    has_values = present and rows.select(pl.any_horizontal(pl.col(c).is_not_null().any() for c in present)).item()
    if not has_values:
        target.unlink(missing_ok=True)
        return False
    side = rows.select(
        "txn_id", *(pl.col(c).cast(TRANSACTION_SCHEMA[c]) if c in present else pl.lit(None, TRANSACTION_SCHEMA[c]).alias(c)
                    for c in SENSITIVE_FIELDS)
    )
    write_encrypted(side, target, list(SENSITIVE_FIELDS))
    return True


def read_side(layout: DataLayout, days: list[str] | None = None,
              fields: tuple[str, ...] = SENSITIVE_FIELDS) -> pl.DataFrame | None:
    """The decrypted side files (of `days`, or all) in date order, None when there are none."""
    root = sensitive_root(layout)
    if days is None:
        files = sorted(root.glob("date=*/part-0.parquet")) if root.is_dir() else []
    else:
        files = [p for p in (layout.partition(root, d) for d in sorted(days)) if p.exists()]
    if not files:
        return None
    return pl.concat([read_encrypted(p, columns=["txn_id", *fields]) for p in files])


def with_sensitive(tx: pl.LazyFrame, layout: DataLayout, days: list[str] | None = None,
                   fields: tuple[str, ...] = SENSITIVE_FIELDS) -> pl.LazyFrame:
    """The transactions (partitions of `days` or all, in date order, as read) with their
    sensitive `fields` back, null where a row has none."""
    present = tx.collect_schema().names()
    wanted = tuple(c for c in fields if c not in present)
    if not wanted:
        return tx
    side = read_side(layout, days, wanted)
    if side is None:
        return tx.with_columns(pl.lit(None, TRANSACTION_SCHEMA[c]).alias(c) for c in wanted)
    rows = tx.collect()
    if rows.height == side.height and rows.get_column("txn_id").equals(side.get_column("txn_id")):
        # one chunk per column, so later steps need not copy the frame again to align chunks
        return rows.hstack(side.drop("txn_id")).rechunk().lazy()
    return rows.lazy().join(side.lazy(), on="txn_id", how="left", maintain_order="left")


def read_partition(layout: DataLayout, day: str) -> pl.DataFrame:
    """Every column of one stored partition, its sensitive fields decrypted."""
    part = pl.scan_parquet(layout.partition(layout.transactions, day), hive_partitioning=False)
    return with_sensitive(part, layout, [day]).collect()


def side_files(layout: DataLayout) -> list[Path]:
    root = sensitive_root(layout)
    return sorted(root.glob("date=*/part-0.parquet")) if root.is_dir() else []


def plaintext_partitions(layout: DataLayout) -> list[Path]:
    """Transactions partitions that still hold sensitive columns in the clear (written before
    the side table existed)."""
    parts = sorted(layout.transactions.glob("date=*/part-0.parquet")) if layout.transactions.is_dir() else []
    return [p for p in parts if set(SENSITIVE_FIELDS) & set(pl.read_parquet_schema(p))]


def journal_files(layout: DataLayout) -> list[Path]:
    """The scoring service's day journals, whose lines carry these fields sealed (finrisk.sealing)."""
    folder = layout.root / "online" / "journal"
    return sorted(folder.glob("*.jsonl")) if folder.is_dir() else []


def plaintext_journals(layout: DataLayout) -> list[Path]:
    return [p for p in journal_files(layout) if has_clear_fields(p)]


def key_usage(layout: DataLayout) -> dict[str, int]:
    """{master key id: side files and journals whose keys it wraps}."""
    usage: dict[str, int] = {}
    keys = [footer_master_key(p) or "unknown" for p in side_files(layout)]
    keys += [key for p in journal_files(layout) if (key := key_master(p)) is not None]
    for key in keys:
        usage[key] = usage.get(key, 0) + 1
    return usage


def reencrypt(layout: DataLayout, on_step=None) -> dict:
    """Move sensitive columns still in the clear into the side table, and rewrite every side
    file not yet under the current master key. Each file is replaced atomically and a file
    already done is skipped, so an interrupted run is finished by running it again."""
    current = current_key_id()
    plain = plaintext_partitions(layout)
    pending = [p for p in side_files(layout) if footer_master_key(p) != current]
    journals = journal_files(layout)
    total, done = len(plain) + len(pending) + len(journals), 0
    for part in plain:
        rows = pl.read_parquet(part, hive_partitioning=False)  # the clear columns win over any side file
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
    journals_sealed = journals_rewrapped = 0
    for path in journals:
        journals_rewrapped += rewrap(path)  # the data key only: the lines stay as they are
        if has_clear_fields(path):
            seal_file(path)
            journals_sealed += 1
        done += 1
        if on_step:
            on_step(done, total)
    return {"master_key": current, "partitions_split": len(plain), "files_reencrypted": len(pending),
            "journals_rewrapped": journals_rewrapped, "journals_sealed": journals_sealed}
