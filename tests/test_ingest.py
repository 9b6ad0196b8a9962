"""Ingest on real files: mapping, exact amounts, pseudonymisation, quarantine, labels, idempotence."""
from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from finrisk.ingest import IngestError, ThresholdError, ingest
from finrisk.io import DataLayout, scan_partitioned
from finrisk.mapping import MappingError, load_mapping
from finrisk.privacy import is_token

KEY = b"unit-test-key-0123456789"
HEADER = (
    "txn_ref,txn_time,customer_id,account_number,customer_name,mobile,payer_vpa,counterparty_id,"
    "counterparty_type,mcc,channel,direction,amount_inr,status,device_id,ip_address,city,state,pincode,"
    "latitude,longitude,ifsc"
)
GOOD = [
    "T1,2026-01-01 10:00:00,C1,12345678901,Rahul Sharma,9876543210,rahul@okhdfc,M1,MERCHANT,5411,UPI,DEBIT,249.50,SUCCESS,D1,10.0.0.1,Mumbai,Maharashtra,400001,19.07,72.87,HDFC0001234",
    "T2,2026-01-01 23:59:59,C1,12345678901,Rahul Sharma,9876543210,rahul@okhdfc,priya@ybl,P2P,,UPI,DEBIT,1000.10,SUCCESS,D1,10.0.0.1,Mumbai,Maharashtra,400001,19.07,72.87,HDFC0001234",
    "T3,2026-01-02 00:00:01,C2,22345678901,Priya Nair,9876543211,priya@ybl,M1,MERCHANT,5411,upi,DEBIT,0.01,SUCCESS,D2,10.0.0.2,Kochi,Kerala,682001,9.9,76.2,SBIN0001234",
]
BAD = [
    "T4,2026-01-02 12:00:00,C2,22345678901,Priya Nair,9876543211,priya@ybl,M1,MERCHANT,5411,TELEPORT,DEBIT,10.00,SUCCESS,D2,,Kochi,Kerala,682001,,,",
    "T5,2026-01-02 12:00:00,C2,22345678901,Priya Nair,9876543211,priya@ybl,M1,MERCHANT,5411,UPI,DEBIT,-5.00,SUCCESS,D2,,Kochi,Kerala,682001,,,",
    "T6,not a time,C2,22345678901,Priya Nair,9876543211,priya@ybl,M1,MERCHANT,5411,UPI,DEBIT,5.00,SUCCESS,D2,,Kochi,Kerala,682001,,,",
]
RAW_PII = ("Rahul", "9876543210", "rahul@okhdfc", "12345678901", "priya@ybl", "Priya Nair")


def write_source(tmp_path: Path, rows: list[str], name: str = "txns_2026-01-01.csv", labels: str | None = None,
                 folder: str = "src") -> Path:
    src = tmp_path / folder
    (src / "transactions").mkdir(parents=True, exist_ok=True)
    (src / "transactions" / name).write_text("\n".join([HEADER, *rows]) + "\n")
    if labels is not None:
        (src / "labels.csv").write_text("txn_ref,label,fraud_type,reported_at\n" + labels)
    return src


def run(src: Path | list[Path], data: Path, threshold: float = 0.6, mapping=None, key: bytes = KEY):
    sources = src if isinstance(src, list) else [src]
    return ingest(sources, mapping or load_mapping(), DataLayout(data), key, threshold)


def processed(data: Path) -> pl.DataFrame:
    return scan_partitioned(DataLayout(data).transactions).collect().sort("txn_id")


def quarantined(data: Path, table: str = "transactions") -> pl.DataFrame:
    return pl.read_parquet(data / "quarantine" / table / "**" / "*.parquet").sort("_row")


def test_good_rows_load_bad_rows_quarantine_with_reasons(tmp_path):
    src = write_source(tmp_path, GOOD + BAD + [GOOD[0]])
    report = run(src, tmp_path / "data")
    assert (report.rows_in, report.loaded, report.quarantined, report.duplicates) == (7, 3, 3, 1)
    loaded = processed(tmp_path / "data")
    assert loaded.get_column("amount_paise").to_list() == [24950, 100010, 1]
    # IST midnight splits business dates; stored in UTC.
    assert loaded.get_column("date").to_list() == ["2026-01-01", "2026-01-01", "2026-01-02"]
    assert loaded.get_column("ts").dtype == pl.Datetime("us", "UTC")
    assert loaded.row(0, named=True)["ts"].hour == 4  # 10:00 IST
    assert loaded.get_column("channel").to_list() == ["UPI", "UPI", "UPI"]
    # Direct identifiers are tokens; a P2P payee VPA too, and it equals the payer token of that VPA.
    for column in ("account_id", "customer_name", "phone", "payer_vpa"):
        assert all(is_token(v) for v in loaded.get_column(column))
    by_id = {r["txn_id"]: r for r in loaded.iter_rows(named=True)}
    assert by_id["T2"]["counterparty"] == by_id["T3"]["payer_vpa"]
    assert by_id["T1"]["counterparty"] == "M1"
    text = loaded.write_csv()
    assert not any(pii in text for pii in RAW_PII)

    bad = quarantined(tmp_path / "data")
    reasons = dict(zip(bad["txn_id"], bad["reasons"].to_list()))
    assert reasons["T4"] == ["channel: unknown value"]
    assert reasons["T5"] == ["amount_paise: not between 1 paise and INR 1,000 crore"]
    assert reasons["T6"] == ["ts: cannot be parsed", "ts: missing"]
    t6 = bad.filter(pl.col("txn_id") == "T6").row(0, named=True)
    assert t6["ts_unparsed"] == "not a time" and t6["_source"] == "txns_2026-01-01.csv" and t6["_line"] == 6
    assert not any(pii in bad.drop("reasons").write_csv() for pii in RAW_PII)
    assert report.quarantine_reasons["channel: unknown value"] == 1


def test_rerun_and_overlapping_files_add_nothing_twice(tmp_path):
    data = tmp_path / "data"
    first = run(write_source(tmp_path, GOOD[:2] + BAD[:1]), data)
    assert (first.loaded, first.quarantined) == (2, 1)
    again = run(write_source(tmp_path, GOOD[:2] + BAD[:1]), data)
    assert (again.rows_in, again.loaded, again.quarantined, again.duplicates) == (3, 0, 1, 2)
    # A second export overlapping the first: only its new row is loaded.
    overlap = write_source(tmp_path, GOOD[1:], name="txns_2026-01-02.csv", folder="src2")
    third = run(overlap, data)
    assert (third.rows_in, third.loaded, third.duplicates) == (2, 1, 1)
    assert processed(data).get_column("txn_id").to_list() == ["T1", "T2", "T3"]
    assert len(list((data / "quarantine" / "transactions").rglob("*.parquet"))) == 1


def test_fixed_source_row_leaves_quarantine_on_rerun(tmp_path):
    data = tmp_path / "data"
    run(write_source(tmp_path, GOOD[:1] + BAD[:1]), data)
    assert quarantined(data).height == 1
    fixed = BAD[0].replace("TELEPORT", "UPI")
    report = run(write_source(tmp_path, GOOD[:1] + [fixed]), data)
    assert (report.loaded, report.quarantined, report.duplicates) == (1, 0, 1)
    assert not list((data / "quarantine" / "transactions").rglob("*.parquet"))


def test_too_many_bad_rows_fails_the_run_and_loads_nothing(tmp_path):
    src = write_source(tmp_path, GOOD[:1] + BAD)
    with pytest.raises(ThresholdError, match="above the threshold") as failure:
        run(src, tmp_path / "data", threshold=0.5)
    assert failure.value.report.quarantined == 3
    assert not DataLayout(tmp_path / "data").transactions.exists()
    assert quarantined(tmp_path / "data").height == 3  # the bad rows are kept for a person to look at


def test_labels_merge_quarantine_orphans_and_impossible_reports(tmp_path):
    labels = (
        "T2,1,account_takeover,2026-01-05T10:00:00+05:30\n"
        "T9,1,mule_network,2026-01-05T10:00:00+05:30\n"       # no such transaction loaded
        "T1,1,card_testing,2026-01-01T09:00:00+05:30\n"       # reported before it happened
        "T3,yes,,2026-01-03 08:00:00\n"                       # words for labels, zone from the mapping
    )
    src = write_source(tmp_path, GOOD, labels=labels)
    report = run(src, tmp_path / "data")
    assert (report.labels_in, report.labels_loaded, report.labels_quarantined, report.labels_duplicates) == (4, 2, 2, 0)
    stored = pl.read_parquet(DataLayout(tmp_path / "data").labels).sort("txn_id")
    assert stored.get_column("txn_id").to_list() == ["T2", "T3"]
    assert stored.get_column("label").to_list() == [1, 1]
    assert stored.row(0, named=True)["reported_at"].hour == 4  # 10:00 IST = 04:30 UTC
    orphans = quarantined(tmp_path / "data", "labels")
    reasons = dict(zip(orphans["txn_id"], orphans["reasons"].to_list()))
    assert reasons == {"T9": ["txn_id: no such transaction in processed/"], "T1": ["reported_at: before the transaction"]}
    again = run(src, tmp_path / "data")
    assert (again.labels_loaded, again.labels_duplicates, again.labels_quarantined) == (0, 2, 2)


def test_labels_inside_the_transaction_files(tmp_path):
    src = tmp_path / "bank"
    src.mkdir()
    (src / "export.csv").write_text(
        "id,when,cust,amt,is_fraud,fraud_kind,flagged_on\n"
        "A1,2026-02-01T10:00:00Z,K1,100.00,,,\n"
        "A2,2026-02-01T11:00:00Z,K1,999.99,1,account_takeover,2026-02-03T00:00:00Z\n"
    )
    mapping_file = tmp_path / "bank.yaml"
    mapping_file.write_text(
        "source: bank\ntransactions: '*.csv'\ncolumns: {txn_id: id, ts: when, customer_id: cust, amount_paise: amt}\n"
        "static: {channel: CARD_POS, direction: DEBIT}\n"
        "labels:\n  columns: {label: is_fraud, fraud_type: fraud_kind, reported_at: flagged_on}\n"
    )
    report = run(src, tmp_path / "data", mapping=load_mapping(mapping_file))
    assert (report.loaded, report.labels_in, report.labels_loaded) == (2, 1, 1)
    loaded = processed(tmp_path / "data")
    assert loaded.get_column("channel").to_list() == ["CARD_POS", "CARD_POS"]
    assert loaded.get_column("mcc").null_count() == 2  # neither mapped nor static: null
    assert pl.read_parquet(DataLayout(tmp_path / "data").labels).get_column("txn_id").to_list() == ["A2"]


def test_parquet_and_json_lines_sources(tmp_path):
    src = tmp_path / "mixed"
    src.mkdir()
    pl.DataFrame({
        "ref": ["P1", "P2"], "at": ["2026-03-01 09:00:00", "2026-03-01 21:00:00"], "who": ["K1", "K2"],
        "paise": [12345, 500], "dr_cr": ["DR", "cr"], "vpa": ["a.b@okaxis", "c@ybl"],
    }).write_parquet(src / "part-1.parquet")
    (src / "part-2.jsonl").write_text(
        '{"ref": "J1", "at": "2026-03-02 09:00:00", "who": "K1", "paise": 777, "dr_cr": "DR", "vpa": "a.b@okaxis"}\n'
    )
    mapping_file = tmp_path / "m.yaml"
    mapping_file.write_text(
        "source: mixed\ntimezone: UTC\namount_unit: paise\n"
        "columns: {txn_id: ref, ts: at, customer_id: who, amount_paise: paise, direction: dr_cr, payer_vpa: vpa}\n"
        "static: {channel: UPI}\nvalues: {direction: {DR: DEBIT, CR: CREDIT}}\n"
    )
    report = run(src, tmp_path / "data", mapping=load_mapping(mapping_file))
    assert (report.rows_in, report.loaded) == (3, 3)
    loaded = processed(tmp_path / "data")
    assert loaded.get_column("txn_id").to_list() == ["J1", "P1", "P2"]
    assert loaded.get_column("amount_paise").to_list() == [777, 12345, 500]
    assert loaded.get_column("direction").to_list() == ["DEBIT", "DEBIT", "CREDIT"]
    assert loaded.row(0, named=True)["ts"].hour == 9  # UTC source, no shift
    vpas = loaded.get_column("payer_vpa").to_list()
    assert vpas[0] == vpas[1] != vpas[2] and all(is_token(v) for v in vpas)


def test_data_docs_are_rendered_without_raw_identifiers(tmp_path):
    bad_vpa = GOOD[0].replace("T1,", "T7,").replace("rahul@okhdfc", "rahul at okhdfc")
    report = run(write_source(tmp_path, GOOD + [bad_vpa]), tmp_path / "data")
    docs = Path(report.data_docs)
    assert docs.name == "index.html" and docs.is_file()
    assert docs.is_relative_to(tmp_path / "data" / "gx")
    site = "".join(p.read_text(errors="ignore") for p in docs.parent.rglob("*.html"))
    assert "transactions_raw" in site and "transactions_processed" in site
    assert report.quarantine_reasons == {"payer_vpa: not a valid VPA format": 1}
    stored = "".join(p.read_text() for p in (tmp_path / "data" / "gx").rglob("*.json"))
    assert "rahul at okhdfc" not in stored and "rahul at okhdfc" not in site
    results = [json.loads(p.read_text()) for p in (tmp_path / "data" / "gx" / "uncommitted" / "validations").rglob("*.json")]
    assert {r["suite_name"] for r in results} == {"transactions_raw", "labels_raw", "transactions_processed"} - {"labels_raw"}


def test_bad_mapping_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "m.yaml"
    for text, expected in [
        ("columns:\n  not_a_field: x\n", "not_a_field"),
        ("timezone: Mars/Olympus\ncolumns: {txn_id: a, ts: b, amount_paise: c, customer_id: d}\n", "Mars/Olympus"),
        ("columns: {txn_id: a, ts: b}\n", "amount_paise"),
        ("colums: {txn_id: a}\n", "colums"),
        ("- just\n- a list\n", "must be a YAML mapping"),
    ]:
        bad.write_text(text)
        with pytest.raises(MappingError, match=expected):
            load_mapping(bad)
    with pytest.raises(MappingError, match="not found"):
        load_mapping(tmp_path / "missing.yaml")


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(IngestError, match="source not found"):
        run(tmp_path / "nowhere", tmp_path / "data")


def test_the_documented_example_bank_export(tmp_path):
    """docs/ingest.md walks through examples/bank_export; this is what it promises."""
    example = Path(__file__).parent.parent / "examples" / "bank_export"
    report = run(example, tmp_path / "data", threshold=0.5, mapping=load_mapping(example / "mapping.yaml"))
    assert report.summary() == (
        "in 6 = loaded 4 + quarantined 1 + duplicates 1; labels in 2 = loaded 1 + quarantined 1 + duplicates 0"
    )
    assert report.quarantine_reasons == {"amount_paise: not between 1 paise and INR 1,000 crore": 1}
    assert report.label_quarantine_reasons == {"txn_id: no such transaction in processed/": 1}
    loaded = processed(tmp_path / "data")
    assert loaded.get_column("channel").to_list() == ["CARD_ECOM", "UPI", "UPI", "ATM"]
    assert loaded.get_column("direction").to_list() == ["DEBIT", "DEBIT", "CREDIT", "DEBIT"]
    assert loaded.get_column("date").to_list() == ["2026-02-01"] * 4  # 23:58 IST is still 1 February


def test_accounting_that_does_not_add_up_fails_loudly():
    from finrisk.ingest import AccountingError, IngestReport

    assert IngestReport(rows_in=5, loaded=3, quarantined=1, duplicates=1).check().loaded == 3
    with pytest.raises(AccountingError, match=r"rows in \(5\) != loaded \(3\) \+ quarantined \(1\) \+ duplicates \(0\)"):
        IngestReport(rows_in=5, loaded=3, quarantined=1, duplicates=0).check()
    with pytest.raises(AccountingError, match="labels in"):
        IngestReport(labels_in=2, labels_loaded=1).check()
