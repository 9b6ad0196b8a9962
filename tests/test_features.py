"""Feature definitions on small hand-made tables: point-in-time windows, labels behind a delay,
ties at one instant, and data that lacks most fields."""
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from features.catalogue import CATALOGUE, MODEL_FEATURES, catalogue_frame
from features.inputs import FeatureInputError
from features.transactions import customer_velocity_features, transaction_features

T0 = datetime(2026, 3, 1, 4, 30, tzinfo=timezone.utc)  # 10:00 in Asia/Kolkata


def _tx(rows, **extra):
    frame = pl.DataFrame(
        rows, schema=["txn_id", "customer_id", "ts", "amount_paise", "counterparty"], orient="row"
    ).with_columns(pl.col("ts").dt.cast_time_unit("us"), channel=pl.lit("UPI"), direction=pl.lit("DEBIT"))
    return frame.with_columns(**{k: pl.Series(v) for k, v in extra.items()})


def _by_id(out: pl.DataFrame) -> dict[str, dict]:
    return {r["txn_id"]: r for r in out.iter_rows(named=True)}


def test_windows_see_only_strictly_earlier_events():
    tx = _tx([
        ("a", "C1", T0, 10_000, "M1"),
        ("b", "C1", T0 + timedelta(minutes=30), 20_000, "M1"),
        ("c", "C1", T0 + timedelta(minutes=90), 60_000, "M2"),
        ("d", "C2", T0 + timedelta(minutes=31), 5_000, "M1"),
        ("e", "C1", T0 + timedelta(minutes=90), 1_000, "M2"),  # same instant as c
    ])
    row = _by_id(customer_velocity_features(tx.lazy()).collect())
    assert row["a"]["txn_count_1h"] == 0 and row["a"]["amount_vs_30d_mean"] is None
    assert row["b"]["txn_count_1h"] == 1 and row["b"]["amount_vs_30d_mean"] == 2.0
    assert row["c"]["txn_count_1h"] == 1 and row["c"]["txn_count_24h"] == 2  # a is 90 min before
    assert row["c"]["amount_sum_24h_rupees"] == 300.0
    # c and e happen at the same instant: neither sees the other, in windows and in running totals.
    assert row["e"]["txn_count_24h"] == row["c"]["txn_count_24h"] == 2
    assert row["e"]["pair_txn_count"] == row["c"]["pair_txn_count"] == 0
    assert row["e"]["first_time_counterparty"] == row["c"]["first_time_counterparty"] == 1
    assert row["d"]["txn_count_24h"] == 0  # other customers' events never count
    assert row["a"]["hour_of_day"] == 10 and row["a"]["is_night"] == 0
    assert [row[t]["first_time_counterparty"] for t in "abcd"] == [1, 0, 1, 1]
    assert row["b"]["seconds_since_prev"] == 1800
    assert row["b"]["pair_tenure_days"] == pytest.approx(30 / 1440)
    assert row["c"]["pair_spend_share"] == 0.0 and row["b"]["pair_spend_share"] == 1.0
    # M1 had customer C1 before d arrived (a, b), so d sees a fan-in of 1; M2 has none before c/e
    assert row["d"]["merchant_fan_in"] == 1 and row["c"]["merchant_fan_in"] == 0


def test_catalogue_declares_every_model_feature_once_as_a_numeric_column():
    names = [f.name for f in CATALOGUE]
    assert len(names) == len(set(names))
    out = transaction_features(_tx([("a", "C1", T0, 100, "M")]))
    assert set(MODEL_FEATURES) <= set(out.columns)
    assert all(out.schema[name].is_numeric() for name in MODEL_FEATURES)
    listed = catalogue_frame(frozenset({"customer_id", "ts", "amount_paise"}))
    assert listed.filter(pl.col("name") == "txn_count_1h")["available"].item() is True
    assert listed.filter(pl.col("name") == "new_device")["available"].item() is False


def _card_table():
    """A card dataset: customer id, terminal id, timestamp and amount, nothing else."""
    rows = [
        ("t1", "A", T0, 50_000, "TERM1"),
        ("t2", "B", T0 + timedelta(days=1), 70_000, "TERM1"),  # the fraud, reported 2 days later
        ("t3", "A", T0 + timedelta(days=2, hours=2), 40_000, "TERM1"),
        ("t4", "C", T0 + timedelta(days=9, minutes=1), 30_000, "TERM1"),
        ("t5", "C", T0 + timedelta(days=10, hours=1), 35_000, "TERM1"),
        ("t6", "A", T0 + timedelta(days=10, hours=2), 45_000, "TERM2"),
    ]
    return pl.DataFrame(rows, schema=["txn_id", "customer_id", "ts", "amount_paise", "counterparty"], orient="row")


def test_a_table_with_only_customer_terminal_time_and_amount_gives_nulls_not_errors():
    labels = pl.DataFrame({
        "txn_id": ["t2"], "label": pl.Series([1], dtype=pl.Int8), "fraud_type": ["card"],
        "reported_at": [T0 + timedelta(days=3)],
    })
    out = transaction_features(_card_table(), labels, label_delay_days=7)
    row = _by_id(out)
    for name in ("new_device", "customers_per_device", "city_changed", "impossible_travel", "is_debit",
                 "inflow_24h_rupees", "days_since_salary", "channel_code", "mcc_group_code", "peer_amount_zscore"):
        assert out.get_column(name).null_count() == out.height, name
    assert row["t3"]["txn_count_7d"] == 1 and row["t3"]["amount_sum_7d_rupees"] == 500.0
    assert row["t3"]["amount_log_zscore"] is None  # one earlier amount: no spread yet
    assert row["t6"]["amount_log_zscore"] is not None
    # The label was reported on day 3 and is usable from day 10 (delay 7 d), not before.
    assert row["t4"]["merchant_fraud_count_known"] == 0
    assert row["t5"]["merchant_fraud_count_known"] == 1
    assert row["t6"]["merchant_fraud_count_known"] == 0  # another terminal
    # t5 at day 10 + 1 h: labels usable in the day before = 1; terminal transactions in
    # [t - 7 d - 1 d, t - 7 d) = t3 (day 2 + 2 h) only
    assert row["t5"]["merchant_fraud_rate_1d"] == 1.0
    assert row["t5"]["merchant_fraud_rate_7d"] == pytest.approx(1 / 3)  # t1, t2, t3 in [t-14d, t-7d)
    assert row["t5"]["merchant_fraud_count_1d"] == row["t5"]["merchant_fraud_count_30d"] == 1  # counts, not rates
    assert row["t4"]["merchant_fraud_count_7d"] == 0
    # Without labels the merchant-risk features are unknown, not zero.
    assert transaction_features(_card_table()).get_column("merchant_fraud_rate_7d").null_count() == 6


def test_unreported_labels_count_from_the_transaction_time_plus_delay():
    labels = pl.DataFrame(
        {"txn_id": ["t2"], "label": pl.Series([1], dtype=pl.Int8), "fraud_type": ["card"], "reported_at": [None]},
        schema_overrides={"reported_at": pl.Datetime("us", "UTC")},
    )
    row = _by_id(transaction_features(_card_table(), labels, label_delay_days=7))
    assert row["t3"]["merchant_fraud_count_known"] == 0  # t2 (day 1) is usable from day 8
    assert row["t4"]["merchant_fraud_count_known"] == 1
    at_boundary = pl.concat([
        _card_table(),
        pl.DataFrame([("t3b", "D", T0 + timedelta(days=2), 1_000, "TERM1")], schema=_card_table().schema, orient="row"),
    ])
    row = _by_id(transaction_features(at_boundary, labels, label_delay_days=1))
    assert row["t3b"]["merchant_fraud_count_known"] == 0  # usable exactly at day 2: not strictly before it
    assert row["t3"]["merchant_fraud_count_known"] == 1


def test_devices_places_and_travel():
    base = T0
    rows = [
        ("a", "C1", base, 100, "M1"),
        ("b", "C1", base + timedelta(minutes=10), 100, "M1"),
        ("c", "C2", base + timedelta(minutes=20), 100, "M1"),
        ("d", "C1", base + timedelta(minutes=30), 100, "M1"),
    ]
    tx = _tx(
        rows,
        device_id=["D1", "D1", "D1", "D2"],
        city=["Mumbai", "Mumbai", "Pune", "Delhi"],
        state=["Maharashtra", "Maharashtra", "Maharashtra", "Delhi"],
        latitude=[19.07, 19.07, 18.52, 28.61],
        longitude=[72.88, 72.88, 73.86, 77.21],
    )
    row = _by_id(transaction_features(tx))
    assert [row[t]["new_device"] for t in "abcd"] == [1, 0, 1, 1]
    assert [row[t]["customers_per_device"] for t in "abcd"] == [0, 1, 1, 0]
    assert [row[t]["devices_per_customer"] for t in "abcd"] == [0, 1, 0, 1]
    assert row["a"]["city_changed"] is None and row["b"]["city_changed"] == 0 and row["d"]["city_changed"] == 1
    assert row["d"]["state_changed"] == 1 and row["c"]["state_changed"] is None  # C2 has no earlier place
    # Mumbai -> Delhi (about 1,150 km) in 20 minutes is impossible
    assert row["d"]["distance_from_prev_km"] == pytest.approx(1150, rel=0.05)
    assert row["d"]["impossible_travel"] == 1 and row["b"]["impossible_travel"] == 0


def test_amount_history_features():
    amounts = [10_000, 20_000, 30_000, 40_000, 1_000_000]
    rows = [(f"t{i}", "C1", T0 + timedelta(days=i), a, "M1") for i, a in enumerate(amounts)]
    row = _by_id(transaction_features(_tx(rows)))
    assert row["t0"]["amount_percentile"] is None
    assert row["t4"]["amount_percentile"] == 1.0  # above every earlier amount
    assert row["t1"]["amount_percentile"] == pytest.approx(1.0)
    assert row["t4"]["amount_to_max_30d"] == pytest.approx(1_000_000 / 40_000)
    assert row["t4"]["amount_log_zscore"] > 3
    assert row["t3"]["hour_profile_share"] == 1.0  # always at 10:00
    assert row["t3"]["night_share_prior"] == 0.0


def test_bad_input_gets_a_clear_error():
    with pytest.raises(FeatureInputError, match="lack required column"):
        transaction_features(pl.DataFrame({"txn_id": ["a"], "ts": [T0]}))
    naive = _tx([("a", "C1", T0, 100, "M")]).with_columns(pl.col("ts").dt.replace_time_zone(None))
    with pytest.raises(FeatureInputError, match="timezone-aware"):
        transaction_features(naive)
    with pytest.raises(FeatureInputError, match="contain nulls"):
        transaction_features(_tx([("a", None, T0, 100, "M")]))
    with pytest.raises(ValueError, match="label_delay_days"):
        transaction_features(_tx([("a", "C1", T0, 100, "M")]), label_delay_days=-1)


def test_the_documentation_lists_every_feature():
    from finrisk.config import PROJECT_ROOT

    text = (PROJECT_ROOT / "docs" / "features.md").read_text()
    assert [f.name for f in CATALOGUE if f"`{f.name}`" not in text] == []
