"""The neighbourhood of a transaction or a customer, for an analyst: what the graph holds around it,
and a Cypher query that draws the same picture in Neo4j Browser."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from neo4j import Driver

from finrisk.io import DataLayout, has_parquet, scan_partitioned

TOP = 10  # rows per section; the Browser query shows everything


class NotInGraph(LookupError):
    """The id is neither a loaded transaction nor a customer in the graph."""


@dataclass
class Neighbourhood:
    customer_id: str
    transaction: dict | None = None  # the processed row when asked about a transaction
    fraud_label: dict | None = None  # the label of that transaction, if one was reported
    home_city: str | None = None
    accounts: list[dict] = field(default_factory=list)
    vpas: list[dict] = field(default_factory=list)
    devices: list[dict] = field(default_factory=list)  # with the other customers seen on each
    merchants: list[dict] = field(default_factory=list)
    transfers_out: list[dict] = field(default_factory=list)
    transfers_in: list[dict] = field(default_factory=list)
    browser_query: str = ""


NEIGHBOURHOOD = """
MATCH (c:Customer {customer_id: $customer_id})
RETURN
  [(c)-[:LOCATED_IN]->(city:City) | city.city_id][0] AS home_city,
  [(c)-[o:OWNS]->(a:Account) | {account_id: a.account_id, ifsc: a.ifsc, last_seen: o.last_seen}] AS accounts,
  [(c)-[o:OWNS]->(v:VPA) | {vpa: v.vpa, last_seen: o.last_seen}] AS vpas,
  [(c)-[u:USES]->(d:Device) | {device_id: d.device_id, count: u.count, last_seen: u.last_seen,
     others: [(d)<-[:USES]-(o:Customer) WHERE o <> c | o.customer_id]}] AS devices,
  COLLECT {
    MATCH (c)-[p:PAID]->(m:Merchant)
    RETURN {merchant_id: m.merchant_id, mcc: m.mcc, count: p.count, total_paise: p.total_paise, last: p.last} AS row
    ORDER BY p.count DESC, m.merchant_id LIMIT $top
  } AS merchants,
  COLLECT {
    MATCH (c)-[t:TRANSFERRED]->(v:VPA)
    OPTIONAL MATCH (owner:Customer)-[:OWNS]->(v)
    RETURN {to: coalesce(owner.customer_id, v.vpa), customer: owner IS NOT NULL, count: t.count,
            total_paise: t.total_paise, last: t.last} AS row
    ORDER BY t.total_paise DESC LIMIT $top
  } AS transfers_out,
  COLLECT {
    MATCH (c)-[:OWNS]->(:VPA)<-[t:TRANSFERRED]-(payer:Customer)
    RETURN {from: payer.customer_id, customer: true, count: t.count, total_paise: t.total_paise, last: t.last} AS row
    UNION
    MATCH (c)<-[t:TRANSFERRED]-(v:VPA)
    RETURN {from: v.vpa, customer: false, count: t.count, total_paise: t.total_paise, last: t.last} AS row
  } AS transfers_in
"""


def cypher_string(value: str) -> str:
    """A Cypher string literal (for the query an analyst pastes; the loader itself uses parameters)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def browser_query(customer_id: str, transaction: dict | None = None) -> str:
    """Paths around the customer: own nodes, customers sharing a device, money in and out, top merchants."""
    branches = [
        "MATCH p = (c)-[:OWNS|USES|LOCATED_IN]->() RETURN p",
        "MATCH p = (c)-[:USES]->(:Device)<-[:USES]-(:Customer) RETURN p",
        "MATCH p = (c)-[:TRANSFERRED]-(:VPA) RETURN p",
        "MATCH p = (c)-[:TRANSFERRED]->(:VPA)<-[:OWNS]-(:Customer) RETURN p",
        "MATCH p = (c)-[:OWNS]->(:VPA)<-[:TRANSFERRED]-(:Customer) RETURN p",
        f"MATCH p = (c)-[r:PAID]->(:Merchant) RETURN p ORDER BY r.count DESC LIMIT {TOP}",
    ]
    if transaction and transaction.get("counterparty_type") == "MERCHANT" and transaction.get("counterparty"):
        merchant = cypher_string(transaction["counterparty"])
        branches.append(f"MATCH p = (c)-[:PAID]->(:Merchant {{merchant_id: {merchant}}}) RETURN p")
    body = "\n  UNION\n  ".join(branches)
    return f"MATCH (c:Customer {{customer_id: {cypher_string(customer_id)}}})\nCALL (c) {{\n  {body}\n}}\nRETURN p"


def find_transaction(data_dir: Path, txn_id: str) -> dict | None:
    layout = DataLayout(Path(data_dir))
    if not has_parquet(layout.transactions):
        return None
    rows = scan_partitioned(layout.transactions).filter(pl.col("txn_id") == txn_id).collect()
    return rows.row(0, named=True) if rows.height else None


def find_label(data_dir: Path, txn_id: str) -> dict | None:
    path = DataLayout(Path(data_dir)).labels
    if not path.exists():
        return None
    rows = pl.read_parquet(path).filter(pl.col("txn_id") == txn_id)
    return rows.row(0, named=True) if rows.height else None


def neighbourhood(driver: Driver, database: str, data_dir: Path, identifier: str) -> Neighbourhood:
    """Look the id up as a transaction in the processed data first, then as a customer in the graph."""
    transaction = find_transaction(data_dir, identifier)
    customer_id = transaction["customer_id"] if transaction else identifier
    records, _, _ = driver.execute_query(
        NEIGHBOURHOOD, parameters_={"customer_id": customer_id, "top": TOP}, database_=database, routing_="r"
    )
    if not records:
        if transaction:
            raise NotInGraph(f"transaction {identifier} belongs to customer {customer_id}, who is not in the graph "
                             "yet; run `finrisk graph load`")
        raise NotInGraph(f"{identifier!r} is neither a loaded transaction nor a customer in the graph")
    row = records[0]
    return Neighbourhood(
        customer_id=customer_id,
        transaction=transaction,
        fraud_label=find_label(data_dir, identifier) if transaction else None,
        home_city=row["home_city"],
        accounts=row["accounts"],
        vpas=row["vpas"],
        devices=sorted(row["devices"], key=lambda d: (-len(d["others"]), d["device_id"])),
        merchants=row["merchants"],
        transfers_out=row["transfers_out"],
        transfers_in=sorted(row["transfers_in"], key=lambda t: -(t["total_paise"] or 0))[:TOP],
        browser_query=browser_query(customer_id, transaction),
    )
