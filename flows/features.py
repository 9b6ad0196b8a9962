"""Features sub-flow."""
from __future__ import annotations

from pathlib import Path

from prefect import flow

from tasks.features import build_features


@flow(name="features")
def features_flow(data_dir: Path) -> dict:
    """Point-in-time customer micro-pattern features for every processed transaction."""
    return build_features(data_dir)
