"""Score sub-flows."""
from __future__ import annotations

from datetime import date
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.futures import as_completed

from finrisk import progress
from finrisk.io import DataLayout, scan_partitioned
from tasks.score import plan_score_range, score_day, score_range_day, write_score_range


@flow(name="score")
def score_flow(data_dir: Path, day: str) -> dict:
    """The champion model scores one business day; top alerts written."""
    return score_day(data_dir, day)


@flow(name="score-range")
def score_range_flow(data_dir: Path, date_from: date, date_to: date, out: Path) -> dict:
    """The champion scores every transaction in a date range, with reasons, into one Parquet file:
    one task per business day, so the days run in parallel on the flow's task runner
    (flows.dask.run_on_dask runs them on a Dask cluster)."""
    days, model_name, version = plan_score_range(data_dir, date_from, date_to)
    futures = {score_range_day.submit(data_dir, day, model_name, version): day for day in days}
    parts: dict[str, object] = {}
    for future in as_completed(list(futures)):
        parts[futures[future]] = future.result()
        progress.report("days scored", len(parts), len(days), get_run_logger())
    return write_score_range([parts[day] for day in days], out, days, version)


def latest_day(data_dir: Path) -> str:
    layout = DataLayout(Path(data_dir))
    return scan_partitioned(layout.transactions).select("date").max().collect().item()
