"""Online path: the same feature definitions, from the latest twin plus the day's transactions.

For a transaction on day D the twin as of D supplies everything before D: running totals per
customer, pair, device and counterparty, the recent events that time windows still reach, and the
fraud labels known. The day's earlier transactions are added on top, exactly as the batch path sees
them, so both paths give the same numbers (tests/test_online_parity.py).
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timezone

import polars as pl

from features.context import FeatureContext
from features.inputs import FeatureInputError, prepare_events, present_fields
from features.merchant import label_events
from features.spec import DAY_MS
from features.transactions import compute_features
from features.twin import Twin, build_twin, history_state


def _relevant(context: pl.DataFrame, targets: pl.DataFrame, since_ms: int, peer_groups: pl.DataFrame | None) -> pl.DataFrame:
    """Only the rows the targets' features can depend on: their customers', counterparties' and
    devices' rows, and the day's rows of their peer groups."""
    keep = pl.col("customer_id").is_in(targets.get_column("customer_id").unique().implode())
    for column in ("counterparty", "device_id"):
        values = targets.get_column(column).drop_nulls().unique()
        if values.len():
            keep = keep | pl.col(column).is_in(values.implode())
    if peer_groups is not None:
        groups = peer_groups.join(targets.select("customer_id").unique(), on="customer_id").get_column("peer_group")
        peers = peer_groups.filter(pl.col("peer_group").is_in(groups.implode())).get_column("customer_id")
        keep = keep | ((pl.col("_ms") >= since_ms) & pl.col("customer_id").is_in(peers.implode()))
    return context.filter(keep)


def online_features(
    twin: Twin,
    today: pl.DataFrame | pl.LazyFrame,
    txn_ids: Iterable[str] | None = None,
    labels: pl.DataFrame | None = None,
    peer_groups: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Features for the day's transactions (all of `today`, or only `txn_ids`).

    today: the canonical transactions of the twin's day so far, including the ones to score; each
    one sees only the transactions strictly before it. labels: extra fraud labels beyond those the
    twin knows (only matter with a label delay under a day).
    """
    since = twin.since_ms
    events = prepare_events(today)
    if events.height:
        first, last = events.get_column("_ms").min(), events.get_column("_ms").max()
        if first < since or last >= since + DAY_MS:
            raise FeatureInputError(
                f"the twin as of {twin.as_of.isoformat()} serves transactions of that day only; got "
                f"{_iso(first)} .. {_iso(last)}"
            )
    targets = events if txn_ids is None else events.filter(pl.col("txn_id").is_in(list(txn_ids)))
    recent = twin.recent.with_columns(pl.col("ts").dt.epoch("ms").alias("_ms"))
    day_rows = events.with_columns(pl.lit(None, pl.Int8).alias("_large")).select(recent.columns)
    context = pl.concat([recent, day_rows], how="vertical_relaxed")
    context = _relevant(context, targets, since, peer_groups)
    known = twin.label_events if twin.meta.get("labels") is not None else None
    if labels is not None:
        extra = label_events(context, labels, twin.label_delay_days)
        known = extra if known is None else pl.concat([known, extra]).unique()
    ctx = FeatureContext(
        context, twin.label_delay_days, known, peer_groups,
        history=history_state(twin, peer_groups), fields=twin.fields | present_fields(events),
    )
    features = compute_features(ctx)
    out = pl.concat([context, features], how="horizontal")
    wanted = targets.select("txn_id")
    out = out.join(wanted, on="txn_id", how="semi")
    return events.join(out.select("txn_id", *features.columns), on="txn_id", how="inner", maintain_order="left").drop("_ms")


def features_for_day(
    tx: pl.LazyFrame | pl.DataFrame,
    day: date,
    labels: pl.DataFrame | None,
    label_delay_days: float,
    peer_groups: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Every feature of one business day's transactions from the history before it alone: the twin
    as of `day`, then the online path. Days are independent of each other, so they can be computed
    in parallel on different workers and still equal the batch path."""
    twin = build_twin(tx, day, labels, label_delay_days)
    today = tx.lazy().filter(pl.col("date").cast(pl.String) == day.isoformat()).collect()
    return online_features(twin, today, peer_groups=peer_groups)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="seconds")
