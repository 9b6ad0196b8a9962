"""Peer group: how far the transaction is from what the customer's behavioural cluster does.

The clusters come from the models package (customer_id -> peer_group, built on twin vectors); pass
them as `peer_groups` to the batch and online paths. Without them the feature is null.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from features.context import FeatureContext
from features.spec import FeatureColumns, Feature, family
from features.velocity import MIN_LOG_STD, amount_history

TIMELINES = ("peer",)  # entity timelines this family reads
CACHED = ("_amount_history",)  # shared values it reads

FEATURES = family(
    "peer",
    Feature(
        "peer_amount_zscore", "peer group", "all",
        "z-score of log10(amount) against earlier amounts of the customer's peer group (needs clusters)",
        ("customer_id", "ts", "amount_paise", "peer_group"), in_model=False,
    ),
)


def compute(ctx: FeatureContext) -> dict[str, np.ndarray | pl.Series]:
    if not ctx.has("peer_group"):
        return {}
    tl = ctx.timeline("peer")
    x = amount_history(ctx)["x"]
    n = tl.put(tl.counted_before()) + ctx.before("peer", "txn_count")
    s1 = tl.put(tl.sum_before(tl.take(x))) + ctx.before("peer", "log_amount_sum")
    s2 = tl.put(tl.sum_before(tl.take(x * x))) + ctx.before("peer", "log_amount_sq_sum")
    mean = s1 / np.where(n > 0, n, 1)
    var = (s2 - s1 * mean) / np.where(n > 1, n - 1, 1)
    std = np.maximum(np.sqrt(np.maximum(var, 0)), MIN_LOG_STD)
    out = FeatureColumns(FEATURES)
    out["peer_amount_zscore"] = np.where(n >= 2, (x - mean) / std, np.nan)
    return out
