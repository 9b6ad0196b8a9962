"""finrisk features / twin: compute the feature table, list the catalogue, show a customer's twin."""
from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from finrisk.cli_common import console, data_dir_or_default as _data_dir, DataDir, fail as _fail
from finrisk.config import ConfigError, get_settings
from finrisk.progress import progress_bars


def _print_catalogue() -> None:
    from features.catalogue import catalogue_frame

    table = Table("feature", "family", "entity", "window", "needs", "description", title="Feature catalogue")
    for row in catalogue_frame().iter_rows(named=True):
        name = row["name"] if row["model"] else f"{row['name']} [dim](not a model input)[/]"
        table.add_row(name, row["family"], row["entity"], row["window"], row["needs"], row["description"])
    console.print(table)


def _features_on_dask(root: Path, label_delay_days: float | None, twin: bool, workers: int | None) -> dict:
    from flows.dask import run_on_dask
    from flows.features import features_by_day_flow

    where = get_settings().dask_address or f"a local Dask cluster of {workers or get_settings().dask_workers} workers"
    with progress_bars(console, f"computing features for {root}, one task per day on {where}"):
        result = run_on_dask(features_by_day_flow, root, None, label_delay_days, twin, workers=workers)
    console.print(f"{result['rows']:,} transactions over {result['days']} days, {result['first_date']} .. "
                  f"{result['last_date']}, in {len(result['processes'])} worker process(es) -> {root / 'features'}")
    return result


def _features_in_process(root: Path, label_delay_days: float | None, twin: bool, workers: int | None) -> dict:
    from flows.features import features_flow

    with console.status(f"computing features for {root} ..."):
        result = features_flow(root, label_delay_days, twin)
    console.print(
        f"{result['rows']:,} transactions, {result['features']} columns, {result['first_date']} .. "
        f"{result['last_date']} (label delay {result['label_delay_days']} d) -> {root / 'features' / 'transactions'}"
    )
    return result


def _run_features(root: Path, label_delay_days: float | None, twin: bool, dask: bool = False,
                  workers: int | None = None) -> None:
    from finrisk.io import DataLayout, has_parquet
    from finrisk.services import use_prefect_server_if_running

    layout = DataLayout(root)
    if not has_parquet(layout.transactions):  # checked here so the user gets one line, not a failed run's log
        _fail(f"no processed transactions under {layout.transactions}; run `finrisk ingest` first")
    use_prefect_server_if_running(get_settings())  # before Prefect is imported: it reads its settings once
    from features.inputs import FeatureInputError

    try:
        result = (_features_on_dask if dask else _features_in_process)(root, label_delay_days, twin, workers)
    except (FileNotFoundError, FeatureInputError, ConfigError) as exc:
        _fail(str(exc))
    if result.get("null_features"):
        console.print(f"[yellow]no data for:[/] {', '.join(result['null_features'])}")
    if "twin" in result:
        twin = result["twin"]
        console.print(f"twin as of {twin['as_of']} for {twin['customers']:,} customers -> {twin['path']}")


def _load_twin(root: Path, customer_id: str, as_of: date | None):
    """The stored snapshot, or (when none is stored for that date) the customer's twin computed now."""
    import polars as pl

    from features.twin import TwinNotFoundError, build_twin, read_twin, twin_dates
    from finrisk.io import DataLayout, has_parquet, scan_partitioned
    from finrisk.sensitive import with_sensitive

    stored = twin_dates(root)
    if (as_of is None and stored) or (as_of is not None and as_of in stored):
        return read_twin(root, as_of), True
    layout = DataLayout(root)
    if not has_parquet(layout.transactions):
        raise TwinNotFoundError(f"no twin snapshots and no processed transactions under {root}")
    tx = with_sensitive(scan_partitioned(layout.transactions).filter(pl.col("customer_id") == customer_id), layout)
    if as_of is None:
        last = tx.select(pl.col("date").max()).collect().item()
        if last is None:
            raise TwinNotFoundError(f"customer {customer_id} has no transactions under {root}")
        as_of = date.fromisoformat(str(last)) + timedelta(days=1)  # the whole history
    labels = pl.read_parquet(layout.labels) if layout.labels.exists() else None
    return build_twin(tx, as_of, labels, get_settings().label_delay_days), False


def _print_twin(view, stored: bool) -> None:
    from features.twin_report import WEEKDAYS, format_inr

    source = "stored snapshot" if stored else "computed now: no snapshot stored for this date"
    console.rule(f"Customer {view.customer_id}: twin as of {view.as_of} ({source})")
    for heading, text in view.lines:
        console.print(f"[bold]{heading:>17}[/]  {text}")
    grid = Table("", *(f"{h:02d}" for h in range(24)), title="transactions by hour (IST) and weekday", box=None)
    shades = " .:-=+*#"
    peak = max(int(view.hour_weekday.max()), 1)
    for d, name in enumerate(WEEKDAYS):
        grid.add_row(name, *(shades[min(len(shades) - 1, round(n / peak * (len(shades) - 1)))] if n else " "
                             for n in view.hour_weekday[d]))
    console.print(grid)
    usual = Table("counterparty", "transactions", "amount", "first seen", title="usual counterparties")
    for row in view.counterparties.iter_rows(named=True):
        usual.add_row(row["counterparty"], f"{row['txn_count']:,}", format_inr(row["amount_sum_paise"]),
                      f"{_day(row['first_ms'])}")
    console.print(usual)
    if view.devices.height:
        devices = Table("device", "transactions", "first seen", "last seen", title="devices")
        for row in view.devices.iter_rows(named=True):
            devices.add_row(row["device_id"], f"{row['txn_count']:,}", _day(row["first_ms"]), _day(row["last_ms"]))
        console.print(devices)
    if view.places.height:
        places = Table("city", "state", "transactions", title="places")
        for row in view.places.iter_rows(named=True):
            places.add_row(row["city"], row["state"] or "-", f"{row['txn_count']:,}")
        console.print(places)
    if view.amounts.height:
        amounts = Table("by", "value", "transactions", "median", "p90", "p99", title="amounts by channel and merchant category")
        for row in view.amounts.iter_rows(named=True):
            amounts.add_row(row["dimension"], row["value"], f"{row['txn_count']:,}", format_inr(row["p50_paise"]),
                            format_inr(row["p90_paise"]), format_inr(row["p99_paise"]))
        console.print(amounts)


def _day(ms) -> str:
    from features.twin_report import _local

    local = _local(ms)
    return "-" if local is None else f"{local:%d %b %Y}"


def register(app: typer.Typer) -> None:
    @app.command("features")
    def features_command(
        list_: Annotated[bool, typer.Option("--list", help="Print the feature catalogue and exit.")] = False,
        label_delay_days: Annotated[
            Optional[float],
            typer.Option(min=0, help="Days after a fraud report before its label may be used (default: setting)."),
        ] = None,
        no_twin: Annotated[bool, typer.Option("--no-twin", help="Do not write the Customer Financial Twin.")] = False,
        dask: Annotated[bool, typer.Option(
            "--dask", help="One task per day on Dask: FINRISK_DASK_ADDRESS's cluster, or a local one.")] = False,
        workers: Annotated[Optional[int], typer.Option(
            min=1, help="Local Dask cluster size with --dask (default: FINRISK_DASK_WORKERS).")] = None,
        data_dir: DataDir = None,
    ) -> None:
        """Compute every feature for every processed transaction (and the twin), or list the catalogue."""
        if list_:
            _print_catalogue()
            return
        _run_features(_data_dir(data_dir), label_delay_days, not no_twin, dask, workers)

    @app.command("twin")
    def twin_command(
        customer_id: Annotated[str, typer.Argument(help="Customer id as in the processed data.")],
        as_of: Annotated[Optional[str], typer.Option("--as-of", help="Snapshot date YYYY-MM-DD (default: the latest).")] = None,
        data_dir: DataDir = None,
    ) -> None:
        """Show a customer's Customer Financial Twin: their normal behaviour as of a date."""
        from features.inputs import FeatureInputError
        from features.twin import TwinNotFoundError
        from features.twin_report import describe_customer

        day = None
        if as_of is not None:
            try:
                day = date.fromisoformat(as_of)
            except ValueError:
                _fail(f"--as-of must be a date like 2026-03-01, got {as_of!r}")
        root = _data_dir(data_dir)
        try:
            with console.status(f"loading the twin of {customer_id} ..."):
                twin, stored = _load_twin(root, customer_id, day)
        except (TwinNotFoundError, FeatureInputError) as exc:
            _fail(str(exc))
        view = describe_customer(twin, customer_id)
        if view is None:
            _fail(f"customer {customer_id!r} has no transactions before {twin.as_of.isoformat()} in {root}")
        _print_twin(view, stored)
