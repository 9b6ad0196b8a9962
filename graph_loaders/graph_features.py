"""Graph features per customer, as of a business date, for the models.

Computed with Polars over dated edge lists built from processed transactions, not read from Neo4j:
the graph in Neo4j holds aggregates over all loaded history, so it cannot say what a customer's
neighbourhood looked like before a past date, and the frontier joins below are faster than Cypher
traversals for every customer at once (see docs/graph.md and bench/bench_graph.py).

Point in time: features "as of D" use only transactions of business dates before D (so strictly
before any transaction on D) and only fraud labels reported before D 00:00 Asia/Kolkata.

The link graph for distances is undirected over customers, devices and VPAs: customer-device (a
device the customer used), customer-VPA (the customer owns it, paid it or was paid from it).
Merchants are left out: every customer shares some busy merchant with most others, so through
merchants every distance would be short. Components are taken over narrower links (shared devices;
shared devices plus money passed on fast), because over all links nearly every customer ends up in
one component and its size says nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl

from finrisk.io import DataLayout, has_parquet, scan_partitioned, write_parquet_atomic
from finrisk.schema import BUSINESS_TZ
from graph_loaders.edges import check_columns


@dataclass(frozen=True)
class GraphFeatureParams:
    window_days: int = 30  # mule signals look at this many days before the as-of date
    forward_minutes: int = 60  # a credit moved on within this time counts as forwarded
    # An account is pass-through when what it sends on (P2P and cash) is within this factor of what it
    # received by P2P, and at least one credit moved on fast; spending far more than it got is not.
    pass_through_band: float = 1.25
    max_hops: int = 6  # distances beyond this are reported as null ("far or unconnected")
    max_chain: int = 5  # longest pass-through chain followed


GRAPH_FEATURES = (
    "merchant_degree", "device_degree", "payee_degree", "payer_degree",
    "max_customers_per_device", "device_cluster_size", "mule_network_size", "fraud_distance",
    "fan_in_window", "fan_out_window", "pass_through_ratio", "min_credit_to_debit_minutes",
    "credits_forwarded_fast", "is_pass_through", "pass_through_upstream", "pass_through_downstream",
)
FEATURE_SCHEMA = {
    "customer_id": pl.String, "date": pl.String,
    "merchant_degree": pl.UInt32, "device_degree": pl.UInt32, "payee_degree": pl.UInt32, "payer_degree": pl.UInt32,
    "max_customers_per_device": pl.UInt32, "device_cluster_size": pl.UInt32, "mule_network_size": pl.UInt32,
    "fraud_distance": pl.Int32, "fan_in_window": pl.UInt32, "fan_out_window": pl.UInt32,
    "pass_through_ratio": pl.Float64, "min_credit_to_debit_minutes": pl.Float64,
    "credits_forwarded_fast": pl.UInt32, "is_pass_through": pl.Int8, "pass_through_upstream": pl.Int32,
    "pass_through_downstream": pl.Int32,
}


class GraphFeatureError(ValueError):
    """Graph features cannot be computed for the request; the message says why."""


def day_start_utc(day: str) -> datetime:
    try:
        local = datetime.combine(date.fromisoformat(day), time(0), ZoneInfo(BUSINESS_TZ))
    except ValueError as exc:
        raise GraphFeatureError(f"not a date (YYYY-MM-DD): {day!r}") from exc
    return local.astimezone(ZoneInfo("UTC"))


# --- edge lists -----------------------------------------------------------------------------------

def _links(hist: pl.LazyFrame) -> pl.LazyFrame:
    """Undirected customer-device and customer-VPA links as (a, b) string node ids."""
    uses = hist.filter(pl.col("device_id").is_not_null()).select(
        a=pl.lit("C:") + pl.col("customer_id"), b=pl.lit("D:") + pl.col("device_id")
    )
    transfers = hist.filter((pl.col("counterparty_type") == "P2P") & pl.col("counterparty").is_not_null()).select(
        a=pl.lit("C:") + pl.col("customer_id"), b=pl.lit("V:") + pl.col("counterparty")
    )
    owns = hist.filter((pl.col("direction") == "DEBIT") & pl.col("payer_vpa").is_not_null()).select(
        a=pl.lit("C:") + pl.col("customer_id"), b=pl.lit("V:") + pl.col("payer_vpa")
    )
    return pl.concat([uses, transfers, owns]).unique()


def _numbered(links: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Integer node ids (joins on integers are much faster than on strings) and both edge directions."""
    nodes = pl.concat([links.select(node="a"), links.select(node="b")]).unique().sort("node").with_row_index("id")
    ids = nodes.lazy()
    edges = (
        links.lazy()
        .join(ids.rename({"node": "a", "id": "src"}), on="a")
        .join(ids.rename({"node": "b", "id": "dst"}), on="b")
        .select("src", "dst")
    )
    both = pl.concat([edges, edges.select(src="dst", dst="src")]).collect()
    return nodes, both


def connected_components(edges: pl.DataFrame, node_ids: pl.Series, max_rounds: int = 100) -> pl.DataFrame:
    """Component label (smallest node id in it) per node: min-label propagation over frontier joins."""
    labels = pl.DataFrame({"id": node_ids, "label": node_ids})
    for _ in range(max_rounds):
        proposed = (
            edges.join(labels, left_on="src", right_on="id")
            .group_by("dst")
            .agg(pl.col("label").min().alias("proposed"))
        )
        updated = labels.join(proposed, left_on="id", right_on="dst", how="left").with_columns(
            pl.min_horizontal("label", "proposed").alias("new")
        )
        if (updated.get_column("new") == updated.get_column("label")).all():
            return labels
        labels = updated.select("id", label="new")
    raise GraphFeatureError(f"components did not settle in {max_rounds} rounds")


def hop_distances(edges: pl.DataFrame, sources: pl.Series, max_hops: int) -> pl.DataFrame:
    """Breadth-first hops from any source node (multi-source BFS as frontier joins), up to max_hops."""
    seen = pl.DataFrame({"id": sources.unique(), "hops": 0}, schema={"id": edges.schema["src"], "hops": pl.Int32})
    frontier = seen.select("id")
    for hop in range(1, max_hops + 1):
        frontier = (
            frontier.join(edges, left_on="id", right_on="src")
            .select(id="dst")
            .unique()
            .join(seen, on="id", how="anti")
        )
        if frontier.height == 0:
            break
        seen = pl.concat([seen, frontier.with_columns(hops=pl.lit(hop, pl.Int32))])
    return seen


# --- feature groups -----------------------------------------------------------------------------

def _degrees(hist: pl.LazyFrame) -> pl.LazyFrame:
    p2p = (pl.col("counterparty_type") == "P2P") & pl.col("counterparty").is_not_null()
    return hist.group_by("customer_id").agg(
        pl.col("counterparty").filter((pl.col("counterparty_type") == "MERCHANT") & (pl.col("direction") == "DEBIT"))
        .n_unique().alias("merchant_degree"),
        pl.col("device_id").drop_nulls().n_unique().alias("device_degree"),
        pl.col("counterparty").filter(p2p & (pl.col("direction") == "DEBIT")).n_unique().alias("payee_degree"),
        pl.col("counterparty").filter(p2p & (pl.col("direction") == "CREDIT")).n_unique().alias("payer_degree"),
    )


def _device_sharing(hist: pl.LazyFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per customer: most customers seen on one of their devices; and the customer-device links."""
    uses = hist.filter(pl.col("device_id").is_not_null()).select("customer_id", "device_id").unique().collect()
    per_device = uses.group_by("device_id").agg(pl.len().alias("customers"))
    widest = (
        uses.join(per_device, on="device_id")
        .group_by("customer_id")
        .agg(pl.col("customers").max().cast(pl.UInt32).alias("max_customers_per_device"))
    )
    return widest, uses


def _component_sizes(links: pl.DataFrame, name: str) -> pl.DataFrame:
    """Customers per connected component of the given links, for every customer in them."""
    if links.height == 0:
        return pl.DataFrame(schema={"customer_id": pl.String, name: pl.UInt32})
    nodes, edges = _numbered(links)
    labels = connected_components(edges, nodes.get_column("id")).join(nodes, on="id")
    customers = labels.filter(pl.col("node").str.starts_with("C:"))
    sizes = customers.group_by("label").agg(pl.len().cast(pl.UInt32).alias(name))
    return customers.join(sizes, on="label").select(pl.col("node").str.slice(2).alias("customer_id"), name)


def _fraud_distance(links: pl.DataFrame, hist: pl.LazyFrame, known_fraud: pl.DataFrame, max_hops: int) -> pl.DataFrame:
    """Hops from each customer to the nearest node on a transaction reported as fraud before the date."""
    schema = {"customer_id": pl.String, "fraud_distance": pl.Int32}
    if links.height == 0 or known_fraud.height == 0:
        return pl.DataFrame(schema=schema)
    fraud_rows = hist.join(known_fraud.lazy(), on="txn_id", how="semi")
    touched = pl.concat([
        fraud_rows.select(node=pl.lit("C:") + pl.col("customer_id")),
        fraud_rows.filter(pl.col("device_id").is_not_null()).select(node=pl.lit("D:") + pl.col("device_id")),
        fraud_rows.filter(pl.col("counterparty_type") == "P2P").select(node=pl.lit("V:") + pl.col("counterparty")),
    ]).unique().collect()
    nodes, edges = _numbered(links)
    sources = nodes.join(touched, on="node").get_column("id")
    if sources.len() == 0:
        return pl.DataFrame(schema=schema)
    hops = hop_distances(edges, sources, max_hops).join(nodes, on="id")
    return hops.filter(pl.col("node").str.starts_with("C:")).select(
        pl.col("node").str.slice(2).alias("customer_id"), pl.col("hops").alias("fraud_distance")
    )


def _mule_signals(window: pl.LazyFrame, owners: pl.LazyFrame, params: GraphFeatureParams
                  ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Fan-in/out, money passed on and how fast, chains of pass-through accounts (in the window);
    and the links of money that was passed on fast (payer - receiver who sent it on)."""
    ok = pl.col("status").eq("SUCCESS").fill_null(False)
    p2p = (pl.col("counterparty_type") == "P2P") & pl.col("counterparty").is_not_null()
    credits = window.filter(p2p & ok & (pl.col("direction") == "CREDIT")).select(
        "customer_id", "ts", "amount_paise", "counterparty"
    )
    onward = window.filter(
        ok & (pl.col("direction") == "DEBIT") & pl.col("counterparty_type").is_in(["P2P", "ATM"])
    ).select("customer_id", "ts", "amount_paise")
    fan = window.filter(p2p).group_by("customer_id").agg(
        pl.col("counterparty").filter(pl.col("direction") == "CREDIT").n_unique().cast(pl.UInt32).alias("fan_in_window"),
        pl.col("counterparty").filter(pl.col("direction") == "DEBIT").n_unique().cast(pl.UInt32).alias("fan_out_window"),
    )
    moved = (
        credits.group_by("customer_id").agg(pl.col("amount_paise").sum().alias("_in"))
        .join(onward.group_by("customer_id").agg(pl.col("amount_paise").sum().alias("_out")), on="customer_id", how="left")
        .select("customer_id", (pl.col("_out").fill_null(0) / pl.col("_in")).alias("pass_through_ratio"))
    )
    # For each credit, the first onward debit at or after it (as-of join forward, per customer);
    # the frame is sorted by time overall, hence within each customer.
    timed = (
        credits.sort("ts")
        .join_asof(onward.select("customer_id", "ts", debit_ts="ts").sort("ts"), on="ts", by="customer_id",
                   strategy="forward", check_sortedness=False)
        .with_columns(((pl.col("debit_ts") - pl.col("ts")).dt.total_seconds() / 60).alias("_minutes"))
        .with_columns((pl.col("_minutes") <= params.forward_minutes).fill_null(False).alias("_fast"))
    )
    next_debit = timed.group_by("customer_id").agg(
        pl.col("_minutes").min().alias("min_credit_to_debit_minutes"),
        pl.col("_fast").sum().cast(pl.UInt32).alias("credits_forwarded_fast"),
    )
    forwarded = (
        timed.filter("_fast")
        .join(owners, left_on="counterparty", right_on="vpa", how="left")
        .select(
            a=pl.when(pl.col("owner").is_not_null()).then(pl.lit("C:") + pl.col("owner"))
            .otherwise(pl.lit("V:") + pl.col("counterparty")),
            b=pl.lit("C:") + pl.col("customer_id"),
        )
        .unique()
    )
    signals, forward_links = pl.collect_all([
        fan.join(moved, on="customer_id", how="left")
        .join(next_debit, on="customer_id", how="left")
        .with_columns(
            (pl.col("pass_through_ratio").is_between(1 / params.pass_through_band, params.pass_through_band)
             & (pl.col("credits_forwarded_fast") > 0))
            .fill_null(False).cast(pl.Int8).alias("is_pass_through")
        ),
        forwarded,
    ])
    # Customer-to-customer money movements: the payee VPA resolved to the customer who owns it.
    transfers = (
        window.filter(p2p & ok & (pl.col("direction") == "DEBIT"))
        .join(owners, left_on="counterparty", right_on="vpa")
        .select(payer="customer_id", payee="owner")
        .filter(pl.col("payer") != pl.col("payee"))
        .unique()
        .collect()
    )
    chains = _pass_through_chains(transfers, signals.filter(pl.col("is_pass_through") == 1).get_column("customer_id"),
                                  params.max_chain)
    signals = signals.join(chains, on="customer_id", how="left").with_columns(
        pl.col("pass_through_upstream", "pass_through_downstream").fill_null(0)
    )
    return signals, forward_links


def _pass_through_chains(transfers: pl.DataFrame, pass_through: pl.Series, max_chain: int) -> pl.DataFrame:
    """Longest chain of pass-through accounts paying into (upstream) / paid from (downstream) each customer."""
    flagged = pl.DataFrame({"customer_id": pass_through})
    out = []
    for name, src, dst in (("pass_through_upstream", "payer", "payee"), ("pass_through_downstream", "payee", "payer")):
        # depth(c) = 1 + max depth over pass-through neighbours on that side; a pass-through
        # neighbour with no further ones has depth 1. Bounded, so cycles cannot loop.
        links = transfers.join(flagged, left_on=src, right_on="customer_id", how="semi").select(src, dst)
        depth = pl.DataFrame(schema={"customer_id": pl.String, "depth": pl.Int32})
        for _ in range(max_chain):
            own = flagged.join(depth, on="customer_id", how="left").select(
                "customer_id", own_depth=pl.col("depth").fill_null(0) + 1
            )
            new = (
                links.join(own, left_on=src, right_on="customer_id")
                .group_by(dst)
                .agg(pl.col("own_depth").max().cast(pl.Int32).alias("depth"))
                .rename({dst: "customer_id"})
            )
            if new.sort("customer_id").equals(depth.sort("customer_id")):
                break
            depth = new
        out.append(depth.rename({"depth": name}))
    return out[0].join(out[1], on="customer_id", how="full", coalesce=True)


# --- entry points -------------------------------------------------------------------------------

def compute_graph_features(tx: pl.LazyFrame, labels: pl.DataFrame, day: str,
                           params: GraphFeatureParams = GraphFeatureParams()) -> pl.DataFrame:
    """One row per customer seen before `day`, features as of `day` (see the module docstring)."""
    check_columns(tx)
    cutoff = day_start_utc(day)
    window_start = (date.fromisoformat(day) - timedelta(days=params.window_days)).isoformat()
    hist = tx.filter(pl.col("date") < day)  # business dates before the day: strictly earlier events
    window = hist.filter(pl.col("date") >= window_start)
    owners = (
        hist.filter((pl.col("direction") == "DEBIT") & pl.col("payer_vpa").is_not_null())
        .group_by(pl.col("payer_vpa").alias("vpa"))
        .agg(pl.col("customer_id").min().alias("owner"))
    )
    known_fraud = labels.filter((pl.col("label") == 1) & (pl.col("reported_at") < cutoff)).select("txn_id")

    customers = hist.select(pl.col("customer_id").drop_nulls().unique()).collect()
    if customers.height == 0:
        return pl.DataFrame(schema=FEATURE_SCHEMA)
    degrees = _degrees(hist).collect()
    widest, uses = _device_sharing(hist)
    links = _links(hist).collect()
    device_links = uses.select(a=pl.lit("C:") + pl.col("customer_id"), b=pl.lit("D:") + pl.col("device_id"))
    signals, forward_links = _mule_signals(window, owners, params)
    features = (
        customers.join(degrees, on="customer_id", how="left")
        .join(widest, on="customer_id", how="left")
        .join(_component_sizes(device_links, "device_cluster_size"), on="customer_id", how="left")
        .join(_component_sizes(pl.concat([device_links, forward_links]), "mule_network_size"), on="customer_id",
              how="left")
        .join(_fraud_distance(links, hist, known_fraud, params.max_hops), on="customer_id", how="left")
        .join(signals, on="customer_id", how="left")
        .with_columns(
            pl.col("max_customers_per_device", "credits_forwarded_fast", "fan_in_window", "fan_out_window").fill_null(0),
            pl.col("device_cluster_size", "mule_network_size").fill_null(1),
            pl.col("is_pass_through").fill_null(0),
            pl.col("pass_through_upstream", "pass_through_downstream").fill_null(0),
            pl.lit(day).alias("date"),
        )
    )
    return features.select(list(FEATURE_SCHEMA)).cast(FEATURE_SCHEMA).sort("customer_id")


def read_labels(layout: DataLayout) -> pl.DataFrame:
    if not layout.labels.exists():
        return pl.DataFrame(schema={"txn_id": pl.String, "label": pl.Int8, "reported_at": pl.Datetime("us", "UTC")})
    return pl.read_parquet(layout.labels)


def latest_processed_day(data_dir: Path) -> str:
    layout = DataLayout(Path(data_dir))
    if not has_parquet(layout.transactions):
        raise GraphFeatureError(f"no processed transactions under {layout.transactions}; run ingest first")
    return scan_partitioned(layout.transactions).select(pl.col("date").max()).collect().item()


def graph_features_path(data_dir: Path, day: str) -> Path:
    layout = DataLayout(Path(data_dir))
    return layout.partition(layout.root / "features" / "graph", day)


def graph_features_as_of(data_dir: Path, day: str, params: GraphFeatureParams = GraphFeatureParams()) -> pl.DataFrame:
    """Graph features of every customer as of `day`, from the processed data under data_dir."""
    layout = DataLayout(Path(data_dir))
    day_start_utc(day)  # validates the date
    if not has_parquet(layout.transactions):
        raise GraphFeatureError(f"no processed transactions under {layout.transactions}; run ingest first")
    return compute_graph_features(scan_partitioned(layout.transactions), read_labels(layout), day, params)


def write_graph_features(data_dir: Path, day: str, params: GraphFeatureParams = GraphFeatureParams()) -> Path:
    """Compute and write <data_dir>/features/graph/date=<day>/part-0.parquet (replaced atomically)."""
    return write_parquet_atomic(graph_features_as_of(data_dir, day, params), graph_features_path(data_dir, day))
