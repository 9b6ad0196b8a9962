"""Customers, merchants and devices with PAID / USES relationships, MERGEd into Neo4j in batches.

Aggregates are computed in Polars from processed transactions and SET (not added) on the
relationships, so loading the same history twice leaves the graph unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import polars as pl
from neo4j import Driver, GraphDatabase

BATCH_ROWS = 10_000

SCHEMA = (
    "CREATE CONSTRAINT customer_id IF NOT EXISTS FOR (c:Customer) REQUIRE c.customer_id IS UNIQUE",
    "CREATE CONSTRAINT merchant_id IF NOT EXISTS FOR (m:Merchant) REQUIRE m.merchant_id IS UNIQUE",
    "CREATE CONSTRAINT device_id IF NOT EXISTS FOR (d:Device) REQUIRE d.device_id IS UNIQUE",
)

MERGE_PAID = """
UNWIND $rows AS row
MERGE (c:Customer {customer_id: row.customer_id})
MERGE (m:Merchant {merchant_id: row.merchant_id})
  ON CREATE SET m.mcc = row.mcc
MERGE (c)-[p:PAID]->(m)
SET p.count = row.count, p.total_paise = row.total_paise, p.first = row.first, p.last = row.last
"""

MERGE_USES = """
UNWIND $rows AS row
MERGE (c:Customer {customer_id: row.customer_id})
MERGE (d:Device {device_id: row.device_id})
MERGE (c)-[u:USES]->(d)
SET u.count = row.count, u.first_seen = row.first, u.last_seen = row.last
"""


def connect(uri: str, user: str, password: str) -> Driver:
    driver = GraphDatabase.driver(uri, auth=(user, password))
    driver.verify_connectivity()
    return driver


def ensure_schema(driver: Driver, database: str) -> None:
    for statement in SCHEMA:
        driver.execute_query(statement, database_=database)


def customer_merchant_edges(tx: pl.LazyFrame) -> pl.DataFrame:
    return (
        tx.filter((pl.col("counterparty_type") == "MERCHANT") & (pl.col("direction") == "DEBIT"))
        .group_by("customer_id", pl.col("counterparty").alias("merchant_id"))
        .agg(
            pl.len().alias("count"),
            pl.col("amount_paise").sum().alias("total_paise"),
            pl.col("ts").min().alias("first"),
            pl.col("ts").max().alias("last"),
            pl.col("mcc").first().alias("mcc"),
        )
        .sort("customer_id", "merchant_id")
        .collect()
    )


def customer_device_edges(tx: pl.LazyFrame) -> pl.DataFrame:
    return (
        tx.filter(pl.col("device_id").is_not_null())
        .group_by("customer_id", "device_id")
        .agg(pl.len().alias("count"), pl.col("ts").min().alias("first"), pl.col("ts").max().alias("last"))
        .sort("customer_id", "device_id")
        .collect()
    )


def _batches(df: pl.DataFrame, size: int) -> Iterator[list[dict]]:
    for start in range(0, df.height, size):
        yield df.slice(start, size).to_dicts()


@dataclass
class GraphLoadReport:
    paid_edges: int
    uses_edges: int


def load_customer_graph(driver: Driver, database: str, tx: pl.LazyFrame) -> GraphLoadReport:
    ensure_schema(driver, database)
    paid = customer_merchant_edges(tx)
    uses = customer_device_edges(tx)
    for query, frame in ((MERGE_PAID, paid), (MERGE_USES, uses)):
        for rows in _batches(frame, BATCH_ROWS):
            # execute_query runs in a managed transaction: transient errors are retried.
            driver.execute_query(query, parameters_={"rows": rows}, database_=database)
    return GraphLoadReport(paid.height, uses.height)


def graph_counts(driver: Driver, database: str) -> dict[str, int]:
    records, _, _ = driver.execute_query(
        """
        CALL () { MATCH (c:Customer) RETURN count(c) AS customers }
        CALL () { MATCH (m:Merchant) RETURN count(m) AS merchants }
        CALL () { MATCH (d:Device) RETURN count(d) AS devices }
        CALL () { MATCH ()-[p:PAID]->() RETURN count(p) AS paid }
        CALL () { MATCH ()-[u:USES]->() RETURN count(u) AS uses }
        RETURN customers, merchants, devices, paid, uses
        """,
        database_=database,
    )
    return dict(records[0])
