"""Prefect tasks: the champion scores a day or a date range; scores, reasons and top alerts to Parquet."""
from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact

from finrisk.config import get_settings
from finrisk.io import DataLayout, write_parquet_atomic
from models.registry import alias_version, configure, load_alias, load_version
from tasks.retries import RETRY_EXTERNAL

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


@task(name="plan-score-range")
def plan_score_range(data_dir: Path, date_from: date, date_to: date) -> tuple[list[str], str, int]:
    """The business dates in [date_from, date_to] that have features, and the champion version
    every day's task will load (resolved once, so an alias moving mid-run cannot mix versions)."""
    if date_to < date_from:
        raise ValueError(f"--to {date_to} is before --from {date_from}")
    layout = DataLayout(Path(data_dir))
    days = sorted(
        p.parent.name.removeprefix("date=") for p in layout.features.glob("date=*/*.parquet")
        if date_from.isoformat() <= p.parent.name.removeprefix("date=") <= date_to.isoformat()
    )
    if not days:
        raise ValueError(f"no transactions with features between {date_from} and {date_to} under {layout.features}")
    settings = get_settings()
    configure(settings.tracking_uri, settings.artifact_root)
    version = alias_version(settings.mlflow_model_name, "champion")
    if version is None:
        raise RuntimeError(f"no champion for model {settings.mlflow_model_name!r}; train a model first (finrisk train)")
    return days, settings.mlflow_model_name, version


@task(name="score-range-day", **RETRY_EXTERNAL)
def score_range_day(data_dir: Path, day: str, model_name: str, version: int) -> pl.DataFrame:
    """One business day of a range: txn_id, customer_id, ts, score, anomaly_score, reasons, model_version."""
    settings = get_settings()
    configure(settings.tracking_uri, settings.artifact_root)
    layout = DataLayout(Path(data_dir))
    features = pl.read_parquet(layout.partition(layout.features, day))
    return score_features(features, load_version(model_name, version), version).select(
        "txn_id", "customer_id", "ts", "score", "anomaly_score", "reasons", "model_version"
    )


@task(name="write-score-range")
def write_score_range(parts: list[pl.DataFrame], out: Path, days: list[str], version: int) -> dict:
    scored = pl.concat(parts)
    write_parquet_atomic(scored, Path(out))
    get_run_logger().info("scored %d transactions from %s to %s into %s", scored.height, days[0], days[-1], out)
    return {"scored": scored.height, "out": str(out), "model_version": version, "days": len(days)}
