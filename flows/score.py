"""Score sub-flows."""
from __future__ import annotations

from datetime import date
from pathlib import Path

from prefect import flow

from finrisk.io import DataLayout, scan_partitioned
from tasks.score import score_day, score_range


@flow(name="score")
def score_flow(data_dir: Path, day: str) -> dict:
    """The champion model scores one business day; top alerts written."""
    return score_day(data_dir, day)


@flow(name="score-range")
def score_range_flow(data_dir: Path, date_from: date, date_to: date, out: Path) -> dict:
    """The champion scores every transaction in a date range, with reasons, into one Parquet file."""
    return score_range(data_dir, date_from, date_to, out)


def latest_day(data_dir: Path) -> str:
    layout = DataLayout(Path(data_dir))
    return scan_partitioned(layout.transactions).select("date").max().collect().item()
