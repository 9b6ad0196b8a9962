"""Bad input gets a clear message or quarantine, never a raw stack trace or silent loss."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from finrisk.ingest import IngestError
from finrisk.mapping import load_mapping
from finrisk.privacy import PseudonymKeyError
from test_ingest import GOOD, HEADER, processed, quarantined, run, write_source


def _reasons(data) -> dict[str, list[str]]:
    bad = quarantined(data)
    return dict(zip(bad["txn_id"], bad["reasons"].to_list()))


def test_truncated_csv_row_is_quarantined_not_lost(tmp_path):
    src = write_source(tmp_path, GOOD)
    path = src / "transactions" / "txns_2026-01-01.csv"
    text = path.read_text()
    path.write_text(text[: text.rindex(",SUCCESS,")])  # the export stopped half-way through the last row
    report = run(src, tmp_path / "data")
    assert (report.rows_in, report.loaded, report.quarantined) == (3, 2, 1)
    assert _reasons(tmp_path / "data")["T3"] == ["row: cut off where the file ends (truncated file)"]


def test_truncated_inside_a_quoted_field_is_a_clear_error(tmp_path):
    src = write_source(tmp_path, GOOD)
    path = src / "transactions" / "txns_2026-01-01.csv"
    path.write_text(path.read_text() + 'T9,2026-01-01 10:00:00,"C9')
    with pytest.raises(IngestError, match="txns_2026-01-01.csv"):
        run(src, tmp_path / "data")


def test_truncated_parquet_and_json_lines_are_clear_errors(tmp_path):
    folder = tmp_path / "pq"
    folder.mkdir()
    pl.DataFrame({"txn_ref": ["P1"] * 1000, "amount": ["1.00"] * 1000}).write_parquet(folder / "a.parquet")
    data = (folder / "a.parquet").read_bytes()
    (folder / "a.parquet").write_bytes(data[: len(data) // 2])
    mapping = tmp_path / "m.yaml"
    mapping.write_text("columns: {txn_id: txn_ref, ts: at, customer_id: txn_ref, amount_paise: amount}\n")
    with pytest.raises(IngestError, match=r"cannot read .*a\.parquet as parquet"):
        run(folder, tmp_path / "data", mapping=load_mapping(mapping))

    (folder / "a.parquet").unlink()
    (folder / "b.jsonl").write_text(
        '{"txn_ref": "J1", "at": "2026-01-01T10:00:00Z", "amount": "1.00"}\n{"txn_ref": "J2", "at": "2026-01'
    )
    with pytest.raises(IngestError, match=r"b\.jsonl: line 2 is not valid JSON"):
        run(folder, tmp_path / "data", mapping=load_mapping(mapping))


def test_wrong_delimiter_names_the_likely_one(tmp_path):
    src = write_source(tmp_path, [])
    (src / "transactions" / "txns_2026-01-01.csv").write_text(
        "\n".join(line.replace(",", ";") for line in [HEADER, *GOOD]) + "\n"
    )
    with pytest.raises(IngestError, match=r"';'-delimited but the mapping says ','"):
        run(src, tmp_path / "data")


def test_missing_required_column_and_mapped_column_missing_from_file(tmp_path):
    src = write_source(tmp_path, [])
    header = HEADER.replace("amount_inr", "amount")
    (src / "transactions" / "txns_2026-01-01.csv").write_text("\n".join([header, *GOOD]) + "\n")
    with pytest.raises(IngestError, match="mapped column.s. missing from the file: amount_inr"):
        run(src, tmp_path / "data")


def test_bad_encoding_is_explained_and_a_declared_encoding_reads(tmp_path):
    src = write_source(tmp_path, [])
    row = GOOD[0].replace("Rahul Sharma", "Ram\u00e9sh Sharma")
    (src / "transactions" / "txns_2026-01-01.csv").write_bytes(("\n".join([HEADER, row]) + "\n").encode("cp1252"))
    with pytest.raises(IngestError, match=r"not valid UTF-8 at byte \d+; set csv.encoding"):
        run(src, tmp_path / "data")
    mapping = tmp_path / "cp1252.yaml"
    mapping.write_text(load_mapping().model_dump_json().replace('"encoding":"utf8"', '"encoding":"cp1252"'))
    report = run(src, tmp_path / "data", mapping=load_mapping(mapping))
    assert report.loaded == 1


def test_duplicate_ids_are_counted_not_loaded_twice(tmp_path):
    src = write_source(tmp_path, GOOD + [GOOD[0], GOOD[0].replace("249.50", "1.00")])
    report = run(src, tmp_path / "data")
    assert (report.rows_in, report.loaded, report.duplicates, report.duplicates_in_batch) == (5, 3, 2, 2)
    assert processed(tmp_path / "data").filter(pl.col("txn_id") == "T1").get_column("amount_paise").to_list() == [24950]


@pytest.mark.parametrize(
    ("amount", "reason"),
    [
        ("0.00", "amount_paise: not between 1 paise and INR 1,000 crore"),
        ("-10.00", "amount_paise: not between 1 paise and INR 1,000 crore"),
        ("NaN", "amount_paise: cannot be parsed"),
        ("10.005", "amount_paise: cannot be parsed"),  # a third decimal is not a paisa amount
        ("1,000.00", "amount_paise: cannot be parsed"),
        ("99999999999.00", "amount_paise: not between 1 paise and INR 1,000 crore"),
        ("", "amount_paise: missing"),
    ],
)
def test_bad_amounts_are_quarantined(tmp_path, amount, reason):
    bad = GOOD[0].replace("T1,", "T8,").replace(",249.50,", f",{amount}," if "," not in amount else f',"{amount}",')
    report = run(write_source(tmp_path, GOOD + [bad]), tmp_path / "data")
    assert (report.loaded, report.quarantined) == (3, 1)
    assert reason in _reasons(tmp_path / "data")["T8"]


def test_timestamps_without_zone_use_the_mapping_zone_and_future_ones_are_quarantined(tmp_path):
    future = (datetime.now(timezone.utc) + timedelta(days=3)).strftime("%Y-%m-%d %H:%M:%S")
    rows = [GOOD[0], GOOD[1].replace("2026-01-01 23:59:59", future)]
    report = run(write_source(tmp_path, rows), tmp_path / "data")
    assert (report.loaded, report.quarantined) == (1, 1)
    assert _reasons(tmp_path / "data")["T2"] == ["ts: in the future or before 2000"]
    # 10:00 on an IST wall clock (the mapping's zone) is 04:30 UTC.
    assert processed(tmp_path / "data").row(0, named=True)["ts"] == datetime(2026, 1, 1, 4, 30, tzinfo=timezone.utc)


def test_empty_file_is_an_error_and_header_only_file_is_zero_rows(tmp_path):
    src = write_source(tmp_path, [])
    report = run(src, tmp_path / "data")
    assert (report.rows_in, report.loaded) == (0, 0)
    (src / "transactions" / "txns_2026-01-01.csv").write_bytes(b"")
    with pytest.raises(IngestError, match="empty .0 bytes."):
        run(src, tmp_path / "data")


def test_weak_or_placeholder_key_is_refused(tmp_path):
    src = write_source(tmp_path, GOOD)
    with pytest.raises(PseudonymKeyError, match="at least 16"):
        run(src, tmp_path / "data", key=b"short")
    with pytest.raises(PseudonymKeyError, match="placeholder"):
        run(src, tmp_path / "data", key=b"change-me-64-hex-chars")
    assert not (tmp_path / "data" / "processed").exists()


def test_a_second_ingest_on_the_same_data_dir_is_refused_while_one_runs(tmp_path):
    from finrisk.ingest import open_run
    from finrisk.io import DataLayout

    with open_run(DataLayout(tmp_path / "data")):
        with pytest.raises(IngestError, match="another ingest is running"):
            run(write_source(tmp_path, GOOD), tmp_path / "data")


def test_duplicates_across_groups_of_files_are_found(tmp_path, monkeypatch):
    import finrisk.ingest

    monkeypatch.setattr(finrisk.ingest, "CHUNK_ROWS", 2)  # every file its own group
    src = write_source(tmp_path, GOOD[:2])
    write_source(tmp_path, [GOOD[1], GOOD[2], GOOD[2]], name="txns_2026-01-02.csv")
    report = run(src, tmp_path / "data")
    assert (report.rows_in, report.loaded, report.duplicates, report.duplicates_in_batch) == (5, 3, 2, 2)
    again = run(src, tmp_path / "data")
    assert (again.loaded, again.duplicates, again.duplicates_in_batch) == (0, 5, 2)
    assert processed(tmp_path / "data").get_column("txn_id").to_list() == ["T1", "T2", "T3"]
