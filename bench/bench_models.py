"""Model benchmarks: LightGBM training on 5M rows, the PyOD ensemble fit on 1M rows, batch scoring.

The feature matrix is drawn at random with the shape of the real one (every model feature plus
the anomaly score, ~0.5% positives driven by a few features), so the figures measure the
libraries' work at the product's settings, not the feature pipeline.
"""
from __future__ import annotations

import resource
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import polars as pl

from features.definitions import MODEL_FEATURES
from models.anomaly import AnomalyEnsemble
from models.fraud_model import LGB_PARAMS, FraudScorer


def _matrix(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(MODEL_FEATURES))).astype(np.float64)
    logit = 2.5 * x[:, 0] + 2.0 * x[:, 1] - 9.0
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    return x, y


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main(out_dir: Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    figures: dict = {}

    x, y = _matrix(1_000_000, 1)
    start = time.perf_counter()
    ensemble = AnomalyEnsemble(seed=1)
    ensemble.fit(x)
    figures["pyod_fit_1m_rows_s"] = round(time.perf_counter() - start, 2)
    figures["pyod_detectors"] = ",".join(ensemble.detectors)

    x5, y5 = _matrix(5_000_000, 2)
    anomaly = np.random.default_rng(3).random(len(x5))
    xa = np.column_stack([x5, anomaly])
    del x5
    names = [*MODEL_FEATURES, "anomaly_score"]
    cut = int(len(xa) * 0.8)
    start = time.perf_counter()
    fit_set = lgb.Dataset(xa[:cut], y5[:cut], feature_name=names)
    valid_set = lgb.Dataset(xa[cut:], y5[cut:], reference=fit_set)
    booster = lgb.train(
        {**LGB_PARAMS, "seed": 7}, fit_set, num_boost_round=600, valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(50, verbose=False)],
    )
    figures["lightgbm_train_5m_rows_s"] = round(time.perf_counter() - start, 2)
    figures["lightgbm_rounds"] = booster.best_iteration
    figures["lightgbm_features"] = len(names)
    del xa, fit_set, valid_set

    scorer = FraudScorer(ensemble, booster.model_to_string(num_iteration=booster.best_iteration), MODEL_FEATURES)
    frame = pl.DataFrame(x, schema=list(MODEL_FEATURES), orient="row")
    scorer.score(frame.head(1000))  # warm-up
    start = time.perf_counter()
    scores = scorer.score(frame)
    elapsed = time.perf_counter() - start
    figures["batch_score_rows"] = scores.height
    figures["batch_score_txn_per_s"] = round(scores.height / elapsed)
    sample = frame.head(200_000)
    start = time.perf_counter()
    scorer.score_with_reasons(sample)
    figures["batch_score_with_reasons_txn_per_s"] = round(sample.height / (time.perf_counter() - start))
    figures["peak_rss_gib"] = round(_peak_rss_gib(), 2)
    return figures
