"""Parquet modular encryption (PyArrow) of the columns that stay sensitive after pseudonymisation.

Envelope encryption: every file gets fresh data keys, wrapped by the master key of a KMS. The
default KMS is a local keyring of AES-256 master keys, read from FINRISK_ENCRYPTION_KEYS or from a
key file outside the repository (FINRISK_ENCRYPTION_KEY_FILE, by default
~/.config/finrisk/encryption-keys, written by `finrisk setup`). Another KMS (Vault, a cloud KMS, an
HSM) plugs in through FINRISK_KMS_CLIENT="module:callable", a callable taking PyArrow's
KmsConnectionConfig and returning a pyarrow.parquet.encryption.KmsClient.

Keyring format, one key per line, the first is the one new files are written with:
    <key-id> <64 hex digits>
Older keys stay in the ring so files written with them can still be read; `finrisk keys
reencrypt` rewrites every encrypted file with the current key, after which old keys can go.
"""
from __future__ import annotations

import base64
import importlib
import json
import os
import re
import secrets
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pyarrow.parquet.encryption as pe
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from finrisk.config import get_settings

ENCRYPTED_MAGIC = b"PARE"  # the last bytes of a Parquet file whose footer is encrypted
KEY_ID_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_")


class EncryptionKeyError(ValueError):
    """The encryption keys are missing or unusable; the message says what to do."""


def parse_keyring(text: str, source: str) -> dict[str, bytes]:
    """{key id: 32-byte master key}, in file order (the first is current)."""
    ring: dict[str, bytes] = {}
    for number, line in enumerate(text.replace(",", "\n").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.replace(":", " ").split()
        if len(parts) != 2 or not set(parts[0]) <= KEY_ID_CHARS:
            raise EncryptionKeyError(f"{source}, entry {number}: expected '<key-id> <64 hex digits>'")
        try:
            key = bytes.fromhex(parts[1])
        except ValueError:
            raise EncryptionKeyError(f"{source}, entry {number}: the key is not hexadecimal") from None
        if len(key) != 32:
            raise EncryptionKeyError(f"{source}, entry {number}: the key must be 32 bytes (64 hex digits), got {len(key)}")
        if parts[0] in ring:
            raise EncryptionKeyError(f"{source}: key id {parts[0]!r} appears twice")
        ring[parts[0]] = key
    return ring


def key_file() -> Path:
    return get_settings().encryption_key_file.expanduser()


def load_keyring() -> dict[str, bytes]:
    """The master keys from the environment, else from the key file."""
    settings = get_settings()
    if settings.encryption_keys is not None and settings.encryption_keys.get_secret_value().strip():
        ring = parse_keyring(settings.encryption_keys.get_secret_value(), "FINRISK_ENCRYPTION_KEYS")
    elif key_file().is_file():
        ring = parse_keyring(key_file().read_text(), str(key_file()))
    else:
        raise EncryptionKeyError(
            f"no encryption keys: FINRISK_ENCRYPTION_KEYS is not set and {key_file()} does not exist. "
            "Run `finrisk setup` to create a key file, or point FINRISK_ENCRYPTION_KEY_FILE at yours"
        )
    if not ring:
        raise EncryptionKeyError("the encryption keyring is empty")
    return ring


def new_key_line(ring: dict[str, bytes] | None = None) -> str:
    """A fresh master key with an id not yet in the ring."""
    taken = set(ring or ())
    while (key_id := f"k-{secrets.token_hex(4)}") in taken:
        pass
    return f"{key_id} {secrets.token_hex(32)}"


def ensure_key_file(path: Path | None = None) -> bool:
    """Create the key file (outside the repository, readable by its owner only) if there is none."""
    path = path or key_file()
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("# finrisk Parquet encryption master keys; the first line is current\n" + new_key_line() + "\n")
    return True


class LocalKms(pe.KmsClient):
    """Master keys from the local keyring; data keys wrapped with AES-256-GCM bound to the key id."""

    def __init__(self, ring: dict[str, bytes]):
        super().__init__()
        self._ring = ring

    def _master(self, key_id: str) -> AESGCM:
        if key_id not in self._ring:
            raise EncryptionKeyError(f"master key {key_id!r} is not in the keyring; the file was encrypted with a key you do not hold")
        return AESGCM(self._ring[key_id])

    def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> bytes:
        nonce = secrets.token_bytes(12)
        sealed = self._master(master_key_identifier).encrypt(nonce, key_bytes, master_key_identifier.encode())
        return base64.b64encode(nonce + sealed)

    def unwrap_key(self, wrapped_key: bytes, master_key_identifier: str) -> bytes:
        raw = base64.b64decode(wrapped_key)
        try:
            return self._master(master_key_identifier).decrypt(raw[:12], raw[12:], master_key_identifier.encode())
        except InvalidTag:
            raise EncryptionKeyError(f"cannot decrypt: master key {master_key_identifier!r} in the keyring is not the key "
                                     "the file was encrypted with") from None


def local_kms(_config: pe.KmsConnectionConfig) -> pe.KmsClient:
    return LocalKms(load_keyring())


def _kms_factory() -> Callable[[pe.KmsConnectionConfig], pe.KmsClient]:
    spec = get_settings().kms_client
    module, _, name = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        raise EncryptionKeyError(f"FINRISK_KMS_CLIENT={spec!r} is not an importable 'module:callable'") from None


def kms_client() -> pe.KmsClient:
    """The configured KMS client (the local keyring unless FINRISK_KMS_CLIENT names another)."""
    return _kms_factory()(pe.KmsConnectionConfig())


def current_key_id() -> str:
    """The master key new files are written with (for the local KMS: the keyring's first)."""
    settings = get_settings()
    if settings.kms_key_id:
        return settings.kms_key_id
    return next(iter(load_keyring()))


def _crypto() -> tuple[pe.CryptoFactory, pe.KmsConnectionConfig]:
    return pe.CryptoFactory(_kms_factory()), pe.KmsConnectionConfig()


def is_encrypted(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-4, os.SEEK_END)
        return handle.read(4) == ENCRYPTED_MAGIC


def footer_master_key(path: Path) -> str | None:
    """The id of the master key an encrypted file's footer key is wrapped with, read from the
    file's plaintext crypto metadata (the key material PyArrow stores there); no key needed."""
    with open(path, "rb") as handle:
        handle.seek(-8, os.SEEK_END)
        length = int.from_bytes(handle.read(4), "little")
        if handle.read(4) != ENCRYPTED_MAGIC:
            return None
        handle.seek(-(8 + length), os.SEEK_END)
        tail = handle.read(length)
    for match in re.finditer(rb'\{"keyMaterialType".*?\}', tail):
        material = json.loads(match.group())
        if material.get("isFooterKey"):
            return material.get("masterKeyID")
    return None


def add_master_key(path: Path | None = None) -> str:
    """Put a fresh master key first in the key file (new files use it; the older keys stay
    readable); returns its id."""
    settings = get_settings()
    if settings.encryption_keys is not None and settings.encryption_keys.get_secret_value().strip():
        raise EncryptionKeyError(
            "the master keys come from FINRISK_ENCRYPTION_KEYS: add a new first entry there (your secret store) instead"
        )
    path = path or key_file()
    if not path.is_file():
        raise EncryptionKeyError(f"no key file at {path}; run `finrisk setup` first")
    text = path.read_text()
    line = new_key_line(parse_keyring(text, str(path)))
    lines = text.splitlines()
    comments = [entry for entry in lines if entry.startswith("#")]
    keys = [entry for entry in lines if entry.strip() and not entry.startswith("#")]
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join([*comments, line, *keys]) + "\n")
    os.replace(tmp, path)
    return line.split()[0]


def write_encrypted(df: pl.DataFrame, path: Path, columns: list[str]) -> Path:
    """Write atomically with the footer and `columns` encrypted (AES-GCM) under the current master key."""
    factory, connection = _crypto()
    key_id = current_key_id()
    config = pe.EncryptionConfiguration(
        footer_key=key_id, column_keys={key_id: [c for c in columns if c in df.columns]},
        encryption_algorithm="AES_GCM_V1", plaintext_footer=False, double_wrapping=True,
        cache_lifetime=timedelta(minutes=10),
    )
    properties = factory.file_encryption_properties(connection, config)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(df.to_arrow(), tmp, compression="zstd", encryption_properties=properties)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_encrypted(path: Path, columns: list[str] | None = None) -> pl.DataFrame:
    """Decrypt one file; a missing or wrong key is a clear EncryptionKeyError."""
    factory, connection = _crypto()
    properties = factory.file_decryption_properties(connection, pe.DecryptionConfiguration(cache_lifetime=timedelta(minutes=10)))
    try:
        table = pq.read_table(path, columns=columns, decryption_properties=properties)
    except EncryptionKeyError:
        raise
    except (OSError, pa.ArrowException) as error:
        raise EncryptionKeyError(f"cannot decrypt {path}: {error}") from None
    return pl.from_arrow(table)


def read_any(path: Path) -> pl.DataFrame:
    """A Parquet file, decrypted if it is encrypted (for code that walks every store)."""
    return read_encrypted(path) if is_encrypted(path) else pl.read_parquet(path, hive_partitioning=False)


def scan_any(path: Path) -> pl.LazyFrame:
    return read_encrypted(path).lazy() if is_encrypted(path) else pl.scan_parquet(path, hive_partitioning=False)

