"""Ingest on real files: mapping, exact amounts, pseudonymisation, quarantine, idempotence."""
from pathlib import Path

import polars as pl
import pytest

from finrisk.ingest import IngestError, ingest_labels, ingest_transactions, source_files
from finrisk.io import DataLayout, scan_partitioned
from finrisk.mapping import MappingError, load_mapping

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
KEY = b"unit-test-key"


def _source(tmp_path: Path, rows: list[str], name="txns_2026-01-01.csv") -> Path:
    src = tmp_path / "src"
    (src / "transactions").mkdir(parents=True, exist_ok=True)
    (src / "transactions" / name).write_text("\n".join([HEADER, *rows]) + "\n")
    return src


def _run(src: Path, data: Path, threshold=0.6):
    mapping = load_mapping()
    return ingest_transactions(source_files(src, mapping.transactions), mapping, DataLayout(data), KEY, threshold)


def test_good_rows_load_bad_rows_quarantine_with_reasons(tmp_path):
    src = _source(tmp_path, GOOD + BAD + [GOOD[0]])
    report = _run(src, tmp_path / "data")
    assert (report.rows_in, report.loaded, report.quarantined, report.duplicates) == (7, 3, 3, 1)
    layout = DataLayout(tmp_path / "data")
    loaded = scan_partitioned(layout.transactions).collect().sort("txn_id")
    assert loaded.get_column("amount_paise").to_list() == [24950, 100010, 1]
    # IST midnight splits business dates; stored in UTC.
    assert loaded.get_column("date").to_list() == ["2026-01-01", "2026-01-01", "2026-01-02"]
    assert str(loaded["ts"].dtype) == "Datetime(time_unit='us', time_zone='UTC')"
    # No raw identifier reaches processed/.
    text = loaded.write_csv()
    for pii in ("Rahul", "9876543210", "rahul@okhdfc", "12345678901", "priya@ybl"):
        assert pii not in text
    quarantined = pl.read_parquet(layout.quarantine / "**" / "*.parquet").sort("txn_id")
    reasons = dict(zip(quarantined["txn_id"], quarantined["reasons"].to_list()))
    assert reasons["T4"] == ["channel: be_in_set"]
    assert reasons["T5"] == ["amount_paise: be_between"]
    assert "ts: not_be_null" in reasons["T6"]


def test_rerun_adds_nothing(tmp_path):
    src = _source(tmp_path, GOOD + BAD)
    first = _run(src, tmp_path / "data")
    second = _run(src, tmp_path / "data")
    assert second.loaded == 0 and second.duplicates == first.loaded and second.quarantined == first.quarantined
    assert scan_partitioned(DataLayout(tmp_path / "data").transactions).collect().height == first.loaded


def test_too_many_bad_rows_fails_the_run_and_loads_nothing(tmp_path):
    src = _source(tmp_path, GOOD[:1] + BAD)
    with pytest.raises(IngestError, match="above the threshold"):
        _run(src, tmp_path / "data", threshold=0.5)
    assert not (DataLayout(tmp_path / "data").transactions).exists()


def test_missing_mapped_column_is_a_clear_error(tmp_path):
    src = _source(tmp_path, ["x"])
    (src / "transactions" / "txns_2026-01-01.csv").write_text("txn_ref,amount\nT1,10\n")
    with pytest.raises(IngestError, match="mapped column"):
        _run(src, tmp_path / "data")


def test_bad_mapping_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "m.yaml"
    bad.write_text("columns:\n  not_a_field: x\n")
    with pytest.raises(MappingError, match="not_a_field"):
        load_mapping(bad)
    bad.write_text("timezone: Mars/Olympus\n")
    with pytest.raises(MappingError):
        load_mapping(bad)


def test_labels_merge_without_duplicates(tmp_path):
    src = _source(tmp_path, GOOD)
    (src / "labels.csv").write_text(
        "txn_ref,label,fraud_type,reported_at\nT2,1,account_takeover,2026-01-05T10:00:00+05:30\n"
    )
    layout = DataLayout(tmp_path / "data")
    assert ingest_labels(src, load_mapping(), layout) == (1, 1)
    assert ingest_labels(src, load_mapping(), layout) == (1, 1)
    labels = pl.read_parquet(layout.labels)
    assert labels.row(0, named=True)["reported_at"].hour == 4  # 10:00 IST = 04:30 UTC
