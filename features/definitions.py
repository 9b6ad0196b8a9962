"""The feature catalogue (kept here for existing imports; declared in features.catalogue)."""
from __future__ import annotations

from features.catalogue import BY_NAME, CATALOGUE, MODEL_FEATURES
from features.spec import Feature

__all__ = ["BY_NAME", "CATALOGUE", "MODEL_FEATURES", "Feature"]
