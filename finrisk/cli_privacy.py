"""finrisk erase / consent / retention: the data-protection duties from the command line."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from finrisk.cli_common import console, data_dir_or_default as _root, DataDir, fail as _fail
from finrisk.config import ConfigError, get_settings


def _parse_time(text: str | None) -> datetime:
    if not text:
        return datetime.now(timezone.utc)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        _fail(f"--at must be an ISO date or time such as 2026-03-01 or 2026-03-01T10:00:00+05:30, not {text!r}")
    if parsed.tzinfo is None:
        from zoneinfo import ZoneInfo

        from finrisk.schema import BUSINESS_TZ

        parsed = parsed.replace(tzinfo=ZoneInfo(BUSINESS_TZ))  # a time without a zone is Indian time
    return parsed.astimezone(timezone.utc)


def erase(
    customer_id: Annotated[str, typer.Argument(help="The bank's customer id, as in the processed data.")],
    data_dir: DataDir = None,
    raw: Annotated[Optional[Path], typer.Option("--raw", help="Raw exports folder (default: DATA_DIR/raw).")] = None,
    graph: Annotated[bool, typer.Option("--graph/--no-graph", help="Also erase from Neo4j (--no-graph only "
                                                                   "where no graph is kept).")] = True,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase a customer from every store (irreversible) and write an erasure certificate."""
    from pydantic import SecretStr

    from finrisk.erasure import ErasureBusy, ErasureIncomplete, SubjectNotFound
    from finrisk.privacy import PseudonymKeyError, check_key
    from finrisk.services import use_prefect_server_if_running

    settings = get_settings()
    root = _root(data_dir)
    try:
        check_key(settings.require_pseudonym_key())
        if not root.exists():
            raise FileNotFoundError(f"data directory not found: {root}")
        if graph:
            settings.require_neo4j_password()
    except (ConfigError, PseudonymKeyError, FileNotFoundError) as exc:
        _fail(str(exc))
    if not yes and not typer.confirm(f"Erase customer {customer_id} from {root} and every other store? "
                                     "This cannot be undone", default=False):
        _fail("nothing erased")
    use_prefect_server_if_running(settings)
    from neo4j.exceptions import AuthError, ServiceUnavailable

    from flows.erase import erase as erase_flow

    try:
        with console.status(f"erasing the customer from {root} ..."):
            result = erase_flow(SecretStr(customer_id), root, raw, graph)
    except ErasureIncomplete as exc:
        console.print(exc.certificate.text())
        _fail(str(exc))
    except SubjectNotFound as exc:
        _fail(str(exc).strip("'\""))
    except (ServiceUnavailable, AuthError) as exc:
        _fail(f"Neo4j at {settings.neo4j_uri} is not reachable ({exc.__class__.__name__}); nothing was erased from "
              "the graph. Start it (finrisk services up) and run the command again, or pass --no-graph when this "
              "installation keeps no graph")
    except (ConfigError, ValueError, ErasureBusy) as exc:
        _fail(str(exc))
    table = Table("store", "rows deleted", "values anonymised", "files rewritten", "files deleted",
                  title=f"Erased {result['subject_ref']}")
    for store in result["stores"]:
        table.add_row(store["store"], *(f"{store[k]:,}" for k in ("rows_deleted", "values_anonymised",
                                                                  "files_rewritten", "files_deleted")))
    console.print(table)
    if result["graph"]:
        console.print("Neo4j: " + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in result["graph"].items()))
    console.print(f"no trace left; certificate: {result['json_path']}")


consent_app = typer.Typer(help="Record and show customers' consent per purpose (DPDP Act).", no_args_is_help=True)


def _consent(action: str, customer_id: str, purpose: str, at: str | None, data_dir: Path | None) -> None:
    from finrisk.audit import default_actor, record
    from finrisk.consent import ConsentError, record_consent
    from finrisk.io import DataLayout
    from finrisk.privacy import PseudonymKeyError, check_key
    from finrisk.subjects import subject_ref

    settings = get_settings()
    when = _parse_time(at)
    try:
        key = check_key(settings.require_pseudonym_key())  # the audit log names the customer by reference
        record_consent(DataLayout(_root(data_dir)), customer_id, purpose, action, when, default_actor())
    except (ConsentError, ConfigError, PseudonymKeyError) as exc:
        _fail(str(exc))
    record(settings.audit_log, f"consent_{action}", subject_ref(customer_id, key),
           {"purpose": purpose, "at": when.isoformat()})
    verb = "granted" if action == "grant" else "withdrawn"
    console.print(f"consent for {purpose} {verb} at {when.isoformat()} (customer {customer_id}); "
                  f"{'their data is processed for it again' if action == 'grant' else 'processing for it stops'}")


@consent_app.command("grant")
def consent_grant(
    customer_id: Annotated[str, typer.Argument(help="The bank's customer id.")],
    purpose: Annotated[str, typer.Option(help="fraud_detection or model_training.")],
    at: Annotated[Optional[str], typer.Option(help="When it was given (ISO; default now; no zone = IST).")] = None,
    data_dir: DataDir = None,
) -> None:
    """Record that a customer gave consent for a purpose."""
    _consent("grant", customer_id, purpose, at, data_dir)


@consent_app.command("withdraw")
def consent_withdraw(
    customer_id: Annotated[str, typer.Argument(help="The bank's customer id.")],
    purpose: Annotated[str, typer.Option(help="fraud_detection or model_training.")],
    at: Annotated[Optional[str], typer.Option(help="When it was withdrawn (ISO; default now; no zone = IST).")] = None,
    data_dir: DataDir = None,
) -> None:
    """Record that a customer withdrew consent: features, training and scoring skip them from then on."""
    _consent("withdraw", customer_id, purpose, at, data_dir)


@consent_app.command("show")
def consent_show(
    customer_id: Annotated[Optional[str], typer.Argument(help="One customer (default: everyone).")] = None,
    data_dir: DataDir = None,
) -> None:
    """List consent records."""
    from finrisk.consent import read_consent
    from finrisk.io import DataLayout

    table = read_consent(DataLayout(_root(data_dir)))
    if customer_id:
        table = table.filter(table["customer_id"] == customer_id)
    out = Table("customer", "purpose", "granted (UTC)", "withdrawn (UTC)", "recorded by", title="Consent")
    for row in table.iter_rows(named=True):
        out.add_row(row["customer_id"], row["purpose"], str(row["granted_at"] or "")[:19],
                    str(row["withdrawn_at"] or "")[:19], row["recorded_by"])
    console.print(out if table.height else "no consent records")


def retention(
    days: Annotated[Optional[int], typer.Option(min=0, help="Keep raw files this many days "
                                                            "(default: FINRISK_RAW_RETENTION_DAYS).")] = None,
    raw: Annotated[Optional[Path], typer.Option("--raw", help="Raw exports folder (default: DATA_DIR/raw).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be deleted.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Delete raw exports older than the retention period once everything in them is ingested."""
    from finrisk.services import use_prefect_server_if_running

    settings = get_settings()
    root = _root(data_dir)
    source = raw or root / "raw"
    if not source.exists():
        _fail(f"raw folder not found: {source}")
    use_prefect_server_if_running(settings)
    from flows.retention import retention as retention_flow

    with console.status(f"applying raw retention to {source} ..."):
        report = retention_flow(root, raw, days, dry_run)
    verb = "would delete" if dry_run else "deleted"
    console.print(f"raw retention {report['days']} days (files written before {report['cutoff']}): {verb} "
                  f"{len(report['deleted'])} file(s), {report['bytes_deleted']:,} bytes; "
                  f"{report['kept_recent']} recent file(s) kept")
    for path in report["deleted"][:20]:
        console.print(f"  {verb} {path}")
    if report["kept_not_ingested"]:
        console.print(f"[yellow]kept {len(report['kept_not_ingested'])} old file(s) not fully ingested yet:[/]")
        for path in report["kept_not_ingested"][:20]:
            console.print(f"  {path}")


def register(app: typer.Typer) -> None:
    from finrisk import cli_keys

    app.command("erase")(erase)
    app.add_typer(consent_app, name="consent")
    app.command("retention")(retention)
    cli_keys.register(app)  # finrisk keys status|rotate
