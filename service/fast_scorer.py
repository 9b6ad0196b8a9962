"""The champion, evaluated for per-transaction latency: the same fitted model, called without the
per-call overhead that dominates one or a few rows.

- The isolation forest's trees are flattened into arrays once and walked by one compiled loop over
  rows and trees; scikit-learn walks them one tree at a time behind joblib (about 3 ms a call). The
  arithmetic is scikit-learn's, in its order (inputs as float32, depths summed tree by tree), so
  the ranks are the same.
- The histogram detector (HBOS) is the ensemble's own compiled scoring (models.hbos_fast).
- LightGBM predicts on one thread (on two, waking the second thread costs more than a few rows),
  through the same C call as Booster.predict but without its per-call set-up.
- Reason codes (LightGBM's per-feature contributions, about 0.4 ms a row) are computed only for the
  rows in the review or block band, the ones an analyst or the switch acts on.

`score` gives the numbers `FraudScorer.score_with_reasons` gives (tests/test_service_model.py).
"""
from __future__ import annotations

import ctypes

import lightgbm.basic as lgb_basic
import numpy as np
from numba import njit

from models.hbos_fast import CompiledHbos
from models.reasons import top_reasons

PARALLEL_ROWS = 256  # from this many rows on, LightGBM predicts on two threads
PARALLEL_CONTRIBUTIONS = 8  # and computes contributions (about 0.4 ms a row) on two threads


class FlatForest:
    """An isolation forest (scikit-learn, as PyOD wraps it) as flat arrays over all its trees."""

    def __init__(self, forest):
        trees = [estimator.tree_ for estimator in forest.estimators_]
        if forest._max_features != forest.n_features_in_:
            raise ValueError("isolation forests that subsample features are not supported")
        sizes = np.array([t.node_count for t in trees])
        self.roots = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        offsets = np.repeat(self.roots, sizes)
        left = np.concatenate([t.children_left for t in trees]).astype(np.int64)
        right = np.concatenate([t.children_right for t in trees]).astype(np.int64)
        leaf = left == -1
        self.left = np.where(leaf, -1, left + offsets)
        self.right = np.where(leaf, -1, right + offsets)
        self.feature = np.where(leaf, 0, np.concatenate([t.feature for t in trees])).astype(np.int64)
        self.threshold = np.concatenate([t.threshold for t in trees])
        # What each tree adds for a row ending in this leaf, as scikit-learn adds it.
        self.added = np.concatenate([
            np.asarray(paths) + np.asarray(average) - 1.0
            for paths, average in zip(forest._decision_path_lengths, forest._average_path_length_per_tree)
        ])
        from sklearn.ensemble._iforest import _average_path_length

        self.denominator = len(trees) * _average_path_length([forest._max_samples])
        self.offset = forest.offset_

    def raw(self, x: np.ndarray) -> np.ndarray:
        """PyOD's IForest.decision_function (larger = more unusual)."""
        x32 = np.asarray(x, dtype=np.float32).astype(np.float64)  # float32 inputs, compared as the trees compare them
        depths = _depths(x32, self.roots, self.left, self.right, self.feature, self.threshold, self.added)
        scores = 2 ** (-np.divide(depths, self.denominator, out=np.ones_like(depths), where=self.denominator != 0))
        return -(-scores - self.offset)


@njit(nogil=True, cache=True)
def _depths(x, roots, left, right, feature, threshold, added):
    """Each row's path lengths summed over the trees, tree after tree as scikit-learn sums them."""
    out = np.zeros(x.shape[0])
    for root in roots:  # tree by tree (one tree's nodes stay in cache), adding to every row's sum
        for i in range(x.shape[0]):
            node = root
            while left[node] != -1:
                node = left[node] if x[i, feature[node]] <= threshold[node] else right[node]
            out[i] += added[node]
    return out


class FastScorer:
    """score / anomaly_score / reasons of a FraudScorer for a float64 feature matrix (its columns)."""

    def __init__(self, scorer):
        self.scorer = scorer
        self.columns = scorer.columns
        self.names = [*scorer.columns, "anomaly_score"]
        anomaly = scorer.anomaly
        self._detectors = []
        for name, detector in anomaly.fitted.items():
            if name == "iforest":
                raw = FlatForest(detector.detector_).raw
            elif name == "hbos":
                raw = CompiledHbos(detector)  # the ensemble's own compiled HBOS
            else:
                raw = detector.decision_function
            self._detectors.append((raw, anomaly.reference[name]))
        self._fill = anomaly.fill_values
        self.booster = scorer.booster
        if self.booster.num_model_per_iteration() != 1:
            raise ValueError("the fast scorer serves binary models (one tree per iteration)")
        self._iterations = self.booster.best_iteration  # as Booster.predict passes it (0: every tree)
        self._parameters = {n: ctypes.c_char_p(f"num_threads={n}".encode()) for n in (1, 2)}

    def anomaly(self, x: np.ndarray) -> np.ndarray:
        prepared = np.where(np.isnan(x), self._fill, x)
        ranks = np.column_stack([np.searchsorted(ref, raw(prepared), side="right") / len(ref) for raw, ref in self._detectors])
        return np.add.reduce(ranks, axis=1) / ranks.shape[1]  # np.mean's own arithmetic, without its wrapper

    def probability(self, x: np.ndarray, anomaly: np.ndarray) -> np.ndarray:
        threads = 1 if len(x) < PARALLEL_ROWS else 2  # a second thread pays off only for many rows
        return self._predict(np.column_stack([x, anomaly]), threads)

    def _predict(self, xa: np.ndarray, threads: int) -> np.ndarray:
        """Booster.predict(xa, num_threads=threads): the same C call, without the Python wrapper's
        per-call set-up (a predictor object, type checks), which costs more than scoring a few rows."""
        data = np.ascontiguousarray(xa, dtype=np.float64)
        out = np.empty(len(data), dtype=np.float64)  # binary objective: one probability a row
        written = ctypes.c_int64(0)
        lgb_basic._safe_call(lgb_basic._LIB.LGBM_BoosterPredictForMat(
            self.booster._handle, data.ctypes.data_as(ctypes.c_void_p), ctypes.c_int(lgb_basic._C_API_DTYPE_FLOAT64),
            ctypes.c_int32(data.shape[0]), ctypes.c_int32(data.shape[1]), ctypes.c_int(lgb_basic._C_API_IS_ROW_MAJOR),
            ctypes.c_int(lgb_basic._C_API_PREDICT_NORMAL), ctypes.c_int(0), ctypes.c_int(self._iterations),
            self._parameters[threads], ctypes.byref(written), out.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
        ))
        if written.value != len(data):
            raise ValueError(f"LightGBM wrote {written.value} predictions for {len(data)} rows")
        return out

    def reasons(self, x: np.ndarray, anomaly: np.ndarray, explain: np.ndarray | None = None,
                top_k: int = 3) -> list[list[str]]:
        """Reason codes for the rows where `explain` holds (all when None); an empty list for the others."""
        rows = np.arange(len(x)) if explain is None else np.flatnonzero(explain)
        reasons: list[list[str]] = [[] for _ in range(len(x))]
        if len(rows):
            xa = np.column_stack([x[rows], anomaly[rows]])
            threads = 1 if len(rows) < PARALLEL_CONTRIBUTIONS else 2
            contributions = self.booster.predict(xa, pred_contrib=True, num_threads=threads)[:, :-1]
            for row, found in zip(rows.tolist(), top_reasons(contributions, xa, self.names, top_k).to_list()):
                reasons[row] = found
        return reasons

    def score(self, x: np.ndarray, explain: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, list]:
        """(score, anomaly_score, reasons) for a feature matrix."""
        anomaly = self.anomaly(x)
        return self.probability(x, anomaly), anomaly, self.reasons(x, anomaly, explain)
