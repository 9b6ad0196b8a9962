"""Graph sub-flow."""
from __future__ import annotations

from pathlib import Path

from prefect import flow

from graph_loaders.graph_features import latest_processed_day
from tasks.graph import build_graph_features, load_graph


@flow(name="graph")
def graph_flow(data_dir: Path, full: bool = False, day: str | None = None) -> dict:
    """Load the days not yet in Neo4j (or bulk-import everything with full), then write the graph
    features as of `day` (default: the latest processed day) for the models."""
    counts = load_graph(data_dir, full=full)
    features = build_graph_features(data_dir, day or latest_processed_day(data_dir))
    return {**counts, "features": features}
