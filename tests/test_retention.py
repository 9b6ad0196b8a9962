"""Raw retention through `finrisk retention`: old, fully ingested raw files go; new ones and old ones
not yet ingested stay; a dry run deletes nothing."""
from __future__ import annotations

import os
import time
from datetime import date

import typer
from typer.testing import CliRunner

from bench.feature_data import write_processed
from finrisk import cli_privacy
from finrisk.audit import read_events
from finrisk.config import get_settings
from finrisk.io import DataLayout
from finrisk.mapping import load_mapping
from finrisk.retention import apply_retention
from finrisk.synthetic import generate


def _app() -> typer.Typer:
    app = typer.Typer()
    cli_privacy.register(app)

    @app.command()
    def other() -> None:  # a second command keeps `retention` a sub-command, as in the real CLI
        pass

    return app


def _age(path, days: float) -> None:
    then = time.time() - days * 86_400
    os.utime(path, (then, then))


def test_retention_deletes_old_ingested_raw_files_only(tmp_path, prefect_harness):
    root = tmp_path / "data"
    raw = root / "raw"
    generate(raw, customers=20, days=4, seed=2, start=date(2026, 1, 1))
    write_processed(raw, root)
    exports = sorted((raw / "transactions").glob("*.csv"))
    old = exports[:2]
    pending = raw / "transactions" / "txns_pending.csv"  # old, but never ingested
    header, first_row = exports[0].read_text().splitlines()[:2]
    pending.write_text(header + "\n" + first_row.replace(first_row.split(",")[0], "TNEVERLOADED", 1) + "\n")
    for path in (*old, pending, raw / "labels.csv"):
        _age(path, 40)
    recent = set(raw.rglob("*.csv")) - {*old, pending, raw / "labels.csv"}

    dry = apply_retention(DataLayout(root), [raw], 30, load_mapping(None), dry_run=True)
    assert sorted(dry.deleted) == sorted(str(p) for p in (*old, raw / "labels.csv"))
    assert dry.kept_not_ingested == [str(pending)]
    assert all(p.exists() for p in (*old, pending))

    result = CliRunner().invoke(_app(), ["retention", "--days", "30", "--data-dir", str(root)],
                                env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "deleted 3 file(s)" in result.output and "txns_pending.csv" in result.output
    assert not any(p.exists() for p in (*old, raw / "labels.csv"))
    assert pending.exists() and all(p.exists() for p in recent)
    events = [e for e in read_events(get_settings().audit_log) if e["action"] == "raw_retention"]
    assert events[-1]["details"]["files_deleted"] == 3 and events[-1]["details"]["kept_not_ingested"] == 1

    # Nothing is older than 60 days: a second run with that period deletes nothing.
    again = apply_retention(DataLayout(root), [raw], 60, load_mapping(None))
    assert again.deleted == [] and again.kept_recent == len(recent) + 1


def test_retention_errors_are_clear(tmp_path):
    missing = CliRunner().invoke(_app(), ["retention", "--data-dir", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "raw folder not found" in missing.output
    negative = CliRunner().invoke(_app(), ["retention", "--days", "-1", "--data-dir", str(tmp_path)])
    assert negative.exit_code != 0 and "Traceback" not in negative.output
