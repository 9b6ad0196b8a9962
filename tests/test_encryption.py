"""Encryption at rest: ip and coordinates only in the encrypted side table, readable with the keys only."""
from __future__ import annotations

import pyarrow.parquet.encryption as pe
import polars as pl
import pytest
import typer
from typer.testing import CliRunner

from finrisk import cli_encryption
from finrisk.config import reset_settings
from finrisk.encryption import (
    EncryptionKeyError, LocalKms, ensure_key_file, footer_master_key, is_encrypted, parse_keyring, read_encrypted,
    write_encrypted,
)
from finrisk.io import DataLayout, scan_partitioned, write_parquet_atomic
from finrisk.schema import SENSITIVE_FIELDS, TRANSACTION_SCHEMA
from finrisk.sensitive import (
    plaintext_partitions, read_partition, read_side, side_files, with_sensitive, write_partition,
)
from test_ingest import GOOD, run, write_source

EXPECTED = {  # from GOOD: txn_id -> (ip, latitude, longitude)
    "T1": ("10.0.0.1", 19.07, 72.87), "T2": ("10.0.0.1", 19.07, 72.87), "T3": ("10.0.0.2", 9.9, 76.2),
}


@pytest.fixture()
def key_file(tmp_path, monkeypatch):
    """Keys from a key file (as `finrisk setup` makes them), not the test suite's inline keyring."""
    path = tmp_path / "keys" / "encryption-keys"
    monkeypatch.delenv("FINRISK_ENCRYPTION_KEYS", raising=False)
    monkeypatch.setenv("FINRISK_ENCRYPTION_KEY_FILE", str(path))
    reset_settings()
    assert ensure_key_file()
    yield path
    monkeypatch.undo()
    reset_settings()


def _app() -> typer.Typer:
    app = typer.Typer()
    cli_encryption.register(app)
    app.command("noop", hidden=True)(lambda: None)  # a second command keeps `encryption` a group
    return app


def _side(data) -> dict:
    side = read_side(DataLayout(data))
    return {r["txn_id"]: (r["ip"], r["latitude"], r["longitude"]) for r in side.iter_rows(named=True)}


def test_sensitive_columns_are_stored_only_encrypted(tmp_path):
    data = tmp_path / "data"
    run(write_source(tmp_path, GOOD), data)
    layout = DataLayout(data)

    for part in layout.transactions.rglob("*.parquet"):
        assert not set(SENSITIVE_FIELDS) & set(pl.read_parquet_schema(part))
        assert b"10.0.0.1" not in part.read_bytes()
    files = side_files(layout)
    assert files and all(is_encrypted(p) for p in files)
    assert all(b"10.0.0.1" not in p.read_bytes() for p in files)
    with pytest.raises(Exception, match="(?i)encrypt"):
        pl.read_parquet(files[0])
    assert _side(data) == EXPECTED

    joined = with_sensitive(scan_partitioned(layout.transactions), layout).collect()
    assert {r["txn_id"]: (r["ip"], r["latitude"], r["longitude"]) for r in joined.iter_rows(named=True)} == EXPECTED
    assert joined.get_column("txn_id").to_list() == scan_partitioned(layout.transactions).collect().get_column("txn_id").to_list()

    run(write_source(tmp_path, GOOD), data)  # again: nothing added, nothing lost
    assert _side(data) == EXPECTED


def test_features_read_the_decrypted_coordinates(tmp_path, prefect_harness):
    from tasks.features import build_features

    data = tmp_path / "data"
    run(write_source(tmp_path, GOOD), data)
    build_features(data)  # a real task run
    features = scan_partitioned(DataLayout(data).features).collect().sort("txn_id")
    # T2 follows T1 from the same place: 0 km (null if the coordinates had not been joined back)
    assert features.filter(pl.col("txn_id") == "T2").get_column("distance_from_prev_km").item() == pytest.approx(0.0)


def test_a_wrong_or_missing_key_is_a_clear_error(tmp_path, monkeypatch):
    data = tmp_path / "data"
    run(write_source(tmp_path, GOOD), data)
    monkeypatch.setenv("FINRISK_ENCRYPTION_KEYS", "other " + "11" * 32)
    reset_settings()
    with pytest.raises(EncryptionKeyError, match="not in the keyring"):
        read_side(DataLayout(data))
    monkeypatch.setenv("FINRISK_ENCRYPTION_KEYS", "test-only " + "11" * 32)  # right id, wrong key
    reset_settings()
    with pytest.raises(EncryptionKeyError, match="cannot decrypt"):
        read_side(DataLayout(data))
    monkeypatch.delenv("FINRISK_ENCRYPTION_KEYS")
    monkeypatch.setenv("FINRISK_ENCRYPTION_KEY_FILE", str(tmp_path / "absent"))
    reset_settings()
    with pytest.raises(EncryptionKeyError, match="finrisk setup"):
        read_side(DataLayout(data))
    monkeypatch.undo()
    reset_settings()
    assert _side(data) == EXPECTED  # nothing was harmed


@pytest.mark.parametrize("text, problem", [
    ("k1 abcd", "32 bytes"), ("k1 " + "zz" * 32, "hexadecimal"), ("K 1 " + "00" * 32, "expected"),
    ("k1 " + "00" * 32 + "\nk1 " + "01" * 32, "twice"),
])
def test_a_malformed_keyring_is_refused(text, problem):
    with pytest.raises(EncryptionKeyError, match=problem):
        parse_keyring(text, "keys")


def test_master_key_rotation_reencrypts_every_file(tmp_path, key_file):
    data = tmp_path / "data"
    run(write_source(tmp_path, GOOD), data)
    layout = DataLayout(data)
    first = next(iter(parse_keyring(key_file.read_text(), "keys")))
    assert {footer_master_key(p) for p in side_files(layout)} == {first}
    runner = CliRunner()

    added = runner.invoke(_app(), ["encryption", "new-key"])
    assert added.exit_code == 0, added.output
    ring = parse_keyring(key_file.read_text(), "keys")
    new = next(iter(ring))
    assert new != first and list(ring) == [new, first]
    assert (key_file.stat().st_mode & 0o777) == 0o600

    done = runner.invoke(_app(), ["encryption", "reencrypt", "--data-dir", str(data)])
    assert done.exit_code == 0, done.output
    assert {footer_master_key(p) for p in side_files(layout)} == {new}
    # The old key can go now: everything is readable with the new one alone.
    key_file.write_text(f"{new} {ring[new].hex()}\n")
    reset_settings()
    assert _side(data) == EXPECTED
    shown = runner.invoke(_app(), ["encryption", "status", "--data-dir", str(data)])
    assert shown.exit_code == 0 and new in shown.output and "current" in shown.output


def test_partitions_written_in_the_clear_are_moved_into_the_side_table(tmp_path):
    layout = DataLayout(tmp_path / "data")
    old = pl.DataFrame({
        "txn_id": ["A1", "A2"], "ts": ["2026-01-01T04:00:00Z", "2026-01-01T05:00:00Z"], "customer_id": ["C1", "C1"],
        "amount_paise": [100, 200], "ip": ["10.1.1.1", None], "latitude": [12.9, None], "longitude": [77.6, None],
    }).with_columns(pl.col("ts").str.to_datetime(time_zone="UTC"))
    old = old.select(pl.col(c).cast(t) if c in old.columns else pl.lit(None, t).alias(c) for c, t in TRANSACTION_SCHEMA.items())
    write_parquet_atomic(old, layout.partition(layout.transactions, "2026-01-01"))
    assert plaintext_partitions(layout)

    done = CliRunner().invoke(_app(), ["encryption", "reencrypt", "--data-dir", str(layout.root)])
    assert done.exit_code == 0, done.output
    assert not plaintext_partitions(layout)
    assert _side(layout.root) == {"A1": ("10.1.1.1", 12.9, 77.6), "A2": (None, None, None)}
    assert scan_partitioned(layout.transactions).collect().get_column("txn_id").to_list() == ["A1", "A2"]


class RecordingKms(LocalKms):
    """A stand-in for an external KMS: keeps one master key and records what it was asked."""

    calls: list[tuple[str, str]] = []

    def wrap_key(self, key_bytes, master_key_identifier):
        RecordingKms.calls.append(("wrap", master_key_identifier))
        return super().wrap_key(key_bytes, master_key_identifier)

    def unwrap_key(self, wrapped_key, master_key_identifier):
        RecordingKms.calls.append(("unwrap", master_key_identifier))
        return super().unwrap_key(wrapped_key, master_key_identifier)


def recording_kms(_config: pe.KmsConnectionConfig) -> pe.KmsClient:
    return RecordingKms({"vault-key-1": bytes(range(32))})


def test_another_kms_plugs_in(tmp_path, monkeypatch):
    monkeypatch.setenv("FINRISK_KMS_CLIENT", "test_encryption:recording_kms")
    monkeypatch.setenv("FINRISK_KMS_KEY_ID", "vault-key-1")
    reset_settings()
    RecordingKms.calls.clear()
    path = tmp_path / "x.parquet"
    frame = pl.DataFrame({"txn_id": ["a"], "ip": ["10.9.9.9"]})
    write_encrypted(frame, path, ["ip"])
    assert footer_master_key(path) == "vault-key-1"
    assert read_encrypted(path).equals(frame)
    assert ("wrap", "vault-key-1") in RecordingKms.calls and ("unwrap", "vault-key-1") in RecordingKms.calls
    monkeypatch.setenv("FINRISK_KMS_CLIENT", "no_such_module:kms")
    reset_settings()
    with pytest.raises(EncryptionKeyError, match="module:callable"):
        read_encrypted(path)
    monkeypatch.undo()
    reset_settings()


def test_a_side_file_out_of_step_with_its_partition_is_joined_then_realigned(tmp_path):
    data = tmp_path / "data"
    run(write_source(tmp_path, GOOD), data)
    layout = DataLayout(data)
    day = "2026-01-01"
    rows = read_partition(layout, day)
    # A run merging T9 into the day was killed after writing the side file, before the partition.
    extra = rows.head(1).with_columns(pl.lit("T9").alias("txn_id"), pl.lit("10.9.9.9").alias("ip"))
    write_partition(layout, day, pl.concat([rows, extra]))
    joined = with_sensitive(scan_partitioned(layout.transactions), layout).collect()
    assert {r["txn_id"]: (r["ip"], r["latitude"], r["longitude"]) for r in joined.iter_rows(named=True)} == EXPECTED

    late = GOOD[0].replace("T1,", "T9,").replace("10.0.0.1", "10.9.9.9")
    run(write_source(tmp_path, [*GOOD, late]), data)  # the run again: its write aligns them again
    stored = pl.read_parquet(layout.partition(layout.transactions, day), hive_partitioning=False)
    assert read_side(layout, [day]).get_column("txn_id").equals(stored.get_column("txn_id"))
    assert _side(data) == {**EXPECTED, "T9": ("10.9.9.9", 19.07, 72.87)}
