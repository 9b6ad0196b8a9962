"""The feature catalogue: every feature declared once, family by family."""
from __future__ import annotations

import polars as pl

from features import basic, device_place, fraud_history, merchant, peer, timing, velocity
from features.spec import Feature

FAMILIES = (basic, timing, velocity, merchant, fraud_history, device_place, peer)

CATALOGUE: tuple[Feature, ...] = tuple(f for module in FAMILIES for f in module.FEATURES)
BY_NAME: dict[str, Feature] = {f.name: f for f in CATALOGUE}
if len(BY_NAME) != len(CATALOGUE):
    raise RuntimeError("a feature name is declared twice in the catalogue")

MODEL_FEATURES: tuple[str, ...] = tuple(f.name for f in CATALOGUE if f.in_model)
"""The columns the models train on: each exists in the feature table, numeric, nulls allowed."""


def catalogue_frame(fields: frozenset[str] | None = None) -> pl.DataFrame:
    """The catalogue as a table; with `fields`, whether each feature can be computed from them."""
    rows = [
        {
            "name": f.name, "family": f.family, "entity": f.entity, "window": f.window or "-",
            "needs": ", ".join(f.needs), "model": f.in_model, "description": f.description,
            **({} if fields is None else {"available": f.available(fields)}),
        }
        for f in CATALOGUE
    ]
    return pl.DataFrame(rows)
