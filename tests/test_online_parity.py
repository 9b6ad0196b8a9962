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
from finrisk.sensitive import with_sensitive
from finrisk.synthetic import generate

DELAY_DAYS = 2
START = date(2026, 1, 1)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("online-parity")
    generate(root / "raw", customers=250, days=40, seed=11, start=START)
    data = write_processed(root / "raw", root / "data")
    layout = DataLayout(data)
    tx = with_sensitive(scan_partitioned(layout.transactions), layout)  # coordinates too: location features
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


# ---- the incremental online state (features.online_state), as the scoring service keeps it ----------


def _state_twin(dataset, tmp_path, offset: int):
    from features.online_state import OnlineState

    data, tx, labels, batch = dataset
    day = START + timedelta(days=offset)
    write_twin(build_twin(tx, day, labels, DELAY_DAYS), tmp_path)
    twin = read_twin(tmp_path, day)
    return OnlineState(twin), _day(tx, day).drop("date").sort("ts", "txn_id"), batch.filter(pl.col("date") == day)


@pytest.mark.parametrize("offset", [3, 35])
def test_the_online_state_equals_batch_whole_day_and_one_by_one(dataset, tmp_path, offset):
    state, today, expected = _state_twin(dataset, tmp_path, offset)
    whole = state.fork()
    features, _ = whole.stage(today)
    assert_same_features(expected, features.frame())
    singles = []
    for i in range(today.height):  # as a payment switch sends them
        features, _ = state.stage(today.slice(i, 1))
        state.commit()
        singles.append(features.frame())
    assert_same_features(expected, pl.concat(singles))


def test_the_online_state_with_late_arrivals_equals_the_family_code(dataset, tmp_path):
    """Every other transaction arrives first, the rest later: each chunk's features must be what the
    families give for the transactions that had arrived by then (a late one changes what later ones
    see: the "unusually large" flags of the customer's later transactions, a pair's first contact)."""
    state, today, _ = _state_twin(dataset, tmp_path, 30)
    numbered = today.with_row_index("_n")
    late_order = pl.concat([numbered.filter(pl.col("_n") % 2 == 1), numbered.filter(pl.col("_n") % 2 == 0)]).drop("_n")
    arrived = late_order.clear()
    for start in range(0, late_order.height, 40):
        chunk = late_order.slice(start, 40)
        arrived = pl.concat([arrived, chunk])
        features, _ = state.stage(chunk)
        state.commit()
        expected = online_features(state.twin, arrived, chunk.get_column("txn_id").to_list())
        assert_same_features(expected, features.frame())


def test_a_rolled_back_batch_leaves_no_trace(dataset, tmp_path):
    state, today, expected = _state_twin(dataset, tmp_path, 20)
    first, rest = today.head(50), today.slice(50)
    state.stage(first)
    state.commit()
    _, undo = state.stage(rest.head(30))
    state.rollback(undo)  # e.g. the journal could not be written
    features, _ = state.stage(rest)
    assert_same_features(expected.filter(pl.col("txn_id").is_in(rest.get_column("txn_id").implode())), features.frame())


def test_the_online_state_refuses_another_day(dataset, tmp_path):
    state, today, _ = _state_twin(dataset, tmp_path, 20)
    data, tx, labels, batch = dataset
    with pytest.raises(FeatureInputError, match="serves transactions of that day only"):
        state.stage(_day(tx, START + timedelta(days=21)).drop("date"))
    features, _ = state.stage(today.head(3))  # the refused batch left nothing behind
    assert features.frame().height == 3


def test_a_late_transaction_changes_what_later_ones_see(dataset, tmp_path):
    """Made-up arrivals on a real twin: a customer's earlier transaction arrives after a later one,
    which makes the later one "unusually large" (enough history now), and a customer x merchant pair's
    first contact moves earlier. What a transaction arriving after that sees must be what the
    families give for the same arrivals."""
    state, today, _ = _state_twin(dataset, tmp_path, 20)
    twin = state.twin
    young = twin.profiles.filter(pl.col("txn_count").is_between(5, 19)).sort("customer_id").row(0, named=True)
    template = today.head(1)
    t0 = twin.as_of
    from datetime import datetime, time, timezone

    start = datetime.combine(t0, time(4, 0), timezone.utc)

    def row(n: int, customer: str, minutes: int, paise: int, counterparty: str) -> pl.DataFrame:
        return template.with_columns(
            pl.lit(f"LATE{n:03d}").alias("txn_id"), pl.lit(customer).alias("customer_id"),
            pl.lit(start + timedelta(minutes=minutes)).dt.cast_time_unit("us").alias("ts"),
            pl.lit(paise, pl.Int64).alias("amount_paise"), pl.lit(counterparty).alias("counterparty"),
        )

    other = twin.profiles.filter(pl.col("customer_id") != young["customer_id"]).get_column("customer_id")[0]
    fill = [row(i, young["customer_id"], 10 + i, 10_000, "M-FRESH-A") for i in range(19 - young["txn_count"])]
    big = row(100, young["customer_id"], 120, 10_000_000_00, "M-FRESH-B")  # n = 19 before it: not yet "large"
    late = row(101, young["customer_id"], 60, 10_000, "M-FRESH-B")  # earlier, arrives later: n = 20 for `big`
    after = [row(102, young["customer_id"], 180, 10_000, "M-FRESH-C"), row(103, other, 200, 10_000, "M-FRESH-B")]
    arrived = pl.concat([*fill, big])
    state.stage(arrived)
    state.commit()
    for chunk in (late, pl.concat(after)):
        arrived = pl.concat([arrived, chunk])
        features, _ = state.stage(chunk)
        state.commit()
        expected = online_features(twin, arrived, chunk.get_column("txn_id").to_list())
        assert_same_features(expected, features.frame())
    seen = features.frame().sort("txn_id")
    assert seen.get_column("large_amount_count_7d").to_list()[0] >= 1  # the flag `late` gave `big`
    assert seen.get_column("merchant_fan_in").to_list()[1] >= 1  # one first contact with M-FRESH-B, not two
