"""Model logic on small real frames, and the MLflow registry on a real (temporary) store."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from features.definitions import MODEL_FEATURES
from models.anomaly import AnomalyEnsemble
from models.evaluation import card_precision_at_k, recall_at_budget
from models.fraud_model import TrainWindows, label_availability, train_fraud_model
from models.prequential import prequential_windows
from models.reasons import top_reasons


def test_card_precision_skips_known_and_already_detected_customers():
    scored = pl.DataFrame(
        {
            "date": ["d1", "d1", "d1", "d2", "d2", "d2"],
            "customer_id": ["A", "B", "C", "A", "B", "C"],
            "score": [0.9, 0.8, 0.1, 0.9, 0.8, 0.7],
            "label": [1, 0, 0, 1, 0, 1],
        }
    )
    # k=1. Day 1: A is top and fraudulent -> 1.0. Day 2: A was detected on day 1, so B (genuine) is top -> 0.
    assert card_precision_at_k(scored, k=1) == pytest.approx(0.5)
    # If A was already known compromised before day 1, day 1's top is B (0) and day 2's top is B (0).
    known = pl.DataFrame({"customer_id": ["A"], "known_from": ["d0"]})
    assert card_precision_at_k(scored, k=1, known_compromised=known) == 0.0
    # k=2 on day 2 without A: B and C, C is fraud -> 0.5; day 1: A, B -> 0.5.
    assert card_precision_at_k(scored, k=2) == pytest.approx(0.5)


def test_recall_at_budget_counts_per_day_and_typology():
    scored = pl.DataFrame(
        {
            "date": ["d1"] * 3 + ["d2"] * 3,
            "score": [0.9, 0.5, 0.1, 0.2, 0.3, 0.8],
            "label": [1, 0, 1, 0, 1, 0],
            "fraud_type": ["ato", None, "mule", None, "ato", None],
        }
    )
    overall, per_type = recall_at_budget(scored, budget=1)
    assert overall == pytest.approx(1 / 3)
    rows = {r["fraud_type"]: r["recall"] for r in per_type.iter_rows(named=True)}
    assert rows == {"ato": 0.5, "mule": 0.0}


def test_prequential_windows_are_ordered_and_gapped():
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    windows = prequential_windows(start, start + timedelta(days=60), train_days=21, delay_days=7, test_days=7, n_windows=3)
    assert len(windows) == 3
    for w in windows:
        assert w.train_end + timedelta(days=7) == w.test_start
        assert w.test_end - w.test_start == timedelta(days=7)
    assert [w.test_end for w in windows[:-1]] == [w.test_start for w in windows[1:]]
    with pytest.raises(ValueError, match="no evaluation window"):
        prequential_windows(start, start + timedelta(days=10), 21, 7, 7, 1)


def test_reasons_name_the_features_that_raised_the_score():
    contributions = np.array([[0.1, 2.0, -1.0], [-0.5, -0.2, -0.1]])
    values = np.array([[3.0, np.nan, 7.5], [1.0, 2.0, 3.0]])
    names = ["txn_count_1h", "amount_vs_30d_mean", "hour_of_day"]
    reasons = top_reasons(contributions, values, names, top_k=2).to_list()
    assert reasons[0][0].endswith(": no history") and "30 days" in reasons[0][0]
    assert reasons[0][1].endswith(": 3")
    assert reasons[1] == []  # nothing raised the second score


def test_anomaly_ensemble_ranks_outliers_high():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 5))
    x[:20] += 8
    x[50:60, 2] = np.nan
    scores = AnomalyEnsemble(("ecod", "copod", "hbos", "iforest"), seed=1).fit(x).score(x)
    assert scores.shape == (3000,)
    assert np.all((scores >= 0) & (scores <= 1))
    assert scores[:20].min() > np.quantile(scores[20:], 0.95)


def _synthetic_features(n_days=40, per_day=300, seed=3):
    """A feature table where fraud is driven by two features, plus labels reported 2 days late."""
    rng = np.random.default_rng(seed)
    n = n_days * per_day
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    ts = [start + timedelta(seconds=int(s)) for s in np.sort(rng.uniform(0, n_days * 86400, n))]
    data = {name: rng.normal(size=n) for name in MODEL_FEATURES}
    fraud = (data["amount_vs_30d_mean"] > 2.0) & (data["txn_count_1h"] > 0.5)
    frame = pl.DataFrame(
        {"txn_id": [f"T{i}" for i in range(n)], "customer_id": [f"C{i % 500}" for i in range(n)], "ts": ts, **data}
    ).with_columns(pl.col("ts").dt.cast_time_unit("us"), pl.col("ts").dt.date().cast(pl.String).alias("date"))
    labels = frame.filter(pl.Series(fraud)).select(
        "txn_id", pl.lit(1, pl.Int8).alias("label"), pl.lit("synthetic").alias("fraud_type"),
        (pl.col("ts") + pl.duration(days=2)).alias("reported_at"),
    )
    return frame, labels


def test_training_is_deterministic_and_uses_only_known_labels():
    features, labels = _synthetic_features()
    start = features.get_column("ts").min()
    windows = TrainWindows(start, start + timedelta(days=25), start + timedelta(days=30), start + timedelta(days=37))
    first = train_fraud_model(features, labels, windows, delay_days=7, seed=5)
    second = train_fraud_model(features, labels, windows, delay_days=7, seed=5)
    assert first.scorer.booster_text == second.scorer.booster_text
    assert first.metrics["auc"] > 0.9
    known = label_availability(features, labels, 7).filter(pl.col("available_at") < windows.test_start)
    in_train = known.join(features.filter(pl.col("ts") < windows.train_end).select("txn_id"), on="txn_id")
    assert first.metrics["train_frauds"] == in_train.height
    # Reported too late for training: labels reported after the test window starts are not used.
    late = labels.with_columns(pl.col("reported_at") + pl.duration(days=60))
    with pytest.raises(ValueError, match="no fraud labels known"):
        train_fraud_model(features, late, windows, delay_days=7, seed=5)


def test_training_and_features_agree_on_when_a_label_is_usable():
    from features.merchant import label_events

    t0 = datetime(2026, 1, 1, 10, tzinfo=timezone.utc)
    tx = pl.DataFrame({"txn_id": ["R", "U"], "customer_id": ["A", "B"], "counterparty": ["M", "N"], "ts": [t0, t0]})
    labels = pl.DataFrame({"txn_id": ["R", "U"], "label": [1, 1], "fraud_type": ["x", "y"],
                           "reported_at": [t0 + timedelta(days=2), None]}, schema_overrides={"label": pl.Int8})
    training = label_availability(tx, labels, 7).sort("txn_id").get_column("available_at").to_list()
    assert training == [t0 + timedelta(days=9), t0 + timedelta(days=7)]  # reported + delay; unreported: ts + delay
    feature_ms = label_events(tx, labels, 7).sort("counterparty").get_column("available_ms").to_list()
    assert feature_ms == [int(t.timestamp() * 1000) for t in training]


def test_registry_promotes_only_a_better_model(tmp_path):
    from mlflow import MlflowClient

    from models.registry import configure, list_versions, load_alias, log_and_register

    configure(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts", experiment="test-registry")
    features, labels = _synthetic_features()
    start = features.get_column("ts").min()
    good = TrainWindows(start, start + timedelta(days=25), start + timedelta(days=30), start + timedelta(days=37))
    strong = train_fraud_model(features, labels, good, delay_days=7, seed=5)
    # A weaker model: trained on its first 3 days only.
    weak = train_fraud_model(
        features, labels, TrainWindows(start, start + timedelta(days=3), good.test_start, good.test_end), 7, seed=5
    )
    name = "test-fraud"
    first = log_and_register(weak, name)
    assert first.promoted and first.champion_metric is None
    second = log_and_register(strong, name)
    assert second.promoted and second.champion_metric == pytest.approx(first.challenger_metric)
    third = log_and_register(weak, name)
    assert not third.promoted
    client = MlflowClient()
    assert int(client.get_model_version_by_alias(name, "champion").version) == second.version
    assert int(client.get_model_version_by_alias(name, "challenger").version) == third.version
    scorer, version = load_alias(name, "champion")
    assert version == second.version
    rescored = scorer.score_with_reasons(features.head(50))
    assert rescored.columns == ["score", "anomaly_score", "reasons"]
    assert list_versions(name).get_column("version").to_list() == [3, 2, 1]


def test_clusters_recover_distinct_behaviour_groups():
    from models.clustering import cluster_customers

    rng = np.random.default_rng(2)
    centres = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]], dtype=float)
    group = np.repeat(np.arange(4), 150)
    x = centres[group] + rng.normal(scale=0.5, size=(600, 3))
    vectors = pl.DataFrame({"customer_id": [f"C{i}" for i in range(600)], "a": x[:, 0], "b": x[:, 1], "c": x[:, 2]})
    result = cluster_customers(vectors, k_candidates=(2, 4, 6), seed=1)
    assert result.k == 4
    assert result.diagnostics.get_column("k").to_list() == [2, 4, 6]
    # Every true group maps to exactly one cluster.
    found = pl.DataFrame({"group": group, "cluster": result.assignments.get_column("peer_group")})
    assert found.group_by("group").agg(pl.col("cluster").n_unique()).get_column("cluster").max() == 1
    assert (result.assign(vectors) == result.assignments.get_column("peer_group").to_numpy()).all()


def test_a_champion_from_an_incompatible_release_is_replaced_not_a_crash(tmp_path):
    import copy

    import cloudpickle
    from mlflow import MlflowClient

    from models.registry import configure, log_and_register

    configure(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts", experiment="test-registry-old")
    features, labels = _synthetic_features()
    start = features.get_column("ts").min()
    windows = TrainWindows(start, start + timedelta(days=25), start + timedelta(days=30), start + timedelta(days=37))
    result = train_fraud_model(features, labels, windows, delay_days=7, seed=5)
    name = "test-fraud-old"
    assert log_and_register(result, name).promoted
    # The stored champion becomes what an older release pickled: a scorer without its anomaly ensemble.
    old = copy.copy(result.scorer)
    del old.anomaly
    stored = list(tmp_path.rglob("python_model.pkl"))
    assert len(stored) == 1
    stored[0].write_bytes(cloudpickle.dumps(old))

    new = log_and_register(result, name)
    assert new.promoted and new.champion_metric is None
    tags = MlflowClient().get_run(new.run_id).data.tags
    assert "cannot score the current features" in tags["champion_unusable"]


@pytest.mark.parametrize("features, rows", [(5, 2_000), (62, 3_000), (63, 120_000)])
def test_fast_hbos_scores_equal_pyods_bit_for_bit(features, rows):
    from pyod.models.hbos import HBOS

    from models.hbos_fast import CompiledHbos

    rng = np.random.default_rng(features)
    x = rng.standard_normal((rows, features)) * rng.integers(1, 100, features)
    x[rng.random(x.shape) < 0.1] = 0.0  # heavy ties, as in real feature columns
    detector = HBOS(n_bins=20).fit(x[: rows // 2])
    new = np.vstack([x, x * 1.02, x * 3])  # some just beyond the bins (tolerance), some far beyond
    assert np.array_equal(CompiledHbos(detector)(new), detector.decision_function(new))


def _amount_limit_frame(seed: int) -> pl.DataFrame:
    """Most amounts small, with 1 % fraud at random; a thin tail where everything above INR 220 is
    fraud and everything just below is not."""
    rng = np.random.default_rng(seed)
    n, tail = 40_000, 100
    rupees = rng.permutation(np.concatenate(
        [rng.uniform(1, 150, n - 2 * tail), rng.uniform(190, 220, tail), rng.uniform(220.5, 260, tail)]
    ))
    noise = (rng.random(n) < 0.01) & (rupees < 150)  # other fraud, so early stopping has a plateau to find
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return pl.DataFrame({
        "ts": [start + timedelta(seconds=30 * i) for i in range(n)],
        "amount_rupees_log": np.log10(rupees),
        "label": ((rupees > 220) | noise).astype(np.int8),
    })


def test_an_exact_amount_limit_in_a_thin_tail_is_learned(monkeypatch):
    import models.fraud_model as fraud_model

    train, test = _amount_limit_frame(1), _amount_limit_frame(2)
    tail = test.filter(pl.col("amount_rupees_log") >= np.log10(190))

    def tail_separated() -> bool:
        scorer, _ = fraud_model.fit_scorer(train, seed=3)
        scores = tail.with_columns(scorer.score(tail).get_column("score"))
        lowest_fraud = scores.filter(pl.col("label") == 1).get_column("score").min()
        return lowest_fraud > scores.filter(pl.col("label") == 0).get_column("score").max()

    assert tail_separated()  # the amount's fine bins put an edge at the limit
    monkeypatch.setattr(fraud_model, "FINE_BIN_FEATURES", {})
    assert not tail_separated()  # with LightGBM's default 255 bins the tail shares bins across the limit
