"""Retention of raw exports (DPDP Act 2023, s. 8(7)): raw files go once they are older than the
retention period (FINRISK_RAW_RETENTION_DAYS) and everything in them has been ingested.

A file's age is the time it was last written (its arrival). A transaction export is deleted
only when every one of its transaction ids is in processed/ or quarantine/, so retention never
loses a row that was not yet ingested; such a file is kept and reported. Files that are not
transaction exports (labels, customer master files) go by age alone.
"""
from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl

from finrisk.erasure_subject import raw_files, transaction_files
from finrisk.ingest_read import IngestError, file_format, read_source
from finrisk.io import DataLayout, has_parquet, parquet_glob
from finrisk.mapping import Mapping


@dataclass
class RetentionReport:
    cutoff: str
    days: int
    dry_run: bool
    deleted: list[str] = field(default_factory=list)
    bytes_deleted: int = 0
    kept_not_ingested: list[str] = field(default_factory=list)  # old, but rows not in processed/quarantine
    kept_recent: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def _ingested_ids(layout: DataLayout) -> pl.DataFrame:
    frames = []
    if has_parquet(layout.transactions):
        frames.append(pl.scan_parquet(parquet_glob(layout.transactions), hive_partitioning=False).select("txn_id"))
    quarantine = layout.root / "quarantine" / "transactions"
    if has_parquet(quarantine):
        frames.append(pl.scan_parquet(parquet_glob(quarantine), hive_partitioning=False).select("txn_id"))
    if not frames:
        return pl.DataFrame(schema={"txn_id": pl.String})
    return pl.concat(frames).unique().collect()


def _all_ingested(path: Path, mapping: Mapping, known: pl.DataFrame, workdir: Path) -> bool:
    column = mapping.columns["txn_id"]
    try:
        ids = read_source(path, file_format(path, mapping.format), mapping.csv, [column], workdir)
    except IngestError:
        return False
    ids = ids.select(pl.col(column).cast(pl.String).str.strip_chars().alias("txn_id")).drop_nulls()
    return ids.join(known, on="txn_id", how="anti").height == 0


def apply_retention(layout: DataLayout, raw_dirs: list[Path], days: int, mapping: Mapping, dry_run: bool = False,
                    now: datetime | None = None) -> RetentionReport:
    """Delete (or with dry_run only list) the raw files past the retention period."""
    if days < 0:
        raise ValueError(f"the retention period must be 0 days or more, not {days}")
    cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=days)
    report = RetentionReport(cutoff=cutoff.isoformat(timespec="seconds"), days=days, dry_run=dry_run)
    known: pl.DataFrame | None = None  # read once, on the first old export
    with tempfile.TemporaryDirectory(prefix="finrisk-retention-") as workdir:  # transcoded copies die with it
        for raw in raw_dirs:
            exports = transaction_files(raw, mapping)
            for path in raw_files(raw):
                stat = path.stat()
                if datetime.fromtimestamp(stat.st_mtime, timezone.utc) >= cutoff:
                    report.kept_recent += 1
                    continue
                if path.resolve() in exports:
                    known = _ingested_ids(layout) if known is None else known
                    if not _all_ingested(path, mapping, known, Path(workdir)):
                        report.kept_not_ingested.append(str(path))
                        continue
                if not dry_run:
                    path.unlink()
                report.deleted.append(str(path))
                report.bytes_deleted += stat.st_size
    return report
