"""The service's fast evaluation of the champion gives the registered model's own numbers."""
from __future__ import annotations

import numpy as np
import polars as pl

from models.fraud_model import feature_matrix
from models.registry import load_alias
from scoring_support import DAY, MODEL_NAME, scoring_dataset  # noqa: F401
from service.fast_scorer import FastScorer


def test_the_fast_scorer_equals_the_champion(scoring_dataset):
    scorer, _ = load_alias(MODEL_NAME, "champion")
    features = scoring_dataset.batch.filter(pl.col("date") == DAY).head(300)
    expected = scorer.score_with_reasons(features)
    fast = FastScorer(scorer)
    x = feature_matrix(features, scorer.columns)
    for rows in (slice(0, 1), slice(0, 64), slice(0, len(x))):
        score, anomaly, reasons = fast.score(x[rows])
        assert np.array_equal(score, expected.get_column("score").to_numpy()[rows])
        assert np.array_equal(anomaly, expected.get_column("anomaly_score").to_numpy()[rows])
        assert reasons == expected.get_column("reasons").to_list()[rows]
    explain = np.arange(len(x)) % 3 == 0
    _, _, some = fast.score(x, explain)
    assert [r for r, e in zip(some, explain) if e] == expected.get_column("reasons").filter(pl.Series(explain)).to_list()
    assert all(r == [] for r, e in zip(some, explain) if not e)
    assert any(len(r) for r in some)
