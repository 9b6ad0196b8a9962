"""Task caching on real flow runs: a re-run over unchanged data skips the work (the files are not
rewritten), while new labels or missing outputs make it run again."""
from datetime import date

import polars as pl
import pytest

from bench.feature_data import write_processed
from finrisk.io import DataLayout, write_parquet_atomic
from finrisk.synthetic import generate


@pytest.fixture()
def data_dir(tmp_path):
    generate(tmp_path / "raw", customers=80, days=8, seed=3, start=date(2026, 1, 1))
    return write_processed(tmp_path / "raw", tmp_path / "data")


def _written(data_dir) -> dict[str, int]:
    """Every feature and twin file with its modification time."""
    root = DataLayout(data_dir).root
    files = [*root.glob("features/transactions/date=*/*.parquet"), *root.glob("processed/twins/**/*.parquet")]
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in files}


def test_a_rerun_over_unchanged_data_skips_the_work(data_dir, prefect_harness):
    from flows.features import features_flow

    features_flow(data_dir)  # the first run on a data dir clusters customers into peer groups at its end,
    first = features_flow(data_dir)  # so the second has the peer-group feature: a different input
    written = _written(data_dir)
    assert first["rows"] > 0 and any("twins" in f for f in written) and any("features" in f for f in written)
    assert "peer_amount_zscore" not in first["null_features"]

    again = features_flow(data_dir)
    assert again == first
    assert _written(data_dir) == written, "an unchanged re-run rewrote its outputs"

    # New labels change the merchant-risk features: the feature table and the twin are recomputed.
    layout = DataLayout(data_dir)
    labels = pl.read_parquet(layout.labels)
    write_parquet_atomic(labels.head(labels.height // 2), layout.labels)
    features_flow(data_dir)
    rewritten = _written(data_dir)
    assert rewritten.keys() == written.keys()
    assert all(rewritten[f] != written[f] for f in written)

    # Outputs deleted since the cached run: the flow runs the work again instead of trusting the cache.
    for path in layout.root.glob("features/transactions/date=*/*.parquet"):
        path.unlink()
    features_flow(data_dir)
    assert _written(data_dir).keys() == written.keys()


def test_only_errors_that_can_go_away_are_retried():
    from neo4j.exceptions import ServiceUnavailable
    from sqlalchemy.exc import OperationalError

    from tasks.retries import is_transient

    def chained(outer: Exception, inner: Exception) -> Exception:
        try:
            try:
                raise inner
            except Exception as e:
                raise outer from e
        except Exception as e:
            return e

    assert is_transient(ServiceUnavailable("neo4j restarting"))
    assert is_transient(OperationalError("SELECT 1", {}, Exception("database is locked")))
    assert is_transient(chained(RuntimeError("model registry call failed"), ConnectionRefusedError()))
    assert not is_transient(RuntimeError("no champion for model 'finrisk-fraud'; train a model first"))
    assert not is_transient(ValueError("no fraud labels known before the test window"))
    assert not is_transient(None)


def test_a_real_task_run_retries_a_transient_error_and_not_a_user_error(prefect_harness):
    from prefect import flow, task

    from tasks.retries import RETRY_EXTERNAL

    attempts = {"transient": 0, "user": 0}

    @task(**{**RETRY_EXTERNAL, "retry_delay_seconds": 0})
    def flaky(kind: str) -> str:
        attempts[kind] += 1
        if kind == "transient" and attempts[kind] < 3:
            raise ConnectionRefusedError("MLflow tracking server not reachable")
        if kind == "user":
            raise ValueError("no fraud labels known in the training window")
        return "ok"

    @flow
    def run(kind: str):
        return flaky(kind)

    assert run("transient") == "ok" and attempts["transient"] == 3
    with pytest.raises(ValueError, match="no fraud labels"):
        run("user")
    assert attempts["user"] == 1
