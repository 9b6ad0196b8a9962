"""`finrisk ingest`: a real flow run on success, one clear line (no trace) on every user error."""
from __future__ import annotations

import typer
from typer.testing import CliRunner

from finrisk import cli_ingest
from finrisk.config import reset_settings
from test_ingest import BAD, GOOD, write_source


def _app() -> typer.Typer:
    app = typer.Typer()
    cli_ingest.register(app)

    @app.command()
    def other() -> None:  # a second command, so `ingest` stays a sub-command as in the real CLI
        pass

    return app


def _invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(_app(), ["ingest", *args], env=env)


def test_ingest_command_runs_the_flow_and_reports(tmp_path, prefect_harness):
    src = write_source(tmp_path, GOOD + BAD[:1], labels="T2,1,account_takeover,2026-01-05T10:00:00+05:30\n")
    result = _invoke(str(src), "--data-dir", str(tmp_path / "data"), "--threshold", "0.5")
    assert result.exit_code == 0, result.output
    assert "Every row accounted for" in result.output
    assert "reading source files" in result.output and "pseudonymising and writing" in result.output  # progress bars
    assert "channel: unknown value" in result.output
    assert "index.html" in result.output
    assert (tmp_path / "data" / "processed" / "labels" / "labels.parquet").exists()


def test_user_errors_are_one_clear_line(tmp_path):
    src = write_source(tmp_path, GOOD)
    bad_mapping = tmp_path / "m.yaml"
    bad_mapping.write_text("columns: {nonsense: x}\n")
    cases = [
        ((str(tmp_path / "nowhere"), "--data-dir", str(tmp_path / "d")), "source not found"),
        ((str(src), "--mapping", str(bad_mapping)), "not canonical transaction fields: nonsense"),
        ((str(src), "--threshold", "2"), "Invalid value"),
    ]
    for args, message in cases:
        result = _invoke(*args)
        assert result.exit_code != 0
        assert message in result.output
        assert "Traceback" not in result.output


def test_missing_key_outside_the_demo_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("FINRISK_PSEUDONYM_KEY", "")
    reset_settings()
    try:
        result = _invoke(str(write_source(tmp_path, GOOD)), "--data-dir", str(tmp_path / "d"))
    finally:
        monkeypatch.undo()
        reset_settings()
    assert result.exit_code == 1
    assert "FINRISK_PSEUDONYM_KEY is not set" in result.output and "Traceback" not in result.output
