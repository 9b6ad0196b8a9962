"""Fuzzing ingest parsing with Hypothesis: arbitrary rows in a real CSV, a real ingest (GX on DuckDB,
Parquet out). Nothing crashes and nothing is lost: in = loaded + quarantined + duplicates, every
loaded row is in processed/ and every bad row in quarantine/, and running the file again loads
nothing new."""
from __future__ import annotations

import csv
import shutil
import tempfile
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finrisk.ingest import ingest
from finrisk.io import DataLayout, has_parquet, scan_partitioned
from finrisk.mapping import load_mapping
from finrisk.privacy import is_token
from test_ingest import GOOD, HEADER, KEY

COLUMNS = HEADER.split(",")
# Anything a broken export may hold: separators, quotes, line breaks, non-ASCII, control characters.
HOSTILE_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12,
)
# Values that pass validation (from the hand-written good rows), and values that may not.
VALID = {c: sorted({row[i] for row in csv.reader(GOOD)}) for i, c in enumerate(COLUMNS)}
VALID["txn_ref"] = ["T1", "T2", "T3", "T4", "T5", " T1 "]  # repeats are duplicates, not errors
VALID["txn_time"] = ["2026-01-02 23:59:59", "2026-01-01 10:00:00", "2026-03-31 00:00:00", "2026-02-01 05:30:00"]
SUSPECT = {
    "txn_time": ["2026-13-01 10:00:00", "1999-12-31 23:59:59", "2099-01-01 00:00:00", "2026-02-01", "1.5", ""],
    "customer_id": [""],
    "amount_inr": ["-5.00", "1.005", "1e3", "99999999999999999999", "0", "१००"],
    "channel": ["TELEPORT", ""],
    "direction": ["SIDEWAYS"],
    "counterparty_type": ["ATM", ""],
    "counterparty_id": ["not a vpa", ""],
    "payer_vpa": ["bad vpa"],
    "latitude": ["91", "north", "nan"],
    "longitude": ["-181", "inf"],
}


def _messy(column: str):
    return st.one_of(st.sampled_from(VALID[column] + SUSPECT.get(column, [])), HOSTILE_TEXT)


GOOD_ROWS = [dict(zip(COLUMNS, row)) for row in csv.reader(GOOD)]
# A good row under another id and time (times in any order: partitions are written out of order).
CLEAN_ROW = st.builds(lambda row, ref, ts: {**row, "txn_ref": ref, "txn_time": ts}, st.sampled_from(GOOD_ROWS),
                      st.sampled_from(VALID["txn_ref"]), st.sampled_from(VALID["txn_time"]))
MESSY_ROW = st.fixed_dictionaries({c: st.one_of(st.sampled_from(VALID[c]), _messy(c)) for c in COLUMNS})
ROWS = st.lists(st.one_of(CLEAN_ROW, MESSY_ROW), min_size=1, max_size=12)


def _write(folder: Path, rows: list[dict]) -> Path:
    (folder / "transactions").mkdir(parents=True)
    with open(folder / "transactions" / "txns_fuzz.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, COLUMNS, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return folder


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=ROWS)
def test_any_rows_are_loaded_quarantined_or_counted_as_duplicates(rows):
    work = Path(tempfile.mkdtemp(prefix="finrisk-fuzz-"))
    try:
        source = _write(work / "src", rows)
        layout = DataLayout(work / "data")
        report = ingest([source], load_mapping(), layout, KEY, threshold=1.0)
        assert report.rows_in == len(rows)
        assert report.rows_in == report.loaded + report.quarantined + report.duplicates
        loaded = scan_partitioned(layout.transactions).collect() if has_parquet(layout.transactions) else pl.DataFrame()
        assert loaded.height == report.loaded
        if loaded.height:
            assert loaded.get_column("txn_id").is_unique().all()
            assert all(is_token(v) for v in loaded.get_column("account_id").drop_nulls().to_list())
        bad = layout.root / "quarantine" / "transactions"
        quarantined = pl.read_parquet(bad / "**" / "*.parquet").height if has_parquet(bad) else 0
        assert quarantined == report.quarantined

        again = ingest([source], load_mapping(), layout, KEY, threshold=1.0)
        assert again.rows_in == len(rows) and again.loaded == 0
        assert again.rows_in == again.quarantined + again.duplicates
    finally:
        shutil.rmtree(work, ignore_errors=True)
