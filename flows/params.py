"""Typed parameters of the deployments: the Prefect UI turns each model into a form (dates get a date
picker, bounds are enforced by the API before a run is created)."""
from __future__ import annotations

from datetime import date
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator


def _seed():
    return Field(7, ge=0, description="Random seed: the same data and seed give the same model.")


def _test_days():
    return Field(7, ge=1, le=60, description="Days in the held-out test window.")


def _label_delay():
    return Field(
        7, ge=0, le=60, description="Days before a fraud label is known; training never sees labels reported later."
    )


class FlowParams(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not silently ignored


class DataParams(FlowParams):
    data_dir: Path = Field(description="Dataset folder holding raw/, processed/, features/, scores/ and alerts/.")


class SourceParams(DataParams):
    source: Path = Field(description="Folder (or file) of raw bank exports to ingest.")
    mapping: Path | None = Field(None, description="Mapping YAML for this source; empty means the generator's.")


class NightlyParams(SourceParams):
    """The nightly run: ingest, validate, features, train, graph, score, and the analysts' report."""

    seed: int = _seed()
    report: bool = Field(True, description="Write the day's HTML report under DATA_DIR/reports/.")


class IngestParams(SourceParams):
    """Map, pseudonymise and validate raw files; bad rows go to quarantine with their reasons."""


class FeaturesParams(DataParams):
    """Recompute the point-in-time feature table from processed transactions."""

    dask: bool = Field(False, description="One task per day on Dask (FINRISK_DASK_ADDRESS, or a local cluster).")
    workers: int = Field(2, ge=1, le=64, description="Local Dask cluster size, when no cluster address is configured.")


class GraphParams(DataParams):
    """Load the days not yet in Neo4j (or bulk-import everything), then write the graph features."""

    full: bool = Field(False, description="Bulk-import the whole graph instead of loading only the new days.")
    day: date | None = Field(None, description="Business day the graph features are as of; empty means the latest.")


class TrainParams(DataParams):
    """Nightly-style training: history up to the label-delay gap before the test window that ends
    the day before `score_day`."""

    score_day: date | None = Field(
        None, description="Business day to be scored next; empty means the latest loaded day."
    )
    test_days: int = _test_days()
    seed: int = _seed()


class TrainWindowParams(DataParams):
    """Train on explicit business dates; test on the days after the label-delay gap."""

    train_from: date = Field(description="First business date to train on (Asia/Kolkata).")
    train_to: date = Field(description="Last business date to train on, inclusive.")
    label_delay_days: int = _label_delay()
    test_days: int = _test_days()
    seed: int = _seed()
    dask: bool = Field(False, description="Train LightGBM across Dask workers (FINRISK_DASK_ADDRESS, or a local cluster).")

    @model_validator(mode="after")
    def _ordered(self) -> TrainWindowParams:
        if self.train_to < self.train_from:
            raise ValueError(f"train_to {self.train_to} is before train_from {self.train_from}")
        return self


class EvaluateParams(DataParams):
    """Prequential evaluation: train -> label delay -> test, repeated over consecutive windows."""

    windows: int = Field(3, ge=1, le=52, description="Number of consecutive test windows.")
    train_days: int = Field(28, ge=1, le=730, description="Training days per window.")
    test_days: int = _test_days()
    label_delay_days: int = _label_delay()
    seed: int = _seed()


class ScoreParams(DataParams):
    """The champion scores one business day and writes the top alerts."""

    day: date | None = Field(None, description="Business day to score; empty means the latest loaded day.")


class ScoreRangeParams(DataParams):
    """The champion scores every transaction in a date range into one Parquet file."""

    date_from: date = Field(description="First business date (Asia/Kolkata).")
    date_to: date = Field(description="Last business date, inclusive.")
    out: Path = Field(description="Output Parquet file.")

    @model_validator(mode="after")
    def _ordered(self) -> ScoreRangeParams:
        if self.date_to < self.date_from:
            raise ValueError(f"date_to {self.date_to} is before date_from {self.date_from}")
        return self
