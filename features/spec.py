"""How a feature is declared: name, entity, window, description and the canonical fields it needs."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

SECOND_MS = 1_000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

WINDOW_MS = {"10m": 10 * MINUTE_MS, "1h": HOUR_MS, "24h": DAY_MS, "7d": 7 * DAY_MS, "30d": 30 * DAY_MS}


@dataclass(frozen=True)
class Feature:
    """One feature, declared once; batch, twin and online paths all compute it from this entry."""

    name: str
    entity: str  # whose history it summarises: transaction, customer, counterparty, customer x counterparty, ...
    window: str | None  # look-back window; None for the transaction itself, "all" for the whole history
    description: str
    needs: tuple[str, ...]  # canonical fields; missing or all-null ones make the feature null
    family: str = ""
    dtype: type[pl.DataType] | pl.DataType = pl.Float32  # ratios and scores; money sums are Float64
    in_model: bool = True  # False: computed and stored, but not (yet) a model input

    def available(self, fields: set[str] | frozenset[str]) -> bool:
        return all(f in fields for f in self.needs)


def as_column(feature: Feature, values) -> pl.Series:
    """A computed feature as a Series of its declared dtype (NaN becomes null)."""
    if isinstance(values, pl.Series):
        series = values
    else:
        array = np.asarray(values)
        if feature.dtype == pl.Float32 and array.dtype.kind in "fiub" and array.dtype != np.float32:
            array = array.astype(np.float32)  # numpy's cast is several times cheaper than a Series cast
        series = pl.Series(feature.name, array, nan_to_null=array.dtype.kind == "f")
    return series.alias(feature.name).cast(feature.dtype, strict=False)


class FeatureColumns(dict):
    """Feature values by name, each turned into its declared dtype as it is set, so a family's
    float64 working arrays are freed as it goes."""

    def __init__(self, features: tuple[Feature, ...]):
        super().__init__()
        self._declared = {f.name: f for f in features}

    def __setitem__(self, name: str, values) -> None:
        super().__setitem__(name, as_column(self._declared[name], values))


def family(name: str, *features: Feature) -> tuple[Feature, ...]:
    """Stamp the family name on each declaration."""
    return tuple(
        Feature(f.name, f.entity, f.window, f.description, f.needs, name, f.dtype, f.in_model) for f in features
    )
