"""The benchmark's two reference recipes (bench/pandas_reference.py, bench/polars_reference.py)
compute the same nine features on a generated history with labels."""
import numpy as np
import polars as pl

from bench.feature_data import write_processed
from bench.pandas_reference import pandas_features
from bench.polars_reference import polars_features
from finrisk.io import DataLayout, scan_partitioned
from finrisk.synthetic import generate


def test_pandas_and_polars_references_agree(tmp_path):
    generate(tmp_path / "raw", customers=150, days=40, seed=5)
    layout = DataLayout(write_processed(tmp_path / "raw", tmp_path / "data"))
    tx = scan_partitioned(layout.transactions).collect().sample(fraction=1.0, shuffle=True, seed=1)  # any row order
    labels = pl.read_parquet(layout.labels)
    assert labels.get_column("label").sum() > 10
    ours = polars_features(tx, labels, 7)
    theirs = pandas_features(tx.to_pandas(), labels.to_pandas(), 7)
    assert ours.columns == list(theirs.columns) and ours.height == tx.height
    assert ours.get_column("txn_id").to_list() == tx.get_column("txn_id").to_list()  # the input's order
    for name in ours.columns[1:]:
        a = ours.get_column(name).cast(pl.Float64).fill_null(np.nan).to_numpy()
        b = theirs[name].to_numpy().astype(float)
        assert (np.isnan(a) == np.isnan(b)).all(), name
        np.testing.assert_allclose(a[~np.isnan(a)], b[~np.isnan(b)], rtol=1e-9, atol=1e-9, err_msg=name)
    assert np.nanmax(ours.get_column("merchant_fraud_rate_30d").to_numpy()) > 0  # the labels reach the rates
