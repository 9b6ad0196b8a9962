"""Which key chain a data directory's tokens were made with, and where the configured chain is kept.

The data directory records the fingerprint of its chain (`key-fingerprint.json`: a keyed hash,
never a key, see `finrisk.privacy.chain_fingerprint`). Ingest and rotation refuse a configured
chain with another fingerprint, so tokens of two chains never meet in one dataset. A directory
without a record is bound to the chain that first writes to it.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from finrisk.io import DataLayout
from finrisk.privacy import PseudonymKeyError, chain_fingerprint, key_chain
from finrisk.setup_env import write_private

FINGERPRINT_FILE = "key-fingerprint.json"
ROTATION_DIR = "rotation"
KEY_VARIABLE = "FINRISK_PSEUDONYM_KEY"


class KeyChainMismatch(PseudonymKeyError):
    """The configured key chain is not the one the data was written with (or a rotation is half done)."""


def fingerprint_path(layout: DataLayout) -> Path:
    return layout.root / FINGERPRINT_FILE


def pending_rotation_path(layout: DataLayout) -> Path:
    return layout.root / ROTATION_DIR / ".pending.json"


def recorded_fingerprint(layout: DataLayout) -> dict | None:
    path = fingerprint_path(layout)
    return json.loads(path.read_text()) if path.exists() else None


def record_fingerprint(layout: DataLayout, key: bytes, recorded_by: str) -> dict:
    record = {
        "fingerprint": chain_fingerprint(key), "keys": len(key_chain(key)),
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "recorded_by": recorded_by,
    }
    write_private(fingerprint_path(layout), (json.dumps(record, indent=2) + "\n").encode(), 0o644)
    return record


def older_chain_length(recorded: str, key: bytes) -> int | None:
    """How many leading keys of the configured chain make the data's chain, when the data's is a
    shorter one (another dataset sharing the key was rotated since): None when it is not."""
    keys = key_chain(key)
    for length in range(1, len(keys)):
        if chain_fingerprint(b",".join(keys[:length])) == recorded:
            return length
    return None


def check_data_chain(layout: DataLayout, key: bytes, user: str = "ingest") -> None:
    """Refuse a configured chain that is not the data's; bind a directory without a record to it.

    Call with the data directory's run lock held.
    """
    if pending_rotation_path(layout).exists():
        raise KeyChainMismatch(
            f"a key rotation of {layout.root} was interrupted; finish it with `finrisk keys rotate --data-dir "
            f"{layout.root}` before anything else writes there"
        )
    recorded = recorded_fingerprint(layout)
    configured = chain_fingerprint(key)
    if recorded is None:
        record_fingerprint(layout, key, f"{user} (first use)")
    elif recorded["fingerprint"] != configured:
        if older_chain_length(recorded["fingerprint"], key) is not None:
            raise KeyChainMismatch(
                f"the data in {layout.root} is under an older key chain ({recorded['keys']} key(s)) than the configured "
                f"one ({len(key_chain(key))}): bring it up to date with `finrisk keys rotate --data-dir {layout.root}`"
            )
        raise KeyChainMismatch(
            f"the configured pseudonymisation key chain ({len(key_chain(key))} key(s), fingerprint {configured}) is not "
            f"the one the data in {layout.root} was written with ({recorded['keys']} key(s), fingerprint "
            f"{recorded['fingerprint']}), so its tokens would not match; configure that chain "
            f"({KEY_VARIABLE} or {KEY_VARIABLE}_FILE) or use another --data-dir"
        )


@dataclass(frozen=True)
class ChainStore:
    """Where the configured chain is kept, so a rotation can store the longer one: a key file (one
    key per line, oldest first) or the FINRISK_PSEUDONYM_KEY line of a .env file."""

    kind: str  # "key file" or "env file"
    path: Path

    def read(self) -> bytes:
        from finrisk.config import read_key_file

        if self.kind == "key file":
            return read_key_file(self.path).encode()
        from dotenv import dotenv_values

        value = dotenv_values(self.path).get(KEY_VARIABLE)
        if not value:
            raise PseudonymKeyError(f"{self.path} has no {KEY_VARIABLE} line")
        return value.encode()

    def save(self, chain: bytes) -> None:
        if self.kind == "key file":
            existing = self.path.read_text(encoding="utf-8").splitlines() if self.path.exists() else []
            notes = [line for line in existing if line.strip().startswith("#")]
            lines = notes + [k.decode() for k in key_chain(chain)]
            write_private(self.path, ("\n".join(lines) + "\n").encode())
        else:
            from finrisk.setup_env import set_env_value

            set_env_value(self.path, KEY_VARIABLE, chain.decode())

    def describe(self) -> str:
        return f"{self.kind} {self.path}"


def chain_store(settings) -> ChainStore:
    """Where the settings' chain comes from; refuses (ConfigError) when a rotation could not store
    the new chain there (a key only in the process environment, e.g. exported from a secret store)."""
    from finrisk.config import ConfigError

    if settings.pseudonym_key_file is not None:
        settings.require_pseudonym_key()  # the file is readable and holds a chain
        return ChainStore("key file", Path(settings.pseudonym_key_file))
    if os.environ.get(KEY_VARIABLE):
        raise ConfigError(
            f"{KEY_VARIABLE} comes from the process environment, where a rotation cannot store the new chain; "
            f"put the chain in a key file (one key per line, mode 0600) named by {KEY_VARIABLE}_FILE, or in .env, "
            "and run the rotation again"
        )
    env_file = Path(settings.model_config["env_file"])
    store = ChainStore("env file", env_file)
    try:
        if store.read() != settings.require_pseudonym_key():
            raise ConfigError(f"{KEY_VARIABLE} in {env_file} is not the configured chain")
    except (OSError, PseudonymKeyError) as exc:
        raise ConfigError(f"the configured chain is not in {env_file} ({exc}); set {KEY_VARIABLE}_FILE") from None
    return store
