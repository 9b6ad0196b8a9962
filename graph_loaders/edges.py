"""Node and relationship tables of the customer graph, aggregated from processed transactions.

Pure Polars over a LazyFrame of canonical transactions: the bulk import, the incremental upsert
and the graph features all start from these tables, so they agree by construction.

Counting rules:
* PAID: merchant DEBIT rows. TRANSFERRED: P2P rows on every channel (UPI, IMPS, NEFT, RTGS; mule
  hops above the UPI limit move over IMPS/NEFT). ``count`` counts attempts, ``failed_count`` the
  attempts that did not succeed, ``total_paise`` the money that moved (successful rows only).
* A P2P DEBIT is (Customer)-[:TRANSFERRED]->(payee VPA). A P2P CREDIT is (payer VPA)-[:TRANSFERRED]->
  (Customer) unless the payer VPA already belonged to one of our customers at that moment: then the
  payer's own DEBIT row records the same money and the credit would count it twice. The owner of a
  VPA is the customer whose DEBIT rows carry it (``payer_vpa``); (Customer)-[:OWNS]->(VPA).
* A customer is LOCATED_IN the city of most of their transactions; a merchant in the city of a
  strict majority of its payments (online merchants have none). Ties go to the smaller city_id.
"""
from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from graph_loaders.model import (
    ACCOUNT, CITY, CUSTOMER, CUSTOMER_CITY, MERCHANT, MERCHANT_CITY, NODES, OWNS_ACCOUNT, OWNS_VPA,
    PAID, RELATIONSHIPS, TRANSFERRED_FROM_VPA, TRANSFERRED_TO_VPA, USES, RelSpec, end_key, start_key,
)

REQUIRED_COLUMNS = (
    "customer_id", "account_id", "counterparty", "counterparty_type", "mcc", "direction", "amount_paise",
    "status", "device_id", "ts", "city", "state", "ifsc", "payer_vpa",
)


@dataclass
class GraphFrames:
    nodes: dict[str, pl.DataFrame]  # label -> key column + properties
    rels: dict[str, pl.DataFrame]  # RelSpec.name -> start key, end key, properties

    def node_count(self) -> int:
        return sum(f.height for f in self.nodes.values())

    def rel_count(self) -> int:
        return sum(f.height for f in self.rels.values())


class GraphInputError(ValueError):
    """The transactions cannot be turned into a graph; the message says what is missing."""


def check_columns(tx: pl.LazyFrame) -> None:
    missing = sorted(set(REQUIRED_COLUMNS) - set(tx.collect_schema().names()))
    if missing:
        raise GraphInputError(f"transactions lack the column(s) the graph needs: {', '.join(missing)}")


def _successful() -> pl.Expr:
    return pl.col("status").eq("SUCCESS").fill_null(False)


def _money() -> list[pl.Expr]:
    return [
        pl.len().cast(pl.Int64).alias("count"),
        (~_successful()).sum().cast(pl.Int64).alias("failed_count"),
        pl.col("amount_paise").filter(_successful()).sum().cast(pl.Int64).alias("total_paise"),
        pl.col("ts").min().alias("first"),
        pl.col("ts").max().alias("last"),
    ]


def _seen() -> list[pl.Expr]:
    return [pl.col("ts").min().alias("first_seen"), pl.col("ts").max().alias("last_seen")]


def city_id() -> pl.Expr:
    """'Mumbai, Maharashtra': city names repeat across states, so the state is part of the key."""
    return pl.when(pl.col("state").is_null()).then(pl.col("city")).otherwise(
        pl.concat_str(pl.col("city"), pl.lit(", "), pl.col("state"))
    ).alias("city_id")


def vpa_owners(tx: pl.LazyFrame) -> pl.LazyFrame:
    """Each VPA seen on our customers' DEBIT rows, with the first time one of them used it."""
    return (
        tx.filter((pl.col("direction") == "DEBIT") & pl.col("payer_vpa").is_not_null())
        .group_by(pl.col("payer_vpa").alias("vpa"))
        .agg(pl.col("ts").min().alias("owned_since"))
    )


def _by_majority(counts: pl.LazyFrame, owner: str, strict: bool) -> pl.LazyFrame:
    """Per owner, the city with the most rows; with strict, only when it holds more than half."""
    best = counts.group_by(owner).agg(
        pl.col("city_id").sort_by(["txn_count", "city_id"], descending=[True, False]).first(),
        pl.col("txn_count").max(),
        pl.col("txn_count").sum().alias("_all"),
    )
    if strict:
        best = best.filter(pl.col("txn_count") * 2 > pl.col("_all"))
    return best.drop("_all")


def relationship_frames(tx: pl.LazyFrame, owners: pl.LazyFrame | None = None) -> dict[str, pl.LazyFrame]:
    """One lazy frame per relationship spec: start key, end key, aggregated properties."""
    tx = tx.filter(pl.col("customer_id").is_not_null())
    owners = vpa_owners(tx) if owners is None else owners
    debit, credit = pl.col("direction") == "DEBIT", pl.col("direction") == "CREDIT"
    p2p = (pl.col("counterparty_type") == "P2P") & pl.col("counterparty").is_not_null()
    merchant_rows = tx.filter((pl.col("counterparty_type") == "MERCHANT") & debit & pl.col("counterparty").is_not_null())
    credits_from_outside = (
        tx.filter(p2p & credit)
        .join(owners, left_on="counterparty", right_on="vpa", how="left")
        .filter(pl.col("owned_since").is_null() | (pl.col("owned_since") > pl.col("ts")))
    )
    located = tx.filter(pl.col("city").is_not_null()).with_columns(city_id())
    frames = {
        PAID.name: merchant_rows.group_by("customer_id", pl.col("counterparty").alias("merchant_id")).agg(_money()),
        TRANSFERRED_TO_VPA.name: tx.filter(p2p & debit)
        .group_by("customer_id", pl.col("counterparty").alias("vpa"))
        .agg(_money()),
        TRANSFERRED_FROM_VPA.name: credits_from_outside.group_by(pl.col("counterparty").alias("vpa"), "customer_id")
        .agg(_money()),
        USES.name: tx.filter(pl.col("device_id").is_not_null())
        .group_by("customer_id", "device_id")
        .agg(pl.len().cast(pl.Int64).alias("count"), *_seen()),
        OWNS_ACCOUNT.name: tx.filter(pl.col("account_id").is_not_null()).group_by("customer_id", "account_id").agg(_seen()),
        OWNS_VPA.name: tx.filter(debit & pl.col("payer_vpa").is_not_null())
        .group_by("customer_id", pl.col("payer_vpa").alias("vpa"))
        .agg(_seen()),
        CUSTOMER_CITY.name: _by_majority(
            located.group_by("customer_id", "city_id").agg(pl.len().cast(pl.Int64).alias("txn_count")),
            "customer_id", strict=False,
        ),
        MERCHANT_CITY.name: _by_majority(
            located.filter((pl.col("counterparty_type") == "MERCHANT") & debit & pl.col("counterparty").is_not_null())
            .group_by(pl.col("counterparty").alias("merchant_id"), "city_id")
            .agg(pl.len().cast(pl.Int64).alias("txn_count")),
            "merchant_id", strict=True,
        ),
    }
    return {spec.name: frames[spec.name].select(_rel_columns(spec)) for spec in RELATIONSHIPS}


def _rel_columns(spec: RelSpec) -> list[str]:
    return [start_key(spec), end_key(spec), *(name for name, _ in spec.props)]


def node_properties(tx: pl.LazyFrame) -> dict[str, pl.LazyFrame]:
    """Properties of the nodes that have any (accounts, merchants, cities), keyed by node key."""
    return {
        ACCOUNT.label: tx.filter(pl.col("account_id").is_not_null())
        .group_by("account_id")
        .agg(pl.col("ifsc").drop_nulls().min()),
        MERCHANT.label: tx.filter((pl.col("counterparty_type") == "MERCHANT") & pl.col("counterparty").is_not_null())
        .group_by(pl.col("counterparty").alias("merchant_id"))
        .agg(pl.col("mcc").drop_nulls().min()),
        CITY.label: tx.filter(pl.col("city").is_not_null())
        .select(city_id(), pl.col("city").alias("name"), "state")
        .unique("city_id", keep="any")
        .select("city_id", "name", "state"),
    }


def nodes_for(rels: dict[str, pl.DataFrame], props: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """Every node a relationship ends on, with its properties; sorted by key."""
    nodes: dict[str, pl.DataFrame] = {}
    for node in NODES:
        keys = [
            frame.select(pl.col(node.key))
            for spec in RELATIONSHIPS
            for label, frame in ((spec.start, rels[spec.name]), (spec.end, rels[spec.name]))
            if label == node.label
        ]
        ids = pl.concat(keys).unique() if keys else pl.DataFrame(schema={node.key: pl.String})
        if node.props:
            ids = ids.join(props[node.label], on=node.key, how="left")
        nodes[node.label] = ids.select(node.key, *(name for name, _ in node.props)).sort(node.key)
    return nodes


def graph_frames(tx: pl.LazyFrame, owners: pl.LazyFrame | None = None) -> GraphFrames:
    """The whole graph implied by the given transactions (all of them, or the rows before a date)."""
    check_columns(tx)
    lazy_rels = relationship_frames(tx, owners)
    lazy_props = node_properties(tx)
    collected = pl.collect_all([*lazy_rels.values(), *lazy_props.values()])
    rels = {name: frame.sort(frame.columns[:2]) for name, frame in zip(lazy_rels, collected)}
    props = dict(zip(lazy_props, collected[len(lazy_rels):]))
    nodes = nodes_for(rels, props)
    # Every customer is a node, also one with no relationship yet.
    customers = tx.select(pl.col("customer_id").drop_nulls().unique()).collect()
    nodes[CUSTOMER.label] = pl.concat([nodes[CUSTOMER.label], customers]).unique().sort("customer_id")
    return GraphFrames(nodes, rels)
