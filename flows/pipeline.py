"""The sub-flows of the nightly run; each can also be run on its own."""
from __future__ import annotations

from pathlib import Path

from prefect import flow

from finrisk.io import DataLayout, scan_partitioned
from tasks.features import build_features
from tasks.graph import load_graph
from tasks.ingest import ingest_source
from tasks.score import score_day
from tasks.train import train_and_register


@flow(name="ingest", log_prints=True)
def ingest_flow(source: Path, data_dir: Path, mapping: Path | None = None) -> dict:
    """Raw files -> validated, pseudonymised, Hive-partitioned Parquet (bad rows to quarantine)."""
    return ingest_source(source, data_dir, mapping)


@flow(name="features")
def features_flow(data_dir: Path) -> dict:
    """Point-in-time customer micro-pattern features for every processed transaction."""
    return build_features(data_dir)


@flow(name="train")
def train_flow(data_dir: Path, score_day: str, test_days: int = 7, seed: int = 7) -> dict:
    """PyOD + LightGBM on a time-ordered split, logged and registered in MLflow."""
    return train_and_register(data_dir, score_day, test_days, seed)


@flow(name="graph")
def graph_flow(data_dir: Path) -> dict:
    """Customers, merchants, devices and their relationships MERGEd into Neo4j."""
    return load_graph(data_dir)


@flow(name="score")
def score_flow(data_dir: Path, day: str) -> dict:
    """The champion model scores one business day; top alerts written."""
    return score_day(data_dir, day)


def latest_day(data_dir: Path) -> str:
    layout = DataLayout(Path(data_dir))
    return scan_partitioned(layout.transactions).select("date").max().collect().item()
