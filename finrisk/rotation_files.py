"""Key rotation in files: find every pseudonym under the data directory, rewrite each file once.

A pseudonym is a whole value `tk_` + 32 hex digits (a token, or an erased marker, which has the
same shape) or `subj_` + 32 hex digits (a subject reference in the erasure register). They sit in
string columns of every Parquet table the erasure enumerates (processed and quarantine
transactions, features, twins, peer groups, scores, alerts, casework, the consent and erasure
registers) and inside text files (the scoring service's journal, reports). Only values in the
rotation's list of old pseudonyms are replaced, so rewriting a file a second time changes nothing.
"""
from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import polars as pl

from finrisk.erasure_files import TEXT_SUFFIXES, parquet_files
from finrisk.io import write_parquet_atomic
from finrisk.privacy import TOKEN_HEX_CHARS, TOKEN_PATTERN, TOKEN_PREFIX, pseudonymise_values
from finrisk.rotation_chain import ROTATION_DIR
from finrisk.subjects import SUBJECT_PREFIX

PSEUDONYM = rf"^(?:{TOKEN_PREFIX}|{SUBJECT_PREFIX})[0-9a-f]{{{TOKEN_HEX_CHARS}}}$"
TOKEN_IN_TEXT = re.compile(rb"\b" + TOKEN_PATTERN.encode() + rb"\b")
# raw/: source values in clear (ingest pseudonymises them under the chain); staging/: an ingest's
# work in flight (the run lock keeps it empty); rotation/: this rotation's own journal.
SKIPPED_DIRS = {"raw", "staging", ROTATION_DIR}
# The encrypted side table (ip, latitude, longitude by txn_id) holds no pseudonym.
SKIPPED_TABLES = {("processed", "sensitive")}
# Text kept as evidence, never rewritten: erasure certificates name the customer by the subject
# reference of their time, like the append-only audit log.
SKIPPED_TEXT_DIRS = {"erasure"}
OLD_SCHEMA = {"old": pl.String}


def _skipped(root: Path, path: Path) -> bool:
    parts = path.relative_to(root).parts
    return parts[0] in SKIPPED_DIRS or tuple(parts[:2]) in SKIPPED_TABLES


def rotation_parquet_files(root: Path) -> list[Path]:
    return [p for p in parquet_files(root, SKIPPED_DIRS) if not _skipped(root, p)]


def rotation_text_files(root: Path, audit_log: Path | None) -> list[Path]:
    keep_out = Path(audit_log).resolve() if audit_log is not None else None
    if not root.exists():
        return []
    return sorted(
        p for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES and not _skipped(root, p)
        and p.relative_to(root).parts[0] not in SKIPPED_TEXT_DIRS
        and not any(part.startswith(".") for part in p.relative_to(root).parts) and p.resolve() != keep_out
    )


def _string_columns(schema: pl.Schema) -> tuple[list[str], list[str]]:
    plain = [c for c, t in schema.items() if t == pl.String]
    lists = [c for c, t in schema.items() if t == pl.List(pl.String)]
    return plain, lists


def parquet_pseudonyms(path: Path) -> pl.Series:
    """The distinct pseudonyms in one Parquet file's string (and list-of-string) columns."""
    scan = pl.scan_parquet(path, hive_partitioning=False)
    plain, lists = _string_columns(scan.collect_schema())
    parts = [scan.select(pl.col(c).alias("old")) for c in plain]
    parts += [scan.select(pl.col(c).explode().alias("old")) for c in lists]
    if not parts:
        return pl.Series("old", [], pl.String)
    values = pl.concat(parts).filter(pl.col("old").str.contains(PSEUDONYM)).unique()
    return values.collect().get_column("old")


def text_tokens(path: Path) -> pl.Series:
    """The distinct tokens inside one text file (anywhere in its bytes)."""
    found = set(TOKEN_IN_TEXT.findall(path.read_bytes()))
    return pl.Series("old", sorted(t.decode() for t in found), pl.String)


def wrapped(old: pl.Series, new_key: bytes) -> pl.DataFrame:
    """old -> new for a list of old pseudonyms: `tk_` + HMAC(new_key, old token); a subject
    reference is wrapped as the token of the same digits, so it stays the chain's reference."""
    frame = old.unique().sort().rename("old").to_frame().with_columns(
        pl.col("old").str.starts_with(SUBJECT_PREFIX).alias("is_ref"),
        (TOKEN_PREFIX + pl.col("old").str.replace(r"^[a-z]+_", "")).alias("as_token"),
    )
    new = pseudonymise_values(frame.get_column("as_token"), new_key).alias("new")
    return frame.with_columns(new).select(
        "old",
        pl.when(pl.col("is_ref")).then(SUBJECT_PREFIX + pl.col("new").str.strip_prefix(TOKEN_PREFIX))
        .otherwise(pl.col("new")).alias("new"),
    )


def _pairs(values: pl.Series, mapping: pl.DataFrame) -> pl.DataFrame:
    return values.drop_nulls().unique().rename("old").to_frame().join(mapping, on="old", how="inner")


def rewrite_parquet(path: Path, mapping: pl.DataFrame) -> int:
    """Replace the old pseudonyms of one Parquet file; returns how many values changed (0: not written)."""
    frame = pl.read_parquet(path, hive_partitioning=False)
    plain, lists = _string_columns(frame.schema)
    changes, replaced = [], 0
    for column in plain + lists:
        values = frame.get_column(column)
        values = values.explode() if column in lists else values
        pairs = _pairs(values, mapping)
        if pairs.height == 0:
            continue
        old, new = pairs.get_column("old"), pairs.get_column("new")
        replaced += int(values.is_in(old.implode()).sum())
        if column in lists:
            changes.append(pl.col(column).list.eval(pl.element().replace(old, new)))
        else:
            changes.append(pl.col(column).replace(old, new))
    if changes:
        write_parquet_atomic(frame.with_columns(changes), path)
    return replaced


def rewrite_text(path: Path, mapping: pl.DataFrame) -> int:
    """Replace the old tokens inside one text file (byte for byte otherwise); returns how many changed."""
    data = path.read_bytes()
    found = pl.Series("old", [t.decode() for t in TOKEN_IN_TEXT.findall(data)], pl.String)
    pairs = _pairs(found, mapping)
    if pairs.height == 0:
        return 0
    old, new = pairs.get_column("old"), pairs.get_column("new")
    rewritten = pl.Series([data.decode("utf-8")]).str.replace_many(old.implode(), new.implode()).item()  # Aho-Corasick: one pass
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_bytes(rewritten.encode("utf-8"))
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return int(found.is_in(old.implode()).sum())


def remaining(paths: list[Path], old: pl.Series) -> dict[str, int]:
    """Files that still hold old pseudonyms, with how many: Parquet by whole value, every other
    file (text, the MLflow database, artifacts) by the tokens in its bytes."""
    wanted = old.implode()
    found = {}
    for path in paths:
        if path.suffix == ".parquet":
            scan = pl.scan_parquet(path, hive_partitioning=False)
            plain, lists = _string_columns(scan.collect_schema())
            checks = [pl.col(c).is_in(wanted).sum() for c in plain]
            checks += [pl.col(c).explode().is_in(wanted).sum() for c in lists]
            count = int(sum(scan.select(checks).collect().row(0))) if checks else 0
        else:
            found_tokens = pl.Series([t.decode() for t in TOKEN_IN_TEXT.findall(path.read_bytes())], dtype=pl.String)
            count = int(found_tokens.is_in(wanted).sum())
        if count:
            found[str(path)] = count
    return found


def files_under(roots: list[Path]) -> list[Path]:
    """Every file under the given folders (or the files themselves), except temporary ones."""
    out = []
    for root in roots:
        root = Path(root)
        if root.is_file():
            out.append(root)
        elif root.is_dir():
            out += sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".tmp"))
    return out

