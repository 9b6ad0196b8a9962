"""The nightly run: ingest (with validation) -> features -> train -> graph -> score."""
from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from flows.features import features_flow
from flows.graph import graph_flow
from flows.ingest import ingest_flow
from flows.score import latest_day, score_flow
from flows.train import train_flow


@flow(name="nightly")
def nightly(source: Path, data_dir: Path, mapping: Path | None = None, seed: int = 7) -> dict:
    logger = get_run_logger()
    ingest = ingest_flow(source, data_dir, mapping)
    features = features_flow(data_dir)
    day = latest_day(data_dir)
    train = train_flow(data_dir, day, seed=seed)
    graph = graph_flow(data_dir)
    score = score_flow(data_dir, day)
    logger.info("nightly run done for %s", day)
    return {"day": day, "ingest": ingest, "features": features, "train": train, "graph": graph, "score": score}
