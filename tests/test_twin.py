"""The Customer Financial Twin: what it says about a customer, how it is stored and read back."""
from datetime import date, datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from features.twin import TwinNotFoundError, build_twin, read_twin, twin_dates, twin_path, write_twin
from features.twin_report import compare_with_normal, describe_customer, format_inr

IST = timezone(timedelta(hours=5, minutes=30))


def _history() -> pl.DataFrame:
    """C1: groceries at 19:00 daily for 40 days, salary on the 1st, one UPI payee; C2: a single ATM visit."""
    rows = []
    for d in range(40):
        day = datetime(2026, 1, 1, tzinfo=IST) + timedelta(days=d)
        rows.append((f"g{d}", "C1", day.replace(hour=19), 50_000 + 1_000 * (d % 5), "M1", "MERCHANT", "5411",
                     "CARD_POS", "DEBIT", "Pune", "Maharashtra", "D1"))
        if d % 10 == 3:
            rows.append((f"p{d}", "C1", day.replace(hour=12), 200_000, "tk_friend", "P2P", None, "UPI", "DEBIT",
                         "Pune", "Maharashtra", "D1"))
        if day.day == 1:
            rows.append((f"s{d}", "C1", day.replace(hour=9), 6_000_000, "E000001", "SALARY", None, "NEFT", "CREDIT",
                         None, None, None))
    rows.append(("a1", "C2", datetime(2026, 1, 5, 11, tzinfo=IST), 300_000, "ATM9", "ATM", "6011", "ATM", "DEBIT",
                 "Delhi", "Delhi", None))
    frame = pl.DataFrame(rows, orient="row", schema=[
        "txn_id", "customer_id", "ts", "amount_paise", "counterparty", "counterparty_type", "mcc", "channel",
        "direction", "city", "state", "device_id",
    ])
    return frame.with_columns(pl.col("ts").dt.convert_time_zone("UTC").dt.cast_time_unit("us"))


def test_the_twin_summarises_only_the_history_before_its_date():
    twin = build_twin(_history(), date(2026, 2, 1), label_delay_days=7)
    c1 = twin.customer("C1")
    assert c1["txn_count"] == 31 + 3 + 1  # 31 grocery days, payee on the 4th, 14th, 24th, salary on 1 Jan
    grid = np.asarray(c1["hour_weekday_counts"]).reshape(7, 24)
    assert grid.sum() == c1["txn_count"] and grid[:, 19].sum() == 31 and grid[:, :6].sum() == 0
    assert c1["salary_count"] == 1 and c1["salary_median_paise"] == 6_000_000
    groceries = twin.amounts.filter(
        (pl.col("customer_id") == "C1") & (pl.col("dimension") == "mcc_group") & (pl.col("value") == "groceries")
    )
    assert groceries.item(0, "txn_count") == 31 and groceries.item(0, "p50_paise") == 52_000
    usual = twin.counterparties.filter(pl.col("customer_id") == "C1")
    assert usual.row(0, named=True)["counterparty"] == "M1" and usual.row(0, named=True)["txn_count"] == 31
    assert twin.devices.filter(pl.col("customer_id") == "C1").item(0, "txn_count") == 34
    assert c1["last_city"] == "Pune" and twin.customer("C2")["last_city"] == "Delhi"
    # recent events carry the per-event flag the online path needs
    assert twin.recent.height == 35 + 1 and "_large" in twin.recent.columns
    later = build_twin(_history(), date(2026, 2, 10), label_delay_days=7)
    assert later.customer("C1")["salary_count"] == 2 and later.customer("C1")["salary_interval_days"] == 31


def test_the_twin_is_stored_per_date_and_replaced_whole(tmp_path):
    first = build_twin(_history(), date(2026, 2, 1))
    write_twin(first, tmp_path)
    write_twin(build_twin(_history(), date(2026, 2, 5)), tmp_path)
    assert twin_dates(tmp_path) == [date(2026, 2, 1), date(2026, 2, 5)]
    assert read_twin(tmp_path).as_of == date(2026, 2, 5)  # the latest by default
    again = read_twin(tmp_path, date(2026, 2, 1))
    assert again.profiles.equals(first.profiles) and again.meta == first.meta
    write_twin(build_twin(_history().filter(pl.col("customer_id") == "C2"), date(2026, 2, 1)), tmp_path)
    assert read_twin(tmp_path, date(2026, 2, 1)).profiles.height == 1  # replaced, not merged
    assert sorted(p.name for p in twin_path(tmp_path, date(2026, 2, 1)).parent.iterdir()) == [
        "date=2026-02-01", "date=2026-02-05"
    ]  # no temporary or retired folders left behind
    with pytest.raises(TwinNotFoundError, match="no twin as of 2026-03-01"):
        read_twin(tmp_path, date(2026, 3, 1))
    with pytest.raises(TwinNotFoundError, match="no twin snapshots"):
        read_twin(tmp_path / "empty")


def test_a_transaction_is_explained_against_the_customers_normal():
    twin = build_twin(_history(), date(2026, 2, 1))
    night = {"customer_id": "C1", "ts": datetime(2026, 2, 1, 2, 13, tzinfo=IST), "amount_paise": 4_800_000,
             "counterparty": "tk_stranger"}
    text = compare_with_normal(twin, night)
    p99 = format_inr(twin.customer("C1")["p99_paise"])
    assert text == f"INR 48,000 at 02:13 to a new payee; this customer's 99th percentile is {p99} " \
                   "and they never transact between 00:00 and 06:00"
    usual = {**night, "ts": datetime(2026, 2, 1, 19, 5, tzinfo=IST), "counterparty": "M1", "amount_paise": 51_000}
    assert compare_with_normal(twin, usual).startswith("INR 510 at 19:05 to a payee seen 31 times before")
    view = describe_customer(twin, "C1")
    text = dict(view.lines)
    assert "never transacts between 00:00 and 06:00" in text["hours"] and "busiest 19:00" in text["hours"]
    assert text["income"].startswith("salary INR 60,000")
    assert describe_customer(twin, "nobody") is None


def test_rupees_are_grouped_the_indian_way():
    assert format_inr(12_345_678_900) == "INR 12,34,56,789"
    assert format_inr(4_800_000) == "INR 48,000"
    assert format_inr(-10_000_000) == "INR -1,00,000"
    assert format_inr(None) == "-"


def test_behaviour_vectors_describe_each_customer_with_numbers():
    from features.twin import behaviour_vectors

    vectors = behaviour_vectors(build_twin(_history(), date(2026, 2, 1)))
    assert vectors.height == 2 and vectors.columns[0] == "customer_id"
    assert all(vectors.schema[c].is_numeric() for c in vectors.columns[1:])
    c1 = vectors.filter(pl.col("customer_id") == "C1").row(0, named=True)
    assert c1["night_share"] == 0.0 and c1["salary_count"] == 1.0 and c1["counterparties_per_txn"] == pytest.approx(3 / 35)
