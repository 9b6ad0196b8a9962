"""Deployments on a real Prefect API: registration, the schedule, the typed forms, and an ad-hoc run
executed by the same serving code `finrisk deploy` uses."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import date

import polars as pl
import pytest
import typer
from pydantic import ValidationError
from typer.testing import CliRunner

from finrisk.cli_ops import register, serve_deployments
from finrisk.io import DataLayout, scan_partitioned
from finrisk.synthetic import generate
from flows.deployments import (
    AD_HOC_FLOWS, NIGHTLY_CRON, SCHEDULED, SCORE_RECENT, ScoreRecentParams, ad_hoc_name, build_deployments,
    score_recent_deployment,
)
from flows.params import ScoreRangeParams, TrainWindowParams


def _cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


@pytest.fixture(scope="module")
def registered(prefect_harness, tmp_path_factory):
    """`finrisk deploy --no-serve` against the harness's real API."""
    data_dir = tmp_path_factory.mktemp("deploy") / "data"
    result = CliRunner().invoke(_cli(), ["deploy", "--no-serve", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    return data_dir.resolve(), result.output


def _read(name: str):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_deployment_by_name(name)


def test_deploy_registers_the_nightly_schedule_and_every_sub_flow(registered):
    data_dir, output = registered
    nightly = _read(f"finrisk-nightly/{SCHEDULED}")
    [schedule] = nightly.schedules
    assert schedule.active
    assert schedule.schedule.cron == NIGHTLY_CRON == "0 2 * * *"
    assert schedule.schedule.timezone == "Asia/Kolkata"
    assert nightly.global_concurrency_limit.limit == 1
    assert nightly.parameters["params"] == {
        "data_dir": str(data_dir), "source": str(data_dir / "raw"), "mapping": None,
    }
    assert nightly.entrypoint == "flows.deployments.nightly_deployment"

    for entry in AD_HOC_FLOWS:
        deployment = _read(f"{entry.name}/{ad_hoc_name(entry)}")
        assert deployment.schedules == []
        assert deployment.enforce_parameter_schema
        assert deployment.parameters["params"]["data_dir"] == str(data_dir)
        assert f"{entry.name}/{ad_hoc_name(entry)}" in output


def test_score_recent_is_registered_every_minute(registered):
    data_dir, output = registered
    deployment = _read(f"finrisk-score-recent/{SCORE_RECENT}")
    [schedule] = deployment.schedules
    assert schedule.active
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("* * * * *", "Asia/Kolkata")
    assert deployment.global_concurrency_limit.limit == 1
    assert deployment.concurrency_options.collision_strategy == "CANCEL_NEW"  # an overlapping minute is dropped
    assert deployment.parameters["params"] == {"data_dir": str(data_dir), "model_name": None}
    assert deployment.entrypoint == "flows.deployments.score_recent_deployment"
    assert deployment.enforce_parameter_schema
    assert f"finrisk-score-recent/{SCORE_RECENT}" in output and "* * * * * Asia/Kolkata" in output


def test_score_recent_parameters_validate(tmp_path):
    [deployment] = [d for d in build_deployments(tmp_path) if d.name == SCORE_RECENT]
    validated = score_recent_deployment.validate_parameters(deployment.parameters)["params"]
    assert validated == ScoreRecentParams(data_dir=tmp_path.resolve())
    named = score_recent_deployment.validate_parameters({"params": {"data_dir": str(tmp_path), "model_name": "m"}})
    assert named["params"].model_name == "m"
    with pytest.raises(ValidationError, match="model_nam"):
        ScoreRecentParams(data_dir=tmp_path, model_nam="m")  # a misspelt field is refused
    with pytest.raises(ValidationError, match="at least 1 character"):
        ScoreRecentParams(data_dir=tmp_path, model_name="")


def test_forms_have_typed_fields(registered):
    schema = _read("finrisk-train-window/train-window-ad-hoc").parameter_openapi_schema
    assert schema["properties"]["params"]["$ref"] == "#/definitions/TrainWindowParams"
    fields = schema["definitions"]["TrainWindowParams"]["properties"]
    assert fields["train_from"]["format"] == "date"
    assert fields["train_to"]["format"] == "date"
    assert fields["data_dir"]["format"] == "path"
    assert fields["label_delay_days"]["type"] == "integer"
    assert (fields["label_delay_days"]["minimum"], fields["label_delay_days"]["maximum"]) == (0, 60)
    assert set(schema["definitions"]["TrainWindowParams"]["required"]) == {"data_dir", "train_from", "train_to"}

    score_range = _read("finrisk-score-range/score-range-ad-hoc").parameter_openapi_schema
    score_range = score_range["definitions"]["ScoreRangeParams"]
    assert score_range["properties"]["date_from"]["format"] == "date"
    evaluate = _read("finrisk-evaluate/evaluate-ad-hoc").parameter_openapi_schema["definitions"]["EvaluateParams"]
    assert evaluate["properties"]["windows"]["minimum"] == 1


def test_the_api_refuses_a_run_whose_form_breaks_the_bounds(registered):
    from prefect.deployments import run_deployment

    data_dir, _ = registered
    params = {"data_dir": str(data_dir), "train_from": "2026-01-01", "train_to": "2026-01-20", "label_delay_days": 99}
    with pytest.raises(Exception, match="99"):
        run_deployment("finrisk-train-window/train-window-ad-hoc", parameters={"params": params}, timeout=0)


def test_parameter_models_reject_reversed_dates_and_unknown_fields(tmp_path):
    with pytest.raises(ValidationError, match="before train_from"):
        TrainWindowParams(data_dir=tmp_path, train_from=date(2026, 2, 1), train_to=date(2026, 1, 1))
    with pytest.raises(ValidationError, match="before date_from"):
        ScoreRangeParams(data_dir=tmp_path, date_from=date(2026, 2, 1), date_to=date(2026, 1, 1), out=tmp_path / "o")
    with pytest.raises(ValidationError, match="label_dely_days"):
        TrainWindowParams(data_dir=tmp_path, train_from=date(2026, 1, 1), train_to=date(2026, 1, 9), label_dely_days=3)


def test_an_ad_hoc_run_executes_on_the_served_deployment(prefect_harness, tmp_path):
    """A run created the way the UI's form creates one, picked up and executed by the runner."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    from flows.ingest import ingest_flow

    raw, data_dir = tmp_path / "raw", tmp_path / "data"
    generate(raw, customers=25, days=3, seed=3)
    loaded = ingest_flow(raw, data_dir)["loaded"]
    features = next(d for d in build_deployments(data_dir) if d.flow_name == "finrisk-features")
    features.apply()
    run = run_deployment(
        "finrisk-features/features-ad-hoc", parameters={"params": {"data_dir": str(data_dir)}}, timeout=0
    )
    assert run.state.is_scheduled()

    serve_deployments([features], run_once=True)  # one poll; returns when the run it started has finished

    with get_client(sync_client=True) as client:
        finished = client.read_flow_run(run.id)
    assert finished.state.is_completed(), finished.state.message
    layout = DataLayout(data_dir)
    assert scan_partitioned(layout.features).select(pl.len()).collect().item() == loaded > 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("api", ["none", "unreachable"])
def test_deploy_without_a_reachable_prefect_server_is_a_clear_error(api, tmp_path):
    """A fresh process, as a user runs it: no server on the configured port, or a dead PREFECT_API_URL."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), FINRISK_PREFECT_PORT=str(_free_port()))
    if api == "unreachable":
        env["PREFECT_API_URL"] = f"http://127.0.0.1:{_free_port()}/api"
    script = "import typer; from finrisk.cli_ops import register; app = typer.Typer(); register(app); app()"
    proc = subprocess.run(
        [sys.executable, "-c", script, "deploy", "--no-serve", "--data-dir", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 1
    expected = "no Prefect server: run `finrisk services up`" if api == "none" else "does not answer"
    assert expected in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
