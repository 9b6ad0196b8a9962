"""Prefect task: MERGE the customer graph into Neo4j (retried on a lost connection)."""
from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task

from finrisk.config import get_settings
from finrisk.io import DataLayout, scan_partitioned
from graph_loaders.neo4j_load import connect, graph_counts, load_customer_graph


@task(name="load-graph", retries=3, retry_delay_seconds=10)
def load_graph(data_dir: Path) -> dict:
    logger = get_run_logger()
    settings = get_settings()
    driver = connect(settings.neo4j_uri, settings.neo4j_user, settings.require_neo4j_password())
    try:
        report = load_customer_graph(
            driver, settings.neo4j_database, scan_partitioned(DataLayout(Path(data_dir)).transactions)
        )
        counts = graph_counts(driver, settings.neo4j_database)
    finally:
        driver.close()
    logger.info("merged %d PAID and %d USES relationships; graph now %s", report.paid_edges, report.uses_edges, counts)
    return counts
