"""Right to erasure, end to end: the real pipeline on a small generated dataset, `finrisk erase`
through a real Prefect flow run, then every store searched for any trace of the customer."""
from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest
import typer
from typer.testing import CliRunner

from finrisk import cli_privacy
from finrisk.audit import read_events, verify
from finrisk.compliance import mark_alert
from finrisk.config import get_settings, reset_settings
from finrisk.encryption import is_encrypted, read_encrypted
from finrisk.io import DataLayout, scan_partitioned
from finrisk.privacy import is_token, pseudonymise_values
from finrisk.sensitive import read_side
from finrisk.subjects import subject_ref
from finrisk.synthetic import generate
from graph_loaders.edges import graph_frames


ID_PREFIX = "ERASE-"  # customer ids no other test's dataset uses: the test Neo4j server is shared


def _app() -> typer.Typer:
    app = typer.Typer()
    cli_privacy.register(app)

    @app.command()
    def other() -> None:  # a second command keeps `erase` a sub-command, as in the real CLI
        pass

    return app


@pytest.fixture()
def own_stores(tmp_path, monkeypatch):
    """A private MLflow store and audit log, so the search below sees only this dataset's traces."""
    monkeypatch.setenv("FINRISK_MLRUNS_DIR", str(tmp_path / "mlruns"))
    monkeypatch.setenv("FINRISK_AUDIT_LOG", str(tmp_path / "audit" / "audit.log"))
    reset_settings()
    yield get_settings()
    monkeypatch.undo()
    reset_settings()


def _paid_by_others(raw: Path, how_many: int) -> list[str]:
    """Customers whose own VPA other customers paid most often (their identifiers sit in other
    customers' rows too)."""
    customers = pl.read_csv(raw / "customers.csv", infer_schema=False).select("customer_id", "vpa")
    payments = pl.read_csv(raw / "transactions" / "*.csv", infer_schema=False).filter(
        (pl.col("counterparty_type") == "P2P") & (pl.col("direction") == "DEBIT"))
    paid = payments.join(customers, left_on="counterparty_id", right_on="vpa").filter(
        pl.col("customer_id") != pl.col("customer_id_right"))
    return paid.group_by("customer_id_right").len().sort("len", "customer_id_right", descending=[True, False]).head(
        how_many).get_column("customer_id_right").to_list()


def _identifiers(raw: Path, processed: pl.DataFrame, customer_id: str, key: bytes) -> list[str]:
    """Everything that identifies the customer, worked out independently of finrisk.erasure: the
    raw master record's identifiers (unless another customer shares them), their tokens, and the
    tokens on their own processed rows."""
    with open(raw / "customers.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    fields = ("full_name", "mobile", "email", "pan", "aadhaar", "account_number", "vpa")
    mine = next(r for r in rows if r["customer_id"] == customer_id)
    others = {r[f] for r in rows if r["customer_id"] != customer_id for f in fields}
    clear = [mine[f] for f in fields if mine[f] and mine[f] not in others]
    tokens = pseudonymise_values(pl.Series(clear), key).to_list()
    own = processed.filter(pl.col("customer_id") == customer_id)
    for column in ("account_id", "customer_name", "phone"):
        tokens += own.get_column(column).drop_nulls().unique().to_list()
    tokens += own.filter(pl.col("direction") == "DEBIT").get_column("payer_vpa").drop_nulls().unique().to_list()
    shared = set(processed.filter(pl.col("customer_id") != customer_id)
                 .select(pl.concat_list("account_id", "customer_name", "phone").explode()).to_series().to_list())
    return sorted({customer_id, *clear, *(t for t in tokens if t not in shared)})


def _traces_in_files(roots: list[Path], needles: list[str]) -> dict[str, int]:
    """Parquet through DuckDB (each row rendered as text, nested values included), other files as bytes."""
    found = {}
    con = duckdb.connect()
    pattern = "|".join(needles)
    for root in roots:
        for path in (p for p in root.rglob("*") if p.is_file()):
            if path.suffix == ".parquet" and is_encrypted(path):  # the sensitive side table, decrypted
                decrypted = read_encrypted(path)
                hits = duckdb.connect().execute(
                    "SELECT count(*) FROM decrypted AS t WHERE regexp_matches(CAST(t AS VARCHAR), ?)", [pattern]
                ).fetchone()[0]
            elif path.suffix == ".parquet":
                hits = con.execute(
                    "SELECT count(*) FROM read_parquet(?, hive_partitioning = false) AS t "
                    "WHERE regexp_matches(CAST(t AS VARCHAR), ?)", [str(path), pattern]
                ).fetchone()[0]
            else:
                data = path.read_bytes()
                hits = sum(data.count(n.encode()) for n in needles)
            if hits:
                found[str(path)] = hits
    con.close()
    return found


def _graph_traces(driver, database: str, needles: list[str]) -> int:
    records, _, _ = driver.execute_query(
        "MATCH (n) WHERE any(k IN keys(n) WHERE toString(n[k]) IN $needles) RETURN count(n) AS n",
        needles=needles, database_=database,
    )
    return records[0]["n"]


def _expected_graph(processed: pl.LazyFrame) -> dict[str, int]:
    """Customers and their relationships in a full load of these transactions."""
    frames = graph_frames(processed)
    r = {name: frame.height for name, frame in {**frames.nodes, **frames.rels}.items()}
    return {
        "customers": r["Customer"], "PAID": r["paid"], "TRANSFERRED": r["transferred_to_vpa"] + r["transferred_from_vpa"],
        "USES": r["uses"], "OWNS": r["owns_account"] + r["owns_vpa"], "LOCATED_IN": r["customer_city"],
    }


def _graph_of(driver, database: str, prefix: str) -> dict[str, int]:
    """The same counts in Neo4j, for the customers of this dataset only (other tests share the server)."""
    def count(query: str) -> int:
        return driver.execute_query(query, prefix=prefix, database_=database).records[0]["n"]

    counts = {"customers": count("MATCH (c:Customer) WHERE c.customer_id STARTS WITH $prefix RETURN count(c) AS n")}
    for rel in ("PAID", "TRANSFERRED", "USES", "OWNS", "LOCATED_IN"):
        counts[rel] = count(f"MATCH (c:Customer)-[r:{rel}]-() WHERE c.customer_id STARTS WITH $prefix RETURN count(r) AS n")
    return counts


def _own_id_space(raw: Path) -> None:
    """Customer ids no other test's dataset uses."""
    for path in [raw / "customers.csv", *sorted((raw / "transactions").glob("*.csv"))]:
        frame = pl.read_csv(path, infer_schema=False)
        frame.with_columns(pl.col("customer_id").str.replace("^C", ID_PREFIX)).write_csv(path)


def _add_bad_rows(raw: Path, customers: list[str]) -> None:
    """Two unparseable rows of each customer, so quarantine holds their data as well."""
    rows = []
    for source in sorted((raw / "transactions").glob("*.csv")):
        with open(source, newline="") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames
            rows += list(reader)
    with open(raw / "transactions" / "txns_late.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, header)
        writer.writeheader()
        for customer in customers:
            for i, row in enumerate([r for r in rows if r["customer_id"] == customer][:2]):
                writer.writerow({**row, "txn_ref": f"TBAD{customer}{i}", "amount_inr": "not-a-number"})


def test_erase_leaves_no_trace_in_any_store(tmp_path, own_stores, prefect_harness, neo4j_driver):
    from flows.nightly import nightly
    from finrisk.report import build_report

    settings = own_stores
    key = settings.require_pseudonym_key()
    data_dir = tmp_path / "data"
    raw = data_dir / "raw"
    generate(raw, customers=100, days=28, seed=5)
    _own_id_space(raw)
    layout = DataLayout(data_dir)

    candidates = _paid_by_others(raw, 12)
    _add_bad_rows(raw, candidates)
    day = nightly(raw, data_dir)["day"]
    alerts = pl.read_parquet(layout.partition(layout.alerts, day))
    alerted = [c for c in candidates if c in set(alerts.get_column("customer_id").to_list())]
    assert alerted, "none of the candidates has an alert on the scored day"
    customer = alerted[0]
    build_report(data_dir, date.fromisoformat(day))
    mark_alert(layout, alerts.filter(pl.col("customer_id") == customer).get_column("txn_id")[0], "suspicious", "analyst")

    processed = scan_partitioned(layout.transactions).collect()
    needles = _identifiers(raw, processed, customer, key)
    quarantined = pl.read_parquet(layout.quarantine / "source=txns_late.csv" / "part-0.parquet")
    assert quarantined.filter(pl.col("customer_id") == customer).height == 2
    stores = [data_dir, settings.mlruns_dir, settings.audit_log.parent]
    before = _traces_in_files(stores, needles)
    # The customer really is everywhere the search looks: raw, processed, quarantine, features,
    # twins, scores, alerts, the report, casework (by transaction), and the graph.
    for where in ("raw/customers.csv", "raw/transactions", "processed/transactions", "quarantine/transactions",
                  "features/transactions", "features/graph", "processed/twins", "scores", "alerts", "reports"):
        assert any(where in path for path in before), where
    assert _graph_traces(neo4j_driver, settings.neo4j_database, needles) > 0
    others_before = processed.filter(pl.col("customer_id") != customer)
    labels_before = pl.read_parquet(layout.labels)
    side_before = read_side(layout)

    outcome = CliRunner().invoke(_app(), ["erase", customer, "--data-dir", str(data_dir), "--yes"])
    assert outcome.exit_code == 0, outcome.output
    assert "no trace left" in outcome.output

    # Nothing of the customer anywhere: files, Neo4j, MLflow, audit log, Prefect's run history.
    assert _traces_in_files(stores, needles) == {}
    assert _graph_traces(neo4j_driver, settings.neo4j_database, needles) == 0
    import asyncio

    from prefect.client.orchestration import get_client

    async def erase_runs():
        async with get_client() as client:
            return [r for r in await client.read_flow_runs(limit=200) if r.name and r.flow_id and "customer_id" in r.parameters]

    runs = asyncio.run(erase_runs())
    assert runs and all(customer not in json.dumps(r.parameters) for r in runs)

    # Everyone else's history is whole and consistent.
    after = scan_partitioned(layout.transactions).collect()
    assert after.filter(pl.col("customer_id") == customer).height == 0
    assert after.height == others_before.height
    assert after.group_by("customer_id").len().sort("customer_id").equals(
        others_before.group_by("customer_id").len().sort("customer_id"))
    # An erased payee is still one (unnamed) counterparty for each of the others, token-shaped.
    assert after.select("customer_id", "counterparty").n_unique() == others_before.select("customer_id", "counterparty").n_unique()
    changed = after.join(others_before, on="txn_id").filter(pl.col("counterparty") != pl.col("counterparty_right"))
    assert changed.height > 0 and all(is_token(v) for v in changed.get_column("counterparty").to_list())
    their_txns = processed.filter(pl.col("customer_id") == customer).get_column("txn_id")
    labels_after = pl.read_parquet(layout.labels)
    assert labels_after.equals(labels_before.filter(~pl.col("txn_id").is_in(their_txns.implode())))
    # Their coordinates and network addresses are gone from the encrypted side table, no one else's.
    side_after = read_side(layout)
    assert side_before.filter(pl.col("txn_id").is_in(their_txns.implode())).height > 0
    assert side_after.sort("txn_id").equals(side_before.filter(~pl.col("txn_id").is_in(their_txns.implode())).sort("txn_id"))
    features = scan_partitioned(layout.features).collect()
    assert features.height == after.height
    assert _expected_graph(scan_partitioned(layout.transactions)) == _graph_of(neo4j_driver, settings.neo4j_database,
                                                                               ID_PREFIX)

    # The certificate names the customer only by keyed reference; the audit log records the erasure.
    ref = subject_ref(customer, key)
    certificates = list((data_dir / "erasure").glob("certificate-*.json"))
    assert len(certificates) == 1
    certificate = json.loads(certificates[0].read_text())
    assert certificate["subject_ref"] == ref and certificate["complete"] and not certificate["residual"]
    by_store = {s["store"]: s for s in certificate["stores"]}
    assert by_store["processed/transactions"]["rows_deleted"] == their_txns.len()
    assert by_store["processed/transactions"]["values_anonymised"] == changed.height + after.join(
        others_before, on="txn_id").filter(pl.col("payer_vpa") != pl.col("payer_vpa_right")).height
    assert by_store["quarantine/transactions"]["rows_deleted"] == 2
    assert by_store["casework"]["rows_deleted"] == 1
    assert certificate["graph"]["customer_nodes_deleted"] == 1
    assert not list((data_dir / "erasure").glob(".pending-*"))  # the marker secret is gone
    events = [e for e in read_events(settings.audit_log) if e["action"] == "erasure"]
    assert [e["target"] for e in events] == [ref] and verify(settings.audit_log).ok

    # A second request is refused clearly; so is an unknown customer.
    again = CliRunner().invoke(_app(), ["erase", customer, "--data-dir", str(data_dir), "--yes"])
    assert again.exit_code == 1 and "already erased" in again.output and "Traceback" not in again.output
    unknown = CliRunner().invoke(_app(), ["erase", "C9999999", "--data-dir", str(data_dir), "--yes", "--no-graph"])
    assert unknown.exit_code == 1 and "not found" in unknown.output and "Traceback" not in unknown.output


def test_erase_command_errors_are_one_clear_line(tmp_path, monkeypatch):
    missing = CliRunner().invoke(_app(), ["erase", "C1", "--data-dir", str(tmp_path / "nope"), "--yes", "--no-graph"])
    assert missing.exit_code == 1 and "data directory not found" in missing.output
    declined = CliRunner().invoke(_app(), ["erase", "C1", "--data-dir", str(tmp_path), "--no-graph"], input="n\n")
    assert declined.exit_code == 1 and "nothing erased" in declined.output
    monkeypatch.setenv("FINRISK_PSEUDONYM_KEY", "short")
    reset_settings()
    try:
        weak = CliRunner().invoke(_app(), ["erase", "C1", "--data-dir", str(tmp_path), "--yes", "--no-graph"])
    finally:
        monkeypatch.undo()
        reset_settings()
    assert weak.exit_code == 1 and "FINRISK_PSEUDONYM_KEY" in weak.output and "Traceback" not in weak.output
