"""Features sub-flow: the point-in-time feature table, then the day's Customer Financial Twin."""
from __future__ import annotations

from pathlib import Path

from prefect import flow

from tasks.features import build_customer_twin, build_features


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
