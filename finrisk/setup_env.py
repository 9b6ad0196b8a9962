"""First-run set-up: a local .env with fresh random secrets (never committed)."""
from __future__ import annotations

import secrets
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
