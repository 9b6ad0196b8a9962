"""Merchant relationships: the customer x counterparty pair, and the counterparty's own record,
including its fraud rate from labels that were usable at the time (reported, plus the label delay)."""
from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl

from features.context import ENTITY_KEYS, LABELS_FIELD, FeatureContext
from features.spec import FeatureColumns, DAY_MS, WINDOW_MS, Feature, family
from features.velocity import amount_history

HIGH_AMOUNT_PERCENTILE = 0.9
RISK_WINDOWS = ("1d", "7d", "30d")
_RISK_MS = {"1d": DAY_MS, "7d": WINDOW_MS["7d"], "30d": WINDOW_MS["30d"]}
KNOWN_RISK_WINDOW = "30d"  # how far back "known as risky since" looks

TIMELINES = ("customer", "pair", "counterparty")  # entity timelines this family reads
CACHED = ("_amount_history", "_pair_open")  # shared values it reads

FEATURES = family(
    "merchant",
    Feature(
        "first_time_counterparty", "customer x counterparty", "all",
        "the customer has never paid this merchant or payee before", ("customer_id", "counterparty", "ts"), dtype=pl.Int8,
    ),
    Feature(
        "pair_txn_count", "customer x counterparty", "all",
        "the customer's earlier transactions with this counterparty", ("customer_id", "counterparty", "ts"), dtype=pl.Int32,
    ),
    Feature(
        "pair_tenure_days", "customer x counterparty", "all",
        "days since the customer's first transaction with this counterparty", ("customer_id", "counterparty", "ts"),
    ),
    Feature(
        "pair_spend_share", "customer x counterparty", "all",
        "this counterparty's share of the customer's earlier amount", ("customer_id", "counterparty", "ts", "amount_paise"),
    ),
    Feature(
        "merchant_fan_in", "counterparty", "all", "distinct customers who transacted with this counterparty before",
        ("customer_id", "counterparty", "ts"), dtype=pl.Int32,
    ),
    Feature(
        "merchant_txn_count_7d", "counterparty", "7d", "the counterparty's transactions in the 7 days before",
        ("counterparty", "ts"), dtype=pl.Int32,
    ),
    Feature(
        "merchant_fraud_count_known", "counterparty", "all",
        "frauds at this counterparty whose labels were usable before (reported + label delay)",
        ("counterparty", "ts", LABELS_FIELD), dtype=pl.Int32,
    ),
    *(
        Feature(
            f"merchant_fraud_count_{w}", "counterparty", w,
            f"fraud labels at this counterparty that became usable in the {w} before (a count: one fraud at a "
            "quiet terminal and ten at a busy one give the same rate)",
            ("counterparty", "ts", LABELS_FIELD), dtype=pl.Int32,
        )
        for w in RISK_WINDOWS
    ),
    *(
        Feature(
            f"merchant_fraud_rate_{w}", "counterparty", w,
            f"fraud labels at this counterparty that became usable in the {w} before, over its transactions "
            f"in the {w} window one label delay earlier",
            ("counterparty", "ts", LABELS_FIELD),
        )
        for w in RISK_WINDOWS
    ),
    Feature(
        "merchant_days_since_fraud_known", "counterparty", "all",
        "days since a fraud label at this counterparty last became usable (null: none yet)",
        ("counterparty", "ts", LABELS_FIELD),
    ),
    Feature(
        "merchant_fraud_known_for_days", "counterparty", KNOWN_RISK_WINDOW,
        f"days since the earliest fraud label at this counterparty that became usable in the {KNOWN_RISK_WINDOW} "
        "before: how long it has been known as risky (null: no such label)",
        ("counterparty", "ts", LABELS_FIELD),
    ),
    Feature(
        "new_counterparty_high_amount", "customer x counterparty", "all",
        "first time with this counterparty and above the customer's 90th percentile amount",
        ("customer_id", "counterparty", "ts", "amount_paise"), dtype=pl.Int8,
    ),
)


def label_usable_at(label_delay_days: float) -> pl.Expr:
    """When a label may be used: its report (or, unreported, its transaction's time) plus the delay.
    The one rule for features and for training, so both see the same labels."""
    return pl.coalesce(pl.col("reported_at"), pl.col("ts")) + timedelta(days=label_delay_days)


def label_events(events: pl.DataFrame, labels: pl.DataFrame, label_delay_days: float) -> pl.DataFrame:
    """counterparty, customer_id, available_ms: when each fraud label became usable (label_usable_at),
    and whose it is on either side of the payment."""
    frauds = labels.lazy().filter(pl.col("label") == 1).select("txn_id", "reported_at")
    return (
        events.lazy().select("txn_id", "counterparty", "customer_id", "ts")
        .join(frauds, on="txn_id", how="inner")
        .select(
            "counterparty", "customer_id",
            label_usable_at(label_delay_days).dt.epoch("ms").alias("available_ms"),
        )
        .collect()
    )


def usable_fraud_labels(ctx: FeatureContext, kind: str):
    """The fraud labels of each row's entity (counterparty or customer), by when they became usable."""
    labels = ctx.label_events
    codes = ctx.codes_of(kind, labels.get_column(ENTITY_KEYS[kind][0]))
    available = labels.get_column("available_ms").to_numpy()
    return ctx.timeline(kind).events_before(codes, available, ctx.origin_ms())


def pair_openings(ctx: FeatureContext) -> np.ndarray:
    """1 on the row that first links a customer to a counterparty (rows of pairs the twin already knows: 0)."""
    if "_pair_open" not in ctx._columns:
        tl = ctx.timeline("pair")
        opens = tl.put(tl.opens_entity().astype(np.float64), fill=0.0)
        ctx._columns["_pair_open"] = np.where(ctx.has_before("pair"), 0.0, opens)
    return ctx._columns["_pair_open"]


def compute(ctx: FeatureContext) -> dict[str, np.ndarray | pl.Series]:
    if not ctx.has("counterparty"):
        return {}
    out = FeatureColumns(FEATURES)
    paise = ctx.column("amount_paise").astype(np.int64)
    pair = ctx.timeline("pair")
    counterparty_known = ctx.events.get_column("counterparty").is_not_null().to_numpy()
    pair_n = pair.put(pair.counted_before()) + ctx.before("pair", "txn_count")
    out["pair_txn_count"] = pair_n
    first_time = np.where(counterparty_known, (pair_n == 0).astype(np.float64), np.nan)
    out["first_time_counterparty"] = first_time
    first_ms = ctx.before("pair", "first_ms", np.nan)
    first_ms = np.where(np.isnan(first_ms), pair.put(pair.first_time()), first_ms)
    out["pair_tenure_days"] = (ctx.ms - first_ms) / DAY_MS
    pair_spend = pair.put(pair.sum_before(pair.take(paise))) + ctx.before("pair", "amount_sum_paise")
    customer = ctx.timeline("customer")
    customer_spend = customer.put(customer.sum_before(customer.take(paise))) + ctx.before("customer", "amount_sum_paise")
    out["pair_spend_share"] = np.where(
        customer_spend > 0, pair_spend / np.where(customer_spend > 0, customer_spend, 1), np.nan
    )
    del pair_n, first_ms, pair_spend, customer_spend  # each a float64 per row: freed before the windows below

    merchant = ctx.timeline("counterparty")
    fan_in = merchant.put(merchant.sum_before(merchant.take(pair_openings(ctx)))) + ctx.before("counterparty", "fan_in")
    out["merchant_fan_in"] = np.where(counterparty_known, fan_in, np.nan)
    del fan_in, pair
    ctx.forget("pair")  # no later family reads it
    delay = ctx.label_delay_ms
    specs = {"count_7d": (None, "sum", WINDOW_MS["7d"]), "count_delay": (None, "sum", delay)}
    for w in RISK_WINDOWS:  # transactions in [t - delay - w, t - delay): the window (delay + w) minus the last `delay`
        specs[f"count_delay_{w}"] = (None, "sum", delay + _RISK_MS[w])
    if delay == 0:  # no delay: nothing to subtract
        del specs["count_delay"]
    counts = merchant.rolling({}, specs)
    counts.setdefault("count_delay", np.zeros(len(merchant)))
    out["merchant_txn_count_7d"] = merchant.put(counts["count_7d"])
    if ctx.has(LABELS_FIELD):
        usable_labels = usable_fraud_labels(ctx, "counterparty")
        out["merchant_fraud_count_known"] = merchant.put(usable_labels.before())
        out["merchant_days_since_fraud_known"] = merchant.put(usable_labels.since_latest() / DAY_MS)
        out["merchant_fraud_known_for_days"] = merchant.put(
            usable_labels.since_earliest(_RISK_MS[KNOWN_RISK_WINDOW]) / DAY_MS
        )
        for w in RISK_WINDOWS:
            usable = usable_labels.before(_RISK_MS[w])
            out[f"merchant_fraud_count_{w}"] = merchant.put(usable)
            exposed = counts[f"count_delay_{w}"] - counts["count_delay"]
            out[f"merchant_fraud_rate_{w}"] = merchant.put(np.where(exposed > 0, usable / np.maximum(exposed, 1), np.nan))
        del usable_labels, usable, exposed
    del counts
    percentile = amount_history(ctx)["percentile"]
    out["new_counterparty_high_amount"] = np.where(
        np.isnan(percentile) | np.isnan(first_time), np.nan, (first_time == 1) & (percentile > HIGH_AMOUNT_PERCENTILE)
    )
    return out
