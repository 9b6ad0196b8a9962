"""Ingest sub-flow: raw files -> validated, pseudonymised, Hive-partitioned Parquet."""
from __future__ import annotations

from pathlib import Path

from prefect import flow

from tasks.ingest import ingest_source


@flow(name="ingest", log_prints=True)
def ingest_flow(source: Path, data_dir: Path, mapping: Path | None = None) -> dict:
    """Map, pseudonymise and validate raw files; bad rows to quarantine, good rows to processed/."""
    return ingest_source(source, data_dir, mapping)
