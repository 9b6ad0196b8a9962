"""Erasure in files: every Parquet table under the data directory, the raw exports, derived
documents (reports, validation results), and the scan that proves nothing is left.

Rows of the customer (their customer_id, or one of their transactions) are deleted. Their
identifiers in other customers' rows (a payee VPA, the payer VPA on a credit) are replaced by an
erased marker: a random-looking token derived from a per-erasure secret that is destroyed when
the erasure completes, so the marker cannot be traced back, while one erased payee stays one
counterparty in everyone else's history. Each file is rewritten atomically, and only if it held
something of the customer.
"""
from __future__ import annotations

import hashlib
import hmac
import io
import os
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from finrisk.encryption import is_encrypted, read_any, scan_any, write_encrypted
from finrisk.erasure_subject import IDENTIFIER_COLUMNS, Subject, read_raw_text, transaction_files
from finrisk.io import write_parquet_atomic
from finrisk.mapping import FORMAT_BY_SUFFIX, Mapping
from finrisk.privacy import TOKEN_HEX_CHARS, TOKEN_PREFIX
from finrisk.schema import SENSITIVE_FIELDS

# Derived documents that are rebuilt by the next run: deleted when they mention the customer.
DERIVED_DOCUMENT_DIRS = ("reports", "gx")
TEXT_SUFFIXES = {".json", ".html", ".htm", ".csv", ".tsv", ".txt", ".log", ".md", ".yaml", ".yml", ".svg", ".jsonl"}
SKIPPED_DIRS = {"staging", "erasure"}  # in-flight ingest work; the erasure's own records


def token_marker(token: str, salt: bytes) -> str:
    """The erased marker replacing a token: token-shaped (the processed suite still holds)."""
    return TOKEN_PREFIX + hmac.new(salt, b"token:" + token.encode(), hashlib.sha256).hexdigest()[:TOKEN_HEX_CHARS]


def raw_marker(token: str, salt: bytes) -> str:
    """The erased marker replacing a clear identifier in a raw export: VPA-shaped, so the raw
    suite still accepts the row when the export is ingested again."""
    return "erased." + hmac.new(salt, b"token:" + token.encode(), hashlib.sha256).hexdigest()[:TOKEN_HEX_CHARS] + "@erased"


@dataclass
class StoreResult:
    store: str
    files_rewritten: int = 0
    files_deleted: int = 0
    rows_deleted: int = 0
    values_anonymised: int = 0

    def add(self, other: "StoreResult") -> None:
        self.files_rewritten += other.files_rewritten
        self.files_deleted += other.files_deleted
        self.rows_deleted += other.rows_deleted
        self.values_anonymised += other.values_anonymised

    def as_dict(self) -> dict:
        return asdict(self)


def store_name(root: Path, path: Path) -> str:
    """processed/transactions, features/graph, quarantine/labels, scores, ...: the table a file belongs to."""
    parts = [p for p in path.relative_to(root).parts[:-1] if "=" not in p]
    return "/".join(parts[:2]) or path.name


def _series(values: set[str]) -> pl.Series:
    return pl.Series(sorted(values), dtype=pl.String)


def _row_mask(schema: pl.Schema, subject: Subject) -> pl.Expr:
    mask = pl.lit(False)
    if schema.get("customer_id") == pl.String:
        mask = mask | (pl.col("customer_id") == subject.customer_id).fill_null(False)
    if schema.get("txn_id") == pl.String and subject.txn_ids:
        mask = mask | pl.col("txn_id").is_in(_series(subject.txn_ids).implode()).fill_null(False)
    return mask


def _token_columns(schema: pl.Schema) -> list[str]:
    return [c for c in IDENTIFIER_COLUMNS if schema.get(c) == pl.String]


def scrub_table(frame: pl.DataFrame, subject: Subject, markers: dict[str, str]) -> tuple[pl.DataFrame, int, int, set[str]]:
    """(rows kept, rows deleted, values replaced, customers whose rows changed) for one table."""
    kept = frame.filter(~_row_mask(frame.schema, subject))
    deleted = frame.height - kept.height
    replaced, touched = 0, set()
    old, new = list(markers), list(markers.values())
    wanted = pl.Series(old, dtype=pl.String).implode()
    for column in _token_columns(kept.schema):
        hit = kept.get_column(column).is_in(wanted).fill_null(False)
        count = int(hit.sum())
        if count:
            replaced += count
            if "customer_id" in kept.columns:
                touched.update(kept.filter(hit).get_column("customer_id").drop_nulls().to_list())
            kept = kept.with_columns(pl.col(column).replace(old, new))
    return kept, deleted, replaced, touched


def _holds_subject(path: Path, subject: Subject, markers: dict[str, str]) -> bool:
    scan = scan_any(path)
    schema = scan.collect_schema()
    wanted = pl.Series(list(markers), dtype=pl.String).implode()
    checks = [_row_mask(schema, subject)] + [pl.col(c).is_in(wanted).fill_null(False) for c in _token_columns(schema)]
    return bool(scan.select(pl.any_horizontal(checks).any()).collect().item())


def parquet_files(root: Path, skip: set[str]) -> list[Path]:
    return sorted(
        p for p in root.rglob("*.parquet")
        if not any(part.startswith(".") for part in p.relative_to(root).parts)
        and p.relative_to(root).parts[0] not in skip
    )


def scrub_parquet_tree(root: Path, subject: Subject, markers: dict[str, str]) -> tuple[dict[str, StoreResult], set[str]]:
    """Every Parquet table under the data directory except raw/ (source columns, see scrub_raw)."""
    results: dict[str, StoreResult] = {}
    touched: set[str] = set()
    for path in parquet_files(root, SKIPPED_DIRS | {"raw"}):
        if not _holds_subject(path, subject, markers):
            continue
        frame = read_any(path)
        kept, deleted, replaced, customers = scrub_table(frame, subject, markers)
        result = results.setdefault(store_name(root, path), StoreResult(store_name(root, path)))
        result.rows_deleted += deleted
        result.values_anonymised += replaced
        if store_name(root, path) == "processed/transactions":
            touched |= customers
        # A table that held only this customer's rows goes; a twin keeps every table of its snapshot.
        if kept.height == 0 and "twins" not in path.parts:
            path.unlink()
            result.files_deleted += 1
        elif is_encrypted(path):
            write_encrypted(kept, path, list(SENSITIVE_FIELDS))
            result.files_rewritten += 1
        else:
            write_parquet_atomic(kept, path)
            result.files_rewritten += 1
    return results, touched


def _write_raw(frame: pl.DataFrame, path: Path, csv_options, encoding: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        fmt = FORMAT_BY_SUFFIX[path.suffix.lower()]
        if fmt == "parquet":
            frame.write_parquet(tmp)
        elif fmt == "jsonl":
            frame.write_ndjson(tmp)
        else:
            text = frame.write_csv(separator=csv_options.delimiter if csv_options else ",",
                                   quote_char=(csv_options.quote_char or '"') if csv_options else '"')
            tmp.write_bytes(text.encode(encoding if encoding not in ("utf8", "utf8-lossy") else "utf-8"))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read_raw(path: Path, mapping: Mapping | None) -> pl.DataFrame:
    encoding = mapping.csv.encoding if mapping is not None else "utf8"
    if FORMAT_BY_SUFFIX[path.suffix.lower()] == "csv" and encoding not in ("utf8", "utf8-lossy"):
        text = path.read_text(encoding=encoding)
        return pl.read_csv(io.StringIO(text), infer_schema=False, separator=mapping.csv.delimiter,
                           quote_char=mapping.csv.quote_char)
    return read_raw_text(path, mapping)


def scrub_raw(raw_dirs: list[Path], subject: Subject, clear_markers: dict[str, str], mapping: Mapping) -> StoreResult:
    """Raw exports: the customer's rows (any cell equal to their id or one of their transaction
    ids) deleted; their identifiers in other rows replaced by raw markers."""
    result = StoreResult("raw")
    ids = {subject.customer_id} | subject.txn_ids
    old, new = list(clear_markers), list(clear_markers.values())
    for raw in raw_dirs:
        own = transaction_files(raw, mapping)
        for path in sorted(p for p in raw.rglob("*") if p.is_file() and p.suffix.lower() in FORMAT_BY_SUFFIX
                           and not p.name.startswith(".")):
            is_transactions = path.resolve() in own
            frame = _read_raw(path, mapping if is_transactions else None)
            strings = [c for c, t in frame.schema.items() if t == pl.String]
            if not strings:
                continue
            drop = pl.any_horizontal(pl.col(c).is_in(_series(ids).implode()).fill_null(False) for c in strings)
            kept = frame.filter(~drop)
            replaced = 0
            if old:
                wanted = pl.Series(old, dtype=pl.String).implode()
                counts = kept.select(pl.col(c).is_in(wanted).fill_null(False).sum() for c in strings).row(0)
                replaced = int(sum(counts))
                if replaced:
                    kept = kept.with_columns(pl.col(c).replace(old, new) for c, n in zip(strings, counts) if n)
            if kept.height == frame.height and not replaced:
                continue
            result.rows_deleted += frame.height - kept.height
            result.values_anonymised += replaced
            _write_raw(kept, path, mapping.csv if is_transactions else None,
                       mapping.csv.encoding if is_transactions else "utf8")
            result.files_rewritten += 1
    return result


def _text_files(root: Path, skip: set[str]) -> list[Path]:
    if not root.exists():
        return []
    return sorted(
        p for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES
        and p.relative_to(root).parts[0] not in skip and not p.name.startswith(".pending")
    )


def _needles(subject: Subject) -> list[bytes]:
    return [v.encode("utf-8") for v in sorted({subject.customer_id} | subject.tokens | subject.clear) if v]


def _mentions(path: Path, needles: list[bytes]) -> int:
    data = path.read_bytes()
    return sum(data.count(n) for n in needles)


def sweep_documents(root: Path, subject: Subject) -> StoreResult:
    """Derived documents (HTML reports, validation results) that mention the customer are deleted;
    the next run or `finrisk report` writes them again without the customer."""
    result = StoreResult("reports and validation results")
    needles = _needles(subject)
    for path in _text_files(root, SKIPPED_DIRS | {"raw"}):
        if path.relative_to(root).parts[0] in DERIVED_DOCUMENT_DIRS and _mentions(path, needles):
            path.unlink()
            result.files_deleted += 1
    return result


@dataclass
class Residual:
    path: str
    occurrences: int


def _parquet_mentions(path: Path, values: pl.Series) -> int:
    scan = scan_any(path)
    schema = scan.collect_schema()
    wanted = values.implode()
    checks = []
    for column, dtype in schema.items():
        if dtype == pl.String:
            checks.append(pl.col(column).is_in(wanted).fill_null(False).sum())
        elif dtype == pl.List(pl.String):
            checks.append(pl.col(column).list.eval(pl.element().is_in(wanted)).list.sum().fill_null(0).sum())
    if not checks:
        return 0
    return int(sum(scan.select(checks).collect().row(0)))


def find_traces(roots: list[Path], subject: Subject, skip: set[str] = frozenset()) -> list[Residual]:
    """Every file under the roots that still holds one of the customer's identifiers: Parquet
    string columns by exact value, every other file by its bytes."""
    needles = _needles(subject)
    values = pl.Series([n.decode() for n in needles], dtype=pl.String)
    found = []
    for root in roots:
        if not root.exists():
            continue
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            relative = path.relative_to(root) if path != root else Path(path.name)
            if relative.parts[0] in skip or path.name.startswith(".pending") or path.name.endswith(".tmp"):
                continue
            count = _parquet_mentions(path, values) if path.suffix == ".parquet" else _mentions(path, needles)
            if count:
                found.append(Residual(str(path), count))
    return found


def scrub_journals(root: Path, subject: Subject, markers: dict[str, str]) -> StoreResult:
    """The scoring service's journal (online/journal/date=D.jsonl, one transaction per line) is a
    table too: the customer's lines deleted, their tokens in other lines replaced; the service
    notices the new file and the erasure register and reloads its state from them."""
    result = StoreResult("online/journal")
    folder = root / "online" / "journal"
    for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        data = path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]  # a torn last line was never acknowledged
        if not complete.strip():
            continue
        frame = pl.read_ndjson(io.BytesIO(complete), infer_schema_length=None)
        kept, deleted, replaced, _ = scrub_table(frame, subject, markers)
        if not deleted and not replaced:
            continue
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            tmp.write_bytes(kept.write_ndjson().encode() if kept.height else b"")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        result.rows_deleted += deleted
        result.values_anonymised += replaced
        result.files_rewritten += 1
    return result
