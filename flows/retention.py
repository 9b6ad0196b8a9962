"""Retention flow: raw exports past the retention period are deleted once fully ingested."""
from __future__ import annotations

from pathlib import Path

from prefect import flow

from tasks.privacy import raw_retention_task


@flow(name="retention")
def retention(data_dir: Path, raw_dir: Path | None = None, days: int | None = None, dry_run: bool = False) -> dict:
    """Delete raw files written more than `days` days ago (default FINRISK_RAW_RETENTION_DAYS) whose
    rows are all in processed/ or quarantine/; report what was deleted and what was kept.

    raw_dir: the raw exports (default: DATA_DIR/raw); dry_run: only list what would go.
    """
    return raw_retention_task(data_dir, [raw_dir] if raw_dir else None, days, dry_run)
