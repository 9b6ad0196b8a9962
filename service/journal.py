"""The service's journal: every transaction it scored, one JSON line each, one file per business day.

It is what makes the in-memory velocity state recoverable: after a restart the day's journal is
replayed on top of the twin, so the next transaction sees every earlier one again. Lines are
appended and flushed before the response is sent; a line torn by a crash is never acknowledged, so
replay drops it. ip and coordinates are sealed on each line (finrisk.sealing), under a data key
of the file wrapped by the encryption master key.
"""
from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import polars as pl

from finrisk.sealing import Sealer, read_lines
from service.scoring import RESULT_SCHEMA, TRANSACTION_FIELDS


def journal_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "online" / "journal"


_LINE = json.JSONEncoder(separators=(",", ":"), allow_nan=False)  # built once: json.dumps would build one per line
# From this many rows a call's lines are written as one frame: building a frame costs about a
# millisecond whatever its size, a line at a time costs a few microseconds a line.
FRAME_ROWS = 64


class Journal:
    def __init__(self, data_dir: Path, day: date, fsync: bool = False):
        self.path = journal_dir(data_dir) / f"date={day.isoformat()}.jsonl"
        self.fsync = fsync
        self._fh = None
        self._sealer: Sealer | None = None

    def replay(self) -> pl.DataFrame:
        """The day's scored transactions and their results, in the order they were scored."""
        columns = {**TRANSACTION_FIELDS, **RESULT_SCHEMA}
        if not self.path.exists():
            return pl.DataFrame(schema=columns)
        raw = read_lines(self.path, {**columns, "ts": pl.Int64})
        return raw.with_columns(pl.from_epoch("ts", "us").dt.replace_time_zone("UTC"))

    def append_columns(self, columns: dict[str, list], results: dict[str, list]) -> None:
        """Transactions as columns (TRANSACTION_FIELDS but `ts`, plus `ts_us`) and their RESULT_SCHEMA
        columns, one line each."""
        fields = {**{name: columns[name] for name in TRANSACTION_FIELDS if name != "ts"}, "ts": columns["ts_us"], **results}
        sealer = self._sealing()
        if len(columns["ts_us"]) < FRAME_ROWS:
            names = list(fields)
            lines = (sealer.seal_line({k: v for k, v in zip(names, row) if v is not None}) for row in zip(*fields.values()))
            self._write(("\n".join(map(_LINE.encode, lines)) + "\n").encode())
            return
        frame = pl.DataFrame(fields, schema={**TRANSACTION_FIELDS, "ts": pl.Int64, **RESULT_SCHEMA}, strict=False)
        self._write(sealer.seal_frame(frame).write_ndjson().encode())

    def append(self, rows: pl.DataFrame) -> None:
        """Canonical rows (TRANSACTION_FIELDS, ts timezone-aware) with their RESULT_SCHEMA columns."""
        # Epoch microseconds keep every instant exact through the text form.
        frame = rows.select(*TRANSACTION_FIELDS, *RESULT_SCHEMA).with_columns(pl.col("ts").dt.epoch("us"))
        self._write(self._sealing().seal_frame(frame).write_ndjson().encode())

    def ensure_key(self) -> None:
        """Load (or create) the file's data key now, so missing encryption keys stop the start-up."""
        self._sealing()

    def _sealing(self) -> Sealer:
        if self._sealer is None or (self._fh is not None and self._replaced()):
            self._sealer = Sealer(self.path)  # a new file (after an erasure rewrite) may come with a new key
        return self._sealer

    def _write(self, data: bytes) -> None:
        if self._fh is not None and self._replaced():
            self.close()  # an erasure rewrote the file: append to the new one, not the unlinked old one
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "ab")
            if self._fh.tell() and not self._ends_with_newline():
                self._fh.write(b"\n")  # close a torn line from before a crash
        self._fh.write(data)
        self._fh.flush()
        if self.fsync:
            os.fsync(self._fh.fileno())

    def _replaced(self) -> bool:
        try:
            return os.stat(self.path).st_ino != os.fstat(self._fh.fileno()).st_ino
        except FileNotFoundError:
            return True

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
