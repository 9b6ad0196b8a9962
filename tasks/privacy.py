"""Prefect tasks for the data-protection duties: erasure, raw-data retention, key rotation.

The customer id reaches these tasks as a SecretStr: Prefect stores and shows it masked, so neither
the run history nor the logs hold the id of a customer who asked to be erased.
"""
from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from pydantic import SecretStr

from finrisk.config import get_settings


def _mlflow_paths(settings) -> list[Path]:
    """The local MLflow store (backend database and artifacts) when the embedded default is used."""
    return [] if settings.mlflow_tracking_uri else [settings.mlruns_dir]


@task(name="erase-customer")
def erase_customer_task(customer_id: SecretStr, data_dir: Path, raw_dirs: list[Path] | None = None,
                        graph: bool = True) -> dict:
    from finrisk.erasure import erase_customer

    logger = get_run_logger()
    settings = get_settings()
    driver = None
    if graph:
        from graph_loaders.neo4j_load import connect

        driver = connect(settings.neo4j_uri, settings.neo4j_user, settings.require_neo4j_password(),
                         notifications_min_severity="OFF")
    try:
        certificate = erase_customer(
            Path(data_dir), customer_id.get_secret_value(), settings.require_pseudonym_key(),
            raw_dirs=raw_dirs, driver=driver, database=settings.neo4j_database,
            mlflow_paths=_mlflow_paths(settings), audit_log=settings.audit_log, progress=logger.info,
        )
    finally:
        if driver is not None:
            driver.close()
    logger.info("erasure %s complete: certificate %s", certificate.subject_ref, certificate.json_path)
    create_markdown_artifact(
        key="erasure-certificate",
        markdown=f"```\n{certificate.text()}```",
        description=f"Erasure certificate {certificate.certificate_id}",
    )
    return {**certificate.as_dict(), "json_path": certificate.json_path, "text_path": certificate.text_path}


@task(name="raw-retention")
def raw_retention_task(data_dir: Path, raw_dirs: list[Path] | None = None, days: int | None = None,
                       dry_run: bool = False) -> dict:
    from finrisk.audit import record
    from finrisk.io import DataLayout
    from finrisk.mapping import load_mapping
    from finrisk.retention import apply_retention

    logger = get_run_logger()
    settings = get_settings()
    layout = DataLayout(Path(data_dir))
    days = settings.raw_retention_days if days is None else days
    report = apply_retention(layout, [Path(p) for p in raw_dirs] if raw_dirs else [layout.raw], days,
                             load_mapping(None), dry_run)
    verb = "would delete" if dry_run else "deleted"
    logger.info("raw retention %d days (before %s): %s %d file(s), %d bytes; %d old file(s) kept, not fully "
                "ingested", days, report.cutoff, verb, len(report.deleted), report.bytes_deleted,
                len(report.kept_not_ingested))
    if not dry_run:
        record(settings.audit_log, "raw_retention", str(layout.raw), {
            "days": days, "files_deleted": len(report.deleted), "bytes_deleted": report.bytes_deleted,
            "kept_not_ingested": len(report.kept_not_ingested)})
    create_markdown_artifact(
        key="raw-retention",
        markdown="\n".join([f"## Raw retention: {days} days (files written before {report.cutoff})", "",
                            f"{verb}: {len(report.deleted)} file(s), {report.bytes_deleted:,} bytes", "",
                            *(f"- {p}" for p in report.deleted[:200]),
                            "", f"kept, not fully ingested: {len(report.kept_not_ingested)}",
                            *(f"- {p}" for p in report.kept_not_ingested[:200])]),
        description="Raw files past the retention period",
    )
    return report.as_dict()


@task(name="rotate-keys")
def rotate_keys_task(data_dir: Path, graph: bool = True) -> dict:
    """Rotate the pseudonymisation key of one dataset (or finish a rotation that was killed)."""
    from finrisk.config import reset_settings
    from finrisk.rotation import rotate_keys
    from finrisk.rotation_chain import chain_store

    logger = get_run_logger()
    settings = get_settings()
    store = chain_store(settings)
    driver = None
    if graph:
        from graph_loaders.neo4j_load import connect

        driver = connect(settings.neo4j_uri, settings.neo4j_user, settings.require_neo4j_password(),
                         notifications_min_severity="OFF")
    try:
        report = rotate_keys(
            Path(data_dir), settings.require_pseudonym_key(), store, driver=driver, database=settings.neo4j_database,
            mlflow_paths=_mlflow_paths(settings), audit_log=settings.audit_log, step=logger.info,
        )
    finally:
        if driver is not None:
            driver.close()
        reset_settings()  # the chain changed: whatever runs next in this process reads the new one
    logger.info("key rotation %s complete: %d file(s), %d value(s) rewritten; chain of %d key(s) stored in %s",
                report.rotation_id, report.files_rewritten, report.values_rewritten, report.keys, report.chain_stored_in)
    create_markdown_artifact(
        key="key-rotation",
        markdown="\n".join([
            f"## Key rotation {report.rotation_id}", "",
            f"fingerprint {report.fingerprint_before} -> {report.fingerprint_after}, chain of {report.keys} key(s) "
            f"in {report.chain_stored_in}", "",
            "| store | files rewritten | values rewritten |", "| --- | ---: | ---: |",
            *(f"| {s['store']} | {s['files']:,} | {s['values']:,} |" for s in report.stores),
            "", f"Neo4j nodes re-keyed: {report.graph_nodes_rekeyed}", "", *(f"- {n}" for n in report.notes),
        ]),
        description="Pseudonymisation key rotation",
    )
    return report.as_dict()
