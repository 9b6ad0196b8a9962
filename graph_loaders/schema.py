"""Uniqueness constraints (each backed by an index), created idempotently by both load paths."""
from __future__ import annotations

from neo4j import Driver

from graph_loaders.model import LOADED_DAY, NODES

# Constraint names are the key names (customer_id, merchant_id, device_id predate the other labels).
CONSTRAINTS = tuple(
    f"CREATE CONSTRAINT {node.key} IF NOT EXISTS FOR (n:{node.label}) REQUIRE n.{node.key} IS UNIQUE"
    for node in (*NODES, LOADED_DAY)
)
# No property indexes on relationships. Range indexes on PAID.last and TRANSFERRED.last ("money
# moved in the last week") cost the nightly upsert about a sixth of its time (every changed `last`
# is an index remove and insert), while such a query selects about 15 % of those relationships,
# where a scan is as good (0.3 s for TRANSFERRED, 1 s for PAID on the 10-million-transaction graph)
# and the queries we ship start from a customer anyway. Databases that have them lose them.
RETIRED_INDEXES = ("transferred_last", "paid_last")
SCHEMA = CONSTRAINTS + tuple(f"DROP INDEX {name} IF EXISTS" for name in RETIRED_INDEXES)


def ensure_schema(driver: Driver, database: str) -> None:
    for statement in SCHEMA:
        driver.execute_query(statement, database_=database)
    # CREATE CONSTRAINT returns before its index is populated; queries after a load should find it online.
    driver.execute_query("CALL db.awaitIndexes(300)", database_=database)

