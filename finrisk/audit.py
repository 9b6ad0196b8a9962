"""Append-only audit log: who ran what, who viewed which customer, model promotions, erasures.

One JSON line per event, each carrying the SHA-256 of the previous line, so any edit, deletion or
reordering breaks the chain and `verify` finds where. Appends take an exclusive lock so concurrent
writers (CLI, flows, the API) never interleave.
"""
from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

GENESIS = "0" * 64


def default_actor() -> str:
    return os.environ.get("FINRISK_ACTOR") or getpass.getuser()


def _digest(line: str) -> str:
    return hashlib.sha256(line.encode("utf-8")).hexdigest()


def _last_hash(handle) -> str:
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    if size == 0:
        return GENESIS
    # Read back just enough of the tail to find the last complete line.
    chunk = min(size, 64 * 1024)
    while True:
        handle.seek(size - chunk)
        tail = handle.read(chunk)
        lines = tail.rstrip(b"\n").split(b"\n")
        if len(lines) > 1 or chunk == size:
            return json.loads(lines[-1])["hash"]
        chunk = min(size, chunk * 4)


def record(log_path: Path, action: str, target: str = "", details: dict | None = None, actor: str | None = None) -> dict:
    """Append one event and return it (with its chained hash)."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            event = {
                "ts": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
                "actor": actor or default_actor(),
                "action": action,
                "target": target,
                "details": details or {},
                "prev": _last_hash(handle),
            }
            body = json.dumps(event, sort_keys=True, ensure_ascii=False, default=str)
            event["hash"] = _digest(body)
            handle.seek(0, os.SEEK_END)
            handle.write((json.dumps(event, sort_keys=True, ensure_ascii=False, default=str) + "\n").encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    return event


@dataclass
class Verification:
    ok: bool
    events: int
    problem: str = ""


def verify(log_path: Path) -> Verification:
    """Recompute the chain; report the first line that does not fit."""
    log_path = Path(log_path)
    if not log_path.exists():
        return Verification(True, 0)
    prev = GENESIS
    count = 0
    with open(log_path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                event = json.loads(line)
                stated = event.pop("hash")
            except (json.JSONDecodeError, KeyError):
                return Verification(False, count, f"line {number} is not an audit event")
            if event.get("prev") != prev:
                return Verification(False, count, f"line {number} does not follow line {number - 1} (a line was removed or reordered)")
            if _digest(json.dumps(event, sort_keys=True, ensure_ascii=False, default=str)) != stated:
                return Verification(False, count, f"line {number} was altered")
            prev = stated
            count += 1
    return Verification(True, count)


def read_events(log_path: Path) -> list[dict]:
    log_path = Path(log_path)
    if not log_path.exists():
        return []
    with open(log_path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
