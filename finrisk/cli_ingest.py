"""finrisk ingest: bring your own CSV / Parquet / JSON Lines through a mapping into the data dir."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from finrisk.cli_common import console, DataDir, fail as _fail
from finrisk.config import ConfigError, get_settings
from finrisk.progress import progress_bars


def _user_errors() -> tuple[type[Exception], ...]:
    from finrisk.ingest import IngestError
    from finrisk.mapping import MappingError
    from finrisk.privacy import PseudonymKeyError

    return IngestError, MappingError, ConfigError, PseudonymKeyError


def _print_report(report: dict) -> None:
    counts = Table("", "in", "loaded", "quarantined", "duplicates", title="Every row accounted for")
    counts.add_row("transactions", *(f"{report[k]:,}" for k in ("rows_in", "loaded", "quarantined", "duplicates")))
    if report["labels_in"]:
        counts.add_row("labels", *(f"{report[k]:,}" for k in ("labels_in", "labels_loaded", "labels_quarantined",
                                                               "labels_duplicates")))
    console.print(counts)
    reasons = {**{f"transactions  {r}": n for r, n in report["quarantine_reasons"].items()},
               **{f"labels  {r}": n for r, n in report["label_quarantine_reasons"].items()}}
    if reasons:
        table = Table("quarantined because", "rows", title="Quarantine (data dir: quarantine/)")
        for reason, n in reasons.items():
            table.add_row(reason, f"{n:,}")
        console.print(table)
    if report["dates"]:
        console.print(f"partitions written: {report['dates'][0]} .. {report['dates'][-1]} ({len(report['dates'])})")
    console.print(f"Data Docs: {report['data_docs']}")


def ingest(
    paths: Annotated[Optional[list[Path]], typer.Argument(
        help="CSV, Parquet or JSON Lines files, or folders (default: DATA_DIR/raw).", show_default=False)] = None,
    mapping: Annotated[Optional[Path], typer.Option(
        "--mapping", help="Mapping YAML: source column per canonical field, timezone, amount unit, "
                          "static values, labels (default: the generator's mapping).")] = None,
    labels: Annotated[Optional[list[Path]], typer.Option(
        "--labels", help="Label files or folders, when they are not where the mapping says (repeatable).")] = None,
    threshold: Annotated[Optional[float], typer.Option(
        "--threshold", min=0.0, max=1.0,
        help="Largest share of bad rows that still loads the good ones (default: FINRISK_QUARANTINE_THRESHOLD).")] = None,
    data_dir: DataDir = None,
) -> None:
    """Ingest raw files: map, validate (bad rows to quarantine), pseudonymise, write Parquet."""
    from finrisk.mapping import load_mapping
    from finrisk.services import use_prefect_server_if_running

    settings = get_settings()
    root = Path(data_dir) if data_dir else settings.data_dir
    sources = list(paths) if paths else [root / "raw"]
    try:
        # Fail fast, before a flow run starts, on what the user can fix.
        load_mapping(mapping)
        settings.require_pseudonym_key()
        for source in sources:
            if not source.exists():
                raise FileNotFoundError(f"source not found: {source}")
    except (*_user_errors(), FileNotFoundError) as exc:
        _fail(str(exc))
    use_prefect_server_if_running(settings)  # before Prefect is imported: it reads its settings once
    from flows.ingest import ingest_flow

    try:
        with progress_bars(console, f"ingesting {', '.join(map(str, sources))} into {root}"):
            report = ingest_flow(sources, root, mapping, labels, threshold)
    except _user_errors() as exc:
        _fail(str(exc))
    _print_report(report)


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)
