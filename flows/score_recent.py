"""Micro-batch scoring: safe to run every minute."""
from __future__ import annotations

from pathlib import Path

from prefect import flow

from tasks.score_recent import score_recent_task


@flow(name="score-recent")
def score_recent_flow(data_dir: Path, model_name: str | None = None) -> dict:
    """Score the transactions that arrived since the last run (stored watermark + ledger) with the
    champion on the online feature path; write scores and alerts under DATA_DIR/recent/ and publish
    the top alerts. Never scores a transaction twice or skips one, also after a crash."""
    return score_recent_task(data_dir, model_name)
