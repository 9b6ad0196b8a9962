"""The nightly flow end to end on real Parquet, a real MLflow store, real Neo4j and real Prefect runs."""
from __future__ import annotations

import polars as pl
from mlflow import MlflowClient

from finrisk.config import get_settings
from finrisk.io import DataLayout, scan_partitioned
from flows.nightly import nightly
from graph_loaders.neo4j_load import graph_counts
from models.registry import configure


def _raw_rows(raw) -> int:
    return pl.scan_csv(str(raw / "transactions" / "*.csv"), infer_schema=False).select(pl.len()).collect().item()


def test_nightly_flow_lands_in_every_store(small_raw, prefect_harness, neo4j_driver, tmp_path):
    settings = get_settings()
    data_dir = tmp_path / "data"
    first = nightly(small_raw, data_dir)

    # Parquet: every raw row accounted for, and exactly the loaded rows are in processed/.
    ingest = first["ingest"]
    assert ingest["rows_in"] == _raw_rows(small_raw)
    assert ingest["rows_in"] == ingest["loaded"] + ingest["quarantined"] + ingest["duplicates"]
    layout = DataLayout(data_dir)
    processed = scan_partitioned(layout.transactions).collect()
    assert processed.height == ingest["loaded"]
    assert processed.get_column("txn_id").is_unique().all()

    # MLflow: a registered version that is both challenger and (being the first) champion.
    configure(settings.tracking_uri)
    client = MlflowClient()
    champion = client.get_model_version_by_alias(settings.mlflow_model_name, "champion")
    challenger = client.get_model_version_by_alias(settings.mlflow_model_name, "challenger")
    assert int(champion.version) == int(challenger.version) == first["train"]["version"]
    assert 0.5 < first["train"]["metrics"]["auc"] <= 1.0
    # The behavioural clustering behind the peer groups is logged with the training run.
    run = client.get_run(first["train"]["run_id"])
    assert int(run.data.params["peer_groups_k"]) == first["features"]["twin"]["peer_groups"]["k"]

    # Neo4j: node and relationship counts equal what the processed data implies.
    counts = graph_counts(neo4j_driver, settings.neo4j_database)
    merchant_debits = processed.filter((pl.col("counterparty_type") == "MERCHANT") & (pl.col("direction") == "DEBIT"))
    assert counts["paid"] == merchant_debits.select("customer_id", "counterparty").n_unique()
    assert counts["merchants"] == merchant_debits.get_column("counterparty").n_unique()
    with_device = processed.filter(pl.col("device_id").is_not_null())
    assert counts["uses"] == with_device.select("customer_id", "device_id").n_unique()
    assert counts["devices"] == with_device.get_column("device_id").n_unique()

    # Scores: one for every transaction of the scored day.
    day = first["day"]
    scores = pl.read_parquet(layout.partition(layout.scores, day))
    day_txns = processed.filter(pl.col("date") == day)
    assert sorted(scores.get_column("txn_id").to_list()) == sorted(day_txns.get_column("txn_id").to_list())
    assert scores.get_column("score").is_between(0, 1).all()
    top = pl.read_parquet(layout.partition(layout.alerts, day)).head(5)
    assert top.get_column("reasons").list.len().min() >= 1  # every top alert says why

    # Explicit range scoring: every transaction of the last two days, with reasons.
    from datetime import date, timedelta

    from flows.score import score_range_flow

    last = date.fromisoformat(day)
    out = tmp_path / "range.parquet"
    ranged = score_range_flow(data_dir, last - timedelta(days=1), last, out)
    expected = processed.filter(pl.col("date") >= (last - timedelta(days=1)).isoformat())
    written = pl.read_parquet(out)
    assert ranged["scored"] == written.height == expected.height
    assert written.columns[:6] == ["txn_id", "customer_id", "ts", "score", "anomaly_score", "reasons"]
    # The same range, one task per day on a 2-worker Dask cluster: the same scores.
    from flows.dask import run_on_dask

    on_dask = run_on_dask(score_range_flow, data_dir, last - timedelta(days=1), last, tmp_path / "dask.parquet", workers=2)
    assert on_dask == {**ranged, "out": str(tmp_path / "dask.parquet")}
    assert pl.read_parquet(tmp_path / "dask.parquet").equals(written)

    # A second run over the same files adds nothing anywhere and keeps the champion.
    second = nightly(small_raw, data_dir)
    assert second["ingest"]["loaded"] == 0
    assert second["ingest"]["duplicates"] + second["ingest"]["quarantined"] == second["ingest"]["rows_in"]
    assert scan_partitioned(layout.transactions).select(pl.len()).collect().item() == processed.height
    assert graph_counts(neo4j_driver, settings.neo4j_database) == counts
    assert second["train"]["version"] == first["train"]["version"] + 1
    assert not second["train"]["promoted"]  # same data, same seed: not better, so no promotion
    assert int(client.get_model_version_by_alias(settings.mlflow_model_name, "champion").version) == int(champion.version)
    assert int(client.get_model_version_by_alias(settings.mlflow_model_name, "challenger").version) == second["train"][
        "version"
    ]
