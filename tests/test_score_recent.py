"""The score_recent flow: real Prefect runs on real Parquet with a real champion; rows arrive in
two ingests, a run crashes half-way, runs overlap."""
from __future__ import annotations

import fcntl
import os

import numpy as np
import polars as pl
import pytest

from finrisk.config import reset_settings
from finrisk.io import DataLayout, write_parquet_atomic
from scoring_support import BLOCK, DAY, MODEL_NAME, REVIEW, batch_scores, scoring_dataset  # noqa: F401
from service.recent import RecentLayout, read_watermark, score_day


@pytest.fixture()
def thresholds(monkeypatch):
    monkeypatch.setenv("FINRISK_REVIEW_THRESHOLD", str(REVIEW))
    monkeypatch.setenv("FINRISK_BLOCK_THRESHOLD", str(BLOCK))
    reset_settings()
    yield
    monkeypatch.undo()
    reset_settings()


@pytest.fixture()
def arriving(scoring_dataset, tmp_path):
    """A data dir whose partition for DAY holds the first part of the day; `land(n)` ingests more."""
    data = tmp_path / "data"
    processed = data / "processed"
    processed.mkdir(parents=True)
    for name in ("twins", "labels"):
        os.symlink(scoring_dataset.data / "processed" / name, processed / name)
    layout = DataLayout(data)
    rows = scoring_dataset.day_rows

    def land(n: int) -> None:
        write_parquet_atomic(rows.head(n), layout.partition(layout.transactions, DAY.isoformat()))

    return data, rows, land


def ledger(data) -> pl.DataFrame:
    return pl.read_parquet(RecentLayout(data).scores / f"date={DAY}" / "*.parquet")


def run(data):
    from flows.score_recent import score_recent_flow

    return score_recent_flow(data, MODEL_NAME)


def test_each_arrival_is_scored_once_and_equals_batch(prefect_harness, thresholds, arriving, scoring_dataset):
    data, rows, land = arriving
    land(100)
    first = run(data)
    assert first["scored"] == 100 and first["by_day"] == {DAY.isoformat(): 100}
    assert run(data)["scored"] == 0  # nothing arrived: the watermark skips the partition
    land(rows.height)
    second = run(data)
    assert second["scored"] == rows.height - 100
    scored = ledger(data)
    assert scored.height == rows.height == scored.get_column("txn_id").n_unique()
    assert set(scored.get_column("txn_id")) == set(rows.get_column("txn_id"))
    expected = batch_scores(scoring_dataset, rows.get_column("txn_id")).join(scored, on="txn_id", suffix="_recent")
    np.testing.assert_allclose(expected.get_column("score_recent"), expected.get_column("score"), rtol=1e-9, atol=1e-12)
    assert expected.get_column("reasons_recent").to_list() == expected.get_column("reasons").to_list()
    alerts = pl.read_parquet(RecentLayout(data).alerts / f"date={DAY}" / "*.parquet")
    assert set(alerts.get_column("txn_id")) == set(scored.filter(pl.col("score") >= REVIEW).get_column("txn_id"))
    assert first["alerts"] + second["alerts"] == alerts.height > 0
    assert read_watermark(RecentLayout(data))["partitions"][DAY.isoformat()]

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["recent-alerts"])))
    assert found and found[0].type == "table"


def test_a_crash_between_ledger_and_watermark_scores_nothing_twice(prefect_harness, thresholds, arriving):
    from tasks.score import load_champion

    data, rows, land = arriving
    land(150)
    # A run that wrote its ledger batch and then died: no alerts file, no watermark.
    score_day(data, DAY.isoformat(), load_champion(MODEL_NAME), REVIEW, BLOCK)
    recent = RecentLayout(data)
    (recent.alerts / f"date={DAY}" / "batch-000001.parquet").unlink()
    assert not recent.watermark.exists()
    land(200)
    result = run(data)
    assert result["scored"] == 50
    scored = ledger(data)
    assert scored.height == 200 == scored.get_column("txn_id").n_unique()
    assert (recent.alerts / f"date={DAY}" / "batch-000001.parquet").exists()  # repaired


def test_an_overlapping_run_steps_aside(prefect_harness, thresholds, arriving):
    data, rows, land = arriving
    land(20)
    lock = RecentLayout(data).root / ".lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        skipped = run(data)
        fcntl.flock(held, fcntl.LOCK_UN)
    assert skipped["skipped"] and "another score_recent run" in skipped["reason"]
    assert not RecentLayout(data).scores.exists()
    assert run(data)["scored"] == 20


def test_days_without_a_twin_wait(prefect_harness, thresholds, arriving, scoring_dataset):
    data, rows, land = arriving
    layout = DataLayout(data)
    before = scoring_dataset.batch.filter(pl.col("date") == DAY.replace(day=DAY.day - 1)).select(rows.columns)
    write_parquet_atomic(before, layout.partition(layout.transactions, DAY.replace(day=DAY.day - 1).isoformat()))
    result = run(data)
    assert result["scored"] == 0 and result["waiting_days"] == [DAY.replace(day=DAY.day - 1).isoformat()]


def test_customers_excluded_by_consent_are_left_out_until_they_grant_again(prefect_harness, thresholds, arriving):
    from datetime import datetime, timezone

    from finrisk.consent import record_consent

    data, rows, land = arriving
    land(120)
    landed = rows.head(120)
    withdrawn = landed.group_by("customer_id").len().sort("len", "customer_id", descending=[True, False]).item(0, 0)
    theirs = landed.filter(pl.col("customer_id") == withdrawn).get_column("txn_id")
    layout = DataLayout(data)
    record_consent(layout, withdrawn, "fraud_detection", "withdraw", datetime.now(timezone.utc), "test")
    first = run(data)
    assert first["scored"] == 120 - theirs.len() and first["not_processed"] == theirs.len() >= 2
    assert not ledger(data).get_column("txn_id").is_in(theirs.implode()).any()
    assert run(data)["scored"] == 0  # nothing changed: nothing looked at
    record_consent(layout, withdrawn, "fraud_detection", "grant", datetime.now(timezone.utc), "test")
    again = run(data)  # the partition did not change, the consent did
    assert again["scored"] == theirs.len() and again["not_processed"] == 0
    scored = ledger(data)
    assert scored.height == 120 == scored.get_column("txn_id").n_unique()
