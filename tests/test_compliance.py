"""Casework, STR and CTR exports on real Parquet files in the documented layout."""
from datetime import date, datetime, timedelta, timezone

import polars as pl
import pytest
from typer.testing import CliRunner

from finrisk.audit import read_events
from finrisk.cli import app
from finrisk.compliance import cash_transaction_report, mark_alert, suspicious_transaction_report
from finrisk.config import get_settings
from finrisk.io import DataLayout, write_parquet_atomic

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=timezone.utc)


def _dataset(root) -> DataLayout:
    layout = DataLayout(root)
    tx = pl.DataFrame(
        {
            "txn_id": ["T1", "T2", "T3", "T4", "T5"],
            "ts": [T0, T0 + timedelta(hours=1), T0 + timedelta(days=1), T0 + timedelta(days=2), T0 + timedelta(days=3)],
            "customer_id": ["C1", "C1", "C2", "C1", "C2"],
            "account_id": ["tk_a1", "tk_a1", "tk_a2", "tk_a1", "tk_a2"],
            "channel": ["ATM", "ATM", "ATM", "UPI", "ATM"],
            "direction": ["DEBIT"] * 5,
            "status": ["SUCCESS"] * 5,
            "city": ["Pune"] * 5,
            "amount_paise": [6_00_000_00, 5_00_000_00, 2_00_000_00, 9_99_999_00, 3_00_000_00],
        }
    ).with_columns(pl.col("ts").dt.cast_time_unit("us"))
    tx = tx.with_columns(pl.col("ts").dt.convert_time_zone("Asia/Kolkata").dt.date().cast(pl.String).alias("date"))
    for (day,), part in tx.partition_by("date", as_dict=True, include_key=False).items():
        write_parquet_atomic(part, layout.partition(layout.transactions, day))
    alerts = tx.filter(pl.col("txn_id").is_in(["T1", "T4"])).select(
        "txn_id", "customer_id", "ts", "amount_paise", "channel", pl.lit("M1").alias("counterparty"),
        pl.lit(0.97).alias("score"), pl.lit(0.5).alias("anomaly_score"),
        pl.lit(["amount far above the customer's usual"]).alias("reasons"), pl.lit(3).alias("model_version"), "date",
    )
    for (day,), part in alerts.partition_by("date", as_dict=True, include_key=False).items():
        write_parquet_atomic(part, layout.partition(layout.alerts, day))
    return layout


def test_str_lists_only_alerts_marked_suspicious(tmp_path):
    layout = _dataset(tmp_path)
    mark_alert(layout, "T1", "suspicious", "analyst1", "cash-out pattern")
    mark_alert(layout, "T4", "suspicious", "analyst1")
    mark_alert(layout, "T4", "false_positive", "analyst2", "known payee")  # the latest decision wins
    report = suspicious_transaction_report(layout, date(2026, 3, 1), date(2026, 3, 31), "Test Bank")
    assert report.get_column("txn_id").to_list() == ["T1"]
    row = report.row(0, named=True)
    assert row["amount_inr"] == 600000.0 and row["account_ref"] == "tk_a1"
    assert row["txn_time_ist"] == "2026-03-02 11:30:00" and row["analyst_note"] == "cash-out pattern"
    assert row["report_ref"] == "STR-20260331-00001"
    with pytest.raises(ValueError, match="not an alert"):
        mark_alert(layout, "T2", "suspicious", "analyst1")
    with pytest.raises(ValueError, match="disposition must be"):
        mark_alert(layout, "T1", "guilty", "analyst1")


def test_ctr_reports_customers_over_ten_lakh_cash_in_the_month(tmp_path):
    layout = _dataset(tmp_path)
    report = cash_transaction_report(layout, "2026-03")
    # C1: 6 + 5 lakh of ATM cash (the UPI payment is not cash) -> reported; C2: 5 lakh -> not.
    assert report.get_column("txn_id").to_list() == ["T1", "T2"]
    assert report.get_column("month_cash_total_inr").unique().to_list() == [1100000.0]
    assert cash_transaction_report(layout, "2026-04").height == 0
    with pytest.raises(ValueError, match="month must look like"):
        cash_transaction_report(layout, "March")


def test_cli_marks_exports_and_audits(tmp_path):
    layout = _dataset(tmp_path / "d")
    runner = CliRunner()
    marked = runner.invoke(app, ["alerts", "mark", "T1", "--as", "suspicious", "--data-dir", str(layout.root)])
    assert marked.exit_code == 0, marked.output
    out = tmp_path / "str.csv"
    result = runner.invoke(app, ["str", "--from", "2026-03-01", "--to", "2026-03-31", "--out", str(out), "--data-dir", str(layout.root)])
    assert result.exit_code == 0, result.output
    assert pl.read_csv(out).get_column("txn_id").to_list() == ["T1"]
    actions = [e["action"] for e in read_events(get_settings().audit_log)]
    assert "alert_disposition" in actions and "str_export" in actions
    bad = runner.invoke(app, ["str", "--from", "yesterday", "--to", "2026-03-31", "--data-dir", str(layout.root)])
    assert bad.exit_code == 1 and "must be dates" in bad.output
