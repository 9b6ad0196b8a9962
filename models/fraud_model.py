"""The fraud scorer: a PyOD anomaly detector whose score feeds a LightGBM classifier.

Pure training and scoring logic on Polars frames; registry work lives in models.registry.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import lightgbm as lgb
import mlflow.pyfunc
import numpy as np
import polars as pl
from pyod.models.ecod import ECOD

from features.definitions import MODEL_FEATURES
from models.evaluation import binary_metrics

ANOMALY_SAMPLE_ROWS = 200_000  # ECOD is O(n log n) per feature; a sample fits the tails well


def feature_matrix(features: pl.DataFrame, columns: tuple[str, ...] = MODEL_FEATURES) -> np.ndarray:
    return features.select(pl.col(c).cast(pl.Float64) for c in columns).to_numpy()


class FraudScorer(mlflow.pyfunc.PythonModel):
    """ECOD anomaly score (0..1, rank against training data) + LightGBM probability of fraud."""

    def __init__(self, detector: ECOD, reference_scores: np.ndarray, booster_text: str, columns: tuple[str, ...]):
        self.detector = detector
        self.reference_scores = np.sort(reference_scores)
        self.booster_text = booster_text
        self.columns = tuple(columns)
        self._booster: lgb.Booster | None = None

    @property
    def booster(self) -> lgb.Booster:
        if self._booster is None:
            self._booster = lgb.Booster(model_str=self.booster_text)
        return self._booster

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_booster"] = None
        return state

    def anomaly_scores(self, x: np.ndarray) -> np.ndarray:
        raw = self.detector.decision_function(np.nan_to_num(x, nan=0.0))
        return np.searchsorted(self.reference_scores, raw, side="right") / len(self.reference_scores)

    def score(self, features: pl.DataFrame) -> pl.DataFrame:
        x = feature_matrix(features, self.columns)
        anomaly = self.anomaly_scores(x)
        proba = self.booster.predict(np.column_stack([x, anomaly]), num_threads=2)
        return pl.DataFrame({"score": proba, "anomaly_score": anomaly})

    def predict(self, context, model_input, params=None):
        frame = pl.from_pandas(model_input) if not isinstance(model_input, pl.DataFrame) else model_input
        return self.score(frame).to_pandas()


@dataclass
class TrainWindows:
    train_start: datetime
    train_end: datetime  # exclusive
    test_start: datetime
    test_end: datetime  # exclusive

    @classmethod
    def before(cls, score_day_start: datetime, first_ts: datetime, test_days: int, delay_days: int) -> "TrainWindows":
        test_end = score_day_start
        test_start = test_end - timedelta(days=test_days)
        train_end = test_start - timedelta(days=delay_days)
        if train_end <= first_ts:
            raise ValueError(
                f"not enough history: training would end at {train_end:%Y-%m-%d}, before the data starts "
                f"({first_ts:%Y-%m-%d}); generate more days or shorten the test window / label delay"
            )
        return cls(first_ts, train_end, test_start, test_end)


def attach_labels(features: pl.DataFrame, labels: pl.DataFrame, known_before: datetime | None) -> pl.DataFrame:
    """label = 1 only for frauds reported before `known_before` (None: every label we have)."""
    known = labels if known_before is None else labels.filter(pl.col("reported_at") < known_before)
    return features.join(known.select("txn_id", "label"), on="txn_id", how="left").with_columns(
        pl.col("label").fill_null(0).cast(pl.Int8)
    )


@dataclass
class TrainResult:
    scorer: FraudScorer
    metrics: dict[str, float]
    params: dict
    test_scored: pl.DataFrame


LGB_PARAMS = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "scale_pos_weight": 10.0,  # frauds are <1% of rows; a moderate weight, not full rebalancing
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 2,
    "verbosity": -1,
}


def train_fraud_model(
    features: pl.DataFrame, labels: pl.DataFrame, windows: TrainWindows, seed: int = 7
) -> TrainResult:
    train = features.filter(pl.col("ts") < windows.train_end)
    train = attach_labels(train, labels, known_before=windows.test_start)
    test = features.filter((pl.col("ts") >= windows.test_start) & (pl.col("ts") < windows.test_end))
    test = attach_labels(test, labels, known_before=None)
    if train.get_column("label").sum() == 0:
        raise ValueError("no fraud labels known in the training window: cannot train a classifier")

    x_train = feature_matrix(train)
    sample = np.random.default_rng(seed).permutation(len(x_train))[:ANOMALY_SAMPLE_ROWS]
    detector = ECOD(n_jobs=1)
    detector.fit(np.nan_to_num(x_train[sample], nan=0.0))
    reference = detector.decision_scores_
    scorer = FraudScorer(detector, reference, "", MODEL_FEATURES)
    anomaly_train = scorer.anomaly_scores(x_train)

    # Early stopping on the last fifth of the training window, in time order.
    cut = train.get_column("ts").quantile(0.8)
    is_fit = (train.get_column("ts") < cut).to_numpy()
    xa = np.column_stack([x_train, anomaly_train])
    y = train.get_column("label").to_numpy()
    names = [*MODEL_FEATURES, "anomaly_score"]
    params = {**LGB_PARAMS, "seed": seed}
    fit_set = lgb.Dataset(xa[is_fit], y[is_fit], feature_name=names, free_raw_data=True)
    valid_set = lgb.Dataset(xa[~is_fit], y[~is_fit], reference=fit_set)
    booster = lgb.train(
        params, fit_set, num_boost_round=400, valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(40, verbose=False)],
    )
    scorer.booster_text = booster.model_to_string(num_iteration=booster.best_iteration)

    test_scored = pl.concat([test, scorer.score(test)], how="horizontal")
    metrics = binary_metrics(test_scored)
    metrics.update(
        train_rows=float(train.height), train_frauds=float(train.get_column("label").sum()),
        best_iteration=float(booster.best_iteration),
    )
    run_params = {
        **{k: v for k, v in params.items() if k not in ("verbosity",)},
        "train_start": windows.train_start.isoformat(), "train_end": windows.train_end.isoformat(),
        "test_start": windows.test_start.isoformat(), "test_end": windows.test_end.isoformat(),
        "anomaly_detector": "pyod.ECOD", "features": ",".join(MODEL_FEATURES),
    }
    return TrainResult(scorer, metrics, run_params, test_scored)
