"""Prefect task wrapping ingestion: source files in, an accounted-for report out."""
from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact, create_table_artifact

from finrisk.config import get_settings
from finrisk.ingest import IngestReport, ThresholdError, ingest
from finrisk.io import DataLayout
from finrisk.mapping import load_mapping


def _counts_artifact(report: IngestReport) -> None:
    rows = [
        ("rows in", report.rows_in), ("loaded", report.loaded), ("quarantined", report.quarantined),
        ("duplicates", report.duplicates), ("labels in", report.labels_in), ("labels loaded", report.labels_loaded),
        ("labels quarantined", report.labels_quarantined), ("labels duplicates", report.labels_duplicates),
        ("labels stored", report.labels_total),
    ]
    rows += [(f"quarantined: {reason}", n) for reason, n in report.quarantine_reasons.items()]
    rows += [(f"labels quarantined: {reason}", n) for reason, n in report.label_quarantine_reasons.items()]
    create_table_artifact(
        key="ingest-counts",
        table=[{"measure": name, "rows": value} for name, value in rows],
        description="Every row accounted for: in = loaded + quarantined + duplicates",
    )


@task(name="ingest-sources")
def ingest_sources(
    sources: list[Path], data_dir: Path, mapping_path: Path | None = None, labels: list[Path] | None = None,
    quarantine_threshold: float | None = None,
) -> dict:
    logger = get_run_logger()
    settings = get_settings()
    mapping = load_mapping(mapping_path)
    threshold = settings.quarantine_threshold if quarantine_threshold is None else quarantine_threshold
    logger.info("ingesting %s with mapping %r into %s", ", ".join(map(str, sources)), mapping.source, data_dir)
    try:
        report = ingest(
            [Path(s) for s in sources], mapping, DataLayout(Path(data_dir)), settings.require_pseudonym_key(),
            threshold, label_sources=[Path(p) for p in labels] if labels else None,
        )
    except ThresholdError as exc:
        _counts_artifact(exc.report)
        raise
    logger.info(report.summary())
    for reason, count in report.quarantine_reasons.items():
        logger.warning("quarantined %d row(s): %s", count, reason)
    logger.info("validation results (Data Docs): %s", report.data_docs)
    _counts_artifact(report)
    if report.data_docs:
        create_link_artifact(key="ingest-data-docs", link=Path(report.data_docs).as_uri(),
                             description="Great Expectations Data Docs for this run")
    return report.as_dict()
