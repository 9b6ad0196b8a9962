"""Prefect tasks: load the customer graph into Neo4j, and write graph features for the models."""
from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact

from finrisk.config import get_settings
from graph_loaders.bulk_import import bulk_load
from graph_loaders.graph_features import write_graph_features
from graph_loaders.incremental import BATCH_ROWS, upsert_days
from graph_loaders.neo4j_load import connect, graph_counts

# A Neo4j restart takes ~30 s; the driver itself retries a transaction for DRIVER_RETRY_SECONDS,
# then the task retries the whole (idempotent) load with growing pauses.
DRIVER_RETRY_SECONDS = 30.0


@task(name="load-graph", retries=3, retry_delay_seconds=[10, 30, 90])
def load_graph(data_dir: Path, full: bool = False, days: list[str] | None = None, batch_rows: int = BATCH_ROWS,
               driver_retry_seconds: float = DRIVER_RETRY_SECONDS) -> dict:
    """Incremental upsert of the days not loaded yet (or the given days); with full, a bulk import."""
    logger = get_run_logger()
    settings = get_settings()
    loaded: dict = {}
    if full:
        report = bulk_load(settings, Path(data_dir))
        loaded = {"mode": "bulk", **report.as_dict()}
        logger.info("bulk import: %d nodes, %d relationships in %.1f s (neo4j-admin)", report.nodes,
                    report.relationships, report.import_seconds)
    driver = connect(settings.neo4j_uri, settings.neo4j_user, settings.require_neo4j_password(),
                     max_transaction_retry_time=driver_retry_seconds, notifications_min_severity="OFF")
    try:
        if not full:
            report = upsert_days(driver, settings.neo4j_database, Path(data_dir), days, batch_rows=batch_rows)
            loaded = {"mode": "incremental", **report.as_dict()}
            logger.info("upserted %d day(s): %d nodes, %d relationships", len(report.days), report.nodes,
                        report.relationships)
        counts = graph_counts(driver, settings.neo4j_database)
    finally:
        driver.close()
    create_table_artifact(
        key="graph-counts",
        table=[{"what": name, "count": value} for name, value in counts.items()],
        description=f"Neo4j graph after the {loaded['mode']} load",
    )
    logger.info("graph now %s", counts)
    return {**counts, "load": loaded}


@task(name="graph-features")
def build_graph_features(data_dir: Path, day: str) -> dict:
    """Graph features of every customer as of `day` (edges before it, labels reported before it)."""
    path = write_graph_features(Path(data_dir), day)
    get_run_logger().info("graph features as of %s written to %s", day, path)
    return {"day": day, "path": str(path)}
