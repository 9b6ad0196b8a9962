"""The Dask task runner the partition-parallel flows use: an existing cluster's scheduler when
FINRISK_DASK_ADDRESS is set, otherwise a LocalCluster of FINRISK_DASK_WORKERS processes."""
from __future__ import annotations

from contextlib import contextmanager

from prefect import Flow
from prefect_dask import DaskTaskRunner

from finrisk.config import get_settings


def dask_task_runner(workers: int | None = None) -> DaskTaskRunner:
    settings = get_settings()
    if settings.dask_address:
        return DaskTaskRunner(address=settings.dask_address)
    n = workers or settings.dask_workers
    # One thread per worker process: Polars and LightGBM already use the cores they are given.
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={"n_workers": n, "threads_per_worker": 1, "processes": True, "dashboard_address": None},
    )


@contextmanager
def _api_for_workers():
    """Dask workers report their task runs to the flow's Prefect API, so it must be one they can
    reach: without a configured API, this process's temporary server is started and named."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if PREFECT_API_URL.value():
        yield
        return
    server = SubprocessASGIServer()
    server.start()
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        yield


def run_on_dask(flow: Flow, *args, workers: int | None = None, **kwargs):
    """Run the flow with its tasks on Dask; returns the flow's result."""
    with _api_for_workers():
        return flow.with_options(task_runner=dask_task_runner(workers))(*args, **kwargs)
