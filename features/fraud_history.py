"""Fraud history: the customer's own confirmed frauds, from labels usable at the time (reported, plus
the label delay). A card or account that was defrauded recently is often still in the fraudster's
hands until it is blocked, so its next payments carry more risk."""
from __future__ import annotations

import numpy as np
import polars as pl

from features.context import LABELS_FIELD, FeatureContext
from features.merchant import usable_fraud_labels
from features.spec import DAY_MS, WINDOW_MS, FeatureColumns, Feature, family

TIMELINES = ("customer",)  # entity timelines this family reads
CACHED = ()  # shared values it reads

FEATURES = family(
    "fraud_history",
    Feature(
        "customer_fraud_count_known", "customer", "all",
        "the customer's frauds whose labels were usable before (reported + label delay)",
        ("customer_id", "ts", LABELS_FIELD), dtype=pl.Int32,
    ),
    Feature(
        "customer_fraud_count_known_30d", "customer", "30d",
        "the customer's fraud labels that became usable in the 30 days before",
        ("customer_id", "ts", LABELS_FIELD), dtype=pl.Int32,
    ),
    Feature(
        "customer_days_since_fraud_known", "customer", "all",
        "days since one of the customer's fraud labels last became usable (null: none yet)",
        ("customer_id", "ts", LABELS_FIELD),
    ),
)


def compute(ctx: FeatureContext) -> dict[str, np.ndarray | pl.Series]:
    if not ctx.has(LABELS_FIELD):
        return {}
    tl = ctx.timeline("customer")
    usable = usable_fraud_labels(ctx, "customer")
    out = FeatureColumns(FEATURES)
    out["customer_fraud_count_known"] = tl.put(usable.before())
    out["customer_fraud_count_known_30d"] = tl.put(usable.before(WINDOW_MS["30d"]))
    out["customer_days_since_fraud_known"] = tl.put(usable.since_latest() / DAY_MS)
    return out
