"""Score sub-flow."""
from __future__ import annotations

from pathlib import Path

from prefect import flow

from finrisk.io import DataLayout, scan_partitioned
from tasks.score import score_day


@flow(name="score")
def score_flow(data_dir: Path, day: str) -> dict:
    """The champion model scores one business day; top alerts written."""
    return score_day(data_dir, day)


def latest_day(data_dir: Path) -> str:
    layout = DataLayout(Path(data_dir))
    return scan_partitioned(layout.transactions).select("date").max().collect().item()
