"""Micro-batch scoring of the transactions that arrived since the last run (the `score_recent` flow).

Layout under <data_dir>/recent/:
  scores/date=D/batch-NNNNNN.parquet   every scored transaction, once (the ledger)
  alerts/date=D/batch-NNNNNN.parquet   the same batch's rows in the review or block band
  watermark.json                       per processed partition, the file state last scored; the
                                       consent and erasure files' state

The watermark says which partitions need a look (ingest replaces a partition file when rows
arrive); the ledger says which of their transactions were scored. A run scores the partition's
transactions missing from the ledger, writes them as one new batch file, then moves the watermark.
A crash before the batch file lands loses nothing (the rows are still missing from the ledger); a
crash after it re-reads the partition and finds nothing new, so no transaction is scored twice or
skipped. One run at a time per data directory (a file lock); a second one steps aside.
Customers excluded from fraud detection (finrisk.consent) are left out of every day; when consent
changes, every partition is looked at again, so a customer who grants consent again is scored.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import NamedTuple

import polars as pl

from features.twin import twin_dates, read_twin
from finrisk.consent import consent_inputs, honour_consent
from finrisk.io import DataLayout, ExclusiveLock, write_parquet_atomic
from finrisk.sensitive import with_sensitive
from service.consent_gate import PURPOSE
from service.scoring import TRANSACTION_FIELDS, online_scores

LEDGER_COLUMNS = (
    "txn_id", "customer_id", "ts", "amount_paise", "channel", "counterparty",
    "score", "anomaly_score", "decision", "reasons", "model_version",
)


class RunInProgress(RuntimeError):
    """Another score_recent run holds the lock on this data directory."""


@dataclass(frozen=True)
class RecentLayout:
    data_dir: Path

    @property
    def root(self) -> Path:
        return Path(self.data_dir) / "recent"

    @property
    def scores(self) -> Path:
        return self.root / "scores"

    @property
    def alerts(self) -> Path:
        return self.root / "alerts"

    @property
    def watermark(self) -> Path:
        return self.root / "watermark.json"

    def batches(self, base: Path, day: str) -> list[Path]:
        return sorted((base / f"date={day}").glob("batch-*.parquet"))


@dataclass
class RecentRun:
    scored: dict[str, int] = field(default_factory=dict)  # day -> transactions scored this run
    waiting: list[str] = field(default_factory=list)  # days with new rows but no twin yet
    not_processed: dict[str, int] = field(default_factory=dict)  # day -> new rows of customers not to be processed
    alerts: pl.DataFrame | None = None  # this run's alerts, highest score first
    model_version: int | None = None

    @property
    def total(self) -> int:
        return sum(self.scored.values())


def partition_states(layout: DataLayout) -> dict[str, list[int]]:
    """Per processed date partition: (inode, size, mtime_ns) of its file; ingest replaces the file
    when rows arrive, which changes all three."""
    states = {}
    for path in sorted(layout.transactions.glob("date=*/part-0.parquet")):
        st = path.stat()
        states[path.parent.name.removeprefix("date=")] = [st.st_ino, st.st_size, st.st_mtime_ns]
    return states


def read_watermark(recent: RecentLayout) -> dict:
    if not recent.watermark.exists():
        return {"partitions": {}}
    return json.loads(recent.watermark.read_text())


def _write_watermark(recent: RecentLayout, watermark: dict) -> None:
    tmp = recent.watermark.with_name(f".{recent.watermark.name}.tmp")
    tmp.write_text(json.dumps(watermark, indent=2))
    os.replace(tmp, recent.watermark)


def scored_ids(recent: RecentLayout, day: str) -> pl.Series:
    parts = recent.batches(recent.scores, day)
    if not parts:
        return pl.Series("txn_id", [], pl.String)
    return pl.scan_parquet(parts).select("txn_id").collect().to_series()


def alerts_of(scored: pl.DataFrame) -> pl.DataFrame:
    return scored.filter(pl.col("decision") != "allow").sort("score", "txn_id", descending=[True, False])


def repair_alerts(recent: RecentLayout, day: str) -> int:
    """Write the alerts of any batch whose alerts file a crash kept from landing."""
    repaired = 0
    for part in recent.batches(recent.scores, day):
        target = recent.alerts / f"date={day}" / part.name
        if not target.exists():
            write_parquet_atomic(alerts_of(pl.read_parquet(part)), target)
            repaired += 1
    return repaired


def _day_rows(layout: DataLayout, day: str) -> pl.DataFrame:
    path = layout.partition(layout.transactions, day)
    rows = with_sensitive(pl.scan_parquet(path, hive_partitioning=False), layout, [day])
    present = rows.collect_schema().names()
    return rows.select(c for c in TRANSACTION_FIELDS if c in present).collect()


class DayScores(NamedTuple):
    scored: pl.DataFrame  # the transactions scored now (LEDGER_COLUMNS + scored_at)
    not_processed: int  # new transactions of customers not to be processed (finrisk.consent)


def score_day(
    data_dir: Path, day: str, champion: tuple, review_threshold: float, block_threshold: float,
    labels: pl.DataFrame | None = None, consent_required: bool = False, key: bytes | None = None,
) -> DayScores:
    """Score the day's transactions not in the ledger yet. Customers whom `finrisk.consent` excludes
    from fraud detection (withdrawn, erased) are left out of the day entirely, as the batch path
    leaves them out: neither scored nor seen by anyone else's features."""
    layout, recent = DataLayout(Path(data_dir)), RecentLayout(Path(data_dir))
    repair_alerts(recent, day)
    every = _day_rows(layout, day)
    rows = honour_consent(every, layout, PURPOSE, consent_required, key)
    ledger = pl.DataFrame({"txn_id": scored_ids(recent, day)})
    new = rows.join(ledger, on="txn_id", how="anti")
    refused = every.join(ledger, on="txn_id", how="anti").height - new.height
    if new.height == 0:
        return DayScores(new, refused)
    twin = read_twin(Path(data_dir), date.fromisoformat(day))
    scored = online_scores(
        twin, rows, new.get_column("txn_id"), champion, review_threshold, block_threshold, labels
    ).select(*LEDGER_COLUMNS, pl.lit(datetime.now(timezone.utc)).dt.cast_time_unit("us").alias("scored_at"))
    name = f"batch-{len(recent.batches(recent.scores, day)) + 1:06d}.parquet"
    write_parquet_atomic(scored, recent.scores / f"date={day}" / name)  # the ledger entry: from here on, scored
    write_parquet_atomic(alerts_of(scored), recent.alerts / f"date={day}" / name)
    return DayScores(scored, refused)


def score_recent(
    data_dir: Path, champion: tuple, review_threshold: float, block_threshold: float,
    labels: pl.DataFrame | None = None, consent_required: bool = False, key: bytes | None = None,
) -> RecentRun:
    """Score what arrived since the last run, day by day; raises RunInProgress if a run is going on."""
    layout, recent = DataLayout(Path(data_dir)), RecentLayout(Path(data_dir))
    run = RecentRun(model_version=champion[1])
    busy = f"another score_recent run is working on {recent.data_dir}"
    with ExclusiveLock(recent.root / ".lock", lambda: RunInProgress(busy)):
        watermark = read_watermark(recent)
        seen = watermark.setdefault("partitions", {})
        # A consent change (a grant again) can make rows of an unchanged partition scorable: look at all.
        consent = [_file_state(p) for p in consent_inputs(layout)]
        if watermark.get("consent") != consent:
            seen.clear()
        served = {d.isoformat() for d in twin_dates(Path(data_dir))}
        found = []
        for day, state in partition_states(layout).items():  # state taken before reading: a later change is seen next run
            if seen.get(day) == state:
                continue
            if day not in served:
                run.waiting.append(day)
                continue
            scored, refused = score_day(
                data_dir, day, champion, review_threshold, block_threshold, labels, consent_required, key
            )
            run.scored[day] = scored.height
            if refused:
                run.not_processed[day] = refused
            if scored.height:
                found.append(alerts_of(scored))
            seen[day] = state
            watermark["updated_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            _write_watermark(recent, watermark)
        if watermark.get("consent") != consent:  # every partition was looked at under this consent state
            watermark["consent"] = consent
            _write_watermark(recent, watermark)
    run.alerts = pl.concat(found).sort("score", descending=True) if found else None
    return run


def _file_state(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return [st.st_ino, st.st_size, st.st_mtime_ns]
