"""Task caching keyed on what a task reads: a re-run over unchanged data skips finished work.

The key is a hash of the task's parameters, the name, size and modification time of every file the
task reads, and the source of the code that computes it, so new data, new labels, other parameters
or changed code all miss the cache. Results are persisted (Prefect result storage under the Prefect
home) so a later run finds them; flows pass refresh_cache when a task's outputs have gone missing.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path

from prefect.context import TaskRunContext

from finrisk.config import PROJECT_ROOT, get_settings

CACHE_EXPIRATION = timedelta(days=7)


def files_fingerprint(roots: Iterable[Path]) -> str:
    """Hash of (path, size, mtime) of every file under the roots (a missing root counts as empty)."""
    digest = hashlib.sha256()
    for root in roots:
        root = Path(root)
        files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")) if root.is_dir() \
            else ([root] if root.is_file() else [])
        digest.update(f"{root}\0{len(files)}\0".encode())
        for path in files:
            stat = path.stat()
            digest.update(f"{path.relative_to(root) if path != root else ''}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()


def code_fingerprint(*packages: str) -> str:
    digest = hashlib.sha256()
    for package in packages:
        for path in sorted((PROJECT_ROOT / package).glob("*.py")):
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def cache_on_files(reads: Callable[[dict], Iterable[Path]], *packages: str, settings: tuple[str, ...] = ()):
    """A Prefect cache_key_fn: parameters + fingerprint of the files `reads(parameters)` names + code
    + the named settings (the defaults that parameters left as None fall back to)."""
    def key(context: TaskRunContext, parameters: dict) -> str:
        current = get_settings()
        digest = hashlib.sha256(context.task.name.encode())
        digest.update(repr(sorted((k, repr(v)) for k, v in parameters.items())).encode())
        digest.update(repr([getattr(current, name) for name in settings]).encode())
        digest.update(files_fingerprint(reads(parameters)).encode())
        digest.update(code_fingerprint(*packages).encode())
        return digest.hexdigest()

    return key
