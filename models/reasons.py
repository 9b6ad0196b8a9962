"""Reason codes: each score's top contributing features (LightGBM contributions) as readable text."""
from __future__ import annotations

import numpy as np
import polars as pl

from features.definitions import CATALOGUE

DESCRIPTIONS = {f.name: f.description for f in CATALOGUE} | {
    "anomaly_score": "unusual for the population (anomaly ensemble rank)",
}


def _formatted(value: pl.Expr) -> pl.Expr:
    whole = (value - value.round(0)).abs() < 1e-9
    return (
        pl.when(value.is_null() | value.is_nan()).then(pl.lit("no history"))
        .when(whole).then(value.round(0).cast(pl.Int64).cast(pl.String))
        .otherwise(value.round(2).cast(pl.String))
    )


def top_reasons(contributions: np.ndarray, values: np.ndarray, names: list[str], top_k: int = 3) -> pl.Series:
    """Per row, the top_k features that raised the score most, as 'description: value' (vectorised).

    contributions: (rows, features) SHAP-style contributions with the bias column dropped.
    """
    n = contributions.shape[0]
    order = np.argsort(-contributions, axis=1)[:, :top_k]
    rows = np.arange(n)[:, None]
    described = np.array([DESCRIPTIONS.get(name, name) for name in names], dtype=object)
    frame = pl.DataFrame(
        {
            **{f"d{k}": described[order[:, k]].astype(str) for k in range(order.shape[1])},
            **{f"v{k}": values[rows[:, 0], order[:, k]].astype(np.float64) for k in range(order.shape[1])},
            **{f"c{k}": contributions[rows[:, 0], order[:, k]] for k in range(order.shape[1])},
        }
    )
    reasons = [
        pl.when(pl.col(f"c{k}") > 0).then(pl.concat_str(pl.col(f"d{k}"), pl.lit(": "), _formatted(pl.col(f"v{k}"))))
        for k in range(order.shape[1])
    ]
    return frame.select(pl.concat_list(reasons).list.drop_nulls().alias("reasons")).to_series()
