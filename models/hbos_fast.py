"""PyOD's HBOS scores (fixed bins), bit for bit, in a compiled loop over the rows.

PyOD's HBOS.decision_function builds a rows x features matrix of per-feature scores and sums it;
on a million rows that is most of the anomaly ensemble's scoring time. This kernel walks each
row once, looks its bins up by binary search and sums them in numpy's own pairwise order, so
the result equals PyOD's exactly (tests/test_models.py compares them).
"""
from __future__ import annotations

import numpy as np
from numba import njit

PAIRWISE_BLOCK = 128  # numpy sums up to this many values with 8 accumulators, longer rows recursively


@njit(cache=True)
def _log_densities(hist: np.ndarray, alpha: float) -> np.ndarray:
    # computed in compiled code, as PyOD does: numpy's own log2 can differ in the last bit
    return np.ascontiguousarray(np.log2(hist + alpha).T)


@njit(cache=True, inline="always")
def _pairwise_sum(values: np.ndarray, n: int) -> float:
    """numpy's pairwise summation of n <= 128 values (8 partial sums, then the tail)."""
    if n < 8:
        total = 0.0
        for i in range(n):
            total += values[i]
        return total
    r0, r1, r2, r3 = values[0], values[1], values[2], values[3]
    r4, r5, r6, r7 = values[4], values[5], values[6], values[7]
    i = 8
    while i < n - (n % 8):
        r0 += values[i]
        r1 += values[i + 1]
        r2 += values[i + 2]
        r3 += values[i + 3]
        r4 += values[i + 4]
        r5 += values[i + 5]
        r6 += values[i + 6]
        r7 += values[i + 7]
        i += 8
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        total += values[i]
        i += 1
    return total


@njit(nogil=True, cache=True)
def _hbos_rows(x: np.ndarray, edges: np.ndarray, logs: np.ndarray, tol: float, out: np.ndarray,
               start: int, stop: int) -> None:
    d = x.shape[1]
    bins = logs.shape[1]
    lowest = np.empty(d)
    for f in range(d):
        lowest[f] = logs[f].min()
    scores = np.empty(d)
    for j in range(start, stop):
        for f in range(d):
            value = x[j, f]
            lo, hi = 0, bins + 1  # np.digitize(right=True): the first edge >= value
            while lo < hi:
                mid = (lo + hi) // 2
                if edges[f, mid] < value:
                    lo = mid + 1
                else:
                    hi = mid
            if value != value:  # NaN sorts after every edge
                lo = bins + 1
            if lo == 0:  # below the first bin: its score if only slightly below, else the lowest
                near = edges[f, 0] - value <= (edges[f, 1] - edges[f, 0]) * tol
                scores[f] = logs[f, 0] if near else lowest[f]
            elif lo == bins + 1:  # above the last bin: likewise
                near = value - edges[f, bins] <= (edges[f, bins] - edges[f, bins - 1]) * tol
                scores[f] = logs[f, bins - 1] if near else lowest[f]
            else:
                scores[f] = logs[f, lo - 1]
        out[j] = -_pairwise_sum(scores, d)


class CompiledHbos:
    """A fitted pyod HBOS's decision_function, faster; same values. The tables are prepared once."""

    def __init__(self, detector):
        self.detector = detector
        self.compiled = not isinstance(detector.n_bins, str)
        if self.compiled:
            self.edges = np.ascontiguousarray(detector.bin_edges_.T)
            self.logs = _log_densities(detector.hist_, float(detector.alpha))
            self.tol = float(detector.tol)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float64)
        if not self.compiled or x.ndim != 2 or x.shape[1] > PAIRWISE_BLOCK:
            return self.detector.decision_function(x)
        out = np.empty(len(x))
        _hbos_rows(x, self.edges, self.logs, self.tol, out, 0, len(x))  # releases the GIL
        return out
