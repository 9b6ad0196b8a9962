"""The scoring service's journal keeps ip and coordinates sealed at rest, and gives them back on replay."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone

import polars as pl
import pytest
from typer.testing import CliRunner

from finrisk.config import reset_settings
from finrisk.encryption import EncryptionKeyError, parse_keyring
from finrisk.io import DataLayout
from finrisk.sealing import SEALED, key_master, key_path
from finrisk.sensitive import plaintext_journals
from service.journal import Journal
from service.scoring import RESULT_SCHEMA, TRANSACTION_FIELDS
from test_encryption import _app, key_file  # noqa: F401

DAY = date(2026, 3, 2)
SECRETS = (b"203.0.113.77", b"18.52043", b"73.85674")


def _rows() -> pl.DataFrame:
    rows = pl.DataFrame({
        "txn_id": ["J1", "J2", "J3"],
        "ts": [datetime(2026, 3, 2, 4, m, tzinfo=timezone.utc) for m in (1, 2, 3)],
        "customer_id": ["C1", "C1", "C2"],
        "amount_paise": [12_300, 45_600, 7_800],
        "ip": ["203.0.113.77", None, "198.51.100.4"],
        "latitude": [18.52043, None, 12.97],
        "longitude": [73.85674, None, 77.59],
        "score": [0.1, 0.7, 0.95], "anomaly_score": [0.2, 0.3, 0.9], "decision": ["allow", "review", "block"],
        "reasons": [[], ["new device"], ["large amount"]], "model_version": [3, 3, 3],
    })
    return rows.select(
        *(pl.col(c).cast(t) if c in rows.columns else pl.lit(None, t).alias(c) for c, t in TRANSACTION_FIELDS.items()),
        *(pl.col(c).cast(t) for c, t in RESULT_SCHEMA.items()),
    )


def _write(data, rows: pl.DataFrame) -> Journal:
    journal = Journal(data, DAY)
    journal.append(rows)
    journal.close()
    return journal


def test_sensitive_fields_are_sealed_and_replayed(tmp_path):
    rows = _rows()
    journal = _write(tmp_path, rows)
    data = journal.path.read_bytes()
    assert not any(secret in data for secret in SECRETS)
    lines = [json.loads(line) for line in data.splitlines()]
    assert [line[SEALED] is not None for line in lines] == [True, False, True]  # nothing to seal: null
    assert all(line["customer_id"] in {"C1", "C2"} for line in lines)  # the rest stays readable for erasure
    assert key_path(journal.path).stat().st_mode & 0o777 == 0o600
    assert Journal(tmp_path, DAY).replay().equals(rows)


def test_a_missing_or_foreign_key_is_a_clear_error(tmp_path, monkeypatch):
    journal = _write(tmp_path, _rows())
    monkeypatch.setenv("FINRISK_ENCRYPTION_KEYS", "other " + "ab" * 32)
    reset_settings()
    with pytest.raises(EncryptionKeyError, match="not in the keyring"):
        Journal(tmp_path, DAY).replay()
    monkeypatch.undo()
    reset_settings()
    key_path(journal.path).unlink()
    with pytest.raises(EncryptionKeyError, match="key file .* is missing"):
        Journal(tmp_path, DAY).replay()
    assert len(journal.path.read_bytes().splitlines()) == 3  # nothing was lost


def test_a_journal_written_in_the_clear_is_sealed_by_reencrypt(tmp_path):
    rows = _rows()
    path = tmp_path / "online" / "journal" / f"date={DAY.isoformat()}.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text(rows.with_columns(pl.col("ts").dt.epoch("us")).write_ndjson())  # the format before sealing
    assert Journal(tmp_path, DAY).replay().equals(rows)
    layout = DataLayout(tmp_path)
    assert plaintext_journals(layout) == [path]
    runner = CliRunner()
    assert "journal(s) still hold" in runner.invoke(_app(), ["encryption", "status", "--data-dir", str(tmp_path)]).output

    done = runner.invoke(_app(), ["encryption", "reencrypt", "--data-dir", str(tmp_path)])
    assert done.exit_code == 0, done.output
    assert "1 journal(s) sealed" in done.output
    assert not plaintext_journals(layout)
    assert not any(secret in path.read_bytes() for secret in SECRETS)
    assert Journal(tmp_path, DAY).replay().equals(rows)


def test_master_key_rotation_rewraps_the_journal_key(tmp_path, key_file):  # noqa: F811
    rows = _rows()
    journal = _write(tmp_path, rows)
    lines_before = journal.path.read_bytes()
    first = next(iter(parse_keyring(key_file.read_text(), "keys")))
    assert key_master(journal.path) == first
    runner = CliRunner()
    assert runner.invoke(_app(), ["encryption", "new-key"]).exit_code == 0
    ring = parse_keyring(key_file.read_text(), "keys")
    new = next(iter(ring))

    done = runner.invoke(_app(), ["encryption", "reencrypt", "--data-dir", str(tmp_path)])
    assert done.exit_code == 0, done.output
    assert key_master(journal.path) == new
    assert journal.path.read_bytes() == lines_before  # only the data key's wrapping changed
    key_file.write_text(f"{new} {ring[new].hex()}\n")  # the old master key is gone
    reset_settings()
    assert Journal(tmp_path, DAY).replay().equals(rows)


@pytest.mark.parametrize("frame_rows", [1, 1000])
def test_lines_written_one_at_a_time_or_as_a_frame_replay_alike(tmp_path, monkeypatch, frame_rows):
    import service.journal as journal_module

    monkeypatch.setattr(journal_module, "FRAME_ROWS", frame_rows)
    rows = _rows()
    columns = rows.with_columns(pl.col("ts").dt.epoch("us").alias("ts_us")).drop("ts").to_dict(as_series=False)
    journal = Journal(tmp_path, DAY)
    journal.append_columns(columns, {name: columns.pop(name) for name in RESULT_SCHEMA})
    journal.close()
    assert not any(secret in journal.path.read_bytes() for secret in SECRETS)
    assert Journal(tmp_path, DAY).replay().equals(rows)
