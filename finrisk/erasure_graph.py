"""Erasure in Neo4j: the customer's node and everything only they reached, with parameterised Cypher.

1. Nodes keyed by one of their identifier tokens that other customers still reach (a VPA others
   paid) are re-keyed to the erased marker the Parquet tables use.
2. The Customer node goes with its relationships (DETACH DELETE); then every former neighbour
   left without any relationship (their own account, their devices, a merchant only they paid).
3. The relationships of the customers and merchants whose data changed are recomputed from the
   rewritten processed data with the incremental loader's own frames, so the graph ends equal
   to a full load of the same data (a credit from an erased payer now comes from outside).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import polars as pl
from neo4j import Driver

from finrisk.io import DataLayout, has_parquet, scan_partitioned
from graph_loaders.edges import check_columns, node_properties, nodes_for, relationship_frames, vpa_owners
from graph_loaders.edges import GraphFrames
from graph_loaders.incremental import partition_rows, write_frames
from graph_loaders.model import ACCOUNT, CITY, CUSTOMER, LOADED_DAY, MERCHANT, MERCHANT_CITY, NODES, RELATIONSHIPS, start_key, end_key

# Their neighbours and the non-customer nodes next to those (a merchant's city): the nodes that
# may be left without any relationship once the customer and their rows are gone.
NEIGHBOURS = (
    "MATCH (c:Customer {customer_id: $customer_id})--(n) OPTIONAL MATCH (n)--(m) WHERE NOT m:Customer "
    "RETURN collect(DISTINCT elementId(n)) + collect(DISTINCT elementId(m)) AS ids"
)
RELATIONSHIP_COUNT = "MATCH (c:Customer {customer_id: $customer_id})-[r]-() RETURN count(r) AS n"
DELETE_CUSTOMER = "MATCH (c:Customer {customer_id: $customer_id}) DETACH DELETE c RETURN count(*) AS n"
DELETE_ORPHANS = (
    "UNWIND $ids AS id MATCH (n) WHERE elementId(n) = id AND NOT EXISTS { (n)--() } "
    "DELETE n RETURN count(n) AS n"
)
UPDATE_LOADED_DAYS = (
    f"UNWIND $days AS d MATCH (l:{LOADED_DAY.label} {{date: d.date}}) WHERE l.rows = d.before "
    "SET l.rows = d.after RETURN count(l) AS n"
)


def _rekey(node) -> str:
    return (f"UNWIND $pairs AS p MATCH (n:{node.label} {{{node.key}: p.token}}) "
            f"SET n.{node.key} = p.marker RETURN count(n) AS n")


def _single(driver: Driver, database: str, query: str, **parameters) -> int:
    records, _, _ = driver.execute_query(query, parameters_=parameters, database_=database)
    return records[0]["n"] if records else 0


@dataclass
class GraphErasure:
    customer_nodes_deleted: int = 0
    relationships_deleted: int = 0
    nodes_rekeyed: int = 0
    orphan_nodes_deleted: int = 0
    customers_refreshed: int = 0
    merchants_refreshed: int = 0
    loaded_days_updated: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def neighbourhood(driver: Driver, database: str, customer_id: str) -> list[str]:
    records, _, _ = driver.execute_query(NEIGHBOURS, parameters_={"customer_id": customer_id}, database_=database)
    return sorted(set(records[0]["ids"])) if records else []


def delete_subject(driver: Driver, database: str, customer_id: str, markers: dict[str, str],
                   neighbours: list[str]) -> GraphErasure:
    """Steps 1 and 2; safe to repeat (a second run finds nothing)."""
    report = GraphErasure()
    pairs = [{"token": token, "marker": marker} for token, marker in sorted(markers.items())]
    if pairs:
        for node in NODES:
            if node.label != CUSTOMER.label:
                report.nodes_rekeyed += _single(driver, database, _rekey(node), pairs=pairs)
    report.relationships_deleted = _single(driver, database, RELATIONSHIP_COUNT, customer_id=customer_id)
    report.customer_nodes_deleted = _single(driver, database, DELETE_CUSTOMER, customer_id=customer_id)
    if neighbours:
        report.orphan_nodes_deleted = _single(driver, database, DELETE_ORPHANS, ids=neighbours)
    return report


def refresh_entities(
    driver: Driver, database: str, layout: DataLayout, customers: set[str], merchants: set[str],
    rows_before: dict[str, int], neighbours: list[str], report: GraphErasure,
) -> GraphErasure:
    """Step 3, the nodes it left without relationships (a merchant only they paid loses its city),
    then the loaded-day row counts of the days that were fully loaded before."""
    if has_parquet(layout.transactions) and (customers or merchants):
        tx = scan_partitioned(layout.transactions)
        check_columns(tx)
        frames, prune = entity_frames(tx, customers, merchants)
        write_frames(driver, database, frames, prune)
        report.customers_refreshed, report.merchants_refreshed = len(customers), len(merchants)
    if neighbours:
        report.orphan_nodes_deleted += _single(driver, database, DELETE_ORPHANS, ids=neighbours)
    after = partition_rows(layout)
    days = [{"date": day, "before": rows, "after": after.get(day, 0)}
            for day, rows in sorted(rows_before.items()) if after.get(day, 0) != rows]
    if days:
        report.loaded_days_updated = _single(driver, database, UPDATE_LOADED_DAYS, days=days)
    return report


def entity_frames(tx: pl.LazyFrame, customers: set[str], merchants: set[str]) -> tuple[GraphFrames, dict]:
    """Every relationship of the given customers and the home city of the given merchants,
    aggregated over all history, with the prune lists for the one-per-start relationships."""
    owners = vpa_owners(tx)
    customer_ids = pl.Series(sorted(customers), dtype=pl.String).implode()
    merchant_ids = pl.Series(sorted(merchants), dtype=pl.String).implode()
    by_customer = tx.filter(pl.col("customer_id").is_in(customer_ids))
    by_merchant = tx.filter(
        (pl.col("counterparty_type") == "MERCHANT") & (pl.col("direction") == "DEBIT")
        & pl.col("counterparty").is_in(merchant_ids)
    )
    customer_rels = relationship_frames(by_customer, owners)
    merchant_rels = relationship_frames(by_merchant, owners)
    lazy = {spec.name: (merchant_rels if spec is MERCHANT_CITY else customer_rels)[spec.name] for spec in RELATIONSHIPS}
    customer_props, merchant_props = node_properties(by_customer), node_properties(by_merchant)
    extra = [customer_props[ACCOUNT.label], merchant_props[MERCHANT.label],
             pl.concat([customer_props[CITY.label], merchant_props[CITY.label]]).unique("city_id", keep="any")]
    collected = pl.collect_all([*lazy.values(), *extra])
    rels = {name: frame.sort(frame.columns[:2]) for name, frame in zip(lazy, collected)}
    accounts, merchant_nodes, cities = collected[len(lazy):]
    nodes = nodes_for(rels, {ACCOUNT.label: accounts, MERCHANT.label: merchant_nodes, CITY.label: cities})
    starts = {
        "Customer": pl.DataFrame({"customer_id": sorted(customers)}, schema={"customer_id": pl.String}),
        "Merchant": pl.DataFrame({"merchant_id": sorted(merchants)}, schema={"merchant_id": pl.String}),
    }
    prune = {
        spec.name: starts[spec.start].join(rels[spec.name].select(start_key(spec), end_key(spec)),
                                           on=start_key(spec), how="left").sort(start_key(spec))
        for spec in RELATIONSHIPS if spec.single_per_start
    }
    return GraphFrames(nodes, rels), prune


def subject_nodes(driver: Driver, database: str, customer_id: str, tokens: set[str]) -> int:
    """Nodes that still carry the customer's id or one of their tokens as a key (0 after erasure)."""
    keys = [node.key for node in NODES]
    query = (
        "MATCH (n) WHERE any(k IN $keys WHERE n[k] = $customer_id OR n[k] IN $tokens) RETURN count(n) AS n"
    )
    return _single(driver, database, query, keys=keys, customer_id=customer_id, tokens=sorted(tokens))
