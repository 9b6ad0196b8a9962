"""Train and evaluate sub-flows."""
from __future__ import annotations

from datetime import date
from pathlib import Path

from prefect import flow

from tasks.train import evaluate, train_and_register, train_window


@flow(name="train")
def train_flow(data_dir: Path, score_day: str, test_days: int = 7, seed: int = 7) -> dict:
    """PyOD ensemble + LightGBM on a time-ordered split, logged and registered in MLflow."""
    return train_and_register(data_dir, score_day, test_days, seed)


@flow(name="train-window")
def train_window_flow(
    data_dir: Path, train_from: date, train_to: date, label_delay_days: int = 7, test_days: int = 7, seed: int = 7,
    dask: bool = False,
) -> dict:
    """Train on explicit business dates; test on the days after the label-delay gap.
    dask: LightGBM trains across the Dask cluster (FINRISK_DASK_ADDRESS, or a local one)."""
    return train_window(data_dir, train_from, train_to, label_delay_days, test_days, seed, dask)


@flow(name="evaluate")
def evaluate_flow(
    data_dir: Path, windows: int = 3, train_days: int = 28, test_days: int = 7, label_delay_days: int = 7, seed: int = 7
) -> dict:
    """Prequential evaluation over consecutive test windows, logged to MLflow."""
    return evaluate(data_dir, windows, train_days, test_days, label_delay_days, seed)
