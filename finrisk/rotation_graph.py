"""Key rotation in Neo4j: nodes keyed by an old token (accounts, VPAs, erased markers) re-keyed in place.

Re-keyed with parameterised UNWIND batches rather than reloaded: only the token-keyed nodes
change, every relationship with its aggregates and the loaded-day bookkeeping stays, and a batch
run twice changes nothing the second time (the new keys are not in the list of old ones), so a
resumed rotation simply runs it again.
"""
from __future__ import annotations

import polars as pl
from neo4j import Driver

from finrisk.privacy import TOKEN_PREFIX
from graph_loaders import cypher
from graph_loaders.model import NODES

BATCH = 5000


def _token_keys(driver: Driver, database: str, label: str, key: str) -> pl.Series:
    records, _, _ = driver.execute_query(
        f"MATCH (n:{label}) WHERE n.{key} STARTS WITH $prefix RETURN n.{key} AS key",
        parameters_={"prefix": TOKEN_PREFIX}, database_=database,
    )
    return pl.Series("old", [r["key"] for r in records], pl.String)


def rekey_graph(driver: Driver, database: str, mapping: pl.DataFrame, progress=None) -> int:
    """Set each node keyed by an old token of `mapping` to the new one; returns how many nodes changed.
    Nodes keyed by other tokens (another dataset's, in a shared graph) are left alone."""
    changed = 0
    for node in NODES:
        present = _token_keys(driver, database, node.label, node.key).to_frame().join(mapping, on="old", how="inner")
        query = (f"UNWIND range(0, size($old) - 1) AS i MATCH (n:{node.label} {{{node.key}: $old[i]}}) "
                 f"SET n.{node.key} = $new[i] RETURN count(n) AS n")
        done = 0
        for batch in cypher.batches(present, BATCH):
            records, _, _ = driver.execute_query(query, parameters_=cypher.to_parameters(batch), database_=database)
            changed += records[0]["n"]
            done += batch.height
            if progress is not None:
                progress(f"Neo4j {node.label} keys", done, present.height)
    return changed


def graph_remaining(driver: Driver, database: str, old: pl.Series) -> int:
    """Nodes still keyed by an old token (0 after a complete rotation)."""
    left = 0
    for node in NODES:
        left += int(_token_keys(driver, database, node.label, node.key).is_in(old.implode()).sum())
    return left
