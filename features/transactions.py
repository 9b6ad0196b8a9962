"""Customer micro-pattern features over the canonical transaction table (Polars, point-in-time).

Every window is closed on the left: a transaction at time t sees only events strictly before t.
"""
from __future__ import annotations

import polars as pl

from finrisk.schema import BUSINESS_TZ, CHANNELS

KEYS = ("txn_id", "customer_id", "ts", "date")


def _prior(expr: pl.Expr, window: str) -> pl.Expr:
    return expr.rolling_sum_by("ts", window_size=window, closed="left").over("customer_id")


def customer_velocity_features(tx: pl.LazyFrame) -> pl.LazyFrame:
    """One row per transaction: keys plus every feature in the catalogue."""
    amount_rupees = pl.col("amount_paise") / 100
    local_ts = pl.col("ts").dt.convert_time_zone(BUSINESS_TZ)
    one = pl.col("amount_paise").is_not_null().cast(pl.Int32)  # a per-row 1, so windows can count
    sum_30d = _prior(amount_rupees, "30d")
    count_30d = _prior(one, "30d")
    return (
        tx.sort("customer_id", "ts", "txn_id")
        .with_columns(
            amount_rupees_log=(amount_rupees.clip(lower_bound=0.01)).log10(),
            hour_of_day=local_ts.dt.hour().cast(pl.Int8),
            is_night=(local_ts.dt.hour() < 6).cast(pl.Int8),
            channel_code=pl.col("channel").replace_strict(
                list(CHANNELS), list(range(len(CHANNELS))), default=-1, return_dtype=pl.Int8
            ),
            is_debit=(pl.col("direction") == "DEBIT").cast(pl.Int8),
            txn_count_1h=_prior(one, "1h").fill_null(0),
            txn_count_24h=_prior(one, "24h").fill_null(0),
            amount_sum_24h_rupees=_prior(amount_rupees, "24h").fill_null(0.0),
            amount_vs_30d_mean=pl.when(count_30d > 0).then(amount_rupees / (sum_30d / count_30d)),
            seconds_since_prev=(pl.col("ts") - pl.col("ts").shift(1).over("customer_id")).dt.total_seconds(),
            first_time_counterparty=(
                pl.int_range(pl.len()).over("customer_id", "counterparty", order_by=["ts", "txn_id"]) == 0
            ).cast(pl.Int8),
        )
    )
