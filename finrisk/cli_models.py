"""finrisk train / score / evaluate / models."""
from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from finrisk.cli_common import console, DataDir
from finrisk.config import get_settings
from finrisk.progress import progress_bars


def _date(value: str, option: str):
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        console.print(f"[bold red]error:[/] {option} must be a date like 2026-01-31, got {value!r}")
        raise typer.Exit(code=1)


def _prefect_ready() -> None:
    from finrisk.services import use_prefect_server_if_running

    use_prefect_server_if_running(get_settings())  # before Prefect is imported


def _run(call):
    """Run a flow; errors a user can cause become one clear line."""
    try:
        return call()
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(code=1)


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def register(app: typer.Typer) -> None:
    @app.command()
    def train(
        train_from: Annotated[str, typer.Option("--train-from", help="First business date to train on (YYYY-MM-DD).")],
        train_to: Annotated[str, typer.Option("--train-to", help="Last business date to train on (inclusive).")],
        label_delay_days: Annotated[int, typer.Option(help="Days before a fraud label is known.")] = 7,
        test_days: Annotated[int, typer.Option(help="Days tested after the label-delay gap.")] = 7,
        seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
        dask: Annotated[bool, typer.Option(
            "--dask", help="Train LightGBM across Dask workers (FINRISK_DASK_ADDRESS, or a local cluster).")] = False,
        data_dir: DataDir = None,
    ) -> None:
        """Train on explicit dates, register as challenger, promote to champion if it beats the champion."""
        start, end = _date(train_from, "--train-from"), _date(train_to, "--train-to")
        _prefect_ready()
        from flows.train import train_window_flow

        root = data_dir or get_settings().data_dir
        with console.status("training (anomaly ensemble + LightGBM)..."):
            result = _run(lambda: train_window_flow(root, start, end, label_delay_days, test_days, seed, dask))
        m = result["metrics"]
        console.print(
            f"model version {result['version']} ({'champion' if result['promoted'] else 'challenger'}): "
            f"AUC {_fmt(m['auc'])}  AP {_fmt(m['average_precision'])}  CP@100 {_fmt(m['card_precision_at_100'])}"
        )

    @app.command()
    def score(
        date_from: Annotated[str, typer.Option("--from", help="First business date (YYYY-MM-DD).")],
        date_to: Annotated[str, typer.Option("--to", help="Last business date (inclusive).")],
        out: Annotated[Path, typer.Option(help="Output Parquet file.")],
        dask: Annotated[bool, typer.Option(
            "--dask", help="One task per day on Dask (FINRISK_DASK_ADDRESS, or a local cluster).")] = False,
        data_dir: DataDir = None,
    ) -> None:
        """Score every transaction in a date range with the champion: score, anomaly score and reasons."""
        start, end = _date(date_from, "--from"), _date(date_to, "--to")
        _prefect_ready()
        from flows.dask import run_on_dask
        from flows.score import score_range_flow

        root = data_dir or get_settings().data_dir
        with progress_bars(console, "scoring"):
            if dask:
                result = _run(lambda: run_on_dask(score_range_flow, root, start, end, out))
            else:
                result = _run(lambda: score_range_flow(root, start, end, out))
        console.print(f"scored {result['scored']:,} transactions with model version {result['model_version']} -> {out}")

    @app.command()
    def evaluate(
        windows: Annotated[int, typer.Option(help="Number of consecutive test windows.")] = 3,
        train_days: Annotated[int, typer.Option(help="Training days per window.")] = 28,
        test_days: Annotated[int, typer.Option(help="Test days per window.")] = 7,
        label_delay_days: Annotated[int, typer.Option(help="Gap between training and test.")] = 7,
        seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
        data_dir: DataDir = None,
    ) -> None:
        """Prequential evaluation (train -> delay -> test, repeated); prints the table, logs it to MLflow."""
        _prefect_ready()
        from flows.train import evaluate_flow

        root = data_dir or get_settings().data_dir
        with console.status(f"evaluating over {windows} windows..."):
            result = _run(lambda: evaluate_flow(root, windows, train_days, test_days, label_delay_days, seed))
        table = Table("test from", "AUC", "AP", "CP@100", "recall@100/day", "frauds", title="Prequential evaluation")
        for row in result["windows"]:
            table.add_row(
                row["test_start"], _fmt(row["auc"]), _fmt(row["average_precision"]),
                _fmt(row["card_precision_at_100"]), _fmt(row["recall_at_100_per_day"]), str(int(row["test_frauds"])),
            )
        console.print(table)
        per_type = Table("window", "fraud type", "frauds", "caught", "recall", title="Recall at 100 alerts/day by typology")
        for row in result["per_typology"]:
            per_type.add_row(str(row["window"]), str(row["fraud_type"]), str(row["frauds"]), str(row["caught"]), _fmt(row["recall"]))
        console.print(per_type)

    @app.command()
    def models() -> None:
        """Registered model versions with their aliases and metrics."""
        from models.registry import configure, list_versions

        settings = get_settings()
        configure(settings.tracking_uri, settings.artifact_root)
        versions = list_versions(settings.mlflow_model_name)
        if versions.height == 0:
            console.print(f"no versions of {settings.mlflow_model_name!r} yet: run `finrisk train` or `finrisk demo`")
            raise typer.Exit(code=1)
        table = Table("version", "aliases", "AUC", "AP", "CP@100", "run", title=settings.mlflow_model_name)
        for row in versions.iter_rows(named=True):
            table.add_row(
                str(row["version"]), row["aliases"], _fmt(row["auc"]), _fmt(row["average_precision"]),
                _fmt(row["card_precision_at_100"]), row["run_id"][:8],
            )
        console.print(table)
