"""Nightly incremental upsert: the relationships a day touched, MERGEd in UNWIND batches.

Re-running a day changes nothing because the loader never adds to a stored aggregate: for every
relationship that has a row on the loaded day(s) it recomputes the total over all processed
history and SETs it. (Chosen over per-day contributions because the graph then always equals a
full load of the same data, whatever order or how often days are loaded, with no per-day state.)
Each day loaded is recorded as a (:LoadedDay {date, rows}) node, written last; a day whose
partition has since gained rows is loaded again.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import polars as pl
from neo4j import Driver

from finrisk.io import DataLayout, has_parquet, scan_partitioned
from graph_loaders import cypher
from graph_loaders.edges import (
    GraphFrames, check_columns, node_properties, nodes_for, relationship_frames, vpa_owners,
)
from graph_loaders.model import (
    ACCOUNT, CITY, CUSTOMER, LOADED_DAY, MERCHANT, MERCHANT_CITY, NODES, RELATIONSHIPS, NodeSpec, RelSpec, end_key,
    start_key,
)
from graph_loaders.schema import ensure_schema

BATCH_ROWS = 10_000
WORKERS = 2  # parallel writers; more than the server's cores only adds lock waits
Progress = Callable[[str, int], None]  # (what, rows just written)
NODE_ID = "_element_id"


class NothingToLoad(FileNotFoundError):
    """There are no processed transactions to load."""


@dataclass
class UpsertReport:
    days: list[str] = field(default_factory=list)
    nodes: int = 0
    relationships: int = 0

    def as_dict(self) -> dict:
        return {"days": self.days, "nodes": self.nodes, "relationships": self.relationships}


@dataclass
class DayFrames:
    graph: GraphFrames
    # For relationships a start node has at most one of (LOCATED_IN): every touched start, with
    # its new end or null, so a changed home city replaces the old one.
    prune: dict[str, pl.DataFrame]


def partition_rows(layout: DataLayout) -> dict[str, int]:
    """Rows per business date in processed/transactions (read from Parquet metadata)."""
    if not has_parquet(layout.transactions):
        return {}
    counts = scan_partitioned(layout.transactions).group_by("date").agg(pl.len()).collect()
    return dict(zip(counts.get_column("date").to_list(), counts.get_column("len").to_list()))


def loaded_days(driver: Driver, database: str) -> dict[str, int]:
    records, _, _ = driver.execute_query(
        f"MATCH (d:{LOADED_DAY.label}) RETURN d.date AS date, d.rows AS rows", database_=database,
        routing_="r",
    )
    return {r["date"]: r["rows"] for r in records}


def pending_days(driver: Driver, database: str, layout: DataLayout) -> list[str]:
    """Days not loaded yet, or that have gained rows since they were loaded."""
    loaded = loaded_days(driver, database)
    return sorted(day for day, rows in partition_rows(layout).items() if loaded.get(day) != rows)


def day_frames(tx: pl.LazyFrame, days: list[str]) -> DayFrames:
    """The nodes and relationships the given days touch, aggregated over all history in tx."""
    check_columns(tx)
    day_rows = tx.filter(pl.col("date").is_in(days) & pl.col("customer_id").is_not_null())
    merchant_rows = (pl.col("counterparty_type") == "MERCHANT") & (pl.col("direction") == "DEBIT") & pl.col(
        "counterparty"
    ).is_not_null()
    owners = vpa_owners(tx)
    customers = day_rows.select("customer_id").unique()
    merchants = day_rows.filter(merchant_rows).select(pl.col("counterparty").alias("merchant_id")).unique()
    by_customer_rows = tx.join(customers, on="customer_id", how="semi")
    by_merchant_rows = tx.filter(merchant_rows).join(merchants, left_on="counterparty", right_on="merchant_id", how="semi")
    by_customer = relationship_frames(by_customer_rows, owners)
    by_merchant = relationship_frames(by_merchant_rows, owners)
    today = relationship_frames(day_rows, owners)

    lazy: dict[str, pl.LazyFrame] = {}
    for spec in RELATIONSHIPS:
        keys = [start_key(spec), end_key(spec)]
        if spec.single_per_start:
            lazy[spec.name] = (by_merchant if spec is MERCHANT_CITY else by_customer)[spec.name]
        else:
            lazy[spec.name] = by_customer[spec.name].join(today[spec.name].select(keys), on=keys, how="semi")
    customer_props, merchant_props = node_properties(by_customer_rows), node_properties(by_merchant_rows)
    extra = {
        "customers": customers,
        "merchants": merchants,
        "accounts": customer_props[ACCOUNT.label],
        "merchant_props": merchant_props[MERCHANT.label],
        "cities": pl.concat([customer_props[CITY.label], merchant_props[CITY.label]]).unique("city_id", keep="any"),
    }
    collected = pl.collect_all([*lazy.values(), *extra.values()])
    rels = {name: frame.sort(frame.columns[:2]) for name, frame in zip(lazy, collected)}
    got = dict(zip(extra, collected[len(lazy):]))
    nodes = nodes_for(rels, {
        ACCOUNT.label: got["accounts"], MERCHANT.label: got["merchant_props"], CITY.label: got["cities"],
    })
    nodes[CUSTOMER.label] = pl.concat([nodes[CUSTOMER.label], got["customers"]]).unique().sort("customer_id")
    starts = {"Customer": got["customers"], "Merchant": got["merchants"]}
    prune = {
        spec.name: starts[spec.start].join(rels[spec.name].select(start_key(spec), end_key(spec)), on=start_key(spec),
                                           how="left").sort(start_key(spec))
        for spec in RELATIONSHIPS if spec.single_per_start
    }
    return DayFrames(GraphFrames(nodes, rels), prune)


def split_by_start(frame: pl.DataFrame, parts: int) -> list[pl.DataFrame]:
    """Contiguous pieces of a frame sorted by its first column, never splitting one start key.

    Writers of different pieces then never touch the same start node, so parallel batches do
    not wait on each other's locks (shared end nodes such as merchants are dense, and Neo4j
    does not lock dense nodes to add a relationship).
    """
    if parts <= 1 or frame.height < 2 * parts:
        return [frame]
    keys = frame.get_column(frame.columns[0])
    cuts = [0]
    for part in range(1, parts):
        cut = max(part * frame.height // parts, cuts[-1])
        while 0 < cut < frame.height and keys[cut] == keys[cut - 1]:
            cut += 1
        cuts.append(cut)
    cuts.append(frame.height)
    return [frame.slice(a, b - a) for a, b in zip(cuts, cuts[1:]) if b > a]


def _in_parallel(frame: pl.DataFrame, workers: int, write: Callable[[pl.DataFrame], pl.DataFrame | None]) -> list:
    pieces = split_by_start(frame, workers)
    if len(pieces) == 1:
        return [write(pieces[0])]
    with ThreadPoolExecutor(max_workers=len(pieces)) as pool:
        return [future.result() for future in [pool.submit(write, piece) for piece in pieces]]


def _run_batches(driver: Driver, database: str, query: str, frame: pl.DataFrame, rename: dict[str, str],
                 batch_rows: int, what: str, progress: Progress | None, workers: int) -> None:
    def write(piece: pl.DataFrame) -> None:
        for batch in cypher.batches(piece, batch_rows):
            # A managed transaction: transient errors (deadlocks, a lost connection, a restarting
            # server) are retried by the driver for up to max_transaction_retry_time.
            driver.execute_query(query, parameters_=cypher.to_parameters(batch, rename), database_=database)
            if progress is not None:
                progress(what, batch.height)

    _in_parallel(frame, workers, write)


def upsert_nodes(driver: Driver, database: str, node: NodeSpec, frame: pl.DataFrame, batch_rows: int = BATCH_ROWS,
                 progress: Progress | None = None, workers: int = WORKERS) -> pl.DataFrame:
    """MERGE the nodes; returns their keys with the element ids the relationships are written by."""
    query = cypher.merge_nodes(node)

    def write(piece: pl.DataFrame) -> pl.DataFrame:
        ids = []
        for batch in cypher.batches(piece, batch_rows):
            records, _, _ = driver.execute_query(query, parameters_=cypher.to_parameters(batch), database_=database)
            ids.append(batch.select(node.key).with_columns(pl.Series(NODE_ID, records[0]["ids"], dtype=pl.String)))
            if progress is not None:
                progress(node.label, batch.height)
        return pl.concat(ids) if ids else pl.DataFrame(schema={node.key: pl.String, NODE_ID: pl.String})

    return pl.concat(_in_parallel(frame, workers, write))


def _by_node_ids(frame: pl.DataFrame, spec: RelSpec, ids: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """The relationship frame with its two keys replaced by the ends' element ids, order kept."""
    start, end = start_key(spec), end_key(spec)
    with_ids = (
        frame.join(ids[spec.start].rename({NODE_ID: "start"}), on=start, how="left", maintain_order="left")
        .join(ids[spec.end].rename({NODE_ID: "end"}), on=end, how="left", maintain_order="left")
    )
    missing = with_ids.filter(pl.col("start").is_null() | pl.col("end").is_null()).height
    if missing:
        raise ValueError(f"{spec.name}: {missing} relationships end on a node that was not upserted")
    return with_ids.select("start", "end", *(name for name, _ in spec.props))


def _prune_by_node_ids(frame: pl.DataFrame, spec: RelSpec, ids: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """The prune frame with its start key replaced by the start node's element id (order kept); the
    end stays a key (null: the start keeps no relationship of this type)."""
    start = start_key(spec)
    with_ids = frame.join(ids[spec.start].rename({NODE_ID: "start"}), on=start, how="left", maintain_order="left")
    missing = with_ids.filter(pl.col("start").is_null()).height
    if missing:
        raise ValueError(f"{spec.name}: {missing} start nodes to prune were not upserted")
    return with_ids.select("start", pl.col(end_key(spec)).alias("end"))


def upsert_relationships(driver: Driver, database: str, spec: RelSpec, frame: pl.DataFrame,
                         batch_rows: int = BATCH_ROWS, progress: Progress | None = None,
                         workers: int = WORKERS) -> int:
    """Update the relationships that exist (in parallel), then MERGE the missing ones (one writer,
    in end-node order); returns how many were missing.

    Most of a day's relationships exist already. MERGE creating a relationship locks both of its
    nodes, and two writers creating relationships to the same merchants or VPAs in different orders
    deadlocked (each deadlock costs a second of back-off and a repeated batch). Creations are a
    few percent of the rows, so one writer takes them all without waiting on anyone; it still
    MERGEs, so a concurrent load cannot duplicate a relationship."""
    update = cypher.update_relationships(spec)

    def write(piece: pl.DataFrame) -> pl.DataFrame:
        missing = []
        for batch in cypher.batches(piece, batch_rows):
            records, _, _ = driver.execute_query(update, parameters_=cypher.to_parameters(batch), database_=database)
            missing.append(batch[pl.Series(records[0]["missing"], dtype=pl.Int64)])
            if progress is not None:
                progress(spec.type, batch.height)
        return pl.concat(missing) if missing else piece.clear()

    new = pl.concat(_in_parallel(frame, workers, write)).sort("end", "start")
    _run_batches(driver, database, cypher.merge_relationships(spec), new, {}, batch_rows, f"{spec.type} (new)",
                 None, 1)
    return new.height


def write_frames(driver: Driver, database: str, frames: GraphFrames, prune: dict[str, pl.DataFrame] | None = None,
                 batch_rows: int = BATCH_ROWS, progress: Progress | None = None, workers: int = WORKERS) -> int:
    """Upsert nodes, then relationships; every statement is idempotent, so a retried batch is harmless.
    Returns how many relationships were new."""
    ids = {
        node.label: upsert_nodes(driver, database, node, frames.nodes[node.label], batch_rows, progress, workers)
        for node in NODES
    }
    created = 0
    for spec in RELATIONSHIPS:
        if prune and spec.name in prune:
            _run_batches(driver, database, cypher.prune_relationships(spec),
                         _prune_by_node_ids(prune[spec.name], spec, ids), {}, batch_rows, f"{spec.type} (old)", None,
                         workers)
        created += upsert_relationships(driver, database, spec, _by_node_ids(frames.rels[spec.name], spec, ids),
                                        batch_rows, progress, workers)
    return created


def record_loaded_days(driver: Driver, database: str, rows_by_day: dict[str, int]) -> None:
    driver.execute_query(
        f"UNWIND $days AS d MERGE (l:{LOADED_DAY.label} {{date: d.date}}) SET l.rows = d.rows",
        parameters_={"days": [{"date": day, "rows": rows} for day, rows in sorted(rows_by_day.items())]},
        database_=database,
    )


def upsert_days(driver: Driver, database: str, data_dir: Path, days: list[str] | None = None,
                batch_rows: int = BATCH_ROWS, progress: Progress | None = None, workers: int = WORKERS,
                on_frames: Callable[[GraphFrames], None] | None = None) -> UpsertReport:
    """Load the given business days (default: every day not loaded yet or changed since)."""
    layout = DataLayout(Path(data_dir))
    rows = partition_rows(layout)
    if not rows:
        raise NothingToLoad(f"no processed transactions under {layout.transactions}; run ingest first")
    ensure_schema(driver, database)
    if days is None:
        days = pending_days(driver, database, layout)
    unknown = sorted(set(days) - set(rows))
    if unknown:
        raise NothingToLoad(f"no processed transactions for {', '.join(unknown)} under {layout.transactions}")
    report = UpsertReport(days=sorted(days))
    if not days:
        return report
    frames = day_frames(scan_partitioned(layout.transactions), report.days)
    if on_frames is not None:
        on_frames(frames.graph)
    write_frames(driver, database, frames.graph, frames.prune, batch_rows, progress, workers)
    record_loaded_days(driver, database, {day: rows[day] for day in days})
    report.nodes, report.relationships = frames.graph.node_count(), frames.graph.rel_count()
    return report
