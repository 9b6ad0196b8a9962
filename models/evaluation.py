"""Fraud-detection evaluation the way the field reports it.

AUC-ROC and Average Precision per transaction; Card Precision@k per day (the k customers with
the highest max score that day, leaving out customers already known to be compromised and those
detected on earlier test days); recall at a fixed daily alert budget, overall and per typology.
"""
from __future__ import annotations

import polars as pl
from sklearn.metrics import average_precision_score, roc_auc_score


def card_precision_at_k(scored: pl.DataFrame, k: int = 100, known_compromised: pl.DataFrame | None = None) -> float:
    """scored: customer_id, date, score, label. known_compromised: customer_id, known_from (a date string):
    customers whose fraud was already reported by then are no longer candidates from that day on."""
    if scored.height == 0:
        return float("nan")
    daily = scored.group_by("date", "customer_id").agg(
        pl.col("score").max().alias("score"), pl.col("label").max().alias("fraud")
    )
    if known_compromised is not None and known_compromised.height:
        first_known = known_compromised.group_by("customer_id").agg(pl.col("known_from").min())
        daily = daily.join(first_known, on="customer_id", how="left").filter(
            pl.col("known_from").is_null() | (pl.col("known_from") > pl.col("date"))
        ).drop("known_from")
    detected: set[str] = set()
    precisions = []
    for day in sorted(daily.get_column("date").unique().to_list()):  # days, not rows: sequential by nature
        candidates = daily.filter((pl.col("date") == day) & ~pl.col("customer_id").is_in(list(detected)))
        top = candidates.sort("score", "customer_id", descending=[True, False]).head(k)
        hits = top.filter(pl.col("fraud") == 1)
        precisions.append(hits.height / k)
        detected.update(hits.get_column("customer_id").to_list())
    return sum(precisions) / len(precisions)


def recall_at_budget(scored: pl.DataFrame, budget: int) -> tuple[float, pl.DataFrame]:
    """Each day the `budget` highest-scored transactions are alerted; share of frauds caught, overall
    and per fraud_type (when present)."""
    ranked = scored.with_columns(
        (pl.col("score").rank("ordinal", descending=True).over("date") <= budget).alias("alerted")
    )
    frauds = ranked.filter(pl.col("label") == 1)
    overall = float(frauds.get_column("alerted").mean()) if frauds.height else float("nan")
    if "fraud_type" in frauds.columns and frauds.height:
        per_type = (
            frauds.group_by("fraud_type")
            .agg(pl.len().alias("frauds"), pl.col("alerted").sum().alias("caught"))
            .with_columns((pl.col("caught") / pl.col("frauds")).alias("recall"))
            .sort("fraud_type")
        )
    else:
        per_type = pl.DataFrame(schema={"fraud_type": pl.String, "frauds": pl.UInt32, "caught": pl.UInt32, "recall": pl.Float64})
    return overall, per_type


def binary_metrics(
    scored: pl.DataFrame, k: int = 100, budget: int = 100, known_compromised: pl.DataFrame | None = None
) -> dict[str, float]:
    y = scored.get_column("label").to_numpy()
    s = scored.get_column("score").to_numpy()
    positives = int(y.sum())
    metrics = {"test_rows": float(len(y)), "test_frauds": float(positives)}
    if 0 < positives < len(y):
        metrics["auc"] = float(roc_auc_score(y, s))
        metrics["average_precision"] = float(average_precision_score(y, s))
    else:
        metrics["auc"] = float("nan")
        metrics["average_precision"] = float("nan")
    metrics[f"card_precision_at_{k}"] = card_precision_at_k(scored, k, known_compromised)
    metrics[f"recall_at_{budget}_per_day"] = recall_at_budget(scored, budget)[0]
    return metrics
