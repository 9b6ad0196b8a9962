"""finrisk command line: set up, run and inspect the fraud-risk pipeline."""
from __future__ import annotations

import atexit
import time
from zoneinfo import ZoneInfo
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from finrisk.cli_common import console, data_dir_or_default as _data_dir, DataDir, fail as _fail
from finrisk.config import ConfigError, get_settings, reset_settings, use_local_prefect_home

use_local_prefect_home()  # before anything imports prefect


def _quiet_interpreter_teardown() -> None:
    """DuckDB's nanobind bindings list the objects still alive when the interpreter tears down
    (harmless, but dozens of lines after every command). Registered first, so it runs after every
    other exit handler: only the teardown itself is silenced."""
    import os
    import sys

    sys.stderr.flush()
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)


atexit.register(_quiet_interpreter_teardown)

app = typer.Typer(
    help="finrisk: fraud and financial-behaviour platform (Prefect, Polars/DuckDB, PyOD/LightGBM, MLflow, Neo4j).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
services_app = typer.Typer(help="Start, stop and check the local Neo4j, MLflow UI and Prefect UI.", no_args_is_help=True)
app.add_typer(services_app, name="services")

@app.callback()
def _audit_invocation(ctx: typer.Context) -> None:
    """Every command run is written to the audit log (who ran what, with which arguments)."""
    import sys

    from finrisk.audit import record
    from finrisk.subjects import redact_argv

    if ctx.invoked_subcommand and ctx.invoked_subcommand != "audit":
        settings = get_settings()
        key = settings.pseudonym_key.get_secret_value().encode() if settings.pseudonym_key else None
        # A customer id on the command line (erase, consent, twin) is logged as its keyed reference.
        record(settings.audit_log, "command", ctx.invoked_subcommand, {"argv": redact_argv(ctx.command, sys.argv[1:], key)})


@app.command()
def audit(
    verify_chain: Annotated[bool, typer.Option("--verify", help="Check the hash chain instead of listing.")] = False,
    last: Annotated[int, typer.Option(help="How many recent events to list.")] = 20,
) -> None:
    """Show the append-only audit log, or verify that nothing in it was altered."""
    from finrisk.audit import read_events, verify

    path = get_settings().audit_log
    if verify_chain:
        result = verify(path)
        if not result.ok:
            _fail(f"audit log {path} is NOT intact: {result.problem}")
        console.print(f"audit log intact: {result.events} events in {path}")
        return
    table = Table("time (UTC)", "actor", "action", "target", "details", title=str(path))
    for event in read_events(path)[-last:]:
        table.add_row(event["ts"][:19], event["actor"], event["action"], event["target"], str(event["details"])[:60])
    console.print(table)


@app.command()
def setup() -> None:
    """Create a local .env with fresh secrets (if missing) and install the Neo4j server."""
    from finrisk.services import ServiceError, neo4j_install
    from finrisk.setup_env import ensure_env_file

    from finrisk.encryption import ensure_key_file, key_file

    added = ensure_env_file()
    reset_settings()
    if added:
        console.print(f"wrote {', '.join(added)} to .env")
    if not get_settings().encryption_keys and ensure_key_file():
        console.print(f"wrote a Parquet encryption master key to {key_file()}")
    with console.status("installing Neo4j Community from Maven Central (first time only)..."):
        try:
            neo4j_install(get_settings())
        except ServiceError as exc:
            _fail(str(exc))
    console.print(f"Neo4j installed under {get_settings().neo4j_home}")


@services_app.command("up")
def services_up(
    only: Annotated[Optional[list[str]], typer.Option("--only", help="neo4j, mlflow or prefect; repeatable.")] = None,
) -> None:
    """Start the services (a second `up` is harmless)."""
    from finrisk.services import ServiceError, up

    try:
        with console.status("starting services..."):
            up(get_settings(), tuple(only) if only else ("neo4j", "mlflow", "prefect"))
    except (ServiceError, ConfigError) as exc:
        _fail(str(exc))
    services_status()


@services_app.command("down")
def services_down() -> None:
    """Stop the services."""
    from finrisk.services import down

    down(get_settings())
    console.print("services stopped")


@services_app.command("status")
def services_status() -> None:
    """Health-check each service."""
    from finrisk.services import status

    table = Table("service", "state", "url", "detail")
    for s in status(get_settings()):
        table.add_row(s.name, "[green]up[/]" if s.up else "[red]down[/]", s.url, s.detail)
    console.print(table)


@app.command()
def generate(
    customers: Annotated[int, typer.Option(help="Number of customers.")] = 2000,
    days: Annotated[int, typer.Option(help="Number of days.")] = 60,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same files).")] = 7,
    out: Annotated[Optional[Path], typer.Option(help="Output folder (default: DATA_DIR/raw).")] = None,
    data_dir: DataDir = None,
) -> None:
    """Write synthetic Indian bank exports: customers, merchants, daily transactions, late labels."""
    from finrisk.synthetic import generate as run_generate

    out = out or _data_dir(data_dir) / "raw"
    start = time.perf_counter()
    with console.status(f"generating {customers} customers x {days} days..."):
        summary = run_generate(out, customers=customers, days=days, seed=seed)
    console.print(
        f"{summary.transactions:,} transactions ({summary.fraud_transactions:,} fraud: {summary.fraud_by_type}) "
        f"for {summary.customers:,} customers and {summary.merchants:,} merchants in {out} "
        f"[{time.perf_counter() - start:.1f}s]"
    )


@app.command()
def nightly(
    source: Annotated[Optional[Path], typer.Option(help="Raw source folder (default: DATA_DIR/raw).")] = None,
    mapping: Annotated[Optional[Path], typer.Option(help="Mapping YAML.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Run the nightly flow once: ingest, validate, features, train, graph, score."""
    _run_nightly(_data_dir(data_dir), source, mapping)


def _run_nightly(root: Path, source: Path | None, mapping: Path | None) -> dict:
    from finrisk.services import use_prefect_server_if_running

    use_prefect_server_if_running(get_settings())  # before Prefect is imported: it reads its settings once
    from flows.nightly import nightly as nightly_flow

    try:
        return nightly_flow(source or root / "raw", root, mapping)
    except ConfigError as exc:
        _fail(str(exc))


def _print_summary(result: dict, root: Path) -> None:
    import polars as pl

    from finrisk.io import DataLayout
    from finrisk.schema import BUSINESS_TZ
    from finrisk.services import mlflow_url, neo4j_browser_url, prefect_url

    settings = get_settings()
    ing, train, score = result["ingest"], result["train"], result["score"]
    console.rule("finrisk nightly run")
    console.print(
        f"rows in {ing['rows_in']:,} = loaded {ing['loaded']:,} + quarantined {ing['quarantined']:,} "
        f"+ duplicates {ing['duplicates']:,}; labels {ing['labels_loaded']:,}"
    )
    m = train["metrics"]
    console.print(
        f"model version {train['version']} ({'champion' if train['promoted'] else 'challenger'}): "
        f"AUC {m['auc']:.3f}  AP {m['average_precision']:.3f}  CP@100 {m['card_precision_at_100']:.3f} "
        f"on {int(m['test_rows']):,} test transactions"
    )
    g = result["graph"]
    console.print(
        f"graph: {g['customers']:,} customers, {g['merchants']:,} merchants, {g['devices']:,} devices, "
        f"{g['paid']:,} PAID, {g['uses']:,} USES"
    )
    layout = DataLayout(root)
    alerts = pl.read_parquet(layout.partition(layout.alerts, score["day"])).head(10)
    table = Table("txn_id", "customer", "time (IST)", "amount INR", "channel", "score", title=f"Top alerts for {score['day']}")
    for row in alerts.iter_rows(named=True):
        table.add_row(
            row["txn_id"], row["customer_id"], f"{row['ts'].astimezone(ZoneInfo(BUSINESS_TZ)):%d %b %H:%M}",
            f"{row['amount_paise'] / 100:,.2f}", row["channel"], f"{row['score']:.3f}",
        )
    console.print(table)
    console.print(f"Prefect UI:     {prefect_url(settings)}")
    console.print(f"MLflow UI:      {mlflow_url(settings)}")
    console.print(f"Neo4j Browser:  {neo4j_browser_url(settings)}")


@app.command()
def demo(
    customers: Annotated[int, typer.Option(help="Customers to generate.")] = 2000,
    days: Annotated[int, typer.Option(help="Days to generate.")] = 60,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    data_dir: DataDir = None,
) -> None:
    """Set up, start the services, generate a dataset, run the nightly flow and summarise it."""
    from finrisk.synthetic import generate as run_generate

    setup()
    services_up(None)
    root = _data_dir(data_dir)
    raw = root / "raw"
    if not (raw / "transactions").exists():
        with console.status(f"generating {customers} customers x {days} days..."):
            summary = run_generate(raw, customers=customers, days=days, seed=seed)
        console.print(f"generated {summary.transactions:,} transactions ({summary.fraud_transactions:,} fraud)")
    result = _run_nightly(root, raw, None)
    _print_summary(result, root)


from finrisk import (  # noqa: E402
    cli_compliance, cli_encryption, cli_features, cli_graph, cli_ingest, cli_models, cli_ops, cli_privacy, cli_serve,
)

cli_ingest.register(app)
cli_models.register(app)
cli_ops.register(app)
cli_features.register(app)
cli_graph.register(app)
cli_compliance.register(app)
cli_serve.register(app)
cli_privacy.register(app)

if __name__ == "__main__":
    app()
