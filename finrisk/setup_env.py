"""First-run set-up: a local .env with fresh random secrets (never committed)."""
from __future__ import annotations

import os
import secrets
import uuid
from pathlib import Path

from finrisk.config import PROJECT_ROOT

ENV_FILE = PROJECT_ROOT / ".env"


def ensure_env_file(path: Path = ENV_FILE) -> list[str]:
    """Add any missing local secret to .env; returns the names it wrote."""
    existing = path.read_text().splitlines() if path.exists() else []
    present = {line.split("=", 1)[0].strip() for line in existing if "=" in line and not line.startswith("#")}
    wanted = {
        "FINRISK_NEO4J_PASSWORD": secrets.token_urlsafe(18),
        "FINRISK_PSEUDONYM_KEY": secrets.token_hex(32),
        "FINRISK_API_KEYS": secrets.token_urlsafe(32),  # for `finrisk serve` on this machine
    }
    added = [name for name in wanted if name not in present]
    if added:
        lines = existing + [f"{name}={wanted[name]}" for name in added]
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)
    return added


def set_env_value(path: Path, name: str, value: str) -> None:
    """Set `name=value` in a .env file (replacing its line, or appending one), atomically and
    durably, owner-only: a rotation stores the new key chain this way."""
    existing = path.read_text().splitlines() if path.exists() else []
    line = f"{name}={value}"
    replaced = False
    lines = []
    for current in existing:
        is_name = not current.lstrip().startswith("#") and current.split("=", 1)[0].strip() in (name, f"export {name}")
        if is_name and not replaced:
            lines.append(line)
            replaced = True
        elif not is_name:
            lines.append(current)  # a second line of the same name would override the new value
    if not replaced:
        lines.append(line)
    write_private(path, ("\n".join(lines) + "\n").encode())


def write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write a file atomically and durably (temporary name, fsync, rename), owner-only by default:
    a secret written this way is either wholly there or not at all, even after a power cut."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a crash
        finally:
            os.close(directory)
    finally:
        tmp.unlink(missing_ok=True)
