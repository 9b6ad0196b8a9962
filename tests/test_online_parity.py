"""Parity: the online path (a twin read back from disk plus the day's transactions) gives the same
value as the batch path for every feature of every transaction of the day."""
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from bench.feature_data import write_processed
from features.catalogue import CATALOGUE
from features.inputs import FeatureInputError
from features.online import online_features
from features.transactions import transaction_features
from features.twin import build_twin, read_twin, write_twin
from finrisk.io import DataLayout, scan_partitioned
from finrisk.synthetic import generate

DELAY_DAYS = 2
START = date(2026, 1, 1)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("online-parity")
    generate(root / "raw", customers=250, days=40, seed=11, start=START)
    data = write_processed(root / "raw", root / "data")
    layout = DataLayout(data)
    tx = scan_partitioned(layout.transactions)
    labels = pl.read_parquet(layout.labels)
    batch = transaction_features(tx, labels, DELAY_DAYS)
    return data, tx, labels, batch


def _day(tx: pl.LazyFrame, day: date) -> pl.DataFrame:
    return tx.filter(pl.col("date") == day.isoformat()).collect()


def assert_same_features(batch: pl.DataFrame, online: pl.DataFrame) -> None:
    batch, online = batch.sort("txn_id"), online.sort("txn_id")
    assert online.get_column("txn_id").to_list() == batch.get_column("txn_id").to_list()
    for feature in CATALOGUE:
        ours, theirs = online.get_column(feature.name), batch.get_column(feature.name)
        assert ours.dtype == theirs.dtype, feature.name
        if feature.dtype in (pl.Float32, pl.Float64):
            np.testing.assert_allclose(
                ours.cast(pl.Float64).fill_null(np.nan).to_numpy(), theirs.cast(pl.Float64).fill_null(np.nan).to_numpy(),
                rtol=1e-6, atol=1e-9, equal_nan=True, err_msg=feature.name,
            )
        else:  # counts and flags: exactly equal, nulls in the same places
            assert ours.equals(theirs, check_names=False), feature.name


@pytest.mark.parametrize("offset", [3, 35])
def test_online_equals_batch_for_every_feature(dataset, tmp_path, offset):
    data, tx, labels, batch = dataset
    day = START + timedelta(days=offset)
    write_twin(build_twin(tx, day, labels, DELAY_DAYS), tmp_path)
    twin = read_twin(tmp_path, day)  # real files, as the scoring service would load them
    today = _day(tx, day)
    online = online_features(twin, today)
    expected = batch.filter(pl.col("date") == day)
    assert online.height == expected.height > 100
    assert expected.get_column("merchant_fraud_count_known").max() > 0 or offset < 10
    assert_same_features(expected, online)


def test_scoring_one_transaction_with_the_days_earlier_ones(dataset):
    data, tx, labels, batch = dataset
    day = START + timedelta(days=30)
    twin = build_twin(tx, day, labels, DELAY_DAYS)
    today = _day(tx, day).sort("ts", "txn_id")
    for position in (0, today.height // 2, today.height - 1):
        so_far = today.head(position + 1)  # what the switch has sent up to and including this one
        txn_id = so_far.get_column("txn_id")[-1]
        online = online_features(twin, so_far, txn_ids=[txn_id])
        assert_same_features(batch.filter(pl.col("txn_id") == txn_id), online)


def test_the_twin_serves_only_its_own_day(dataset):
    data, tx, labels, batch = dataset
    twin = build_twin(tx, START + timedelta(days=20), labels, DELAY_DAYS)
    with pytest.raises(FeatureInputError, match="serves transactions of that day only"):
        online_features(twin, _day(tx, START + timedelta(days=21)))
