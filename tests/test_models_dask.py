"""LightGBM trained across a real 2-worker Dask LocalCluster (lightgbm.dask): a model of the same
kind and quality as the single-process one, usable by the same scorer."""
from datetime import timedelta

import lightgbm as lgb

from models.distributed import FIXED_ROUNDS, dask_client
from models.fraud_model import TrainWindows, train_fraud_model
from test_models import _synthetic_features


def test_lightgbm_trains_across_two_dask_workers():
    features, labels = _synthetic_features()
    start = features.get_column("ts").min()
    windows = TrainWindows(start, start + timedelta(days=25), start + timedelta(days=30), start + timedelta(days=37))
    local = train_fraud_model(features, labels, windows, delay_days=7, seed=5)
    with dask_client(workers=2) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        spread = train_fraud_model(features, labels, windows, delay_days=7, seed=5, dask_client=client)

    booster = lgb.Booster(model_str=spread.scorer.booster_text)
    assert booster.num_trees() == FIXED_ROUNDS
    assert booster.feature_name() == local.scorer.booster.feature_name()
    assert spread.metrics["auc"] > 0.9
    assert abs(spread.metrics["auc"] - local.metrics["auc"]) < 0.05
    assert spread.test_scored.get_column("score").is_between(0, 1).all()
