"""Prefect task: score what arrived since the last run on the online path; publish the top alerts."""
from __future__ import annotations

from pathlib import Path

import polars as pl
from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact

from finrisk.config import get_settings
from finrisk.io import DataLayout
from service.recent import RunInProgress, score_recent
from service.scoring import check_thresholds
from tasks.score import load_champion

TOP_ALERTS = 20


@task(name="score-recent")
def score_recent_task(data_dir: Path, model_name: str | None = None) -> dict:
    logger = get_run_logger()
    settings = get_settings()
    check_thresholds(settings.review_threshold, settings.block_threshold)
    champion = load_champion(model_name, settings.champion_alias)
    layout = DataLayout(Path(data_dir))
    labels = pl.read_parquet(layout.labels) if layout.labels.exists() else None
    key = settings.pseudonym_key.get_secret_value().encode() if settings.pseudonym_key else None
    try:
        run = score_recent(
            Path(data_dir), champion, settings.review_threshold, settings.block_threshold, labels,
            settings.consent_required, key,
        )
    except RunInProgress as exc:  # runs every minute: an overlapping run steps aside
        logger.info("skipped: %s", exc)
        return {"skipped": True, "reason": str(exc), "scored": 0}
    if run.not_processed:
        logger.info("not processed (consent withdrawn or customer erased): %s", run.not_processed)
    if run.waiting:
        logger.info("%d day(s) with new rows but no twin to score them on (latest: %s)", len(run.waiting), run.waiting[-1])
    alerts = 0 if run.alerts is None else run.alerts.height
    logger.info("scored %d new transactions (%s) with model version %d; %d alerts",
                run.total, run.scored or "none", run.model_version, alerts)
    if alerts:
        create_table_artifact(
            key="recent-alerts",
            table=run.alerts.head(TOP_ALERTS).select(
                "txn_id", "customer_id", pl.col("ts").cast(pl.String), (pl.col("amount_paise") / 100).alias("amount_inr"),
                "channel", pl.col("score").round(4), "decision", pl.col("reasons").list.join("; "),
            ).to_dicts(),
            description=f"Top alerts of this run (model version {run.model_version})",
        )
    return {"skipped": False, "scored": run.total, "by_day": run.scored, "alerts": alerts,
            "waiting_days": run.waiting, "not_processed": sum(run.not_processed.values()),
            "model_version": run.model_version}
