"""Graph sub-flow."""
from __future__ import annotations

from pathlib import Path

from prefect import flow

from tasks.graph import load_graph


@flow(name="graph")
def graph_flow(data_dir: Path) -> dict:
    """Customers, merchants, devices and their relationships MERGEd into Neo4j."""
    return load_graph(data_dir)
