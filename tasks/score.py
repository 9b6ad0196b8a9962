"""Prefect task: the champion scores one day; scores and top alerts go to Parquet."""
from __future__ import annotations

from pathlib import Path

import polars as pl
from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact

from finrisk.config import get_settings
from finrisk.io import DataLayout, write_parquet_atomic
from models.registry import configure, load_alias


@task(name="score-day")
def score_day(data_dir: Path, day: str) -> dict:
    logger = get_run_logger()
    settings = get_settings()
    layout = DataLayout(Path(data_dir))
    configure(settings.tracking_uri, settings.artifact_root)
    champion = load_alias(settings.mlflow_model_name, "champion")
    if champion is None:
        raise RuntimeError(f"no champion for model {settings.mlflow_model_name!r}; run the train flow first")
    scorer, version = champion
    features = pl.read_parquet(layout.partition(layout.features, day))
    scored = pl.concat(
        [features.select("txn_id", "customer_id", "ts", "amount_paise", "channel", "counterparty"), scorer.score(features)],
        how="horizontal",
    ).with_columns(pl.lit(version).alias("model_version"))
    write_parquet_atomic(scored, layout.partition(layout.scores, day))
    alerts = scored.sort("score", "txn_id", descending=[True, False]).head(settings.alerts_per_day)
    write_parquet_atomic(alerts, layout.partition(layout.alerts, day))
    logger.info("scored %d transactions of %s with model version %d", scored.height, day, version)
    create_table_artifact(
        key="top-alerts",
        table=alerts.head(20).select(
            "txn_id", "customer_id", pl.col("ts").cast(pl.String), (pl.col("amount_paise") / 100).alias("amount_inr"),
            "channel", pl.col("score").round(4),
        ).to_dicts(),
        description=f"Top alerts for {day} (model version {version})",
    )
    return {"day": day, "scored": scored.height, "alerts": alerts.height, "model_version": version}
