"""Both load paths against the real Neo4j test server: incremental upserts, the bulk import that is
switched in, a load interrupted by a server restart, and the analyst's `graph` commands."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest
import typer
from prefect import flow
from prefect.client.orchestration import get_client
from typer.testing import CliRunner

from finrisk.cli_graph import register
from finrisk.config import get_settings
from finrisk.io import DataLayout, scan_partitioned, write_parquet_atomic
from finrisk.services import neo4j_down, neo4j_up
from graph_loaders.around import NotInGraph, neighbourhood
from graph_loaders.bulk_import import bulk_load
from graph_loaders.edges import graph_frames
from graph_loaders.incremental import NothingToLoad, partition_rows, pending_days, upsert_days
from graph_loaders.model import DATETIME, NODES, RELATIONSHIPS, end_key, start_key
from graph_loaders.neo4j_load import connect, graph_counts
from tasks.graph import load_graph
from test_graph_edges import tx

DB = "neo4j"


@pytest.fixture(scope="module")
def processed(small_raw, tmp_path_factory) -> Path:
    """The session's generated raw exports, ingested (validated, pseudonymised) into processed Parquet."""
    from finrisk.ingest import ingest
    from finrisk.mapping import load_mapping

    data_dir = tmp_path_factory.mktemp("graph-data")
    ingest([small_raw], load_mapping(None), DataLayout(data_dir), get_settings().require_pseudonym_key(), 1.0)
    return data_dir


def _value(kind: str, var: str, name: str) -> str:
    return f"{var}.{name}.epochSeconds * 1000000 + {var}.{name}.microsecond" if kind == DATETIME else f"{var}.{name}"


def time_zones(driver) -> set[str]:
    """The zone of every stored time: both load paths write UTC DateTime values (offset Z)."""
    records, _, _ = driver.execute_query(
        "MATCH ()-[r]->() UNWIND [r.first, r.last, r.first_seen, r.last_seen] AS t WITH t WHERE t IS NOT NULL "
        "RETURN DISTINCT t.timezone AS zone", database_=DB)
    return {r["zone"] for r in records}


def graph_snapshot(driver) -> dict[str, list[tuple]]:
    """Every node and relationship with its key(s) and properties, sorted; times as epoch microseconds."""
    out = {}
    for node in NODES:
        values = ", ".join([f"n.{node.key}", *(_value(k, "n", p) for p, k in node.props)])
        records, _, _ = driver.execute_query(f"MATCH (n:{node.label}) RETURN [{values}] AS row", database_=DB)
        out[node.label] = sorted(tuple(r["row"]) for r in records)
    for spec in RELATIONSHIPS:
        values = ", ".join([f"a.{start_key(spec)}", f"b.{end_key(spec)}", *(_value(k, "r", p) for p, k in spec.props)])
        records, _, _ = driver.execute_query(
            f"MATCH (a:{spec.start})-[r:{spec.type}]->(b:{spec.end}) RETURN [{values}] AS row", database_=DB
        )
        out[spec.name] = sorted(tuple(r["row"]) for r in records)
    return out


def expected_snapshot(data_dir: Path) -> dict[str, list[tuple]]:
    """The same picture computed straight from the processed Parquet."""
    frames = graph_frames(scan_partitioned(DataLayout(data_dir).transactions))

    def rows(frame: pl.DataFrame) -> list[tuple]:
        frame = frame.with_columns(pl.col(c).dt.epoch("us") for c, t in frame.schema.items() if isinstance(t, pl.Datetime))
        return sorted(frame.rows())

    return {**{label: rows(f) for label, f in frames.nodes.items()}, **{n: rows(f) for n, f in frames.rels.items()}}


def test_incremental_loads_equal_the_processed_data_and_rerunning_a_day_changes_nothing(processed, neo4j_driver):
    days = sorted(partition_rows(DataLayout(processed)))
    # A database from before the `last` indexes were retired: the load drops them.
    neo4j_driver.execute_query("CREATE INDEX paid_last IF NOT EXISTS FOR ()-[r:PAID]-() ON (r.last)", database_=DB)
    first = upsert_days(neo4j_driver, DB, processed, days[:15])
    indexes, _, _ = neo4j_driver.execute_query("SHOW INDEXES YIELD name RETURN collect(name) AS names", database_=DB)
    assert "paid_last" not in indexes[0]["names"] and "customer_id" in indexes[0]["names"]
    assert first.days == days[:15]
    assert pending_days(neo4j_driver, DB, DataLayout(processed)) == days[15:]
    rest = upsert_days(neo4j_driver, DB, processed)  # the days not loaded yet
    assert rest.days == days[15:]
    loaded = graph_snapshot(neo4j_driver)
    assert loaded == expected_snapshot(processed)
    assert time_zones(neo4j_driver) == {"Z"}

    assert upsert_days(neo4j_driver, DB, processed).days == []  # nothing pending
    again = upsert_days(neo4j_driver, DB, processed, [days[20]])
    assert again.relationships > 0  # the day was written again ...
    assert graph_snapshot(neo4j_driver) == loaded  # ... and nothing changed
    with pytest.raises(NothingToLoad, match="1999-01-01"):
        upsert_days(neo4j_driver, DB, processed, ["1999-01-01"])


def test_a_customer_whose_transactions_move_city_moves_with_them(tmp_path, neo4j_driver):
    t0 = datetime(2026, 3, 1, 4, 30, tzinfo=timezone.utc)

    def pay(i, day, city, merchant="M1"):
        return {"txn_id": f"t{i}", "customer_id": "C1", "counterparty": merchant, "counterparty_type": "MERCHANT",
                "ts": t0 + timedelta(days=day, minutes=i), "city": city, "state": "MH"}

    frame = tx([pay(1, 0, "Pune"), pay(2, 0, "Pune"), pay(3, 1, "Nagpur"), pay(4, 1, "Nagpur"), pay(5, 1, "Nagpur"),
                pay(6, 1, "Pune", merchant="M2"), pay(7, 1, "Nagpur", merchant="M2")]).collect()
    layout = DataLayout(tmp_path)
    by_day = frame.partition_by("date", as_dict=True, include_key=False)

    def arrives(day: str) -> None:
        write_parquet_atomic(by_day[(day,)], layout.partition(layout.transactions, day))

    def cities():
        records, _, _ = neo4j_driver.execute_query(
            "MATCH (n)-[:LOCATED_IN]->(c:City) RETURN coalesce(n.customer_id, n.merchant_id) AS id, c.name AS city "
            "ORDER BY id", database_=DB)
        return [(r["id"], r["city"]) for r in records]

    arrives("2026-03-01")
    assert upsert_days(neo4j_driver, DB, tmp_path).days == ["2026-03-01"]
    assert cities() == [("C1", "Pune"), ("M1", "Pune")]
    arrives("2026-03-02")
    assert upsert_days(neo4j_driver, DB, tmp_path).days == ["2026-03-02"]
    # C1: 3 of 5 payments now in Nagpur; M1 likewise; M2 is split 1:1, so it has no city.
    assert cities() == [("C1", "Nagpur"), ("M1", "Nagpur")]


def test_graph_commands(processed, neo4j_driver):
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    loaded = runner.invoke(app, ["graph", "load", "--data-dir", str(processed)])
    assert loaded.exit_code == 0, loaded.output
    assert f"loaded {len(partition_rows(DataLayout(processed)))} day(s)" in loaded.output
    counts = graph_counts(neo4j_driver, DB)
    assert f"{counts['paid']:,}" in loaded.output
    assert "nothing to load" in runner.invoke(app, ["graph", "load", "--data-dir", str(processed)]).output

    processed_tx = scan_partitioned(DataLayout(processed).transactions)
    labels = pl.read_parquet(DataLayout(processed).labels)
    row = processed_tx.join(labels.lazy(), on="txn_id").sort("txn_id").head(1).collect()
    fraud_txn, customer = row.get_column("txn_id")[0], row.get_column("customer_id")[0]
    shown = runner.invoke(app, ["graph", "around", fraud_txn, "--data-dir", str(processed)])
    assert shown.exit_code == 0, shown.output
    assert fraud_txn in shown.output and f"customer {customer}" in shown.output and "reported" in shown.output
    assert f"MATCH (c:Customer {{customer_id: '{customer}'}})" in shown.output

    around = neighbourhood(neo4j_driver, DB, processed, customer)
    records, _, _ = neo4j_driver.execute_query(around.browser_query, database_=DB)
    assert records  # the pasted query runs and draws paths
    own_devices = processed_tx.filter(pl.col("customer_id") == customer).select("device_id").drop_nulls().unique()
    assert {d["device_id"] for d in around.devices} == set(own_devices.collect().to_series())
    assert len(around.accounts) == 1 and around.home_city
    with pytest.raises(NotInGraph):
        neighbourhood(neo4j_driver, DB, processed, "NO-SUCH-ID")

    unknown = runner.invoke(app, ["graph", "around", "NO-SUCH-ID", "--data-dir", str(processed)])
    assert unknown.exit_code == 1 and "neither a loaded transaction nor a customer" in unknown.output
    assert "Traceback" not in unknown.output
    empty = runner.invoke(app, ["graph", "load", "--data-dir", str(processed / "nothing-here")])
    assert empty.exit_code == 1 and "no processed transactions" in empty.output
    bad_day = runner.invoke(app, ["graph", "features", "--day", "31-12-2026", "--data-dir", str(processed)])
    assert bad_day.exit_code == 1 and "not a date" in bad_day.output
    features = runner.invoke(app, ["graph", "features", "--data-dir", str(processed)])
    assert features.exit_code == 0, features.output
    assert len(list((processed / "features" / "graph").glob("date=*/part-0.parquet"))) == 1


def test_bulk_import_is_switched_in_and_equals_the_incremental_graph(processed, neo4j_server, neo4j_driver):
    neo4j_driver.execute_query("CREATE (:Customer {customer_id: 'FROM-BEFORE'})", database_=DB)
    report = bulk_load(neo4j_server, processed)
    expected = expected_snapshot(processed)
    assert report.relationships == sum(len(expected[r.name]) for r in RELATIONSHIPS)
    # A new database: a client's bookmarks from before the switch mean nothing to it, so reconnect.
    driver = connect(neo4j_server.neo4j_uri, neo4j_server.neo4j_user, neo4j_server.require_neo4j_password())
    try:
        assert graph_snapshot(driver) == expected  # the old graph is gone
        assert time_zones(driver) == {"Z"}
        assert pending_days(driver, DB, DataLayout(processed)) == []  # the nightly load carries on from here
        records, _, _ = driver.execute_query(
            "SHOW CONSTRAINTS YIELD labelsOrTypes, properties RETURN labelsOrTypes[0] AS label, properties[0] AS key",
            database_=DB)
    finally:
        driver.close()
    assert {(r["label"], r["key"]) for r in records} >= {(n.label, n.key) for n in NODES}
    assert not (neo4j_server.neo4j_home / "data" / "databases" / "neo4j-staging").exists()


def test_a_load_interrupted_by_a_neo4j_restart_is_retried_to_the_same_graph(processed, neo4j_server, neo4j_driver,
                                                                            prefect_harness):
    """The server is stopped (and started again) while the task is writing; the driver gives up
    after 1 s, so the task's own retries have to finish the job."""
    observed: dict = {}

    def restart_mid_load() -> None:
        watcher = connect(neo4j_server.neo4j_uri, neo4j_server.neo4j_user, neo4j_server.require_neo4j_password())
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                records, _, _ = watcher.execute_query(
                    "CALL () { MATCH ()-[r:PAID]->() RETURN count(r) AS paid } "
                    "CALL () { MATCH (d:LoadedDay) RETURN count(d) AS days } RETURN paid, days", database_=DB)
                if records and records[0]["paid"] > 0:
                    observed.update(records[0])
                    break
                time.sleep(0.05)
        finally:
            watcher.close()
        neo4j_down(neo4j_server)
        observed["stopped"] = True
        neo4j_up(neo4j_server)

    @flow(name="graph-load-under-restart")
    def load_during_restart(data_dir: Path):
        return load_graph.with_options(retries=12, retry_delay_seconds=3)(
            data_dir, batch_rows=100, driver_retry_seconds=1.0, return_state=True
        )

    restarter = threading.Thread(target=restart_mid_load)
    restarter.start()
    try:
        state = load_during_restart(processed)
    finally:
        restarter.join()
    assert observed.get("stopped") and observed["days"] == 0  # stopped while writing, before the end
    with get_client(sync_client=True) as client:
        attempts = client.read_task_run(state.state_details.task_run_id).run_count
    assert attempts >= 2  # the first attempt failed with the server gone; a retry finished the load
    assert state.result()["load"]["days"] == sorted(partition_rows(DataLayout(processed)))
    assert graph_snapshot(neo4j_driver) == expected_snapshot(processed)
