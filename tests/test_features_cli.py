"""`finrisk features` and `finrisk twin` through the command line, with real Prefect flow runs."""
from datetime import date, timedelta

import polars as pl
import pytest
import typer
from typer.testing import CliRunner

from bench.feature_data import write_processed
from features.catalogue import MODEL_FEATURES
from features.twin import twin_dates
from finrisk.cli_features import register
from finrisk.io import DataLayout, scan_partitioned
from finrisk.synthetic import generate

START = date(2026, 1, 1)
DAYS = 20


def _app() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)
    register(app)
    return app


def _invoke(*args: str, **env: str):
    return CliRunner().invoke(_app(), list(args), env={"COLUMNS": "250", **env})


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("features-cli")
    generate(root / "raw", customers=120, days=DAYS, seed=5, start=START)
    return write_processed(root / "raw", root / "data")


@pytest.fixture()
def prefect_api(prefect_harness):
    """The test harness's API, so the command's flow runs land there and nowhere else."""
    from prefect.settings import PREFECT_API_URL

    return {"PREFECT_API_URL": PREFECT_API_URL.value()}


def test_list_prints_the_catalogue():
    result = _invoke("features", "--list")
    assert result.exit_code == 0, result.output
    for name in ("txn_count_10m", "merchant_fraud_rate_7d", "hour_deviation", "impossible_travel"):
        assert name in result.output
    assert "not a model input" in result.output  # the peer feature waits for clusters


def test_features_writes_the_table_and_the_twin_then_twin_reads_it(data_dir, prefect_api):
    result = _invoke("features", "--data-dir", str(data_dir), "--label-delay-days", "2", **prefect_api)
    assert result.exit_code == 0, result.output
    layout = DataLayout(data_dir)
    table = scan_partitioned(layout.features).collect()
    processed = scan_partitioned(layout.transactions).select("txn_id", "date").collect()
    assert table.height == processed.height
    assert set(table.get_column("date").unique()) == set(processed.get_column("date").unique())
    assert set(MODEL_FEATURES) <= set(table.columns)
    assert twin_dates(data_dir) == [START + timedelta(days=DAYS)]
    customer = processed.join(
        scan_partitioned(layout.transactions).select("txn_id", "customer_id").collect(), on="txn_id"
    ).get_column("customer_id")[0]
    shown = _invoke("twin", customer, "--data-dir", str(data_dir))
    assert shown.exit_code == 0, shown.output
    assert "stored snapshot" in shown.output and "99th percentile INR" in shown.output
    computed = _invoke("twin", customer, "--data-dir", str(data_dir), "--as-of", "2026-01-10")
    assert computed.exit_code == 0 and "computed now" in computed.output


def test_mistakes_get_one_clear_line(data_dir, tmp_path, prefect_api):
    empty = _invoke("features", "--data-dir", str(tmp_path), **prefect_api)
    assert empty.exit_code == 1 and "no processed transactions" in empty.output
    assert "Traceback" not in empty.output
    bad_date = _invoke("twin", "C0000001", "--data-dir", str(data_dir), "--as-of", "01/02/2026")
    assert bad_date.exit_code == 1 and "--as-of must be a date" in bad_date.output
    unknown = _invoke("twin", "NOBODY", "--data-dir", str(data_dir), "--as-of", "2026-01-10")
    assert unknown.exit_code == 1 and "NOBODY" in unknown.output
    no_data = _invoke("twin", "C0000001", "--data-dir", str(tmp_path))
    assert no_data.exit_code == 1 and "no twin snapshots" in no_data.output
