"""Features sub-flows: the point-in-time feature table, then the day's Customer Financial Twin."""
from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.futures import as_completed

from finrisk import progress
from tasks.features import (
    build_customer_twin, build_day_features, build_features, build_peer_groups, features_written, peer_groups_path,
    processed_days, twin_written,
)


@flow(name="features")
def features_flow(data_dir: Path, label_delay_days: float | None = None, twin: bool = True) -> dict:
    """Every catalogue feature for every processed transaction, and the twin for the next day.

    label_delay_days: days after a fraud report before its label may be used (default: setting).
    twin: also write the Customer Financial Twin as of the day after the last processed date.
    """
    # Cached on the processed data, labels and code: a re-run over unchanged data skips the work,
    # unless the outputs have gone missing since.
    result = build_features.with_options(refresh_cache=not features_written(data_dir))(data_dir, label_delay_days)
    if twin:
        result["twin"] = _twin(data_dir, label_delay_days)
    return result


def _twin(data_dir: Path, label_delay_days: float | None) -> dict:
    """The twin for the next day, then the peer groups clustered on it (used by the next run)."""
    twin = build_customer_twin.with_options(refresh_cache=not twin_written(data_dir))(data_dir, None, label_delay_days)
    refresh = not peer_groups_path(data_dir).exists()
    twin["peer_groups"] = build_peer_groups.with_options(refresh_cache=refresh)(data_dir, twin["as_of"])
    return twin


@flow(name="features-by-day")
def features_by_day_flow(
    data_dir: Path, days: list[str] | None = None, label_delay_days: float | None = None, twin: bool = False
) -> dict:
    """The same features, one task per business day (each from the history before it), so the days
    run in parallel on the flow's task runner: flows.dask.run_on_dask runs it on a Dask cluster.

    days: YYYY-MM-DD business dates (default: every processed date).
    twin: also write the Customer Financial Twin as of the day after the last processed date.
    """
    days = days or processed_days(data_dir)
    futures = [
        build_day_features.with_options(refresh_cache=not features_written(data_dir, [day])).submit(data_dir, day, label_delay_days)
        for day in days
    ]
    logger = get_run_logger()
    results = []
    for future in as_completed(futures):
        results.append(future.result())
        progress.report("feature days", len(results), len(futures), logger)
    rows = sum(r["rows"] for r in results)
    logger.info("features for %d transactions over %d days", rows, len(results))
    result = {"rows": rows, "days": len(results), "first_date": days[0] if days else None,
              "last_date": days[-1] if days else None, "processes": sorted({r["pid"] for r in results})}
    if twin:
        result["twin"] = _twin(data_dir, label_delay_days)
    return result
