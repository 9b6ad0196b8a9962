"""Sealed fields in line-per-record files: the scoring service's journal (online/journal/date=D.jsonl).

Each line keeps its other fields readable (erasure and pseudonym rotation rewrite them) and carries
the SENSITIVE_FIELDS it has (ip, latitude, longitude) as one "sealed" value: AES-256-GCM under a
data key of that file. The data key is stored next to the file (`date=D.jsonl.key`, owner-only)
wrapped by the master key of the same KMS as the encrypted Parquet side table, so rotating the
master key rewraps one small key file per journal instead of rewriting the journal.
"""
from __future__ import annotations

import base64
import io
import json
import os
import secrets
import uuid
from pathlib import Path

import polars as pl
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from finrisk.encryption import EncryptionKeyError, current_key_id, kms_client
from finrisk.schema import SENSITIVE_FIELDS, TRANSACTION_SCHEMA

SEALED = "sealed"
_FIELDS = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def key_path(path: Path) -> Path:
    return path.with_name(path.name + ".key")


def key_master(path: Path) -> str | None:
    """The master key id a file's data key is wrapped with (None: the file has no key yet)."""
    try:
        return json.loads(key_path(path).read_text())["master_key_id"]
    except FileNotFoundError:
        return None


def _write_key(path: Path, data_key: bytes) -> None:
    master = current_key_id()
    wrapped = kms_client().wrap_key(data_key, master)
    record = {"master_key_id": master, "wrapped_key": wrapped.decode() if isinstance(wrapped, bytes) else wrapped}
    target = key_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _read_key(path: Path) -> bytes:
    record = json.loads(key_path(path).read_text())
    return kms_client().unwrap_key(record["wrapped_key"].encode(), record["master_key_id"])


class Sealer:
    """Seals and opens the sensitive fields of one file's lines."""

    def __init__(self, path: Path, create: bool = True):
        self.path = path
        if key_path(path).exists():
            data_key = _read_key(path)
        elif create:
            data_key = secrets.token_bytes(32)
            _write_key(path, data_key)
        else:
            raise EncryptionKeyError(f"{path} holds sealed fields but its key file {key_path(path)} is missing")
        self._aead = AESGCM(data_key)

    def seal_line(self, line: dict) -> dict:
        """One line (a dict of its set fields) with its sensitive fields in one sealed value."""
        hidden = {name: line.pop(name) for name in SENSITIVE_FIELDS if name in line}
        if hidden:
            nonce = secrets.token_bytes(12)
            sealed = self._aead.encrypt(nonce, _FIELDS.encode(hidden).encode(), None)
            line[SEALED] = base64.b64encode(nonce + sealed).decode()
        return line

    def seal_frame(self, frame: pl.DataFrame) -> pl.DataFrame:
        """The frame with its sensitive columns replaced by one sealed column (null where none is set)."""
        present = [name for name in SENSITIVE_FIELDS if name in frame.columns]
        if not present:
            return frame
        plain = frame.select(
            pl.when(pl.any_horizontal(pl.col(name).is_not_null() for name in present))
            .then(pl.struct(present).struct.json_encode())
        ).to_series().to_list()
        nonces = secrets.token_bytes(12 * len(plain))  # one call for the whole frame
        encrypt, encode = self._aead.encrypt, base64.b64encode
        sealed = [
            None if text is None else encode((nonce := nonces[12 * i:12 * i + 12]) + encrypt(nonce, text.encode(), None)).decode()
            for i, text in enumerate(plain)
        ]
        return frame.drop(present).with_columns(pl.Series(SEALED, sealed, pl.String))

    def open(self, sealed: str) -> dict:
        raw = base64.b64decode(sealed)
        try:
            return json.loads(self._aead.decrypt(raw[:12], raw[12:], None))
        except InvalidTag:
            raise EncryptionKeyError(f"a sealed line of {self.path} does not open with its key file") from None

    def unseal_column(self, frame: pl.DataFrame) -> pl.DataFrame:
        """The sensitive columns back from the sealed one (clear columns of older lines kept)."""
        sealed = frame.get_column(SEALED) if SEALED in frame.columns else pl.Series(SEALED, [None] * frame.height, pl.String)
        opened = [None if value is None else self.open(value) for value in sealed.to_list()]
        columns = {
            name: pl.Series(name, [None if row is None else row.get(name) for row in opened], TRANSACTION_SCHEMA[name])
            for name in SENSITIVE_FIELDS
        }
        return frame.with_columns(
            (pl.coalesce(pl.col(name), series) if name in frame.columns else series).alias(name)
            for name, series in columns.items()
        ).drop(SEALED, strict=False)


def has_clear_fields(path: Path) -> bool:
    """Whether a journal still holds sensitive fields in the clear (written before sealing)."""
    lines = (json.loads(text) for text in path.read_text().splitlines() if text.strip().startswith("{"))
    return any(line.get(name) is not None for line in lines for name in SENSITIVE_FIELDS)


def seal_file(path: Path) -> int:
    """Rewrite a journal with its clear sensitive fields sealed; returns the lines that had any."""
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if not complete.strip():
        return 0
    frame = pl.read_ndjson(io.BytesIO(complete), infer_schema_length=None)
    present = [name for name in SENSITIVE_FIELDS if name in frame.columns]
    clear = frame.select(pl.any_horizontal(pl.col(name).is_not_null() for name in present).sum()).item() if present else 0
    sealer = Sealer(path)
    if SEALED in frame.columns:  # lines sealed already keep their values; a clear value on the same line wins
        frame = sealer.unseal_column(frame)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_bytes(sealer.seal_frame(frame).write_ndjson().encode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return clear


def rewrap(path: Path) -> bool:
    """Wrap a journal's data key with the current master key; False when it already is."""
    if key_master(path) in (None, current_key_id()):
        return False
    _write_key(path, _read_key(path))
    return True


def read_lines(path: Path, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """A journal's complete lines as a frame with the sensitive fields opened."""
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]  # a torn last line was never acknowledged
    if not complete.strip():
        return pl.DataFrame(schema=schema)
    raw = pl.read_ndjson(io.BytesIO(complete), schema={**schema, SEALED: pl.String})
    if raw.get_column(SEALED).is_null().all():
        return raw.drop(SEALED)
    return Sealer(path, create=False).unseal_column(raw).select(list(schema))
