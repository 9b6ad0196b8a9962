"""How long a terminal has been known as risky, and the customer's own fraud history: both from
labels usable strictly before the transaction (reported + label delay)."""
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from features.transactions import transaction_features

T0 = datetime(2026, 3, 1, 4, 30, tzinfo=timezone.utc)
DAY = timedelta(days=1)


def _features(rows, frauds, delay_days=7):
    tx = pl.DataFrame(rows, schema=["txn_id", "customer_id", "ts", "amount_paise", "counterparty"], orient="row")
    tx = tx.with_columns(pl.col("ts").dt.cast_time_unit("us"))
    labels = pl.DataFrame(
        {"txn_id": [t for t, _ in frauds], "label": [1] * len(frauds),
         "reported_at": [r for _, r in frauds]},
        schema={"txn_id": pl.String, "label": pl.Int8, "reported_at": pl.Datetime("us", "UTC")},
    )
    out = transaction_features(tx, labels, delay_days)
    return {r["txn_id"]: r for r in out.iter_rows(named=True)}


def test_terminal_known_as_risky_since_its_first_usable_label():
    row = _features(
        [
            ("f1", "C1", T0, 100, "T1"),
            ("f2", "C2", T0 + 2 * DAY, 100, "T1"),
            ("a", "C3", T0 + 6 * DAY, 100, "T1"),  # f1 usable only from day 7
            ("b", "C3", T0 + 10 * DAY, 100, "T1"),  # f1 usable since day 7, f2 since day 9
            ("c", "C3", T0 + 45 * DAY, 100, "T1"),  # both became usable more than 30 days before
            ("d", "C3", T0 + 10 * DAY, 100, "T2"),  # another terminal
        ],
        frauds=[("f1", None), ("f2", None)],
    )
    assert row["a"]["merchant_days_since_fraud_known"] is None
    assert row["a"]["merchant_fraud_known_for_days"] is None
    assert row["b"]["merchant_days_since_fraud_known"] == pytest.approx(1.0)  # f2: day 9
    assert row["b"]["merchant_fraud_known_for_days"] == pytest.approx(3.0)  # f1: day 7
    assert row["c"]["merchant_days_since_fraud_known"] == pytest.approx(36.0)
    assert row["c"]["merchant_fraud_known_for_days"] is None  # nothing became usable in the 30 days before
    assert row["d"]["merchant_days_since_fraud_known"] is None


def test_customer_fraud_history_waits_for_the_report_and_the_delay():
    row = _features(
        [
            ("f1", "C1", T0, 100, "T1"),
            ("a", "C1", T0 + 3 * DAY, 100, "T2"),  # f1 reported on day 1, usable from day 3: not strictly before
            ("b", "C1", T0 + 3 * DAY + timedelta(seconds=1), 100, "T2"),
            ("c", "C2", T0 + 5 * DAY, 100, "T1"),  # another customer: C1's fraud is not theirs
            ("d", "C1", T0 + 40 * DAY, 100, "T2"),
        ],
        frauds=[("f1", T0 + DAY)],
        delay_days=2,
    )
    assert row["a"]["customer_fraud_count_known"] == 0 and row["a"]["customer_days_since_fraud_known"] is None
    assert row["b"]["customer_fraud_count_known"] == 1 and row["b"]["customer_fraud_count_known_30d"] == 1
    assert row["b"]["customer_days_since_fraud_known"] == pytest.approx(1 / 86400)
    assert row["c"]["customer_fraud_count_known"] == 0
    assert row["d"]["customer_fraud_count_known"] == 1
    assert row["d"]["customer_fraud_count_known_30d"] == 0  # usable 37 days before
    assert row["d"]["customer_days_since_fraud_known"] == pytest.approx(37.0)


def test_without_labels_the_history_features_are_null():
    tx = pl.DataFrame(
        [("a", "C1", T0, 100, "T1")], schema=["txn_id", "customer_id", "ts", "amount_paise", "counterparty"], orient="row"
    ).with_columns(pl.col("ts").dt.cast_time_unit("us"))
    out = transaction_features(tx)
    for name in ("customer_fraud_count_known", "customer_days_since_fraud_known", "merchant_fraud_known_for_days"):
        assert out.get_column(name).null_count() == 1, name
