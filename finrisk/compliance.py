"""RBI / PMLA reporting duties: alert dispositions, suspicious-transaction and cash-transaction reports.

Identities stay out of this system (only pseudonymised tokens and internal customer ids reach
processed data): the exports carry the bank's internal customer id and account reference, which
the principal officer's KYC system resolves when filing with FIU-IND.
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import polars as pl

from finrisk.io import DataLayout, has_parquet, scan_partitioned, write_parquet_atomic
from finrisk.schema import BUSINESS_TZ

DISPOSITIONS = ("suspicious", "false_positive", "needs_review")
CTR_THRESHOLD_PAISE = 10_00_000 * 100  # INR 10 lakh of cash in a calendar month (PMLA rules)
CASH_CHANNELS = ("ATM",)

DISPOSITION_SCHEMA = {
    "txn_id": pl.String, "disposition": pl.String, "analyst": pl.String, "note": pl.String,
    "decided_at": pl.Datetime("us", "UTC"),
}


def dispositions_path(layout: DataLayout) -> Path:
    return layout.root / "casework" / "dispositions.parquet"


def mark_alert(layout: DataLayout, txn_id: str, disposition: str, analyst: str, note: str = "") -> pl.DataFrame:
    """Record an analyst's decision on an alert (the latest decision per transaction wins)."""
    if disposition not in DISPOSITIONS:
        raise ValueError(f"disposition must be one of {', '.join(DISPOSITIONS)}, not {disposition!r}")
    if not has_parquet(layout.alerts) or scan_partitioned(layout.alerts).filter(pl.col("txn_id") == txn_id).select(
        pl.len()
    ).collect().item() == 0:
        raise ValueError(f"{txn_id} is not an alert in {layout.alerts}")
    row = pl.DataFrame(
        {"txn_id": [txn_id], "disposition": [disposition], "analyst": [analyst], "note": [note],
         "decided_at": [datetime.now(timezone.utc)]},
        schema=DISPOSITION_SCHEMA,
    )
    path = dispositions_path(layout)
    table = pl.concat([pl.read_parquet(path), row]) if path.exists() else row
    table = table.sort("decided_at").unique("txn_id", keep="last").sort("txn_id")
    write_parquet_atomic(table, path)
    return table


def _ist(ts: pl.Expr) -> pl.Expr:
    return ts.dt.convert_time_zone(BUSINESS_TZ)


def suspicious_transaction_report(layout: DataLayout, date_from: date, date_to: date, reporting_entity: str) -> pl.DataFrame:
    """Alerts marked suspicious whose transaction falls in [date_from, date_to] (business dates)."""
    path = dispositions_path(layout)
    if not path.exists():
        return pl.DataFrame()
    suspicious = pl.read_parquet(path).filter(pl.col("disposition") == "suspicious")
    alerts = scan_partitioned(layout.alerts).filter(
        pl.col("date").is_between(pl.lit(date_from.isoformat()), pl.lit(date_to.isoformat()))
    ).collect()
    accounts = scan_partitioned(layout.transactions).select("txn_id", "account_id").collect()
    report = alerts.join(suspicious, on="txn_id", how="inner").join(accounts, on="txn_id", how="left")
    return report.sort("ts", "txn_id").select(
        pl.format("STR-{}-{}", pl.lit(date_to.strftime("%Y%m%d")), pl.int_range(1, pl.len() + 1).cast(pl.String).str.zfill(5)).alias("report_ref"),
        pl.lit(reporting_entity).alias("reporting_entity"),
        "customer_id",
        pl.col("account_id").alias("account_ref"),
        "txn_id",
        _ist(pl.col("ts")).dt.strftime("%Y-%m-%d %H:%M:%S").alias("txn_time_ist"),
        (pl.col("amount_paise") / 100).round(2).alias("amount_inr"),
        "channel",
        pl.col("counterparty").alias("counterparty_ref"),
        pl.col("score").round(4).alias("risk_score"),
        "model_version",
        pl.col("reasons").list.join("; ").alias("grounds_of_suspicion"),
        pl.col("note").alias("analyst_note"),
        pl.col("analyst").alias("marked_by"),
        _ist(pl.col("decided_at")).dt.strftime("%Y-%m-%d %H:%M:%S").alias("marked_at_ist"),
    )


def cash_transaction_report(
    layout: DataLayout, month: str, threshold_paise: int = CTR_THRESHOLD_PAISE
) -> pl.DataFrame:
    """Every cash transaction of customers whose cash total in the month (YYYY-MM) exceeds the threshold."""
    try:
        first = datetime.strptime(month + "-01", "%Y-%m-%d").date()
    except ValueError as exc:
        raise ValueError(f"month must look like 2026-03, not {month!r}") from exc
    cash = (
        scan_partitioned(layout.transactions)
        .filter(pl.col("date").str.starts_with(first.strftime("%Y-%m")) & pl.col("channel").is_in(CASH_CHANNELS))
        .filter(pl.col("status") == "SUCCESS")
        .collect()
    )
    totals = cash.group_by("customer_id").agg(pl.col("amount_paise").sum().alias("month_total_paise"))
    over = totals.filter(pl.col("month_total_paise") > threshold_paise)
    return (
        cash.join(over, on="customer_id")
        .sort("customer_id", "ts")
        .select(
            pl.lit(first.strftime("%Y-%m")).alias("month"), "customer_id", pl.col("account_id").alias("account_ref"),
            "txn_id", _ist(pl.col("ts")).dt.strftime("%Y-%m-%d %H:%M:%S").alias("txn_time_ist"), "direction",
            (pl.col("amount_paise") / 100).round(2).alias("amount_inr"), "channel", "city",
            (pl.col("month_total_paise") / 100).round(2).alias("month_cash_total_inr"),
        )
    )
