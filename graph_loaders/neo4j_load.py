"""Connecting to Neo4j and counting what the graph holds."""
from __future__ import annotations

from neo4j import Driver, GraphDatabase

from graph_loaders.model import NODES, RELATIONSHIPS

# graph_counts keys: plural of each label, lower-case type of each relationship.
NODE_COUNT_KEYS = {
    "Customer": "customers", "Account": "accounts", "Merchant": "merchants", "Device": "devices", "VPA": "vpas",
    "City": "cities",
}


def connect(uri: str, user: str, password: str, **config) -> Driver:
    """A verified driver; config goes to GraphDatabase.driver (e.g. max_transaction_retry_time)."""
    driver = GraphDatabase.driver(uri, auth=(user, password), **config)
    try:
        driver.verify_connectivity()
    except Exception:
        driver.close()
        raise
    return driver


def graph_counts(driver: Driver, database: str) -> dict[str, int]:
    """Nodes per label and relationships per type, e.g. {"customers": 400, ..., "paid": 3372, ...}."""
    counts: dict[str, int] = {}
    for node in NODES:
        records, _, _ = driver.execute_query(
            f"MATCH (n:{node.label}) RETURN count(n) AS n", database_=database, routing_="r"
        )
        counts[NODE_COUNT_KEYS[node.label]] = records[0]["n"]
    for rel_type in dict.fromkeys(spec.type for spec in RELATIONSHIPS):
        records, _, _ = driver.execute_query(
            f"MATCH ()-[r:{rel_type}]->() RETURN count(r) AS n", database_=database, routing_="r"
        )
        counts[rel_type.lower()] = records[0]["n"]
    return counts
