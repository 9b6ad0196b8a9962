"""Prefect tasks: train on time-ordered windows, log to MLflow, register and maybe promote; evaluate."""
from __future__ import annotations

import math
from contextlib import nullcontext
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import mlflow
import polars as pl
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from finrisk.audit import record
from finrisk.config import get_settings
from finrisk.io import DataLayout
from finrisk.schema import BUSINESS_TZ
from models.distributed import dask_client
from models.fraud_model import TrainWindows, train_fraud_model
from models.prequential import prequential_evaluation, prequential_windows, summarise
from models.registry import configure, log_and_register
from tasks.features import peer_groups_path, read_features
from tasks.retries import RETRY_EXTERNAL


def day_start_utc(day: str | date) -> datetime:
    d = day if isinstance(day, date) else datetime.strptime(day, "%Y-%m-%d").date()
    return datetime.combine(d, time(0), ZoneInfo(BUSINESS_TZ)).astimezone(ZoneInfo("UTC"))


def _labels(layout: DataLayout) -> pl.DataFrame:
    if not layout.labels.exists():
        raise FileNotFoundError(f"no labels under {layout.labels}: ingest a labels source first")
    return pl.read_parquet(layout.labels)


def explicit_windows(train_from: date, train_to: date, delay_days: int, test_days: int) -> TrainWindows:
    """Train on [train_from, train_to] (business dates, inclusive); test on the test_days that
    follow the label-delay gap."""
    if train_to < train_from:
        raise ValueError(f"--train-to {train_to} is before --train-from {train_from}")
    train_end = day_start_utc(train_to + timedelta(days=1))
    test_start = train_end + timedelta(days=delay_days)
    return TrainWindows(day_start_utc(train_from), train_end, test_start, test_start + timedelta(days=test_days))


def _log_peer_groups(data_dir: Path, run_id: str) -> None:
    """The behavioural clustering behind the peer-group features: k and the silhouette and size
    diagnostics of every candidate k, on the training run."""
    diagnostics = peer_groups_path(data_dir).with_name("diagnostics.parquet")
    if not diagnostics.exists():
        return
    table = pl.read_parquet(diagnostics)
    client = mlflow.MlflowClient()
    client.log_table(run_id, data=table.to_pandas(), artifact_file="peer_groups/diagnostics.json")
    best = table.sort("silhouette", descending=True).row(0, named=True)
    client.log_param(run_id, "peer_groups_k", best["k"])
    client.log_metric(run_id, "peer_groups_silhouette", best["silhouette"])


def _publish(result, reg, logger) -> dict:
    decision = "promoted to champion" if reg.promoted else "kept the current champion"
    record(
        get_settings().audit_log, "model_registered", f"{get_settings().mlflow_model_name} v{reg.version}",
        {"decision": decision, "challenger_ap": reg.challenger_metric, "champion_ap": reg.champion_metric,
         "champion_version_before": reg.champion_version, "run_id": reg.run_id},
    )
    champion = "none" if reg.champion_metric is None else f"{reg.champion_metric:.4f}"
    logger.info("model version %d: AP %.4f (champion %s) -> %s", reg.version, reg.challenger_metric, champion, decision)
    create_markdown_artifact(
        key="model-decision",
        markdown=(
            f"## Model version {reg.version}: {decision}\n\n"
            f"Challenger AP {reg.challenger_metric:.4f}; champion (version {reg.champion_version}) AP {champion} "
            "on the same held-out window.\n\n"
            + "\n".join(f"- **{k}**: {v:.4f}" for k, v in sorted(result.metrics.items()) if not math.isnan(v))
        ),
    )
    return {"version": reg.version, "promoted": reg.promoted, "run_id": reg.run_id, "metrics": result.metrics}


@task(name="train-fraud-model", **RETRY_EXTERNAL)
def train_and_register(data_dir: Path, score_day: str, test_days: int = 7, seed: int = 7) -> dict:
    """Nightly training: all history up to the label-delay gap before the last test_days before score_day."""
    settings = get_settings()
    layout = DataLayout(Path(data_dir))
    features = read_features(data_dir)
    windows = TrainWindows.before(
        day_start_utc(score_day), features.get_column("ts").min(), test_days, settings.label_delay_days
    )
    result = train_fraud_model(features, _labels(layout), windows, settings.label_delay_days, seed=seed)
    configure(settings.tracking_uri, settings.artifact_root)
    reg = log_and_register(result, settings.mlflow_model_name, "nightly-train")
    _log_peer_groups(Path(data_dir), reg.run_id)
    return _publish(result, reg, get_run_logger())


@task(name="train-fraud-model-window", **RETRY_EXTERNAL)
def train_window(
    data_dir: Path, train_from: date, train_to: date, label_delay_days: int, test_days: int = 7, seed: int = 7,
    dask: bool = False,
) -> dict:
    """dask: LightGBM trains across the Dask cluster (FINRISK_DASK_ADDRESS, or a local one)."""
    settings = get_settings()
    layout = DataLayout(Path(data_dir))
    windows = explicit_windows(train_from, train_to, label_delay_days, test_days)
    features = read_features(data_dir)
    with dask_client(settings.dask_address, settings.dask_workers) if dask else nullcontext() as client:
        result = train_fraud_model(features, _labels(layout), windows, label_delay_days, seed=seed, dask_client=client)
    configure(settings.tracking_uri, settings.artifact_root)
    reg = log_and_register(result, settings.mlflow_model_name, "train")
    _log_peer_groups(Path(data_dir), reg.run_id)
    return _publish(result, reg, get_run_logger())


@task(name="prequential-evaluation", **RETRY_EXTERNAL)
def evaluate(
    data_dir: Path, windows: int = 3, train_days: int = 28, test_days: int = 7, label_delay_days: int = 7, seed: int = 7
) -> dict:
    settings = get_settings()
    layout = DataLayout(Path(data_dir))
    features = read_features(data_dir)
    ts = features.get_column("ts")
    last_day = ts.max().astimezone(ZoneInfo(BUSINESS_TZ)).date()
    plan = prequential_windows(
        ts.min(), day_start_utc(last_day + timedelta(days=1)), train_days, label_delay_days, test_days, windows
    )
    table, per_type = prequential_evaluation(features, _labels(layout), plan, label_delay_days, seed=seed)
    summary = summarise(table)
    configure(settings.tracking_uri, settings.artifact_root)
    with mlflow.start_run(run_name="prequential-evaluation"):
        mlflow.log_params({"windows": len(plan), "train_days": train_days, "test_days": test_days,
                           "label_delay_days": label_delay_days, "seed": seed})
        for row in table.iter_rows(named=True):  # one MLflow step per window
            mlflow.log_metrics(
                {k: v for k, v in row.items() if isinstance(v, float) and not math.isnan(v)}, step=row["window"]
            )
        mlflow.log_table(table.to_pandas(), "evaluation/windows.json")
        mlflow.log_table(per_type.to_pandas(), "evaluation/recall_per_typology.json")
        mlflow.log_table(summary.to_pandas(), "evaluation/summary.json")
    create_table_artifact(key="prequential-evaluation", table=table.to_dicts(), description="Metrics per test window")
    get_run_logger().info("prequential evaluation over %d windows done", len(plan))
    return {"windows": table.to_dicts(), "per_typology": per_type.to_dicts(), "summary": summary.to_dicts()}
