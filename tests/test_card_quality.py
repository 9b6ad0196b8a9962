"""Outside card data (customer, terminal, time, amount) through the product's own path: ingest with
examples/card/mapping.yaml -> features -> train -> score, on a small simulated card dataset."""
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from bench import card_simulator
from bench.bench_card_quality import MAPPING, ceiling_metrics, run_path
from finrisk.ingest import ingest
from finrisk.ingest_read import IngestError
from finrisk.io import DataLayout, scan_partitioned
from finrisk.mapping import load_mapping

KEY = b"test-only-key-0123456789abcdef"


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("card")
    figures = run_path(root, customers=400, terminals=800, days=40, windows=1, seed=3, train_start=date(2018, 4, 16))
    return root, figures


def test_card_export_lands_as_canonical_transactions_and_labels(small_run):
    root, figures = small_run
    raw = pl.read_csv(root / "raw" / "transactions.csv", infer_schema=False)
    ingested = figures["ingest"]
    assert ingested["in"] == raw.height == figures["transactions"]
    assert ingested["loaded"] + ingested["quarantined"] == raw.height
    assert set(ingested["quarantine_reasons"]) <= {"amount_paise: not between 1 paise and INR 1,000 crore"}
    layout = DataLayout(root / "data")
    tx = scan_partitioned(layout.transactions).collect()
    first = raw.row(0, named=True)
    row = tx.filter(pl.col("txn_id") == first["TRANSACTION_ID"]).row(0, named=True)
    wall_clock = datetime.strptime(first["TX_DATETIME"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=ZoneInfo("Asia/Kolkata"))
    assert row["ts"] == wall_clock  # read as Asia/Kolkata, stored in UTC
    assert row["counterparty"] == first["TERMINAL_ID"]
    assert row["amount_paise"] == round(float(first["TX_AMOUNT"]) * 100)
    assert (row["channel"], row["direction"]) == ("CARD_POS", "DEBIT")
    labels = pl.read_parquet(layout.labels)
    assert labels.height == ingested["loaded"]
    loaded_frauds = raw.filter(pl.col("TX_FRAUD") == "1").join(
        tx.select(pl.col("txn_id").alias("TRANSACTION_ID")), on="TRANSACTION_ID")
    assert labels.get_column("label").sum() == loaded_frauds.height > 0
    # no report time in the export: a label counts as reported when its transaction happened
    joined = labels.join(tx.select("txn_id", "ts"), on="txn_id")
    assert (joined.get_column("reported_at") == joined.get_column("ts")).all()


def test_the_path_trains_and_scores_with_sane_metrics(small_run):
    _, figures = small_run
    assert [w["train"] for w in figures["windows"]] == ["7d", "all"]
    for window in figures["windows"]:
        assert window["test_from"] == "2018-04-30"
        assert window["test_frauds"] > 20 and window["train_frauds"] > 20
        fraud_rate = window["test_frauds"] / window["test_rows"]
        assert window["auc"] > 0.75
        assert window["ap"] > 5 * fraud_rate  # far better than ranking at random
        for name in ("cp100_known_removed", "cp100_detected_removed", "handbook_cp100"):
            assert 0 <= window[name] <= 1
        # removing known-compromised customers can only take candidates away
        assert window["handbook_test_rows"] <= window["test_rows"]
        # a scorer that knew every label catches each fraudulent customer once: no model does better
        assert window["handbook_cp100"] <= window["ceiling_cp100"] <= 1
        assert window["cp100_known_removed"] <= window["ceiling_cp100_known_removed"] <= 1
        assert 0 <= window["unknowable_frauds"] <= window["handbook_frauds"]
    assert window["train_rows"] > figures["windows"][0]["train_rows"]  # "all" trains on more history
    assert set(figures["summary"]) == {"7d", "all"}


def test_a_card_export_without_its_terminal_column_is_refused(tmp_path):
    frame = card_simulator.simulate(50, 100, 3, seed=1).drop("TERMINAL_ID")
    frame.with_columns(pl.col("TX_DATETIME").dt.strftime("%Y-%m-%d %H:%M:%S")).write_csv(tmp_path / "transactions.csv")
    with pytest.raises(IngestError, match="mapped column\\(s\\) missing from the file: .*TERMINAL_ID"):
        ingest([tmp_path], load_mapping(MAPPING), DataLayout(tmp_path / "data"), KEY, threshold=0.01)


def test_the_ceiling_ranks_only_a_fresh_terminal_compromise_at_random():
    t0 = datetime(2018, 5, 1, 12, tzinfo=ZoneInfo("UTC"))
    rows = [  # (customer, terminal, days after t0, label, fraud_type)
        ("c1", "A", 0, 1, "2"),    # A's first fraud: nothing usable yet
        ("c2", "A", 8, 1, "2"),    # A's fraud of day 0 is usable from day 7
        ("c3", "B", 0, 1, "2"),
        ("c4", "B", 40, 1, "2"),   # B's only earlier fraud is older than a compromise lasts
        ("c5", "C", 40, 1, "3"),   # customer takeover: the amount gives it away
    ] + [(f"g{i}", "D", i % 30, 0, "0") for i in range(200)]
    test = pl.DataFrame(rows, schema=["customer_id", "counterparty", "day", "label", "fraud_type"], orient="row")
    test = test.with_columns(
        (pl.lit(t0) + pl.duration(days=pl.col("day"))).alias("ts"), pl.col("label").cast(pl.Int8),
    ).with_columns(
        pl.col("ts").dt.date().cast(pl.String).alias("date"), (pl.col("ts") + timedelta(days=7)).alias("available_at"),
    )
    figures = ceiling_metrics(test, test)
    assert (figures["unknowable_frauds"], figures["handbook_frauds"]) == (3, 5)
    assert figures["ceiling_auc"] == pytest.approx((2 + 0.5 * 3) / 5)  # a tie with the genuine is half a win
    assert 2 / 5 < figures["ceiling_ap"] < 1
    assert figures["ceiling_cp100"] == pytest.approx(5 / 100 / 31)  # 5 fraudulent customers found over 31 days
