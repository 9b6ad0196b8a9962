"""finrisk graph load / around / features: the Neo4j customer graph from the command line."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Iterator, Optional
from zoneinfo import ZoneInfo

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.syntax import Syntax
from rich.table import Table

from finrisk.cli_common import console, DataDir, fail as _fail
from finrisk.config import ConfigError, Settings, get_settings
from finrisk.schema import BUSINESS_TZ

IST = ZoneInfo(BUSINESS_TZ)


def _user_errors() -> tuple[type[Exception], ...]:
    """Errors a user can cause (wrong id, no data, server down, bad settings): one line, no trace."""
    from neo4j.exceptions import DriverError, Neo4jError

    from finrisk.services import ServiceError
    from graph_loaders.around import NotInGraph
    from graph_loaders.bulk_import import BulkImportError
    from graph_loaders.edges import GraphInputError
    from graph_loaders.graph_features import GraphFeatureError
    from graph_loaders.incremental import NothingToLoad

    return (ConfigError, ServiceError, NotInGraph, BulkImportError, GraphInputError, GraphFeatureError, NothingToLoad,
            DriverError, Neo4jError)


@contextmanager
def _driver(settings: Settings) -> Iterator:
    from neo4j.exceptions import AuthError, ServiceUnavailable

    from graph_loaders.neo4j_load import connect

    try:
        driver = connect(settings.neo4j_uri, settings.neo4j_user, settings.require_neo4j_password(),
                         notifications_min_severity="OFF")
    except ServiceUnavailable:
        _fail(f"cannot reach Neo4j at {settings.neo4j_uri}; start it with `finrisk services up`")
    except AuthError:
        _fail(f"Neo4j at {settings.neo4j_uri} refused user {settings.neo4j_user!r}: check FINRISK_NEO4J_PASSWORD")
    try:
        yield driver
    finally:
        driver.close()


def _rupees(paise: int | None) -> str:
    return "" if paise is None else f"{paise / 100:,.2f}"


def _when(value) -> str:
    if value is None:
        return ""
    native = value.to_native() if hasattr(value, "to_native") else value
    return f"{native.astimezone(IST):%d %b %Y %H:%M}"


def _counts_table(counts: dict[str, int]) -> Table:
    table = Table("in the graph", "count", title="Neo4j")
    for name, value in counts.items():
        table.add_row(name, f"{value:,}")
    return table


def _load_incremental(settings: Settings, root: Path, days: list[str] | None) -> dict:
    from graph_loaders.incremental import upsert_days
    from graph_loaders.neo4j_load import graph_counts

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with _driver(settings) as driver, Progress(*columns, console=console) as progress:
        bar = progress.add_task("reading processed data", total=None)

        def sized(frames) -> None:
            progress.update(bar, description="writing nodes and relationships",
                            total=frames.node_count() + frames.rel_count())

        def advanced(what: str, rows: int) -> None:
            progress.update(bar, advance=rows, description=f"writing {what}")

        report = upsert_days(driver, settings.neo4j_database, root, days, progress=advanced, on_frames=sized)
        counts = graph_counts(driver, settings.neo4j_database)
    if report.days:
        console.print(f"loaded {len(report.days)} day(s) ({report.days[0]} .. {report.days[-1]}): "
                      f"{report.nodes:,} nodes and {report.relationships:,} relationships upserted")
    else:
        console.print("nothing to load: every processed day is already in the graph")
    return counts


def _load_full(settings: Settings, root: Path) -> dict:
    from graph_loaders.bulk_import import bulk_load
    from graph_loaders.neo4j_load import graph_counts

    with console.status("bulk import: building the graph files, importing, switching the new database in..."):
        report = bulk_load(settings, root)
    console.print(
        f"imported {report.nodes:,} nodes and {report.relationships:,} relationships from {report.days} day(s): "
        f"neo4j-admin {report.import_seconds:.1f} s, switch-in {report.switch_seconds:.1f} s"
    )
    with _driver(settings) as driver:
        return graph_counts(driver, settings.neo4j_database)


def _print_neighbourhood(n) -> None:
    if n.transaction:
        t = n.transaction
        label = n.fraud_label
        console.print(
            f"[bold]{t['txn_id']}[/]: {t['direction']} {_rupees(t['amount_paise'])} INR, {t['channel']} "
            f"{t['counterparty_type']} {t['counterparty'] or ''}, {t['status']}, {_when(t['ts'])} IST"
            + (f"  [bold red]reported {label['fraud_type'] or 'fraud'} on {_when(label['reported_at'])}[/]"
               if label and label["label"] == 1 else "")
        )
    console.print(f"[bold]customer {n.customer_id}[/]" + (f", home city {n.home_city}" if n.home_city else ""))
    own = Table("owns", "id", "last seen (IST)", title="Accounts and VPAs")
    for a in n.accounts:
        own.add_row("account", f"{a['account_id']} ({a['ifsc'] or '?'})", _when(a["last_seen"]))
    for v in n.vpas:
        own.add_row("VPA", v["vpa"], _when(v["last_seen"]))
    console.print(own)
    devices = Table("device", "uses", "last seen (IST)", "other customers on it", title="Devices")
    for d in n.devices:
        others = d["others"]
        devices.add_row(d["device_id"], str(d["count"]), _when(d["last_seen"]),
                        ", ".join(others[:8]) + (f" (+{len(others) - 8})" if len(others) > 8 else ""))
    console.print(devices)
    for title, rows, key in (("Money out (P2P)", n.transfers_out, "to"), ("Money in (P2P)", n.transfers_in, "from")):
        table = Table(key, "customer?", "transfers", "total INR", "last (IST)", title=title)
        for r in rows:
            table.add_row(r[key], "yes" if r["customer"] else "outside VPA", str(r["count"]),
                          _rupees(r["total_paise"]), _when(r["last"]))
        console.print(table)
    merchants = Table("merchant", "mcc", "payments", "total INR", "last (IST)", title="Most paid merchants")
    for m in n.merchants:
        merchants.add_row(m["merchant_id"], m["mcc"] or "", str(m["count"]), _rupees(m["total_paise"]),
                          _when(m["last"]))
    console.print(merchants)
    console.print("[bold]Paste into Neo4j Browser:[/]")
    console.print(Syntax(n.browser_query, "cypher", word_wrap=True))


def register(app: typer.Typer) -> None:
    graph_app = typer.Typer(help="The Neo4j customer graph: load it, explore around an alert, graph features.",
                            no_args_is_help=True)
    app.add_typer(graph_app, name="graph")

    @graph_app.command("load")
    def load(
        full: Annotated[bool, typer.Option("--full", help="Rebuild the whole graph with neo4j-admin import (local server only; restarts it).")] = False,
        day: Annotated[Optional[list[str]], typer.Option("--day", help="Load this business day (YYYY-MM-DD) again; repeatable. Default: every day not loaded yet.")] = None,
        data_dir: DataDir = None,
    ) -> None:
        """Load processed transactions into Neo4j: the days not loaded yet, or everything with --full."""
        settings = get_settings()
        root = Path(data_dir) if data_dir else settings.data_dir
        if full and day:
            _fail("--full rebuilds every day; leave out --day")
        try:
            counts = _load_full(settings, root) if full else _load_incremental(settings, root, day or None)
        except _user_errors() as exc:
            _fail(str(exc).splitlines()[0])
        console.print(_counts_table(counts))

    @graph_app.command("around")
    def around(
        identifier: Annotated[str, typer.Argument(metavar="TXN_ID|CUSTOMER_ID", help="A transaction id or a customer id.")],
        data_dir: DataDir = None,
    ) -> None:
        """Print the graph around a transaction or customer, and a Cypher query for Neo4j Browser."""
        from graph_loaders.around import neighbourhood

        settings = get_settings()
        root = Path(data_dir) if data_dir else settings.data_dir
        try:
            with _driver(settings) as driver:
                found = neighbourhood(driver, settings.neo4j_database, root, identifier)
        except _user_errors() as exc:
            _fail(str(exc).splitlines()[0])
        _print_neighbourhood(found)

    @graph_app.command("features")
    def features(
        day: Annotated[Optional[str], typer.Option("--day", help="As of this business day, YYYY-MM-DD (default: the latest processed day).")] = None,
        data_dir: DataDir = None,
    ) -> None:
        """Write graph features of every customer as of a day to features/graph/date=DAY/."""
        from finrisk.io import DataLayout, has_parquet
        from graph_loaders.graph_features import write_graph_features

        root = Path(data_dir) if data_dir else get_settings().data_dir
        if not has_parquet(DataLayout(root).transactions):
            _fail(f"no processed transactions under {DataLayout(root).transactions}; run `finrisk ingest` first")
        if day is None:
            from graph_loaders.graph_features import latest_processed_day

            day = latest_processed_day(root)
        try:
            with console.status(f"graph features as of {day}..."):
                path = write_graph_features(root, day)
        except _user_errors() as exc:
            _fail(str(exc).splitlines()[0])
        console.print(f"graph features as of {day} written to {path}")
