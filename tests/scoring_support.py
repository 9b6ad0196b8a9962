"""Shared set-up for the near-real-time scoring tests: a generated dataset, its batch features, a
real champion trained on them and registered in the session's MLflow store, and the twin of the
scored day. Built once per session."""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from bench.feature_data import write_processed
from features.store import feature_table, write_feature_table
from features.transactions import transaction_features
from features.twin import build_twin, write_twin
from finrisk.config import Settings
from finrisk.io import DataLayout, scan_partitioned
from finrisk.sensitive import with_sensitive
from finrisk.synthetic import generate

START = date(2026, 1, 1)
DAY = START + timedelta(days=35)  # the business day the service and score_recent serve
DELAY_DAYS = 2
MODEL_NAME = "finrisk-fraud-scoring-test"
API_KEY = "test-key-" + "k" * 24
REVIEW, BLOCK = 0.01, 0.09  # decision thresholds low enough for the small test model's scores


@dataclass
class ScoringDataset:
    data: Path  # processed/, features/ and processed/twins/ (read-only for the tests)
    batch: pl.DataFrame  # the batch pipeline's features of every transaction
    day_rows: pl.DataFrame  # the canonical transactions of DAY, in time order
    version: int


def settings(**overrides) -> Settings:
    """The session's settings (MLflow store from conftest) with the test model and key."""
    values = {"api_keys": API_KEY, "mlflow_model_name": MODEL_NAME, "champion_poll_seconds": 0.2,
              "review_threshold": REVIEW, "block_threshold": BLOCK, **overrides}
    return Settings(**values)


def train_and_register(batch: pl.DataFrame, labels: pl.DataFrame, seed: int = 7, train_days: int | None = None) -> int:
    from models.fraud_model import TrainWindows, train_fraud_model
    from models.registry import configure, log_and_register
    from tasks.train import day_start_utc

    s = settings()
    first = batch.get_column("ts").min()
    windows = TrainWindows.before(day_start_utc(DAY), first, 7, DELAY_DAYS)
    if train_days is not None:  # a different model: trained on fewer days
        windows = TrainWindows(first, first + timedelta(days=train_days), windows.test_start, windows.test_end)
    table = feature_table(batch)  # as the pipeline reads it back: `date` as text
    result = train_fraud_model(table.filter(pl.col("date") < DAY.isoformat()), labels, windows, DELAY_DAYS, seed=seed)
    configure(s.tracking_uri, s.artifact_root)
    return log_and_register(result, MODEL_NAME, "scoring-test").version


_BUILT: dict[str, ScoringDataset] = {}


@pytest.fixture(scope="session")
def scoring_dataset(tmp_path_factory, _isolated_environment) -> ScoringDataset:
    # Each test module imports this fixture, which pytest then sets up once per module: build once.
    if "dataset" not in _BUILT:
        _BUILT["dataset"] = _build(tmp_path_factory.mktemp("scoring"))
    return _BUILT["dataset"]


def _build(root: Path) -> ScoringDataset:
    generate(root / "raw", customers=250, days=40, seed=11, start=START)
    data = write_processed(root / "raw", root / "data")
    layout = DataLayout(data)
    tx = with_sensitive(scan_partitioned(layout.transactions), layout)  # coordinates too: location features
    labels = pl.read_parquet(layout.labels)
    batch = transaction_features(tx, labels, DELAY_DAYS)
    write_feature_table(feature_table(batch), layout.features)
    version = train_and_register(batch, labels)
    write_twin(build_twin(tx, DAY, labels, DELAY_DAYS), data)
    day_rows = tx.filter(pl.col("date") == DAY.isoformat()).drop("date").collect().sort("ts", "txn_id")
    return ScoringDataset(data, batch, day_rows, version)


def working_copy(dataset: ScoringDataset, target: Path) -> Path:
    """A data dir sharing the dataset's processed data and twins, with its own service and flow state."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("processed", "features"):
        os.symlink(dataset.data / name, target / name)
    return target


def batch_scores(dataset: ScoringDataset, txn_ids) -> pl.DataFrame:
    """What the batch pipeline gives for these transactions: batch features, the same champion."""
    from models.registry import load_alias
    from tasks.score import score_features

    scorer, version = load_alias(MODEL_NAME, "champion")
    return score_features(dataset.batch.filter(pl.col("txn_id").is_in(list(txn_ids))), scorer, version)


def request_bodies(rows: pl.DataFrame) -> list[dict]:
    """Canonical rows as the JSON a payment switch would send (ts with the IST offset)."""
    from service.scoring import TRANSACTION_FIELDS

    present = [c for c in TRANSACTION_FIELDS if c in rows.columns]
    shown = rows.select(present).with_columns(
        pl.col("ts").dt.convert_time_zone("Asia/Kolkata").dt.to_string("%Y-%m-%dT%H:%M:%S%.6f%:z")
    )
    return [{k: v for k, v in row.items() if v is not None} for row in shown.to_dicts()]
