"""Daily report benchmark: `finrisk report` for one day of a demo-sized dataset.

Set-up writes the documented layout directly: 2,000 customers x 60 days of processed
transactions (~160k rows), the last day's scores with reasons and its 100 alerts, a quarantine
file, and a champion in a fresh MLflow store. The measured work is the CLI command in its own
process under /usr/bin/time -v, so start-up (Polars, MLflow, matplotlib imports) is included.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from finrisk.io import DataLayout, write_parquet_atomic

CUSTOMERS, DAYS, PER_CUSTOMER_DAY = 2_000, 60, 1.3
DAY = date(2026, 3, 1)
MODEL = "finrisk-bench-report"


def _transactions(seed: int = 5) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = int(CUSTOMERS * DAYS * PER_CUSTOMER_DAY)
    start = np.datetime64(str(DAY - timedelta(days=DAYS - 1))) - np.timedelta64(330, "m")  # 00:00 IST in UTC
    offsets = rng.integers(0, DAYS * 86_400, rows).astype("timedelta64[s]")
    return pl.DataFrame(
        {
            "txn_id": [f"T{i:010d}" for i in range(rows)],
            "customer_id": [f"C{c:07d}" for c in rng.integers(0, CUSTOMERS, rows)],
            "ts": (start + offsets).astype("datetime64[us]"),
            "amount_paise": np.round(np.exp(rng.normal(7.5, 1.4, rows)) * 100).astype(np.int64),
            "channel": rng.choice(["UPI", "CARD_POS", "IMPS", "ATM"], rows),
            "counterparty": [f"M{m:06d}" for m in rng.integers(0, 500, rows)],
        }
    ).with_columns(pl.col("ts").dt.replace_time_zone("UTC")).with_columns(
        pl.col("ts").dt.convert_time_zone("Asia/Kolkata").dt.date().cast(pl.String).alias("date")
    )


def _set_up(data_dir: Path, mlruns: Path) -> int:
    layout = DataLayout(data_dir)
    txns = _transactions()
    for (day,), part in txns.partition_by("date", as_dict=True, include_key=False).items():
        write_parquet_atomic(part, layout.partition(layout.transactions, day))
    todays = txns.filter(pl.col("date") == DAY.isoformat()).drop("date")
    rng = np.random.default_rng(9)
    scores = todays.with_columns(
        pl.Series("score", rng.beta(0.3, 20, todays.height)),
        pl.Series("anomaly_score", rng.random(todays.height)),
        pl.concat_list(
            pl.format("amount over the customer's mean amount in the 30 days before: {}", pl.col("amount_paise") % 9),
            pl.format("hour of day in Asia/Kolkata: {}", pl.col("ts").dt.convert_time_zone("Asia/Kolkata").dt.hour()),
        ).alias("reasons"),
        pl.lit(1, pl.Int32).alias("model_version"),
    )
    write_parquet_atomic(scores, layout.partition(layout.scores, DAY.isoformat()))
    write_parquet_atomic(
        scores.sort("score", descending=True).head(100), layout.partition(layout.alerts, DAY.isoformat())
    )
    write_parquet_atomic(
        todays.head(50).with_columns(pl.lit(["channel in set"], pl.List(pl.String)).alias("reasons")),
        layout.quarantine / "source=bench.csv" / "part-0.parquet",
    )
    _champion(mlruns)
    return scores.height


def _champion(mlruns: Path) -> None:
    """A champion with metrics in a fresh MLflow store (set up in a child process: its env is the bench's)."""
    script = f"""
import mlflow
from mlflow import MlflowClient
from models.registry import configure
configure("sqlite:///{mlruns / 'mlflow.db'}", __import__("pathlib").Path("{mlruns / 'artifacts'}"))
with mlflow.start_run() as run:
    mlflow.log_metrics({{"auc": 0.93, "average_precision": 0.41, "card_precision_at_100": 0.06}})
client = MlflowClient()
client.create_registered_model("{MODEL}")
v = client.create_model_version("{MODEL}", source=run.info.artifact_uri, run_id=run.info.run_id)
client.set_registered_model_alias("{MODEL}", "champion", v.version)
"""
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)


def _time_v(stderr: str, label: str) -> str:
    return re.search(rf"{re.escape(label)}: (.+)", stderr).group(1).strip()


def main(out_dir: Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=out_dir))
    try:
        data_dir, mlruns, report = work / "data", work / "mlruns", work / "report.html"
        scored = _set_up(data_dir, mlruns)
        env = dict(os.environ, FINRISK_MLRUNS_DIR=str(mlruns), FINRISK_MLFLOW_MODEL_NAME=MODEL)
        env.pop("FINRISK_MLFLOW_TRACKING_URI", None)
        command = (
            "import typer; from finrisk.cli_ops import register; app = typer.Typer(); register(app); app()"
        )
        proc = subprocess.run(
            ["/usr/bin/time", "-v", sys.executable, "-c", command, "report", DAY.isoformat(),
             "--data-dir", str(data_dir), "--out", str(report)],
            env=env, capture_output=True, text=True, check=True,
        )
        wall = _time_v(proc.stderr, "Elapsed (wall clock) time (h:mm:ss or m:ss)")
        minutes, seconds = wall.rsplit(":", 1)
        return {
            "transactions_in_history": int(CUSTOMERS * DAYS * PER_CUSTOMER_DAY),
            "scored_that_day": scored,
            "alerts": 100,
            "report_wall_s": round(float(minutes.split(":")[-1]) * 60 + float(seconds), 2),
            "report_peak_rss_mib": round(int(_time_v(proc.stderr, "Maximum resident set size (kbytes)")) / 1024),
            "report_size_kib": round(report.stat().st_size / 1024),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
