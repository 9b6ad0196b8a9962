"""Pseudonymisation key rotation on real stores: ingest -> features -> `finrisk keys rotate` through a
real Prefect flow run, Neo4j re-keyed, every token checked against an independent HMAC; a rotation
killed (SIGKILL) half-way resumes to the same end; the key-chain fingerprint refuses a wrong key."""
from __future__ import annotations

import csv
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import pytest
import typer
from typer.testing import CliRunner

from finrisk import cli_keys
from finrisk.audit import read_events, verify
from finrisk.config import PROJECT_ROOT, Settings, read_key_file, reset_settings
from finrisk.erasure import REGISTER_SCHEMA, register_path
from finrisk.ingest import ingest
from finrisk.io import DataLayout, scan_partitioned, write_parquet_atomic
from finrisk.mapping import load_mapping
from finrisk.privacy import (
    PseudonymKeyError, chain_fingerprint, check_key, pseudonymise_values, token_of,
)
from finrisk.rotation_chain import ChainStore, KeyChainMismatch, fingerprint_path, pending_rotation_path
from finrisk.setup_env import set_env_value
from finrisk.subjects import subject_ref, subject_refs
from finrisk.synthetic import generate

KEY1 = "rotation-test-key-0123456789abcdef"
DB = "neo4j"
ID_PREFIX = "ROT-"  # customer ids no other test's dataset uses
PSEUDONYM = re.compile(r"\b(?:tk|subj)_[0-9a-f]{32}\b")
SENSITIVE = ("processed", "sensitive")  # encrypted side table: no pseudonyms, unreadable without its keys


def _app() -> typer.Typer:
    app = typer.Typer()
    cli_keys.register(app)

    @app.command()
    def other() -> None:  # a second command keeps `keys` a group, as in the real CLI
        pass

    return app


def _invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(_app(), list(args), input=input, env={"COLUMNS": "200"})


# ---- independent reference: the wrap computed here with hmac, not with finrisk.privacy ----------

def _wrap(value: str, new_key: bytes) -> str:
    prefix, digits = value.split("_", 1)
    return f"{prefix}_" + hmac.new(new_key, f"tk_{digits}".encode(), hashlib.sha256).hexdigest()[:32]


def _wrapped_frame(frame: pl.DataFrame, new_key: bytes) -> pl.DataFrame:
    """The frame with every pseudonym in a string column wrapped under new_key."""
    columns = [c for c, t in frame.schema.items() if t == pl.String]
    old = sorted({v for c in columns for v in frame.get_column(c).drop_nulls().unique().to_list()
                  if PSEUDONYM.fullmatch(v)})
    if not old:
        return frame
    new = [_wrap(v, new_key) for v in old]
    return frame.with_columns(pl.col(c).replace(old, new) for c in columns)


def _parquet_tables(root: Path) -> dict[str, pl.DataFrame]:
    return {
        str(p.relative_to(root)): pl.read_parquet(p, hive_partitioning=False)
        for p in sorted(root.rglob("*.parquet"))
        if p.relative_to(root).parts[:2] != SENSITIVE and p.relative_to(root).parts[0] not in ("raw", "staging")
    }


def _pseudonyms_in_files(root: Path) -> dict[str, set[str]]:
    """file -> the pseudonyms it holds: Parquet as rows rendered to text (nested values too), other files by bytes."""
    found = {}
    for path in (p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root)
        if relative.parts[:2] == SENSITIVE or relative.parts[0] == "raw":
            continue
        if path.suffix == ".parquet":
            frame = pl.read_parquet(path, hive_partitioning=False)
            text = "\n".join(str(row) for row in frame.rows())
        else:
            text = path.read_bytes().decode("latin-1")
        values = set(PSEUDONYM.findall(text))
        if values:
            found[str(relative)] = values
    return found


def _graph_keys(driver) -> set[str]:
    records, _, _ = driver.execute_query(
        "MATCH (n) WHERE any(k IN keys(n) WHERE toString(n[k]) STARTS WITH 'tk_') "
        "RETURN [k IN keys(n) WHERE toString(n[k]) STARTS WITH 'tk_' | n[k]] AS keys", database_=DB)
    return {k for r in records for k in r["keys"]}


# ---- the dataset: raw exports, then ingest and features under a one-key chain --------------------

def _own_id_space_and_bad_rows(raw: Path) -> None:
    """Customer ids no other test's dataset uses, and a file of unparseable rows so quarantine holds tokens."""
    paths = [raw / "customers.csv", *sorted((raw / "transactions").glob("*.csv"))]
    for path in paths:
        frame = pl.read_csv(path, infer_schema=False)
        frame.with_columns(pl.col("customer_id").str.replace("^C", ID_PREFIX)).write_csv(path)
    with open(paths[1], newline="") as handle:
        rows = list(csv.DictReader(handle))[:6]
    with open(raw / "transactions" / "txns_late.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows({**row, "txn_ref": f"TBAD{i}", "amount_inr": "not-a-number"} for i, row in enumerate(rows))


def _write_register(data: Path, customer: str, key: bytes) -> None:
    write_parquet_atomic(pl.DataFrame({"subject_ref": [subject_ref(customer, key)],
                                       "erased_at": [datetime(2026, 2, 1, tzinfo=timezone.utc)],
                                       "certificate_id": ["c1"]}, schema=REGISTER_SCHEMA),
                         register_path(DataLayout(data)))


def _write_service_journal(data: Path) -> None:
    """A day of the scoring service's journal (P2P payees as tokens), written by the service's own code."""
    from service.journal import Journal
    from service.scoring import RESULT_SCHEMA, TRANSACTION_FIELDS

    tx = scan_partitioned(DataLayout(data).transactions).collect()
    day = tx.get_column("date").max()
    tx = tx.with_columns(pl.lit(None, dtype).alias(c) for c, dtype in TRANSACTION_FIELDS.items() if c not in tx.columns)
    rows = tx.filter(pl.col("date") == day).select(list(TRANSACTION_FIELDS)).with_columns(
        pl.lit(0.1).alias("score"), pl.lit(0.2).alias("anomaly_score"), pl.lit("allow").alias("decision"),
        pl.lit(["x"]).alias("reasons"), pl.lit(1, pl.Int64).alias("model_version"),
    ).select(list(TRANSACTION_FIELDS) + list(RESULT_SCHEMA))
    journal = Journal(data, datetime.fromisoformat(day).date())
    journal.append(rows)
    journal.close()


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, prefect_harness):
    """Raw exports and a dataset built from them under the one-key chain KEY1: processed and quarantined
    transactions, an erased customer on the register, features, twin, peer groups, a scoring journal."""
    from flows.features import features_flow

    root = tmp_path_factory.mktemp("rotation")
    raw = root / "raw"
    generate(raw, customers=90, days=21, seed=7)
    _own_id_space_and_bad_rows(raw)
    data = root / "data"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FINRISK_PSEUDONYM_KEY", KEY1)
        env.delenv("FINRISK_PSEUDONYM_KEY_FILE", raising=False)
        reset_settings()
        try:
            ingest([raw], load_mapping(None), DataLayout(data), KEY1.encode(), 0.5)
            customers = sorted(scan_partitioned(DataLayout(data).transactions).select("customer_id").unique()
                               .collect().get_column("customer_id").to_list())
            _write_register(data, customers[0], KEY1.encode())
            features_flow(data)
            _write_service_journal(data)
        finally:
            reset_settings()
    assert customers[0] not in set(scan_partitioned(DataLayout(data).features).select("customer_id").unique()
                                   .collect().get_column("customer_id").to_list())
    return root


@pytest.fixture()
def key_file(tmp_path, monkeypatch):
    """The chain in a key file (FINRISK_PSEUDONYM_KEY unset), holding KEY1."""
    path = tmp_path / "keys" / "pseudonym.keys"
    path.parent.mkdir()
    path.write_text(f"# finrisk pseudonymisation keys, oldest first\n{KEY1}\n")
    path.chmod(0o600)
    monkeypatch.delenv("FINRISK_PSEUDONYM_KEY", raising=False)
    monkeypatch.setenv("FINRISK_PSEUDONYM_KEY_FILE", str(path))
    reset_settings()
    yield path
    monkeypatch.undo()
    reset_settings()


@pytest.fixture()
def own_audit_log(tmp_path, monkeypatch):
    monkeypatch.setenv("FINRISK_AUDIT_LOG", str(tmp_path / "audit" / "audit.log"))
    reset_settings()
    return tmp_path / "audit" / "audit.log"


def _copy(baseline: Path, to: Path) -> Path:
    shutil.copytree(baseline / "data", to)
    return to


def _in_order(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows in a fixed order (a table sorted by a token column comes out in another order after rotation)."""
    flat = [c for c, t in frame.schema.items() if not t.is_nested()]
    return frame.sort(flat, nulls_last=True) if flat else frame


def _assert_rotated(data: Path, before: dict[str, pl.DataFrame], new_key: bytes) -> None:
    """Every Parquet table equals the one before with each pseudonym wrapped once under new_key."""
    after = _parquet_tables(data)
    assert sorted(after) == sorted(before)
    for name, frame in before.items():
        assert after[name].equals(_wrapped_frame(frame, new_key)), name


# ---- the end-to-end rotation -----------------------------------------------------------------------

def test_rotation_rewrites_every_store_and_fresh_data_joins_it(baseline, tmp_path, key_file, own_audit_log,
                                                                 prefect_harness, neo4j_driver):
    from flows.features import features_flow
    from graph_loaders.incremental import upsert_days
    from test_graph_neo4j import expected_snapshot, graph_snapshot

    data = _copy(baseline, tmp_path / "data")
    layout = DataLayout(data)
    upsert_days(neo4j_driver, DB, data)
    before = _parquet_tables(data)
    old_in_files = _pseudonyms_in_files(data)
    old = set().union(*old_in_files.values()) | _graph_keys(neo4j_driver)
    # Tokens really are in every kind of store before: processed, quarantine, features, twins, the
    # erasure register, the scoring journal, and the graph.
    for where in ("processed/transactions", "quarantine/transactions", "features/transactions", "processed/twins",
                  "erasure/register.parquet", "online/journal"):
        assert any(name.startswith(where) for name in old_in_files), where
    assert _graph_keys(neo4j_driver)
    journal_before = next(data.glob("online/journal/*.jsonl")).read_bytes()

    declined = _invoke("keys", "rotate", "--data-dir", str(data), input="n\n")
    assert declined.exit_code == 1 and "nothing rotated" in declined.output
    result = _invoke("keys", "rotate", "--data-dir", str(data), "--yes")
    assert result.exit_code == 0, result.output
    assert "no old token left" in result.output

    chain = read_key_file(key_file)
    keys = chain.split(",")
    assert keys[0] == KEY1 and len(keys) == 2 and len(keys[1]) == 64
    assert key_file.read_text().startswith("# finrisk pseudonymisation keys")  # the file's notes are kept
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    new_key = keys[1].encode()

    status = _invoke("keys", "status", "--data-dir", str(data))
    assert status.exit_code == 0 and status.output.count(chain_fingerprint(chain.encode())) == 2, status.output

    # Every table and the journal hold exactly the old pseudonyms wrapped once under the new key.
    _assert_rotated(data, before, new_key)
    journal_after = next(data.glob("online/journal/*.jsonl")).read_bytes()
    assert journal_after == PSEUDONYM.sub(lambda m: _wrap(m.group(), new_key), journal_before.decode()).encode()
    # No old pseudonym anywhere: files, Neo4j.
    left = {name: values & old for name, values in _pseudonyms_in_files(data).items() if values & old}
    assert left == {}
    assert not _graph_keys(neo4j_driver) & old
    # The graph equals a load of the rotated data.
    assert graph_snapshot(neo4j_driver) == expected_snapshot(data)

    # A fresh ingest of the same raw exports under the new chain gives the same tokens.
    fresh = tmp_path / "fresh"
    ingest([baseline / "raw"], load_mapping(None), DataLayout(fresh), chain.encode(), 0.5)
    for table in ("processed/transactions", "quarantine/transactions"):
        ours = pl.read_parquet(data / table / "**" / "*.parquet", hive_partitioning=False).sort("txn_id")
        theirs = pl.read_parquet(fresh / table / "**" / "*.parquet", hive_partitioning=False).sort("txn_id")
        assert ours.drop("run_id", "quarantined_at", strict=False).equals(
            theirs.drop("run_id", "quarantined_at", strict=False)), table
    # The erased customer's reference is the new chain's: features still skip them.
    erased = before["erasure/register.parquet"]
    assert pl.read_parquet(register_path(layout)).get_column("subject_ref").to_list() == [
        _wrap(erased.get_column("subject_ref")[0], new_key)]

    # Joins still work: features, twin and peer groups computed again from the rotated data equal
    # the rewritten ones (and so the ones before, modulo the token values).
    derived = {n: f for n, f in _parquet_tables(data).items() if n.startswith(("features/transactions", "processed/twins",
                                                                                "processed/peer_groups"))}
    for folder in ("features/transactions", "processed/twins", "processed/peer_groups"):
        shutil.rmtree(data / folder)
    features_flow(data)
    again = _parquet_tables(data)
    for name, frame in derived.items():
        assert _in_order(again[name]).equals(_in_order(frame)), name

    # The data records the new chain's fingerprint; the audit log the rotation; no journal is left.
    assert json.loads(fingerprint_path(layout).read_text())["fingerprint"] == chain_fingerprint(chain.encode())
    assert not (data / "rotation").exists()
    events = [e for e in read_events(own_audit_log) if e["action"] == "key_rotation"]
    assert len(events) == 1 and events[0]["details"]["fingerprint_after"] == chain_fingerprint(chain.encode())
    assert KEY1 not in own_audit_log.read_text() and keys[1] not in own_audit_log.read_text()
    assert verify(own_audit_log).ok

    # A second dataset under the same key is now behind the chain: ingest points at the rotation,
    # which wraps it under the key it lacks, draws none, and leaves it equal to the first.
    from finrisk.rotation import rotate_keys

    second = _copy(baseline, tmp_path / "second")
    with pytest.raises(KeyChainMismatch, match="older key chain .*finrisk keys rotate"):
        ingest([baseline / "raw"], load_mapping(None), DataLayout(second), chain.encode(), 0.5)
    caught_up = rotate_keys(second, chain.encode(), ChainStore("key file", key_file))
    assert not caught_up.new_key and caught_up.keys == 2 and read_key_file(key_file) == chain
    _assert_rotated(second, before, new_key)

    # The old key alone no longer fits the data: ingest and rotation refuse, in one line.
    with pytest.raises(KeyChainMismatch, match="not the one the data"):
        ingest([baseline / "raw"], load_mapping(None), layout, KEY1.encode(), 0.5)
    key_file.write_text(KEY1 + "\n")
    reset_settings()
    refused = _invoke("keys", "rotate", "--data-dir", str(data), "--yes", "--no-graph")
    assert refused.exit_code == 1 and "not the one the data" in refused.output and "Traceback" not in refused.output
    assert pl.read_parquet(register_path(layout)).get_column("subject_ref")[0] == subject_ref(
        erased_customer(baseline), chain.encode())


def erased_customer(baseline: Path) -> str:
    return sorted(scan_partitioned(DataLayout(baseline / "data").transactions).select("customer_id").unique()
                  .collect().get_column("customer_id").to_list())[0]


# ---- a rotation killed half-way ----------------------------------------------------------------------

ROTATE = (
    "import sys; from pathlib import Path; from finrisk.rotation import rotate_keys; "
    "from finrisk.rotation_chain import ChainStore; "
    "rotate_keys(Path(sys.argv[1]), sys.argv[2].encode(), ChainStore('key file', Path(sys.argv[3])))"
)


def _kill_while_rewriting(data: Path, key_file: Path) -> int:
    """Start a rotation in a child process and SIGKILL it once it has finished a few files."""
    done = data / "rotation" / "done.log"
    child = subprocess.Popen([sys.executable, "-c", ROTATE, str(data), KEY1, str(key_file)], cwd=PROJECT_ROOT,
                             env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and child.poll() is None:
            if done.exists() and done.read_text().count("\n") >= 3:
                child.send_signal(signal.SIGKILL)
                break
            time.sleep(0.001)
    finally:
        child.kill()
        child.wait()
    return child.returncode


def test_a_killed_rotation_resumes_to_the_same_end(baseline, tmp_path, key_file, own_audit_log):
    from finrisk.rotation import rotate_keys

    data = _copy(baseline, tmp_path / "data")
    before = _parquet_tables(data)
    assert _kill_while_rewriting(data, key_file) == -signal.SIGKILL
    journal = json.loads(pending_rotation_path(DataLayout(data)).read_text())
    assert oct(pending_rotation_path(DataLayout(data)).stat().st_mode & 0o777) == "0o600"  # it holds the new key
    assert read_key_file(key_file) == KEY1  # killed before the chain was stored
    lines = (data / "rotation" / "done.log").read_text().splitlines()
    assert 3 <= len(lines) < len(journal["files"])  # killed half-way through the files

    # Nothing else may write meanwhile: ingest refuses, in one line.
    with pytest.raises(KeyChainMismatch, match="interrupted"):
        ingest([baseline / "raw"], load_mapping(None), DataLayout(data), KEY1.encode(), 0.5)
    # The worst moment: a file rewritten, the kill before its line reached done.log.
    (data / "rotation" / "done.log").write_text("".join(line + "\n" for line in lines[:-1]))

    report = rotate_keys(data, KEY1.encode(), ChainStore("key file", key_file), audit_log=own_audit_log)
    assert report.resumed and report.keys == 2
    chain = read_key_file(key_file)
    new_key = chain.split(",")[1].encode()
    assert new_key.decode() == journal["wrap_keys"]  # the same key the killed run had drawn
    _assert_rotated(data, before, new_key)  # every pseudonym wrapped exactly once
    assert not (data / "rotation").exists()
    fresh = tmp_path / "fresh"
    ingest([baseline / "raw"], load_mapping(None), DataLayout(fresh), chain.encode(), 0.5)
    ours = scan_partitioned(DataLayout(data).transactions).collect().sort("txn_id")
    assert ours.equals(scan_partitioned(DataLayout(fresh).transactions).collect().sort("txn_id"))


# ---- the chain itself, the guard and the command's errors --------------------------------------------

def test_a_chain_wraps_tokens_and_one_key_gives_todays_tokens():
    k1, k2 = b"first-key-0123456789abcdef", b"second-key-0123456789abcdef" * 3  # longer than a block
    values = pl.Series("v", ["rahul@okhdfc", None, "9876543210"])
    one = pseudonymise_values(values, k1).to_list()
    assert one[1] is None
    assert one[0] == "tk_" + hmac.new(k1, b"rahul@okhdfc", hashlib.sha256).hexdigest()[:32]
    chained = pseudonymise_values(values, k1 + b"," + k2).to_list()
    assert chained[0] == _wrap(one[0], k2) == token_of("rahul@okhdfc", k1 + b"," + k2)
    assert chained[2] == _wrap(one[2], k2) and chained[1] is None
    # Subject references follow the chain the same way, one at a time and as a column.
    ref = subject_ref("C0000042", k1)
    assert subject_ref("C0000042", k1 + b"," + k2) == _wrap(ref, k2)
    assert subject_refs(pl.Series(["C0000042"]), k1 + b"," + k2).to_list() == [subject_ref("C0000042", k1 + b"," + k2)]
    # The fingerprint names the chain without holding any key.
    assert chain_fingerprint(k1) != chain_fingerprint(k1 + b"," + k2) == chain_fingerprint(k1 + b"," + k2)
    assert k1.decode() not in chain_fingerprint(k1) and len(chain_fingerprint(k1)) == 36


@pytest.mark.parametrize("chain, message", [
    (b"first-key-0123456789abcdef,", "key 2 of the FINRISK_PSEUDONYM_KEY chain is 0 bytes"),
    (b"first-key-0123456789abcdef,short", "key 2 of the FINRISK_PSEUDONYM_KEY chain is 5 bytes"),
    (b"first-key-0123456789abcdef,first-key-0123456789abcdef", "the same key twice"),
    (b"change-me,first-key-0123456789abcdef", "placeholder"),
])
def test_a_bad_chain_is_refused(chain, message):
    with pytest.raises(PseudonymKeyError, match=message):
        check_key(chain)


def test_key_file_and_env_file_hold_the_chain(tmp_path, monkeypatch):
    monkeypatch.delenv("FINRISK_PSEUDONYM_KEY", raising=False)
    keys = tmp_path / "keys"
    keys.write_text("# notes\n\nfirst-key-0123456789abcdef\nsecond-key-0123456789abcdef\n")
    settings = Settings(pseudonym_key_file=keys, pseudonym_key="ignored-0123456789abcdef", _env_file=None)
    assert settings.require_pseudonym_key() == b"first-key-0123456789abcdef,second-key-0123456789abcdef"
    missing = Settings(pseudonym_key_file=tmp_path / "nope", _env_file=None)
    with pytest.raises(Exception, match="FINRISK_PSEUDONYM_KEY_FILE .*nope"):
        missing.require_pseudonym_key()
    assert missing.pseudonym_key is None  # readers that bypass require_ see no key, not a wrong one

    env = tmp_path / ".env"
    env.write_text("FINRISK_NEO4J_PASSWORD=pw\nFINRISK_PSEUDONYM_KEY=first-key-0123456789abcdef\nFINRISK_API_KEYS=a\n")
    store = ChainStore("env file", env)
    store.save(b"first-key-0123456789abcdef,second-key-0123456789abcdef")
    assert env.read_text().splitlines() == [
        "FINRISK_NEO4J_PASSWORD=pw", "FINRISK_PSEUDONYM_KEY=first-key-0123456789abcdef,second-key-0123456789abcdef",
        "FINRISK_API_KEYS=a"]
    assert oct(env.stat().st_mode & 0o777) == "0o600"
    assert Settings(_env_file=env).require_pseudonym_key() == store.read()
    set_env_value(env, "FINRISK_OTHER", "x")
    assert env.read_text().splitlines()[-1] == "FINRISK_OTHER=x"


def test_the_guard_binds_a_dataset_to_its_chain_and_refuses_another(tmp_path):
    small_raw = tmp_path / "raw"
    generate(small_raw, customers=20, days=3, seed=5)
    data = tmp_path / "data"
    ingest([small_raw], load_mapping(None), DataLayout(data), KEY1.encode(), 1.0)
    recorded = json.loads(fingerprint_path(DataLayout(data)).read_text())
    assert recorded["fingerprint"] == chain_fingerprint(KEY1.encode()) and recorded["keys"] == 1
    assert KEY1 not in fingerprint_path(DataLayout(data)).read_text()
    with pytest.raises(KeyChainMismatch, match=r"\(1 key\(s\), fingerprint kfp_[0-9a-f]{32}\) is not the one"):
        ingest([small_raw], load_mapping(None), DataLayout(data), b"another-key-0123456789abcdef", 1.0)
    # The same key again is fine (a re-run: everything is a duplicate).
    again = ingest([small_raw], load_mapping(None), DataLayout(data), KEY1.encode(), 1.0)
    assert again.loaded == 0 and again.duplicates == again.rows_in


def test_rotate_command_errors_are_one_clear_line(tmp_path, monkeypatch, key_file):
    from finrisk.rotation import RotationError, rotate_keys

    missing = _invoke("keys", "rotate", "--data-dir", str(tmp_path / "nope"), "--yes", "--no-graph")
    assert missing.exit_code == 1 and "data directory not found" in missing.output
    (tmp_path / "erasure").mkdir()
    (tmp_path / "erasure" / ".pending-subj_x.json").write_text("{}")
    with pytest.raises(RotationError, match="erasure is half done"):
        rotate_keys(tmp_path, KEY1.encode(), ChainStore("key file", key_file))
    assert read_key_file(key_file) == KEY1 and not (tmp_path / "rotation").exists()

    monkeypatch.delenv("FINRISK_PSEUDONYM_KEY_FILE")
    monkeypatch.setenv("FINRISK_PSEUDONYM_KEY", KEY1)
    reset_settings()
    from_env = _invoke("keys", "rotate", "--data-dir", str(tmp_path), "--yes", "--no-graph")
    assert from_env.exit_code == 1 and "comes from the process environment" in from_env.output
    monkeypatch.setenv("FINRISK_PSEUDONYM_KEY", "short")
    reset_settings()
    weak = _invoke("keys", "rotate", "--data-dir", str(tmp_path), "--yes", "--no-graph")
    assert weak.exit_code == 1 and "FINRISK_PSEUDONYM_KEY is 5 bytes" in weak.output and "Traceback" not in weak.output
    status = _invoke("keys", "status", "--data-dir", str(tmp_path))
    assert status.exit_code == 1 and "5 bytes" in status.output
