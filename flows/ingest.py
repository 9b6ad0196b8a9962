"""Ingest sub-flow: raw files -> validated, pseudonymised, Hive-partitioned Parquet."""
from __future__ import annotations

from pathlib import Path

from prefect import flow

from tasks.ingest import ingest_sources


@flow(name="ingest", log_prints=True)
def ingest_flow(
    source: list[Path] | Path,
    data_dir: Path,
    mapping: Path | None = None,
    labels: list[Path] | None = None,
    quarantine_threshold: float | None = None,
) -> dict:
    """Map, validate and pseudonymise CSV / Parquet / JSON Lines files or folders; bad rows go to
    quarantine, good rows to processed/, labels to processed/labels/.

    source: files or folders; mapping: the mapping YAML (default: the generator's);
    labels: label files or folders (default: the mapping's labels path under each source folder);
    quarantine_threshold: largest share of bad rows that still loads the good ones (default: setting).
    """
    sources = [source] if isinstance(source, (str, Path)) else list(source)
    return ingest_sources(sources, data_dir, mapping, labels, quarantine_threshold)
