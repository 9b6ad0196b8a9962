"""finrisk encryption: the master keys of the encrypted sensitive columns, and re-encryption."""
from __future__ import annotations

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from finrisk.cli_common import DataDir, console, data_dir_or_default, fail
from finrisk.config import get_settings
from finrisk.encryption import EncryptionKeyError, add_master_key, current_key_id, key_file, load_keyring
from finrisk.io import DataLayout

encryption_app = typer.Typer(
    help="Encryption at rest of ip, latitude and longitude (side table and service journal): master keys and re-encryption.", no_args_is_help=True,
)


@encryption_app.command("status")
def status(data_dir: DataDir = None) -> None:
    """Which master keys the dataset's encrypted files use, and what is still in the clear."""
    from finrisk.sensitive import key_usage, plaintext_journals, plaintext_partitions

    layout = DataLayout(data_dir_or_default(data_dir))
    try:
        current = current_key_id()
        held = None if get_settings().kms_key_id else set(load_keyring())  # None: an external KMS holds them
    except EncryptionKeyError as error:
        fail(str(error))
    table = Table("master key", "files", "")
    for key, files in sorted(key_usage(layout).items()):
        if key == current:
            note = "current"
        else:
            note = "older: run reencrypt" if held is None or key in held else "[red]not in the keyring: unreadable[/]"
        table.add_row(key, str(files), note)
    console.print(table)
    plain = plaintext_partitions(layout)
    if plain:
        console.print(f"[yellow]{len(plain)} partition(s) still hold sensitive columns in the clear:[/] "
                      "run `finrisk encryption reencrypt`")
    journals = plaintext_journals(layout)
    if journals:
        console.print(f"[yellow]{len(journals)} service journal(s) still hold ip or coordinates in the clear:[/] "
                      "run `finrisk encryption reencrypt`")


@encryption_app.command("new-key")
def new_key() -> None:
    """Put a fresh master key first in the key file; run `reencrypt` on every dataset next."""
    try:
        key_id = add_master_key()
    except EncryptionKeyError as error:
        fail(str(error))
    console.print(f"new master key {key_id} is current in {key_file()}; "
                  "run `finrisk encryption reencrypt --data-dir DIR` on every dataset, then delete the older lines")


@encryption_app.command("reencrypt")
def reencrypt(data_dir: DataDir = None) -> None:
    """Rewrite every encrypted file under the current master key (and encrypt what is still in the clear)."""
    from finrisk.audit import record
    from finrisk.sensitive import reencrypt as run_reencrypt

    layout = DataLayout(data_dir_or_default(data_dir))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    try:
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("re-encrypting", total=None)
            result = run_reencrypt(layout, lambda done, total: progress.update(task, completed=done, total=total))
    except EncryptionKeyError as error:
        fail(str(error))
    record(get_settings().audit_log, "reencrypt", str(layout.root), result)
    console.print(f"{result['files_reencrypted']} file(s) re-encrypted, {result['partitions_split']} partition(s) "
                  f"encrypted, {result['journals_rewrapped']} journal key(s) rewrapped and {result['journals_sealed']} "
                  f"journal(s) sealed under master key {result['master_key']}")


def register(app: typer.Typer) -> None:
    app.add_typer(encryption_app, name="encryption")
