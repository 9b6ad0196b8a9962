"""Features sub-flows: the point-in-time feature table, then the day's Customer Financial Twin."""
from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from tasks.features import build_customer_twin, build_day_features, build_features, processed_days


@flow(name="features")
def features_flow(data_dir: Path, label_delay_days: float | None = None, twin: bool = True) -> dict:
    """Every catalogue feature for every processed transaction, and the twin for the next day.

    label_delay_days: days after a fraud report before its label may be used (default: setting).
    twin: also write the Customer Financial Twin as of the day after the last processed date.
    """
    result = build_features(data_dir, label_delay_days)
    if twin:
        result["twin"] = build_customer_twin(data_dir, None, label_delay_days)
    return result


@flow(name="features-by-day")
def features_by_day_flow(
    data_dir: Path, days: list[str] | None = None, label_delay_days: float | None = None, twin: bool = False
) -> dict:
    """The same features, one task per business day (each from the history before it), so the days
    run in parallel on the flow's task runner: run it through flows.dask.on_dask for a Dask cluster.

    days: YYYY-MM-DD business dates (default: every processed date).
    twin: also write the Customer Financial Twin as of the day after the last processed date.
    """
    days = days or processed_days(data_dir)
    futures = [build_day_features.submit(data_dir, day, label_delay_days) for day in days]
    results = [f.result() for f in futures]
    rows = sum(r["rows"] for r in results)
    get_run_logger().info("features for %d transactions over %d days", rows, len(results))
    result = {"rows": rows, "days": len(results), "first_date": days[0] if days else None,
              "last_date": days[-1] if days else None, "processes": sorted({r["pid"] for r in results})}
    if twin:
        result["twin"] = build_customer_twin(data_dir, None, label_delay_days)
    return result
