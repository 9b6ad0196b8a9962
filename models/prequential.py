"""Prequential evaluation: train -> label-delay gap -> test, repeated over consecutive test windows."""
from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from models.fraud_model import TrainWindows, train_fraud_model


def prequential_windows(
    data_start: datetime, data_end: datetime, train_days: int, delay_days: int, test_days: int, n_windows: int
) -> list[TrainWindows]:
    """The latest n_windows test windows that end by data_end, oldest first, each with its own
    train window of train_days ending delay_days before the test starts."""
    windows = []
    test_end = data_end
    for _ in range(n_windows):
        test_start = test_end - timedelta(days=test_days)
        train_end = test_start - timedelta(days=delay_days)
        train_start = max(data_start, train_end - timedelta(days=train_days))
        if train_end <= data_start + timedelta(days=1):
            break
        windows.append(TrainWindows(train_start, train_end, test_start, test_end))
        test_end = test_start
    if not windows:
        raise ValueError(
            f"no evaluation window fits between {data_start:%Y-%m-%d} and {data_end:%Y-%m-%d} with "
            f"{train_days} training, {delay_days} delay and {test_days} test days"
        )
    return windows[::-1]


def prequential_evaluation(
    features: pl.DataFrame, labels: pl.DataFrame, windows: list[TrainWindows], delay_days: int, seed: int = 7
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One row of metrics per window, and recall per typology per window."""
    rows, typologies = [], []
    for i, window in enumerate(windows):
        result = train_fraud_model(features, labels, window, delay_days, seed=seed)
        rows.append({"window": i, "test_start": window.test_start.date().isoformat(), **result.metrics})
        typologies.append(result.per_typology.with_columns(pl.lit(i).alias("window")))
    return pl.DataFrame(rows), pl.concat(typologies, how="diagonal_relaxed")


def summarise(table: pl.DataFrame) -> pl.DataFrame:
    """Mean and standard deviation of every metric across windows."""
    metrics = [c for c in table.columns if c not in ("window", "test_start")]
    return pl.DataFrame(
        {
            "metric": metrics,
            "mean": [table.get_column(m).mean() for m in metrics],
            "std": [table.get_column(m).std() for m in metrics],
        }
    )
