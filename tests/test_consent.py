"""Consent per purpose: recorded with `finrisk consent`, honoured by features, the twin, training
(and so scoring), and the erasure register honoured the same way; real Parquet, real flow runs."""
from __future__ import annotations

from datetime import date, datetime, timezone

import polars as pl
import pytest
import typer
from typer.testing import CliRunner

from bench.feature_data import write_processed
from features.twin import read_twin
from finrisk import cli_privacy
from finrisk.audit import read_events
from finrisk.config import get_settings
from finrisk.consent import ConsentError, read_consent, record_consent
from finrisk.erasure import REGISTER_SCHEMA, register_path
from finrisk.io import DataLayout, scan_partitioned, write_parquet_atomic
from finrisk.subjects import subject_ref
from finrisk.synthetic import generate


def _app() -> typer.Typer:
    app = typer.Typer()
    cli_privacy.register(app)
    return app


def _invoke(*args: str):
    return CliRunner().invoke(_app(), list(args), env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("consent")
    generate(root / "raw", customers=40, days=8, seed=3, start=date(2026, 1, 1))
    return write_processed(root / "raw", root / "data")


def _customers(path) -> set[str]:
    return set(scan_partitioned(path).select("customer_id").unique().collect().get_column("customer_id").to_list())


def test_withdrawal_stops_features_twin_and_training_and_a_grant_resumes(data_dir, prefect_harness):
    from flows.features import features_flow
    from tasks.features import read_features

    layout = DataLayout(data_dir)
    everyone = _customers(layout.transactions)
    first, second = sorted(everyone)[:2]

    result = _invoke("consent", "withdraw", first, "--purpose", "fraud_detection", "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    result = _invoke("consent", "withdraw", second, "--purpose", "model_training", "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    features_flow(data_dir)
    # No fraud-detection processing of the first: no features (hence no scores), no twin profile.
    assert _customers(layout.features) == everyone - {first}
    assert first not in set(read_twin(data_dir).profiles.get_column("customer_id").to_list())
    # The second still gets features (scoring) but their history trains no model.
    training = set(read_features(data_dir).get_column("customer_id").unique().to_list())
    assert training == everyone - {first, second}
    # Processed data itself is untouched: withdrawal stops processing, retention decides deletion.
    assert _customers(layout.transactions) == everyone

    assert _invoke("consent", "grant", first, "--purpose", "fraud_detection", "--data-dir", str(data_dir)).exit_code == 0
    features_flow(data_dir, twin=False)
    assert _customers(layout.features) == everyone
    shown = _invoke("consent", "show", first, "--data-dir", str(data_dir))
    assert shown.exit_code == 0 and "fraud_detection" in shown.output
    # The audit log names the customer by keyed reference only.
    key = get_settings().require_pseudonym_key()
    consent_events = [e for e in read_events(get_settings().audit_log) if e["action"].startswith("consent_")]
    assert subject_ref(first, key) in {e["target"] for e in consent_events}
    assert all(first not in str(e) and second not in str(e) for e in consent_events)


def test_consent_required_and_erasure_register_are_honoured(data_dir, tmp_path, monkeypatch):
    from finrisk.consent import honour_consent

    layout = DataLayout(data_dir)
    tx = scan_partitioned(layout.transactions)
    everyone = sorted(_customers(layout.transactions))
    granted = everyone[-1]
    record_consent(layout, granted, "model_training", "grant", datetime(2026, 1, 1, tzinfo=timezone.utc), "test")
    only = honour_consent(tx, layout, "model_training", required=True, key=b"k" * 32).collect()
    assert set(only.get_column("customer_id").unique().to_list()) == {granted}

    # A customer on the erasure register is never processed again, even if their rows come back.
    key = get_settings().require_pseudonym_key()
    erased = everyone[-2]
    write_parquet_atomic(pl.DataFrame({"subject_ref": [subject_ref(erased, key)],
                                       "erased_at": [datetime.now(timezone.utc)], "certificate_id": ["x"]},
                                      schema=REGISTER_SCHEMA), register_path(layout))
    try:
        kept = honour_consent(tx, layout, "fraud_detection", key=key).collect()
        assert erased not in set(kept.get_column("customer_id").to_list())
        assert kept.height == tx.filter(pl.col("customer_id") != erased).select(pl.len()).collect().item()
        with pytest.raises(ConsentError, match="FINRISK_PSEUDONYM_KEY"):
            honour_consent(tx, layout, "fraud_detection", key=None)
    finally:
        register_path(layout).unlink()


def test_consent_errors_are_clear(tmp_path):
    layout = DataLayout(tmp_path)
    result = _invoke("consent", "grant", "C1", "--purpose", "marketing", "--data-dir", str(tmp_path))
    assert result.exit_code == 1 and "unknown purpose 'marketing'" in result.output and "Traceback" not in result.output
    result = _invoke("consent", "grant", "C1", "--purpose", "fraud_detection", "--at", "yesterday",
                     "--data-dir", str(tmp_path))
    assert result.exit_code == 1 and "--at must be" in result.output
    assert _invoke("consent", "grant", "C1", "--purpose", "fraud_detection", "--at", "2026-03-01T10:00:00",
                   "--data-dir", str(tmp_path)).exit_code == 0
    # A time without a zone is Indian time.
    assert read_consent(layout).get_column("granted_at")[0] == datetime(2026, 3, 1, 4, 30, tzinfo=timezone.utc)
    result = _invoke("consent", "withdraw", "C1", "--purpose", "fraud_detection", "--at", "2026-02-01",
                     "--data-dir", str(tmp_path))
    assert result.exit_code == 1 and "before the grant" in result.output
    with pytest.raises(ConsentError, match="time zone"):
        record_consent(layout, "C1", "fraud_detection", "grant", datetime(2026, 1, 1), "test")
