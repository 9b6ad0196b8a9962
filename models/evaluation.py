"""Fraud-detection metrics the way the field reports them: AUC, AP and card precision@k per day."""
from __future__ import annotations

import polars as pl
from sklearn.metrics import average_precision_score, roc_auc_score


def card_precision_at_k(scored: pl.DataFrame, k: int = 100) -> float:
    """Mean over days of: of the k customers with the highest max score that day, the share with fraud.

    `scored` needs customer_id, date, score, label.
    """
    if scored.height == 0:
        return float("nan")
    daily = (
        scored.group_by("date", "customer_id")
        .agg(pl.col("score").max().alias("score"), pl.col("label").max().alias("fraud"))
        .sort("date", "score", "customer_id", descending=[False, True, False])
        .group_by("date", maintain_order=True)
        .head(k)
        .group_by("date")
        .agg((pl.col("fraud").sum() / k).alias("precision"))
    )
    return float(daily.get_column("precision").mean())


def binary_metrics(scored: pl.DataFrame, k: int = 100) -> dict[str, float]:
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
    metrics[f"card_precision_at_{k}"] = card_precision_at_k(scored, k)
    return metrics
