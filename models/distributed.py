"""LightGBM on a Dask cluster (lightgbm.dask): the classifier of the fraud scorer trained across
workers, for training windows larger than one machine wants to hold. The result is an ordinary
LightGBM model text, so the scorer, the registry and scoring do not change."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

FIXED_ROUNDS = 150  # lightgbm.dask has no early stopping: the rounds the local fit uses without a hold-out


@contextmanager
def dask_client(address: str = "", workers: int = 2) -> Iterator["distributed.Client"]:  # noqa: F821
    """A client of the cluster at `address`, or of a LocalCluster of `workers` processes."""
    from distributed import Client, LocalCluster

    if address:
        with Client(address) as client:
            yield client
        return
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        yield client


def fit_booster_on_dask(client, x: np.ndarray, y: np.ndarray, names: list[str], params: dict) -> str:
    """Train the binary classifier with its rows spread over the workers; returns the model text."""
    import dask.array as da
    from lightgbm.dask import DaskLGBMClassifier

    workers = max(1, len(client.scheduler_info()["workers"]))
    rows = -(-len(y) // workers)  # one block of rows per worker
    dx = client.persist(da.from_array(x, chunks=(rows, x.shape[1])))
    dy = client.persist(da.from_array(y, chunks=(rows,)))
    local_only = {"num_threads", "deterministic", "force_row_wise", "verbosity"}
    model = DaskLGBMClassifier(
        client=client, n_estimators=FIXED_ROUNDS, verbose=-1,
        **{k: v for k, v in params.items() if k not in local_only},
    )
    model.fit(dx, dy, feature_name=names)
    return model.booster_.model_to_string()
