"""Prefect tasks: the champion scores a day or a date range; scores, reasons and top alerts to Parquet."""
from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import polars as pl
from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact

from finrisk.config import get_settings
from finrisk.io import DataLayout, scan_partitioned, write_parquet_atomic
from models.registry import configure, load_alias

SCORE_COLUMNS = ("txn_id", "customer_id", "ts", "amount_paise", "channel", "counterparty")


def load_champion(model_name: str | None = None, alias: str = "champion"):
    settings = get_settings()
    configure(settings.tracking_uri, settings.artifact_root)
    name = model_name or settings.mlflow_model_name
    champion = load_alias(name, alias)
    if champion is None:
        raise RuntimeError(f"no {alias} for model {name!r}; train a model first (finrisk train)")
    return champion


def score_features(features: pl.DataFrame, scorer, version: int) -> pl.DataFrame:
    present = [c for c in SCORE_COLUMNS if c in features.columns]
    return pl.concat([features.select(present), scorer.score_with_reasons(features)], how="horizontal").with_columns(
        pl.lit(version).alias("model_version")
    )


@task(name="score-day")
def score_day(data_dir: Path, day: str) -> dict:
    logger = get_run_logger()
    settings = get_settings()
    layout = DataLayout(Path(data_dir))
    scorer, version = load_champion()
    scored = score_features(pl.read_parquet(layout.partition(layout.features, day)), scorer, version)
    write_parquet_atomic(scored, layout.partition(layout.scores, day))
    alerts = scored.sort("score", "txn_id", descending=[True, False]).head(settings.alerts_per_day)
    write_parquet_atomic(alerts, layout.partition(layout.alerts, day))
    logger.info("scored %d transactions of %s with model version %d", scored.height, day, version)
    create_table_artifact(
        key="top-alerts",
        table=alerts.head(20).select(
            "txn_id", "customer_id", pl.col("ts").cast(pl.String), (pl.col("amount_paise") / 100).alias("amount_inr"),
            "channel", pl.col("score").round(4), pl.col("reasons").list.join("; "),
        ).to_dicts(),
        description=f"Top alerts for {day} (model version {version})",
    )
    return {"day": day, "scored": scored.height, "alerts": alerts.height, "model_version": version}


@task(name="score-range")
def score_range(data_dir: Path, date_from: date, date_to: date, out: Path) -> dict:
    """Every transaction with business date in [date_from, date_to]: txn_id, customer_id, ts, score,
    anomaly_score, reasons."""
    if date_to < date_from:
        raise ValueError(f"--to {date_to} is before --from {date_from}")
    layout = DataLayout(Path(data_dir))
    scorer, version = load_champion()
    features = (
        scan_partitioned(layout.features)
        .filter(pl.col("date").is_between(pl.lit(date_from.isoformat()), pl.lit(date_to.isoformat())))
        .collect()
    )
    if features.height == 0:
        raise ValueError(f"no transactions with features between {date_from} and {date_to} under {layout.features}")
    scored = score_features(features, scorer, version).select(
        "txn_id", "customer_id", "ts", "score", "anomaly_score", "reasons", "model_version"
    )
    write_parquet_atomic(scored, Path(out))
    get_run_logger().info("scored %d transactions from %s to %s into %s", scored.height, date_from, date_to, out)
    return {"scored": scored.height, "out": str(out), "model_version": version, "days": (date_to - date_from + timedelta(days=1)).days}
