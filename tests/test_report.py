"""The analysts' daily report: built from Parquet files in the documented layout and a real MLflow
registry, written by the CLI, and looked at in a real headless Chromium."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest
import typer
from typer.testing import CliRunner

from finrisk.cli_ops import register
from finrisk.config import reset_settings
from finrisk.io import DataLayout, write_parquet_atomic
from finrisk.report import format_inr, indian_grouping

IST = ZoneInfo("Asia/Kolkata")
DAY = date(2026, 3, 10)
CUSTOMERS = ["C0000001", "C0000002", "C0000003", "C0000004"]
AMOUNT_RULE = "amount_paise between 1 and 10000000000"
BIG_TXN = "T900000001"  # 1,23,456.78 rupees at 01:30 IST on DAY, which is still the day before in UTC
MODEL_NAME = "finrisk-report-test"
CHROMIUM = shutil.which("chromium")


def _cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def _transactions() -> pl.DataFrame:
    """Three transactions a day for 30 days per customer, plus one large one in the small hours of DAY."""
    days = pl.date_range(DAY - timedelta(days=29), DAY, eager=True).alias("day")
    grid = (
        pl.DataFrame({"customer_id": CUSTOMERS}).join(days.to_frame(), how="cross")
        .join(pl.DataFrame({"hour": [9, 13, 20]}), how="cross")
        .with_row_index("n")
    )
    usual = grid.select(
        pl.format("T{}", pl.col("n").cast(pl.String).str.zfill(9)).alias("txn_id"),
        "customer_id",
        (pl.col("day").cast(pl.Datetime("us")) + pl.duration(hours=pl.col("hour"), minutes=pl.col("n") % 50))
        .dt.replace_time_zone("Asia/Kolkata").dt.convert_time_zone("UTC").alias("ts"),
        ((pl.col("n") * 7919) % 900_000 + 5_000).cast(pl.Int64).alias("amount_paise"),
        pl.lit("UPI").alias("channel"),
        pl.format("M{}", pl.col("n") % 7).alias("counterparty"),
    )
    big = pl.DataFrame(
        {
            "txn_id": [BIG_TXN], "customer_id": [CUSTOMERS[0]],
            "ts": [datetime.combine(DAY, time(1, 30), IST).astimezone(ZoneInfo("UTC"))],
            "amount_paise": [12_345_678], "channel": ["IMPS"], "counterparty": ["tk_payee"],
        },
        schema=usual.schema,
    )
    return pl.concat([usual, big]).with_columns(
        pl.col("ts").dt.convert_time_zone("Asia/Kolkata").dt.date().cast(pl.String).alias("date")
    )


def _write_day(data_dir: Path) -> pl.DataFrame:
    """Processed transactions, the day's scores and alerts, a quarantine file, a validation summary
    and a twin partition, in the layout the pipeline writes. Returns the alerts."""
    layout = DataLayout(data_dir)
    txns = _transactions()
    for (day,), part in txns.partition_by("date", as_dict=True, include_key=False).items():
        write_parquet_atomic(part, layout.partition(layout.transactions, day))
    todays = txns.filter(pl.col("date") == DAY.isoformat()).drop("date").sort("txn_id")
    scores = todays.with_row_index("i").with_columns(
        pl.when(pl.col("txn_id") == BIG_TXN).then(0.99).otherwise((pl.col("i") * 37 % 100) / 250).alias("score"),
        ((pl.col("i") * 53 % 100) / 100).alias("anomaly_score"),
        pl.concat_list(
            pl.format("amount over the customer's mean amount in the 30 days before: {}", (pl.col("i") % 9) + 1),
            pl.lit("hour of day in Asia/Kolkata: 1"),
        ).alias("reasons"),
        pl.lit(1, pl.Int32).alias("model_version"),
    ).drop("i")
    write_parquet_atomic(scores, layout.partition(layout.scores, DAY.isoformat()))
    alerts = scores.sort("score", "txn_id", descending=[True, False]).head(5)
    write_parquet_atomic(alerts, layout.partition(layout.alerts, DAY.isoformat()))

    write_parquet_atomic(
        pl.DataFrame(
            {
                "txn_id": ["Q1", "Q2", "Q3"],
                "ts": [datetime.combine(DAY, time(10), IST), None, datetime.combine(DAY - timedelta(days=1), time(10), IST)],
                "reasons": [[AMOUNT_RULE], ["ts not null", AMOUNT_RULE], ["channel in set"]],
            }
        ).with_columns(pl.col("ts").dt.convert_time_zone("UTC")),
        layout.quarantine / "source=txns_2026-03-10.csv" / "part-0.parquet",
    )
    validation = layout.validation / f"date={DAY.isoformat()}" / "summary.json"
    validation.parent.mkdir(parents=True, exist_ok=True)
    validation.write_text(json.dumps([
        {"expectation": "txn_id unique", "success": True, "unexpected_count": 0},
        {"expectation": "channel in set", "success": False, "unexpected_count": 1},
    ]))
    twin = data_dir / "processed" / "twins" / f"date={DAY.isoformat()}"  # as of DAY: behaviour before it
    write_parquet_atomic(
        pl.DataFrame(
            {"customer_id": [CUSTOMERS[0]], "txn_count": [87], "p50_paise": [456_789], "p99_paise": [880_000],
             "hour_counts": [[0] * 9 + [29, 0, 0, 0, 29] + [0] * 6 + [29, 0, 0, 0]]}
        ),
        twin / "profiles.parquet",
    )
    (twin / "twin.json").write_text(json.dumps({"format": 1, "as_of": DAY.isoformat()}))
    return alerts


def _register_champion(mlruns: Path) -> None:
    """A real MLflow registry: a run with metrics and a plot, registered and aliased champion."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow
    from mlflow import MlflowClient

    from finrisk.config import get_settings
    from models.registry import configure

    settings = get_settings()
    configure(settings.tracking_uri, settings.artifact_root)
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [1, 0])
    plot = mlruns / "pr_curve.png"
    plot.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(plot)
    plt.close(fig)
    with mlflow.start_run(run_name="train") as run:
        mlflow.log_metrics(
            {"auc": 0.912, "average_precision": 0.4321, "card_precision_at_100": 0.07, "test_frauds": 12.0}
        )
        mlflow.set_tag("decision", "promoted to champion")
        mlflow.log_artifact(str(plot), "plots")
    client = MlflowClient()
    client.create_registered_model(MODEL_NAME)
    version = client.create_model_version(MODEL_NAME, source=f"{run.info.artifact_uri}/plots", run_id=run.info.run_id)
    client.set_registered_model_alias(MODEL_NAME, "champion", version.version)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The report of DAY written by `finrisk report`, with its own MLflow store."""
    base = tmp_path_factory.mktemp("report")
    data_dir, out = base / "data", base / "out" / "day.html"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FINRISK_MLRUNS_DIR", str(base / "mlruns"))
        mp.setenv("FINRISK_MLFLOW_MODEL_NAME", MODEL_NAME)
        reset_settings()
        try:
            alerts = _write_day(data_dir)
            _register_champion(base / "mlruns")
            args = ["report", DAY.isoformat(), "--data-dir", str(data_dir), "--out", str(out)]
            result = CliRunner().invoke(_cli(), args)
        finally:
            reset_settings()
    assert result.exit_code == 0, result.output
    return out, alerts, result.output, data_dir


def test_indian_digit_grouping_and_exact_rupees():
    assert indian_grouping(0) == "0"
    assert indian_grouping(999) == "999"
    assert indian_grouping(1000) == "1,000"
    assert indian_grouping(123456) == "1,23,456"
    assert indian_grouping(1234567890) == "1,23,45,67,890"
    assert format_inr(12_345_678) == "₹1,23,456.78"
    assert format_inr(5) == "₹0.05"
    assert format_inr(10_000_000_000) == "₹10,00,00,000.00"
    assert format_inr(-150_000) == "-₹1,500.00"


def test_report_holds_alerts_reasons_customers_quality_and_model(report):
    out, alerts, output, _ = report
    html = out.read_text(encoding="utf-8")
    assert str(out) in output and "5 alerts" in output
    assert not re.search(r'(src|href)="https?:|<script|<link', html)  # self-contained: nothing to fetch

    rows = re.findall(r'<tr class="alert-row" data-txn="([^"]+)">', html)
    assert rows == alerts.get_column("txn_id").to_list()  # every alert, best first
    big = html[html.index(f'data-txn="{BIG_TXN}"'):]
    big = big[:big.index("</tr>")]
    assert "₹1,23,456.78" in big and "01:30:00" in big  # INR grouping; IST, not UTC (20:00)
    assert "amount over the customer&#39;s mean amount in the 30 days before" in big

    customers = alerts.get_column("customer_id").unique().to_list()
    for customer in customers:
        assert f'id="customer-{customer}"' in html
    assert html.count('class="chart"') == len(customers) + 2  # one per flagged customer + the day's overview
    assert "Twin profile as of 2026-03-10" in html and "median amount" in html and "₹4,567.89" in html
    assert html.count("Usual hours (twin)") == 1  # only the customer with a twin gets its hour profile

    assert AMOUNT_RULE in html  # quarantine reasons
    assert re.search(r"3 rows from 1 source file.*1 of them are dated 2026-03-10", html, re.S)
    assert "1 failed" in html and "summary.json" in html
    assert f"Champion: {MODEL_NAME} version 1" in html
    assert "0.912" in html and "0.432" in html and "promoted to champion" in html
    assert html.count("data:image/png;base64,") == 1  # the champion's plot from MLflow


def test_a_run_publishes_the_report_and_the_data_quality_as_artifacts(report, prefect_harness):
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from tasks.report import publish_data_quality, write_daily_report

    data_dir = report[3]
    ingest = {"rows_in": 10, "loaded": 7, "quarantined": 2, "duplicates": 1, "quarantine_reasons": {"channel in set": 2}}

    @flow(name="publish-report-check")
    def publish() -> str:
        publish_data_quality(data_dir, ingest)
        return write_daily_report(data_dir, DAY.isoformat())

    state = publish(return_state=True)
    path = Path(state.result())
    assert path == (data_dir / "reports" / f"report-{DAY.isoformat()}.html").resolve() and path.stat().st_size > 0
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
    by_key = {a.key: a for a in artifacts}
    assert f"Daily fraud report {DAY.isoformat()}]({path.as_uri()})" in by_key["daily-report"].data
    quality = by_key["data-quality"].data
    assert "| 10 | 7 | 2 | 1 |" in quality and "| channel in set | 2 |" in quality
    assert "No Data Docs built yet." in quality


def test_report_without_optional_inputs_still_renders(tmp_path, monkeypatch):
    """No quarantine, validation, twins, processed history or MLflow store: each panel says so."""
    monkeypatch.setenv("FINRISK_MLRUNS_DIR", str(tmp_path / "no-mlruns"))
    reset_settings()
    layout = DataLayout(tmp_path / "data")
    scores = _transactions().filter(pl.col("date") == DAY.isoformat()).drop("date").with_columns(
        pl.lit(0.5).alias("score"), pl.lit(0.1).alias("anomaly_score"),
        pl.lit(["x"], pl.List(pl.String)).alias("reasons"), pl.lit(1, pl.Int32).alias("model_version"),
    )
    write_parquet_atomic(scores, layout.partition(layout.scores, DAY.isoformat()))
    try:
        result = CliRunner().invoke(_cli(), ["report", DAY.isoformat(), "--data-dir", str(layout.root)])
    finally:
        monkeypatch.undo()
        reset_settings()
    assert result.exit_code == 0, result.output
    html = (layout.root / "reports" / f"report-{DAY.isoformat()}.html").read_text(encoding="utf-8")
    assert "No rows in quarantine" in html and "No validation summary stored" in html
    assert "no MLflow store at" in html and "Twin profile" not in html
    assert len(re.findall(r'<tr class="alert-row"', html)) == min(scores.height, 100)  # alerts fall back to top scores


def test_report_for_a_day_without_scores_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(_cli(), ["report", "2026-03-11", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "no scores for 2026-03-11" in result.output and "Traceback" not in result.output
    bad = CliRunner().invoke(_cli(), ["report", "11-03-2026", "--data-dir", str(tmp_path)])
    assert bad.exit_code == 1 and "DATE must be a business date like" in bad.output


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=180,
    )


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/install_chromium.sh installs it)")
def test_report_renders_in_headless_chromium(report, tmp_path):
    import numpy as np
    from PIL import Image

    out, alerts, _, _ = report
    dom = _chromium("--dump-dom", out.as_uri(), profile=tmp_path / "profile").stdout
    assert len(re.findall(r'<tr class="alert-row"', dom)) == alerts.height
    assert len(re.findall(r'<svg[^>]*class="chart"', dom)) == alerts.get_column("customer_id").n_unique() + 2
    assert "₹1,23,456.78" in dom

    shot = tmp_path / "report.png"
    _chromium(f"--screenshot={shot}", "--window-size=1280,2000", out.as_uri(), profile=tmp_path / "profile")
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2000)
    pixels = np.asarray(image).astype(int)
    red, green, blue = pixels[0, 640]
    assert blue > 100 and red < 80  # the blue header band was painted
    reds = ((pixels[..., 0] > 190) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)).sum()
    assert reds > 500  # alert KPI, score bars and the alerted points in the charts
