"""Train sub-flow."""
from __future__ import annotations

from pathlib import Path

from prefect import flow

from tasks.train import train_and_register


@flow(name="train")
def train_flow(data_dir: Path, score_day: str, test_days: int = 7, seed: int = 7) -> dict:
    """PyOD + LightGBM on a time-ordered split, logged and registered in MLflow."""
    return train_and_register(data_dir, score_day, test_days, seed)
