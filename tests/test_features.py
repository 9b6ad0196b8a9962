from datetime import datetime, timedelta, timezone

import polars as pl

from features.definitions import CATALOGUE, MODEL_FEATURES
from features.transactions import customer_velocity_features


def _tx(rows):
    return pl.DataFrame(
        rows, schema=["txn_id", "customer_id", "ts", "amount_paise", "counterparty"], orient="row"
    ).with_columns(
        pl.col("ts").dt.cast_time_unit("us"), channel=pl.lit("UPI"), direction=pl.lit("DEBIT")
    )


T0 = datetime(2026, 3, 1, 4, 30, tzinfo=timezone.utc)  # 10:00 in Asia/Kolkata


def test_windows_see_only_strictly_earlier_events():
    tx = _tx([
        ("a", "C1", T0, 10_000, "M1"),
        ("b", "C1", T0 + timedelta(minutes=30), 20_000, "M1"),
        ("c", "C1", T0 + timedelta(minutes=90), 60_000, "M2"),
        ("d", "C2", T0 + timedelta(minutes=31), 5_000, "M1"),
        ("e", "C1", T0 + timedelta(minutes=90), 1_000, "M2"),  # same instant as c
    ])
    out = customer_velocity_features(tx.lazy()).collect().sort("txn_id")
    row = {r["txn_id"]: r for r in out.iter_rows(named=True)}
    assert row["a"]["txn_count_1h"] == 0 and row["a"]["amount_vs_30d_mean"] is None
    assert row["b"]["txn_count_1h"] == 1 and row["b"]["amount_vs_30d_mean"] == 2.0
    assert row["c"]["txn_count_1h"] == 1 and row["c"]["txn_count_24h"] == 2  # a is 90 min before
    assert row["c"]["amount_sum_24h_rupees"] == 300.0
    # c and e happen at the same instant: neither sees the other.
    assert row["e"]["txn_count_24h"] == row["c"]["txn_count_24h"] == 2
    assert row["d"]["txn_count_24h"] == 0  # other customers' events never count
    assert row["a"]["hour_of_day"] == 10 and row["a"]["is_night"] == 0
    assert [row[t]["first_time_counterparty"] for t in "abcd"] == [1, 0, 1, 1]
    assert row["b"]["seconds_since_prev"] == 1800


def test_catalogue_declares_every_model_feature_once():
    names = [f.name for f in CATALOGUE]
    assert len(names) == len(set(names))
    out = customer_velocity_features(_tx([("a", "C1", T0, 100, "M")]).lazy()).collect()
    assert set(MODEL_FEATURES) <= set(out.columns)
