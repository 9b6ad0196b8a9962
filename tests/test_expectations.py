"""The GX suites on DuckDB: each rule catches what it should, by row, and results hold no raw identifiers."""
from __future__ import annotations

import shutil
from datetime import datetime, timezone

import polars as pl
import pytest
import sqlalchemy as sa

from expectations.duckdb_dialect import connection_string
from expectations.labels import label_suite
from expectations.runner import GxProject
from expectations.transactions import processed_transaction_suite, processed_view_sql, raw_transaction_suite
from finrisk.ingest_read import TRUNCATED
from finrisk.schema import PROCESSED_COLUMNS, TRANSACTION_SCHEMA

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
GOOD_ROW = {
    "txn_id": "T0", "ts": datetime(2026, 1, 1, 4, 30, tzinfo=timezone.utc), "customer_id": "C1", "account_id": "1234",
    "counterparty": "M1", "counterparty_type": "MERCHANT", "mcc": "5411", "channel": "UPI", "direction": "DEBIT",
    "amount_paise": 100, "currency": "INR", "status": "SUCCESS", "device_id": "D1", "ip": "10.0.0.1", "city": "Pune",
    "state": "Maharashtra", "pincode": "411001", "latitude": 18.5, "longitude": 73.8, "ifsc": "HDFC0001234",
    "customer_name": "Asha", "phone": "9876543210", "email": None, "payer_vpa": "asha@okhdfc", "pan": None, "aadhaar": None,
}
BROKEN = {  # field -> (bad value, reason)
    "mcc": ("54A1", "mcc: not a valid 4 digits"),
    "ifsc": ("HDFC1234567", "ifsc: not a valid IFSC format"),
    "pincode": ("011001", "pincode: not a valid 6-digit PIN code"),
    "payer_vpa": ("asha.okhdfc", "payer_vpa: not a valid VPA format"),
    "channel": ("PIGEON", "channel: unknown value"),
    "direction": ("SIDEWAYS", "direction: unknown value"),
    "status": ("MAYBE", "status: unknown value"),
    "currency": ("USD", "currency: unknown value"),
    "latitude": (123.0, "latitude: out of range"),
    "customer_id": (None, "customer_id: missing"),
    "amount_paise": (0, "amount_paise: not between 1 paise and INR 1,000 crore"),
    "ts": (datetime(1999, 12, 31, tzinfo=timezone.utc), "ts: in the future or before 2000"),
}


def _batch() -> pl.DataFrame:
    rows = [dict(GOOD_ROW, txn_id=f"T{i}") for i in range(len(BROKEN) + 3)]
    for i, (field, (value, _)) in enumerate(BROKEN.items(), start=1):
        rows[i][field] = value
    p2p = len(BROKEN) + 1
    rows[p2p].update(counterparty="not a vpa", counterparty_type="P2P")
    frame = pl.DataFrame(rows, schema=TRANSACTION_SCHEMA).with_row_index("_row").with_columns(pl.col("_row").cast(pl.Int64))
    unparsed = {f"{f}_unparsed": pl.lit(None, pl.String) for f in ("ts", "amount_paise", "latitude", "longitude")}
    frame = frame.with_columns(**unparsed, **{TRUNCATED: pl.lit(None, pl.Boolean)})
    last = frame.height - 1
    return frame.with_columns(
        pl.when(pl.col("_row") == last).then(pl.lit("32/13/2026")).otherwise(pl.col("ts_unparsed")).alias("ts_unparsed")
    )


@pytest.fixture()
def project(tmp_path) -> GxProject:
    return GxProject(tmp_path / "data", tmp_path / "validation.duckdb")


def test_raw_suite_names_every_failing_row_and_its_rule(tmp_path, project):
    batch = _batch()
    batch.write_parquet(tmp_path / "batch.parquet")
    project.define_view("batch", f"SELECT * FROM read_parquet('{tmp_path / 'batch.parquet'}')")
    provided = set(TRANSACTION_SCHEMA) - {"email", "pan", "aadhaar"}
    outcome = project.validate(raw_transaction_suite(provided, NOW), "batch", "test", sensitive_columns=("payer_vpa",))
    assert not outcome.success
    failures = {row: reasons for row, reasons in outcome.failures.iter_rows()}
    expected = {i: [reason] for i, (_, (_, reason)) in enumerate(BROKEN.items(), start=1)}
    expected[len(BROKEN) + 1] = ["counterparty: P2P payee is not a valid VPA format"]
    expected[len(BROKEN) + 2] = ["ts: cannot be parsed"]
    assert failures == expected  # row 0 is clean, and nothing else was flagged
    stored = "".join(p.read_text() for p in (tmp_path / "data" / "gx").rglob("*.json"))
    assert "PIGEON" in stored            # failing values of ordinary columns are shown ...
    assert "asha.okhdfc" not in stored   # ... those of identifier columns are not


def test_processed_suite_catches_raw_identifiers_duplicates_and_misfiled_rows(tmp_path, project):
    token = "tk_" + "0" * 32
    good = pl.DataFrame(
        [dict(GOOD_ROW, txn_id=f"T{i}", account_id=token, customer_name=token, phone=token, payer_vpa=token)
         for i in range(3)],
        schema=TRANSACTION_SCHEMA,
    )
    in_clear = good  # ip and coordinates too: they belong in the encrypted side table only
    good = good.select(PROCESSED_COLUMNS)
    provided = set(TRANSACTION_SCHEMA) - {"email", "pan", "aadhaar"}

    def check(frame: pl.DataFrame, date: str = "2026-01-01") -> set[str]:
        shutil.rmtree(tmp_path / "processed", ignore_errors=True)
        folder = tmp_path / "processed" / f"date={date}"
        folder.mkdir(parents=True)
        frame.write_parquet(folder / "part-0.parquet")
        glob = f"{tmp_path / 'processed'}/**/*.parquet"
        project.define_view("processed", processed_view_sql(glob, [date], provided, "Asia/Kolkata"))
        outcome = project.validate(processed_transaction_suite(provided), "processed", "test", row_ids=False)
        return {f["expectation"] for f in outcome.failed()}

    assert check(good) == set()
    assert check(good.with_columns(pl.lit("9876543210").alias("phone"))) == {"phone: not pseudonymised"}
    assert check(good.with_columns(pl.lit("tkumar@okaxis").alias("payer_vpa"))) == {"payer_vpa: not pseudonymised"}
    assert check(good.with_columns(pl.lit("T0").alias("txn_id"))) == {"txn_id: not unique"}
    assert check(good, date="2026-01-02") == {"date: partition is not the business date of ts"}
    assert check(in_clear) == {"table: columns"}


def test_labels_suite_rejects_unknown_values_and_orphans(tmp_path, project):
    labels = pl.DataFrame({
        "_row": [0, 1, 2, 3],
        "txn_id": ["A", "B", "C", None],
        "label": [1, 2, 1, 1],
        "fraud_type": [None] * 4,
        "reported_at": [datetime(2026, 1, 5, tzinfo=timezone.utc)] * 4,
        "label_unparsed": [None] * 4,
        "reported_at_unparsed": [None] * 4,
        "txn_loaded": [True, True, False, True],
        "txn_ts": [datetime(2026, 1, 1, tzinfo=timezone.utc)] * 4,
    }, schema_overrides={"label": pl.Int8, "fraud_type": pl.String, "label_unparsed": pl.String,
                         "reported_at_unparsed": pl.String})
    labels.write_parquet(tmp_path / "labels.parquet")
    project.define_view("labels", f"SELECT * FROM read_parquet('{tmp_path / 'labels.parquet'}')")
    outcome = project.validate(label_suite(NOW), "labels", "test")
    assert {row: reasons for row, reasons in outcome.failures.iter_rows()} == {
        1: ["label: not 0 or 1"], 2: ["txn_id: no such transaction in processed/"], 3: ["txn_id: missing"]}


def test_data_docs_site_is_built(tmp_path, project):
    pl.DataFrame({"_row": [0], "txn_id": ["A"]}).write_parquet(tmp_path / "one.parquet")
    project.define_view("one", f"SELECT * FROM read_parquet('{tmp_path / 'one.parquet'}')")
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name="tiny")
    suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column="txn_id"))
    assert project.validate(suite, "one", "test").success
    index = project.build_docs()
    assert index == tmp_path / "data" / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    assert "tiny" in index.read_text()


def test_dialect_reflects_duckdb_types(tmp_path):
    import duckdb

    db = tmp_path / "t.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE t (a VARCHAR, b BIGINT, c DOUBLE, d TIMESTAMPTZ)")
    con.close()
    columns = sa.inspect(sa.create_engine(connection_string(db))).get_columns("t")
    assert [(c["name"], type(c["type"]).__name__) for c in columns] == [
        ("a", "VARCHAR"), ("b", "BIGINT"), ("c", "DOUBLE_PRECISION"), ("d", "TIMESTAMP")]
    assert columns[3]["type"].timezone
