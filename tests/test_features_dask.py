"""Scale-out: the features flow run day-parallel on a 2-worker Dask LocalCluster (real Prefect flow
runs, real Parquet) gives exactly the single-process result, and agrees with the batch path."""
import os
from datetime import date

import polars as pl
import pytest

from bench.feature_data import write_processed
from features.transactions import transaction_features
from finrisk.io import DataLayout, scan_partitioned
from finrisk.synthetic import generate
from tasks.features import feature_inputs
from test_online_parity import assert_same_features

START = date(2026, 1, 1)
DELAY_DAYS = 2


@pytest.fixture(scope="module")
def processed(tmp_path_factory):
    root = tmp_path_factory.mktemp("dask-features")
    generate(root / "raw", customers=150, days=12, seed=5, start=START)
    return write_processed(root / "raw", root / "data")


def _copy_processed(src, dst):
    import shutil

    shutil.copytree(src / "processed", dst / "processed")
    return dst


def _features(data_dir) -> pl.DataFrame:
    return scan_partitioned(DataLayout(data_dir).features).collect().sort("txn_id")


def test_features_on_a_two_worker_dask_cluster_equal_the_single_process_run(processed, tmp_path, prefect_harness):
    from flows.dask import run_on_dask
    from flows.features import features_by_day_flow

    single = _copy_processed(processed, tmp_path / "single")
    parallel = _copy_processed(processed, tmp_path / "dask")
    days = [f"2026-01-{d:02d}" for d in (2, 6, 11)]  # the first day, one in the middle, the last but one

    alone = features_by_day_flow(single, days, DELAY_DAYS)
    spread = run_on_dask(features_by_day_flow, parallel, days, DELAY_DAYS, workers=2)

    assert alone["processes"] == [os.getpid()]  # the default runner: threads of this process
    assert os.getpid() not in spread["processes"]  # every day computed in a Dask worker process
    assert {k: alone[k] for k in ("rows", "days")} == {k: spread[k] for k in ("rows", "days")} == {"rows": alone["rows"], "days": 3}
    ours, theirs = _features(parallel), _features(single)
    assert ours.height == alone["rows"]
    assert ours.equals(theirs), "the Dask run differs from the single-process run"

    # And both are the batch path's numbers for those days.
    layout = DataLayout(processed)
    batch = transaction_features(feature_inputs(layout), pl.read_parquet(layout.labels), DELAY_DAYS)
    batch = batch.filter(pl.col("date").cast(pl.String).is_in(days))
    assert_same_features(batch, ours)
