"""finrisk alerts mark / str / ctr: casework and regulatory reports."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from finrisk.cli_common import console, DataDir, fail as _fail
from finrisk.config import get_settings


def _write(frame, out: Path, what: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        frame.write_parquet(out)
    else:
        frame.write_csv(out)
    console.print(f"{what}: {frame.height:,} rows -> {out}")


def register(app: typer.Typer) -> None:
    from finrisk.audit import record, default_actor
    from finrisk.io import DataLayout

    alerts_app = typer.Typer(help="Casework on alerts.", no_args_is_help=True)
    app.add_typer(alerts_app, name="alerts")

    @alerts_app.command("mark")
    def mark(
        txn_id: Annotated[str, typer.Argument(help="The alerted transaction.")],
        disposition: Annotated[str, typer.Option("--as", help="suspicious, false_positive or needs_review.")],
        note: Annotated[str, typer.Option(help="The analyst's grounds.")] = "",
        data_dir: DataDir = None,
    ) -> None:
        """Record an analyst's decision on an alert (suspicious ones go into the STR)."""
        from finrisk.compliance import mark_alert

        settings = get_settings()
        try:
            mark_alert(DataLayout(data_dir or settings.data_dir), txn_id, disposition, default_actor(), note)
        except ValueError as exc:
            _fail(str(exc))
        record(settings.audit_log, "alert_disposition", txn_id, {"disposition": disposition})
        console.print(f"{txn_id} marked {disposition}")

    @app.command("str")
    def str_report(
        date_from: Annotated[str, typer.Option("--from", help="First business date (YYYY-MM-DD).")],
        date_to: Annotated[str, typer.Option("--to", help="Last business date (inclusive).")],
        out: Annotated[Path, typer.Option(help="CSV (or .parquet) to write.")] = Path("str_report.csv"),
        entity: Annotated[str, typer.Option(help="Reporting entity name.")] = "finrisk-reporting-entity",
        data_dir: DataDir = None,
    ) -> None:
        """Suspicious-transaction report: alerts marked suspicious, in the documented FIU-IND-ready layout."""
        from datetime import datetime

        from finrisk.compliance import suspicious_transaction_report

        try:
            start = datetime.strptime(date_from, "%Y-%m-%d").date()
            end = datetime.strptime(date_to, "%Y-%m-%d").date()
        except ValueError:
            _fail("--from and --to must be dates like 2026-03-01")
        settings = get_settings()
        report = suspicious_transaction_report(DataLayout(data_dir or settings.data_dir), start, end, entity)
        record(settings.audit_log, "str_export", f"{date_from}..{date_to}", {"rows": report.height, "out": str(out)})
        _write(report, out, "suspicious-transaction report")

    @app.command("ctr")
    def ctr_report(
        month: Annotated[str, typer.Option(help="Calendar month, YYYY-MM.")],
        out: Annotated[Path, typer.Option(help="CSV (or .parquet) to write.")] = Path("ctr_report.csv"),
        data_dir: DataDir = None,
    ) -> None:
        """Cash-transaction report: customers whose cash in the month exceeds INR 10 lakh."""
        from finrisk.compliance import cash_transaction_report

        settings = get_settings()
        try:
            report = cash_transaction_report(DataLayout(data_dir or settings.data_dir), month)
        except ValueError as exc:
            _fail(str(exc))
        record(settings.audit_log, "ctr_export", month, {"rows": report.height, "out": str(out)})
        _write(report, out, "cash-transaction report")
