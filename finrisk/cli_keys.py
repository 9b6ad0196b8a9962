"""finrisk keys: the pseudonymisation key chain of a dataset, and its rotation."""
from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from finrisk.cli_common import DataDir, console, data_dir_or_default, fail
from finrisk.config import ConfigError, get_settings

keys_app = typer.Typer(help="The pseudonymisation key chain: status and rotation (DPDP Act).", no_args_is_help=True)


@keys_app.command("status")
def status(data_dir: DataDir = None) -> None:
    """The configured key chain's fingerprint against the one the dataset was written with."""
    from finrisk.io import DataLayout
    from finrisk.privacy import PseudonymKeyError, chain_fingerprint, check_key, key_chain
    from finrisk.rotation_chain import pending_rotation_path, recorded_fingerprint

    layout = DataLayout(data_dir_or_default(data_dir))
    try:
        key = check_key(get_settings().require_pseudonym_key())
    except (ConfigError, PseudonymKeyError) as exc:
        fail(str(exc))
    recorded = recorded_fingerprint(layout)
    table = Table("", "keys", "fingerprint", title=f"Pseudonymisation key chain of {layout.root}")
    table.add_row("configured", str(len(key_chain(key))), chain_fingerprint(key))
    table.add_row("data", *((str(recorded["keys"]), recorded["fingerprint"]) if recorded else ("", "none recorded yet")))
    console.print(table)
    if pending_rotation_path(layout).exists():
        console.print("[yellow]a rotation is pending: run `finrisk keys rotate` to finish it[/]")
    elif recorded and recorded["fingerprint"] != chain_fingerprint(key):
        fail("the configured chain is not the data's: ingest and rotation refuse to run")


@keys_app.command("rotate")
def rotate(
    data_dir: DataDir = None,
    graph: Annotated[bool, typer.Option("--graph/--no-graph", help="Also re-key Neo4j (--no-graph only where no "
                                                                   "graph is kept).")] = True,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Append a new key to the pseudonymisation key chain and wrap every stored token under it.

    Stop ingest, the nightly runs and the scoring service first; run it again to finish an interrupted rotation.
    """
    from finrisk.io import DataLayout
    from finrisk.privacy import PseudonymKeyError, check_key
    from finrisk.progress import progress_bars
    from finrisk.rotation import RotationError
    from finrisk.rotation_chain import chain_store, pending_rotation_path
    from finrisk.services import use_prefect_server_if_running

    settings = get_settings()
    root = data_dir_or_default(data_dir)
    try:
        check_key(settings.require_pseudonym_key())
        store = chain_store(settings)
        if not root.is_dir():
            raise FileNotFoundError(f"data directory not found: {root}")
        if graph:
            settings.require_neo4j_password()
    except (ConfigError, PseudonymKeyError, FileNotFoundError) as exc:
        fail(str(exc))
    resuming = pending_rotation_path(DataLayout(root)).exists()
    if not resuming and not yes and not typer.confirm(
            f"Rotate the pseudonymisation key of {root}? Every token is rewritten and the new chain is stored in "
            f"{store.describe()}", default=False):
        fail("nothing rotated")
    use_prefect_server_if_running(settings)
    from neo4j.exceptions import AuthError, ServiceUnavailable

    from flows.rotate import rotate_keys as rotate_flow

    try:
        with progress_bars(console, f"{'finishing the' if resuming else 'rotating the'} key of {root}"):
            report = rotate_flow(root, graph)
    except (ServiceUnavailable, AuthError) as exc:
        fail(f"Neo4j at {settings.neo4j_uri} is not reachable ({exc.__class__.__name__}); the rotation is pending. "
             "Start it (finrisk services up) and run the same command again")
    except (RotationError, PseudonymKeyError, ConfigError) as exc:
        fail(str(exc))
    table = Table("store", "files rewritten", "values rewritten", title=f"Key rotation {report['rotation_id']}")
    for entry in report["stores"]:
        table.add_row(entry["store"], f"{entry['files']:,}", f"{entry['values']:,}")
    console.print(table)
    if report["graph_nodes_rekeyed"] is not None:
        console.print(f"Neo4j: {report['graph_nodes_rekeyed']:,} node(s) re-keyed")
    for note in report["notes"]:
        console.print(f"[yellow]note:[/] {note}")
    done = "key chain" if report["new_key"] else "dataset brought up to the configured key chain"
    console.print(f"no old token left; {done} of {report['keys']} key(s) in {report['chain_stored_in']} "
                  f"(fingerprint {report['fingerprint_after']})")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
