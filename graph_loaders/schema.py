"""Uniqueness constraints and indexes, created idempotently by both load paths."""
from __future__ import annotations

from neo4j import Driver

from graph_loaders.model import LOADED_DAY, NODES

# Constraint names are the key names (customer_id, merchant_id, device_id predate the other labels).
CONSTRAINTS = tuple(
    f"CREATE CONSTRAINT {node.key} IF NOT EXISTS FOR (n:{node.label}) REQUIRE n.{node.key} IS UNIQUE"
    for node in (*NODES, LOADED_DAY)
)
# Analysts ask for recent money movement ("transfers in the last week"), so the time of the last
# transfer and payment are indexed.
INDEXES = (
    "CREATE INDEX transferred_last IF NOT EXISTS FOR ()-[r:TRANSFERRED]-() ON (r.last)",
    "CREATE INDEX paid_last IF NOT EXISTS FOR ()-[r:PAID]-() ON (r.last)",
)
SCHEMA = CONSTRAINTS + INDEXES


def ensure_schema(driver: Driver, database: str) -> None:
    for statement in SCHEMA:
        driver.execute_query(statement, database_=database)
    # CREATE INDEX returns before the index is populated; queries after a load should find it online.
    driver.execute_query("CALL db.awaitIndexes(300)", database_=database)

