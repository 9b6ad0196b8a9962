"""`finrisk serve` as a real process on loopback: it starts, scores, and swaps in a new champion when
the registry alias moves, without failing the requests around the swap. Plus the CLI's errors."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import polars as pl
import typer
from typer.testing import CliRunner

from finrisk.cli_serve import register
from finrisk.config import PROJECT_ROOT
from scoring_support import (  # noqa: F401
    API_KEY, BLOCK, MODEL_NAME, REVIEW, request_bodies, scoring_dataset, train_and_register, working_copy,
)

KEY = {"X-API-Key": API_KEY}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, proc: subprocess.Popen, limit_s: float = 120) -> dict:
    deadline = time.monotonic() + limit_s  # a bound on waiting, not a performance assertion
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        try:
            ready = httpx.get(f"{url}/readyz", timeout=2)
            if ready.status_code == 200:
                return ready.json()
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError("the service did not become ready")


def test_serve_process_swaps_the_champion_without_failing_requests(scoring_dataset, tmp_path):
    from mlflow import MlflowClient

    data = working_copy(scoring_dataset, tmp_path / "data")
    port = _free_port()
    env = {
        **os.environ, "FINRISK_API_KEYS": f"other-key-{'x' * 20},{API_KEY}", "FINRISK_MLFLOW_MODEL_NAME": MODEL_NAME,
        "FINRISK_CHAMPION_POLL_SECONDS": "0.3", "FINRISK_REVIEW_THRESHOLD": str(REVIEW),
        "FINRISK_BLOCK_THRESHOLD": str(BLOCK),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "finrisk.cli_serve", "serve", "--data-dir", str(data), "--port", str(port)],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    client = MlflowClient()
    original = scoring_dataset.version
    try:
        ready = _wait_ready(url, proc)
        assert ready["model_version"] == original
        bodies = iter(request_bodies(scoring_dataset.day_rows))
        with httpx.Client(base_url=url, headers=KEY, timeout=30) as http:
            assert http.post("/v1/score", json=next(bodies)).json()["model_version"] == original
            new_version = train_and_register(scoring_dataset.batch, pl.read_parquet(
                scoring_dataset.data / "processed" / "labels" / "labels.parquet"), seed=3, train_days=12)
            client.set_registered_model_alias(MODEL_NAME, "champion", new_version)
            versions = []
            for body in bodies:  # keep scoring through the swap
                response = http.post("/v1/score", json=body)
                assert response.status_code == 200, response.text
                versions.append(response.json()["model_version"])
                if versions[-1] == new_version:
                    break
            assert versions[-1] == new_version
            assert set(versions) <= {original, new_version}
            assert http.get("/readyz").json()["model_version"] == new_version
    finally:
        client.set_registered_model_alias(MODEL_NAME, "champion", original)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 0


def _cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_serve_refuses_clearly(tmp_path, monkeypatch, scoring_dataset):
    from finrisk.config import reset_settings

    runner = CliRunner()
    monkeypatch.setenv("FINRISK_API_KEYS", "")  # empty wins over a key in .env (finrisk setup writes one)
    reset_settings()
    no_keys = runner.invoke(_cli(), ["serve", "--data-dir", str(tmp_path)])
    assert no_keys.exit_code == 1 and "FINRISK_API_KEYS is not set" in no_keys.output
    monkeypatch.setenv("FINRISK_API_KEYS", API_KEY)
    reset_settings()
    no_twin = runner.invoke(_cli(), ["serve", "--data-dir", str(tmp_path)])
    assert no_twin.exit_code == 1 and "no twin snapshots" in no_twin.output
    assert "Traceback" not in no_twin.output
    monkeypatch.setenv("FINRISK_REVIEW_THRESHOLD", "0.95")
    reset_settings()
    bad_bands = runner.invoke(_cli(), ["serve", "--data-dir", str(scoring_dataset.data)])
    assert bad_bands.exit_code == 1 and "decision thresholds" in bad_bands.output
    monkeypatch.undo()
    reset_settings()


def test_score_recent_without_data_says_so(tmp_path):
    result = CliRunner().invoke(_cli(), ["score-recent", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1 and "no processed transactions" in result.output
