"""Spending velocity: how much and how fast the customer spends, against their own history."""
from __future__ import annotations

import numpy as np
import polars as pl

from features.basic import amount_log10_rupees
from features.context import FeatureContext
from features.spec import FeatureColumns, WINDOW_MS, Feature, family

AMOUNT_BUCKETS = 40  # fifth-of-a-decade bands of log10(rupees) from INR 1 up to INR 10 crore
BUCKETS_PER_DECADE = 5
LARGE_PERCENTILE = 0.95  # "unusually large": above the customer's 95th percentile ...
LARGE_MIN_HISTORY = 20  # ... once the customer has at least this many earlier transactions
MIN_LOG_STD = 0.1  # z-score floor on the spread of log10 amounts: a fixed salary has none

_WINDOW_WORDS = {"10m": "10 minutes", "1h": "hour", "24h": "24 h", "7d": "7 days", "30d": "30 days"}

TIMELINES = ("customer",)  # entity timelines this family reads
CACHED = ("_customer_windows", "_amount_history", "_log_amount")  # shared values it reads

FEATURES = family(
    "velocity",
    *(
        Feature(
            f"txn_count_{w}", "customer", w, f"customer's transactions in the {_WINDOW_WORDS[w]} before",
            ("customer_id", "ts"), dtype=pl.Int32,
        )
        for w in WINDOW_MS
    ),
    *(
        Feature(
            f"amount_sum_{w}_rupees", "customer", w, f"customer's amount in rupees in the {_WINDOW_WORDS[w]} before",
            ("customer_id", "ts", "amount_paise"), dtype=pl.Float64,
        )
        for w in WINDOW_MS
    ),
    Feature(
        "amount_vs_30d_mean", "customer", "30d",
        "amount over the customer's mean amount in the 30 days before (null without history)",
        ("customer_id", "ts", "amount_paise"),
    ),
    Feature(
        "amount_to_max_30d", "customer", "30d", "amount over the customer's largest amount in the 30 days before",
        ("customer_id", "ts", "amount_paise"),
    ),
    Feature(
        "amount_log_zscore", "customer", "all",
        "z-score of log10(amount) against the customer's earlier amounts (spread floored at 0.1 decade)",
        ("customer_id", "ts", "amount_paise"),
    ),
    Feature(
        "amount_percentile", "customer", "all",
        "share of the customer's earlier amounts below this one (fifth-of-a-decade histogram, interpolated)",
        ("customer_id", "ts", "amount_paise"),
    ),
    Feature(
        "large_amount_count_7d", "customer", "7d",
        "customer's transactions in the 7 days before that were above their own 95th percentile",
        ("customer_id", "ts", "amount_paise"), dtype=pl.Int32,
    ),
    Feature(
        "count_acceleration_1h_24h", "customer", "24h",
        "transactions in the hour before over the hourly rate of the 24 h before", ("customer_id", "ts"),
    ),
    Feature(
        "spend_acceleration_24h_30d", "customer", "30d",
        "amount in the 24 h before over the daily amount of the 30 days before", ("customer_id", "ts", "amount_paise"),
    ),
    Feature(
        "inflow_24h_rupees", "customer", "24h", "credits to the customer in the 24 h before, rupees",
        ("customer_id", "ts", "amount_paise", "direction"), dtype=pl.Float64,
    ),
    Feature(
        "net_flow_7d_rupees", "customer", "7d", "credits minus debits of the customer in the 7 days before, rupees",
        ("customer_id", "ts", "amount_paise", "direction"), dtype=pl.Float64,
    ),
)


# Lower edges of bands 1..39 in integer paise, so a round amount never lands in a band by float luck.
BUCKET_EDGES_PAISE = np.round(100 * 10 ** (np.arange(1, AMOUNT_BUCKETS) / BUCKETS_PER_DECADE)).astype(np.int64)


def amount_bucket(paise: np.ndarray) -> np.ndarray:
    """Histogram band of each amount (0 .. AMOUNT_BUCKETS-1)."""
    return np.searchsorted(BUCKET_EDGES_PAISE, paise, side="right")


def _bucket_position(paise: np.ndarray, bucket: np.ndarray) -> np.ndarray:
    """Where each amount sits inside its band, 0..1 on the log scale."""
    scaled = paise / 100  # the steps in place: one working array instead of six
    np.maximum(scaled, 0.01, out=scaled)
    np.log10(scaled, out=scaled)
    scaled *= BUCKETS_PER_DECADE
    scaled -= bucket
    return np.clip(scaled, 0, 1, out=scaled)


def _ratio(part: np.ndarray, whole: np.ndarray, defined: np.ndarray) -> np.ndarray:
    """part / whole where defined, else NaN, into one new array."""
    return np.divide(part, whole, out=np.full(len(whole), np.nan), where=defined)


def amount_history(ctx: FeatureContext) -> dict[str, np.ndarray]:
    """Per row: earlier transactions, their log10-amount sums and the amount percentile (cached)."""
    if "_amount_history" in ctx._columns:
        return ctx._columns["_amount_history"]
    tl = ctx.timeline("customer")
    x = ctx.values("_log_amount", amount_log10_rupees())
    n = tl.put(tl.counted_before()) + ctx.before("customer", "txn_count")
    s1 = tl.put(tl.sum_before(tl.take(x))) + ctx.before("customer", "log_amount_sum")
    s2 = tl.put(tl.sum_before(tl.take(x * x))) + ctx.before("customer", "log_amount_sq_sum")
    paise = ctx.column("amount_paise")
    bucket = amount_bucket(paise)
    position = _bucket_position(paise, bucket)
    same, below = tl.bucket_counts_before(tl.take(bucket), AMOUNT_BUCKETS)
    same_all, below_all = tl.put(same), tl.put(below)
    del same, below
    histogram = ctx.before_list("customer", "amount_hist", AMOUNT_BUCKETS)
    if histogram is not None:  # online: add the twin's histogram
        rows = np.arange(ctx.n)
        same_all += histogram[rows, bucket]
        below_all += np.where(bucket > 0, np.cumsum(histogram, axis=1)[rows, np.maximum(bucket - 1, 0)], 0)
    percentile = np.where(n > 0, (below_all + position * same_all) / np.where(n > 0, n, 1), np.nan)
    result = {"n": n, "log_sum": s1, "log_sq_sum": s2, "x": x, "percentile": percentile}
    ctx._columns["_amount_history"] = result
    return result


def large_amount_flags(ctx: FeatureContext) -> np.ndarray:
    """1 where the amount was above the customer's 95th percentile at the time (given ≥ 20 earlier)."""
    h = amount_history(ctx)
    flags = ((h["percentile"] > LARGE_PERCENTILE) & (h["n"] >= LARGE_MIN_HISTORY)).astype(np.int64)
    if "_large" in ctx.events.columns:  # recent events from the twin carry the flag their history gave them
        known = ctx.events.get_column("_large").cast(pl.Float64).fill_null(np.nan).to_numpy()
        flags = np.where(np.isnan(known), flags, known).astype(np.int64)
    return flags


def customer_windows(ctx: FeatureContext) -> dict[str, np.ndarray]:
    """Per row (timeline order): the customer's counts and amounts in each window, and what the
    30-day window holds (first instant, largest amount); computed once for timing and velocity."""
    if "_customer_windows" not in ctx._columns:
        tl = ctx.timeline("customer")
        values = {"paise": tl.take(ctx.column("amount_paise").astype(np.int64)), "time": tl.time}
        specs = {}
        for w, window_ms in WINDOW_MS.items():
            specs[f"count_{w}"] = (None, "sum", window_ms)
            specs[f"paise_{w}"] = ("paise", "sum", window_ms)
        specs["first_time_30d"] = ("time", "min", WINDOW_MS["30d"])
        specs["max_paise_30d"] = ("paise", "max", WINDOW_MS["30d"])
        if ctx.has("direction"):
            amount, direction = pl.col("amount_paise").cast(pl.Int64), pl.col("direction")
            flows = ctx.events.select(  # one parallel query; no direction counts as neither
                pl.when(direction == "CREDIT").then(amount).otherwise(0).alias("inflow"),
                pl.when(direction == "CREDIT").then(amount).when(direction == "DEBIT").then(-amount)
                .otherwise(0).alias("net"),
            )
            values["inflow"] = tl.take(flows.get_column("inflow").to_numpy())
            values["net"] = tl.take(flows.get_column("net").to_numpy())
            del flows
            specs["inflow_24h"] = ("inflow", "sum", WINDOW_MS["24h"])
            specs["net_7d"] = ("net", "sum", WINDOW_MS["7d"])
        ctx._columns["_customer_windows"] = tl.rolling(values, specs)
    return ctx._columns["_customer_windows"]


def compute(ctx: FeatureContext) -> dict[str, np.ndarray | pl.Series]:
    tl = ctx.timeline("customer")
    rupees = ctx.column("amount_paise") / 100
    windows = customer_windows(ctx)
    out = FeatureColumns(FEATURES)
    counts, sums = {}, {}
    for w in WINDOW_MS:
        count = tl.put(windows[f"count_{w}"])
        total = tl.put(windows[f"paise_{w}"]) / 100  # integer paise summed exactly, then rupees
        out[f"txn_count_{w}"] = count
        out[f"amount_sum_{w}_rupees"] = total
        if w in ("1h", "24h", "30d"):  # the ones read below: the others are freed as they go
            counts[w], sums[w] = count, total
        del count, total
    out["amount_vs_30d_mean"] = _ratio(rupees, sums["30d"] / np.maximum(counts["30d"], 1), counts["30d"] > 0)
    max_30d = tl.put(windows["max_paise_30d"]) / 100
    out["amount_to_max_30d"] = _ratio(rupees, max_30d, max_30d > 0)
    del max_30d

    h = amount_history(ctx)
    n = h["n"]
    mean = h["log_sum"] / np.where(n > 0, n, 1)
    var = (h["log_sq_sum"] - h["log_sum"] * mean) / np.where(n > 1, n - 1, 1)
    std = np.maximum(np.sqrt(np.maximum(var, 0)), MIN_LOG_STD)
    out["amount_log_zscore"] = np.where(n >= 2, (h["x"] - mean) / std, np.nan)
    del mean, var, std
    out["amount_percentile"] = h["percentile"]
    large = tl.rolling({"large": tl.take(large_amount_flags(ctx))}, {"large_7d": ("large", "sum", WINDOW_MS["7d"])})
    out["large_amount_count_7d"] = tl.put(large["large_7d"])
    out["count_acceleration_1h_24h"] = np.where(counts["24h"] > 0, counts["1h"] / (counts["24h"] / 24), np.nan)
    out["spend_acceleration_24h_30d"] = np.where(sums["30d"] > 0, sums["24h"] / (sums["30d"] / 30), np.nan)
    if ctx.has("direction"):
        out["inflow_24h_rupees"] = tl.put(windows["inflow_24h"]) / 100
        out["net_flow_7d_rupees"] = tl.put(windows["net_7d"]) / 100
    return out
