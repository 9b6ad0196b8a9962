"""Behavioural clusters of customers (peer groups) from their twin vectors, MiniBatchKMeans.

k is chosen by silhouette on a sample; the sizes and scores of every candidate are kept so the
choice can be logged and checked.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from sklearn.cluster import MiniBatchKMeans
from sklearn.metrics import silhouette_score

SILHOUETTE_SAMPLE = 5_000


@dataclass
class Clustering:
    assignments: pl.DataFrame  # customer_id, peer_group
    k: int
    diagnostics: pl.DataFrame  # k, silhouette, smallest, largest
    centres: np.ndarray
    means: np.ndarray
    scales: np.ndarray
    columns: tuple[str, ...]

    def assign(self, vectors: pl.DataFrame) -> np.ndarray:
        x = _standardised(vectors, self.columns, self.means, self.scales)
        return np.argmin(((x[:, None, :] - self.centres[None, :, :]) ** 2).sum(axis=2), axis=1)


def _standardised(vectors: pl.DataFrame, columns, means, scales) -> np.ndarray:
    x = vectors.select(pl.col(c).cast(pl.Float64) for c in columns).to_numpy()
    x = np.where(np.isnan(x), means, x)
    return (x - means) / scales


def cluster_customers(
    vectors: pl.DataFrame, id_column: str = "customer_id", k_candidates: tuple[int, ...] = (4, 6, 8, 10, 12), seed: int = 7
) -> Clustering:
    columns = tuple(c for c in vectors.columns if c != id_column and vectors.schema[c].is_numeric())
    if not columns:
        raise ValueError("no numeric columns to cluster customers on")
    raw = vectors.select(pl.col(c).cast(pl.Float64) for c in columns).to_numpy()
    means = np.nan_to_num(np.nanmean(raw, axis=0))
    scales = np.nan_to_num(np.nanstd(raw, axis=0))
    scales[scales == 0] = 1.0
    x = _standardised(vectors, columns, means, scales)
    rng = np.random.default_rng(seed)
    sample = rng.permutation(len(x))[:SILHOUETTE_SAMPLE]
    rows, best = [], None
    for k in k_candidates:
        if k >= len(x):
            continue
        model = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=4096).fit(x)
        labels = model.labels_
        score = float(silhouette_score(x[sample], labels[sample])) if len(set(labels[sample])) > 1 else -1.0
        sizes = np.bincount(labels, minlength=k)
        rows.append({"k": k, "silhouette": score, "smallest": int(sizes.min()), "largest": int(sizes.max())})
        if best is None or score > best[0]:
            best = (score, k, model)
    if best is None:
        raise ValueError(f"too few customers ({len(x)}) for any of k={k_candidates}")
    _, k, model = best
    assignments = pl.DataFrame({id_column: vectors.get_column(id_column), "peer_group": model.labels_.astype(np.int32)})
    return Clustering(assignments, k, pl.DataFrame(rows), model.cluster_centers_, means, scales, columns)
