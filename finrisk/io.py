"""Atomic Parquet writes and the data-directory layout every stage shares."""
from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl


@dataclass(frozen=True)
class DataLayout:
    """All paths under one data directory, so several datasets can live side by side."""

    root: Path

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def transactions(self) -> Path:
        return self.root / "processed" / "transactions"

    @property
    def labels(self) -> Path:
        return self.root / "processed" / "labels" / "labels.parquet"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine" / "transactions"

    @property
    def features(self) -> Path:
        return self.root / "features" / "transactions"

    @property
    def scores(self) -> Path:
        return self.root / "scores"

    @property
    def alerts(self) -> Path:
        return self.root / "alerts"

    @property
    def staging(self) -> Path:
        return self.root / "staging"

    @property
    def validation(self) -> Path:
        return self.root / "validation"

    def partition(self, base: Path, day: str) -> Path:
        return base / f"date={day}" / "part-0.parquet"


def write_parquet_atomic(df: pl.DataFrame, path: Path, compression_level: int | None = None) -> Path:
    """Write to a temporary name in the same folder, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        df.write_parquet(tmp, compression="zstd", compression_level=compression_level, statistics=True)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def parquet_glob(base: Path) -> str:
    return str(base / "**" / "*.parquet")


def has_parquet(base: Path) -> bool:
    return base.exists() and any(base.rglob("*.parquet"))


def scan_partitioned(base: Path) -> pl.LazyFrame:
    """Hive-partitioned Parquet under base; the `date` partition column is kept as text."""
    return pl.scan_parquet(
        parquet_glob(base), hive_partitioning=True, hive_schema={"date": pl.String}
    )


class ExclusiveLock:
    """One holder at a time of a lock file; held by an open file, so it dies with its process.
    A second taker does not wait: it gets `busy()` raised."""

    def __init__(self, path: Path, busy: Callable[[], Exception]):
        self.path = Path(path)
        self.busy = busy
        self._fh = None

    def __enter__(self) -> "ExclusiveLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a+")
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._fh.close()
            raise self.busy() from None
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self._fh, fcntl.LOCK_UN)
        self._fh.close()
