"""Security: hostile identifiers against the real Neo4j through the loader, `finrisk graph around`,
the analyst's Browser query and the erasure; the audit log's command lines without customer ids."""
from __future__ import annotations

from datetime import date

import polars as pl
import typer
from typer.testing import CliRunner

from bench.feature_data import write_processed
from finrisk import cli_graph, cli_privacy
from finrisk.config import get_settings
from finrisk.io import DataLayout, scan_partitioned, write_parquet_atomic
from finrisk.subjects import redact_argv, subject_ref
from finrisk.synthetic import generate
from graph_loaders.around import browser_query
from graph_loaders.edges import graph_frames
from graph_loaders.incremental import upsert_days
from graph_loaders.neo4j_load import graph_counts

# Each would end the string literal and run its own clause if it were pasted into Cypher text.
HOSTILE_CUSTOMERS = [
    "x'}) DETACH DELETE n //",
    'y"}) MATCH (m) DETACH DELETE m //',
    "z\\'}) MATCH (m) DETACH DELETE m //",
    "w`}) CALL { MATCH (m) DETACH DELETE m } //",
    "v\u0027}) WITH 1 AS one MATCH (m) DETACH DELETE m RETURN one //",
]
HOSTILE_DEVICE = "d'}) MATCH (m) DETACH DELETE m //"
HOSTILE_MERCHANT = "M'}) MATCH (m:Merchant) DETACH DELETE m //"


def _hostile_dataset(root) -> DataLayout:
    generate(root / "raw", customers=25, days=3, seed=4, start=date(2026, 1, 1))
    layout = DataLayout(write_processed(root / "raw", root / "data"))
    customers = sorted(scan_partitioned(layout.transactions).select("customer_id").unique().collect().to_series())
    rename = dict(zip(customers, HOSTILE_CUSTOMERS))
    merchant_rows = (pl.col("counterparty_type") == "MERCHANT") & (pl.col("direction") == "DEBIT")
    for path in layout.transactions.rglob("*.parquet"):
        part = pl.read_parquet(path)
        first_merchant = part.filter(merchant_rows).get_column("counterparty")[0]
        part = part.with_columns(
            pl.col("customer_id").replace(rename),
            pl.when(pl.col("device_id").is_not_null() & (pl.col("customer_id") == customers[-1]))
            .then(pl.lit(HOSTILE_DEVICE)).otherwise(pl.col("device_id")).alias("device_id"),
            pl.when(pl.col("counterparty") == first_merchant).then(pl.lit(HOSTILE_MERCHANT))
            .otherwise(pl.col("counterparty")).alias("counterparty"),
        )
        write_parquet_atomic(part, path)
    return layout


def _expected(layout: DataLayout) -> dict[str, int]:
    frames = graph_frames(scan_partitioned(layout.transactions))
    n = {label: frame.height for label, frame in frames.nodes.items()}
    r = {name: frame.height for name, frame in frames.rels.items()}
    return {
        "customers": n["Customer"], "accounts": n["Account"], "merchants": n["Merchant"], "devices": n["Device"],
        "vpas": n["VPA"], "cities": n["City"], "paid": r["paid"],
        "transferred": r["transferred_to_vpa"] + r["transferred_from_vpa"], "uses": r["uses"],
        "owns": r["owns_account"] + r["owns_vpa"], "located_in": r["customer_city"] + r["merchant_city"],
    }


def _count(driver, database, query, **params) -> int:
    records, _, _ = driver.execute_query(query, parameters_=params, database_=database)
    return records[0]["n"]


def test_hostile_identifiers_are_data_never_cypher(tmp_path, neo4j_driver):
    from finrisk.erasure_graph import delete_subject, neighbourhood

    settings = get_settings()
    db = settings.neo4j_database
    layout = _hostile_dataset(tmp_path)
    upsert_days(neo4j_driver, db, layout.root)
    expected = _expected(layout)
    assert graph_counts(neo4j_driver, db) == expected
    for hostile in HOSTILE_CUSTOMERS:
        assert _count(neo4j_driver, db, "MATCH (c:Customer {customer_id: $id}) RETURN count(c) AS n", id=hostile) == 1
    assert _count(neo4j_driver, db, "MATCH (d:Device {device_id: $id}) RETURN count(d) AS n", id=HOSTILE_DEVICE) == 1
    assert _count(neo4j_driver, db, "MATCH (m:Merchant {merchant_id: $id}) RETURN count(m) AS n", id=HOSTILE_MERCHANT) == 1

    # The analyst's command and the Browser query it prints: the customer found, nothing deleted.
    app = typer.Typer()
    cli_graph.register(app)
    result = CliRunner().invoke(app, ["graph", "around", HOSTILE_CUSTOMERS[0], "--data-dir", str(layout.root)],
                                env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert HOSTILE_CUSTOMERS[0] in result.output
    for hostile in HOSTILE_CUSTOMERS:
        records, _, _ = neo4j_driver.execute_query(browser_query(hostile), database_=db)
        assert records, hostile  # the pasted query draws the customer's paths
    assert graph_counts(neo4j_driver, db) == expected

    # Erasure of one hostile id deletes that customer only.
    first = HOSTILE_CUSTOMERS[0]
    report = delete_subject(neo4j_driver, db, first, {}, neighbourhood(neo4j_driver, db, first))
    assert report.customer_nodes_deleted == 1
    after = graph_counts(neo4j_driver, db)
    assert after["customers"] == expected["customers"] - 1
    assert after["merchants"] >= expected["merchants"] - 1 and after["paid"] > 0
    for hostile in HOSTILE_CUSTOMERS[1:]:
        assert _count(neo4j_driver, db, "MATCH (c:Customer {customer_id: $id}) RETURN count(c) AS n", id=hostile) == 1


def test_audit_command_lines_name_customers_by_reference():
    key = b"k" * 32
    app = typer.Typer()
    cli_privacy.register(app)
    command = typer.main.get_command(app)
    hostile = HOSTILE_CUSTOMERS[0]
    assert redact_argv(command, ["erase", hostile, "--yes"], key) == ["erase", subject_ref(hostile, key), "--yes"]
    # Options before the id, and an option value that looks like an id, are parsed as click parses them.
    assert redact_argv(command, ["consent", "withdraw", "--purpose", "model_training", "C0000001"], key) == [
        "consent", "withdraw", "--purpose", "model_training", subject_ref("C0000001", key)]
    assert redact_argv(command, ["retention", "--days", "30"], key) == ["retention", "--days", "30"]
    assert redact_argv(command, ["erase", "C1"], None) == ["erase", "<customer>"]
    assert redact_argv(command, ["no-such-command", "C1"], key) == ["no-such-command", "C1"]
    # The twin command of the features CLI takes a customer id too.
    from finrisk import cli_features

    features = typer.Typer()
    cli_features.register(features)
    twin = redact_argv(typer.main.get_command(features), ["twin", "C0000042", "--data-dir", "d"], key)
    assert twin == ["twin", subject_ref("C0000042", key), "--data-dir", "d"]
