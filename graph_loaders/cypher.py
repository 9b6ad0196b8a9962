"""Parameterised Cypher for the upserts, generated from the graph model.

Batches are sent column-wise (one list per column, indexed by row number in UNWIND) instead of as
a list of maps: the driver packs a few long lists of ints and strings much faster than thousands
of small maps with repeated keys. Times travel as integer microseconds since the epoch and become
UTC DateTime values on the server (datetime.fromepoch), the same values the bulk import writes.
"""
from __future__ import annotations

from typing import Iterator

import polars as pl

from graph_loaders.model import DATETIME, NodeSpec, RelSpec, end_key, start_key


def _value(column: str, kind: str) -> str:
    if kind == DATETIME:
        # fromepoch takes two numbers; datetime({epochSeconds: ...}) builds and parses a map per value
        # (about three times the server time). Both give a DateTime in UTC (offset Z).
        return f"datetime.fromepoch(${column}[i] / 1000000, ${column}[i] % 1000000 * 1000)"
    return f"${column}[i]"


def _set(var: str, props: tuple[tuple[str, str], ...]) -> str:
    if not props:
        return ""
    return "SET " + ", ".join(f"{var}.{name} = {_value(name, kind)}" for name, kind in props)


def merge_nodes(node: NodeSpec) -> str:
    """MERGE on the key, SET the properties; returns the element ids in row order as one list (one
    record of two lists unpacks much faster in the driver than a record per node)."""
    return "\n".join(line for line in (
        f"UNWIND range(0, size(${node.key}) - 1) AS i",
        f"MERGE (n:{node.label} {{{node.key}: ${node.key}[i]}})",
        _set("n", node.props),
        "WITH i, elementId(n) AS id ORDER BY i",
        "RETURN collect(id) AS ids",
    ) if line)


def update_relationships(rel: RelSpec) -> str:
    """SET the aggregates of the relationships that exist; returns the row numbers of those that do
    not, as one list. Changing properties of an existing relationship locks only that relationship,
    so two writers on disjoint start nodes never wait on each other here."""
    props = rel.props
    sets = ", ".join(f"x.{name} = {_value(name, kind)}" for name, kind in props)
    return "\n".join(line for line in (
        "UNWIND range(0, size($start) - 1) AS i",
        "MATCH (a) WHERE elementId(a) = $start[i]",
        "MATCH (b) WHERE elementId(b) = $end[i]",
        f"OPTIONAL MATCH (a)-[r:{rel.type}]->(b)",
        f"FOREACH (x IN CASE WHEN r IS NULL THEN [] ELSE [r] END | SET {sets})" if props else "",
        "WITH i, r WHERE r IS NULL",
        "RETURN collect(i) AS missing",
    ) if line)


def merge_relationships(rel: RelSpec) -> str:
    """Find both ends by the element ids the node upsert returned, MERGE the relationship, SET its
    aggregates. An id seek costs a fraction of a unique-index seek on a string key, which was
    the largest single cost of the upsert (two seeks per relationship)."""
    return "\n".join((
        "UNWIND range(0, size($start) - 1) AS i",
        "MATCH (a) WHERE elementId(a) = $start[i]",
        "MATCH (b) WHERE elementId(b) = $end[i]",
        f"MERGE (a)-[r:{rel.type}]->(b)",
        _set("r", rel.props),
    ))


def prune_relationships(rel: RelSpec) -> str:
    """Remove a start node's relationship of this type unless it goes to the given end key (null:
    remove all); the start node is found by its element id."""
    return "\n".join((
        "UNWIND range(0, size($start) - 1) AS i",
        "MATCH (a) WHERE elementId(a) = $start[i]",
        f"MATCH (a)-[old:{rel.type}]->(b:{rel.end})",
        f"WHERE $end[i] IS NULL OR b.{end_key(rel)} <> $end[i]",
        "DELETE old",
    ))


def to_parameters(frame: pl.DataFrame, rename: dict[str, str] | None = None) -> dict[str, list]:
    """Column lists for the driver; datetimes as integer microseconds since the epoch (UTC)."""
    out = {}
    for name, series in frame.to_dict().items():
        if isinstance(series.dtype, pl.Datetime):
            series = series.dt.epoch("us")
        out[(rename or {}).get(name, name)] = series.to_list()
    return out


def batches(frame: pl.DataFrame, rows: int) -> Iterator[pl.DataFrame]:
    for offset in range(0, frame.height, rows):
        yield frame.slice(offset, rows)
