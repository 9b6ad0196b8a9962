"""Unsupervised anomaly ensemble (PyOD): works with no labels at all, and feeds the classifier.

Each detector's raw score is turned into its rank against the training scores (0..1), so
detectors on different scales can be averaged; the ensemble score is that average.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from pyod.models.copod import COPOD
from pyod.models.ecod import ECOD
from pyod.models.hbos import HBOS
from pyod.models.iforest import IForest

from models.hbos_fast import CompiledHbos

PARALLEL_ROWS = 100_000  # from this many rows, two halves scored on two threads (detectors release the GIL)
FIT_SAMPLE_ROWS = 200_000  # the tails are well estimated from a sample; scoring still covers every row


def make_detector(name: str, seed: int):
    if name == "ecod":
        return ECOD()
    if name == "copod":
        return COPOD()
    if name == "hbos":
        return HBOS(n_bins=20)
    if name == "iforest":
        return IForest(n_estimators=50, max_samples=256, random_state=seed, n_jobs=2)
    raise ValueError(f"unknown detector {name!r}; choose from ecod, copod, hbos, iforest")


def _by_halves(score, x: np.ndarray) -> np.ndarray:
    """score(x), the two halves of the rows on two threads: each row's score is computed alone,
    so the result is the same as one call's."""
    if len(x) < PARALLEL_ROWS:
        return score(x)
    half = len(x) // 2
    with ThreadPoolExecutor(2) as pool:
        return np.concatenate(list(pool.map(score, (x[:half], x[half:]))))


@dataclass
class AnomalyEnsemble:
    # HBOS and IForest score new rows in O(rows); PyOD's ECOD and COPOD re-rank against the whole
    # training set on every call, too slow for per-transaction scoring, so they are opt-in.
    detectors: tuple[str, ...] = ("hbos", "iforest")
    seed: int = 7
    fitted: dict = field(default_factory=dict)
    reference: dict = field(default_factory=dict)  # sorted training scores per detector
    fill_values: np.ndarray | None = None

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        x = np.array(x, dtype=np.float64)  # a copy, filled in place
        np.copyto(x, np.broadcast_to(self.fill_values, x.shape), where=np.isnan(x))
        return x

    def fit(self, x: np.ndarray) -> "AnomalyEnsemble":
        x = np.asarray(x, dtype=np.float64)
        medians = np.nanmedian(x, axis=0) if len(x) else np.zeros(x.shape[1])
        self.fill_values = np.nan_to_num(medians, nan=0.0)
        rng = np.random.default_rng(self.seed)
        sample = self._prepare(x[rng.permutation(len(x))[:FIT_SAMPLE_ROWS]])
        for name in self.detectors:
            detector = make_detector(name, self.seed)
            detector.fit(sample)
            self.fitted[name] = detector
            self.reference[name] = np.sort(detector.decision_scores_)
        return self

    def detector_scores(self, x: np.ndarray) -> dict[str, np.ndarray]:
        prepared = self._prepare(x)
        out = {}
        for name, detector in self.fitted.items():
            score = CompiledHbos(detector) if name == "hbos" else detector.decision_function
            raw = _by_halves(score, prepared)
            ref = self.reference[name]
            out[name] = np.searchsorted(ref, raw, side="right") / len(ref)
        return out

    def score(self, x: np.ndarray) -> np.ndarray:
        scores = self.detector_scores(x)
        return np.mean(np.column_stack(list(scores.values())), axis=1)
