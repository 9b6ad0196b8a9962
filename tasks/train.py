"""Prefect task: train on a time-ordered split, log to MLflow, register and maybe promote."""
from __future__ import annotations

from datetime import datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from finrisk.config import get_settings
from finrisk.io import DataLayout
from finrisk.schema import BUSINESS_TZ
from models.fraud_model import TrainWindows, train_fraud_model
from models.registry import configure, log_and_register
from tasks.features import read_features


def day_start_utc(day: str) -> datetime:
    local = datetime.combine(datetime.strptime(day, "%Y-%m-%d").date(), time(0), ZoneInfo(BUSINESS_TZ))
    return local.astimezone(ZoneInfo("UTC"))


@task(name="train-fraud-model", retries=2, retry_delay_seconds=5)
def train_and_register(data_dir: Path, score_day: str, test_days: int = 7, seed: int = 7) -> dict:
    logger = get_run_logger()
    settings = get_settings()
    layout = DataLayout(Path(data_dir))
    features = read_features(data_dir)
    labels = pl.read_parquet(layout.labels)
    windows = TrainWindows.before(
        day_start_utc(score_day), features.get_column("ts").min(), test_days, settings.label_delay_days
    )
    result = train_fraud_model(features, labels, windows, seed=seed)
    configure(settings.tracking_uri, settings.artifact_root)
    reg = log_and_register(result, settings.mlflow_model_name)
    decision = "promoted to champion" if reg.promoted else "kept the current champion"
    logger.info(
        "model version %d: AP %.3f (champion %s) -> %s", reg.version, reg.challenger_metric,
        "none" if reg.champion_metric is None else f"{reg.champion_metric:.3f}", decision,
    )
    create_markdown_artifact(
        key="model-decision",
        markdown=(
            f"## Model version {reg.version}\n\n"
            + "\n".join(f"- **{k}**: {v:.4f}" for k, v in sorted(result.metrics.items()))
            + f"\n\nChampion AP: {reg.champion_metric}; decision: **{decision}**"
        ),
    )
    return {"version": reg.version, "promoted": reg.promoted, "run_id": reg.run_id, "metrics": result.metrics}
