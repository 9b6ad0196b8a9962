"""Finding everything that identifies one customer, before anything is erased.

A customer's identifiers are their customer id, the tokens of their own direct identifiers (the
PII columns of their own rows; `payer_vpa` only on their DEBIT rows, since on a CREDIT row it is
the payer's) and the clear values of those identifiers in the raw exports. Their VPA may appear
only in other customers' rows (as payee) and in a customer master file: a value of the
customer's master record counts when its token occurs in an identifier column of the processed
data. A value that is also another customer's own identifier (a joint account, a shared phone)
is theirs as well and is left alone.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from finrisk.ingest_read import IngestError, file_format, read_source, to_canonical
from finrisk.io import DataLayout, has_parquet, parquet_glob
from finrisk.mapping import FORMAT_BY_SUFFIX, Mapping
from finrisk.privacy import Pseudonymiser
from finrisk.schema import PII_FIELDS

IDENTIFIER_COLUMNS = (*PII_FIELDS, "counterparty")
OWN_COLUMNS = tuple(c for c in PII_FIELDS if c != "payer_vpa")  # always the row's customer's own


class SubjectNotFound(LookupError):
    """No store holds the customer."""


@dataclass
class Subject:
    customer_id: str
    tokens: set[str] = field(default_factory=set)  # pseudonyms of their direct identifiers
    clear: set[str] = field(default_factory=set)  # the same identifiers as they appear in raw exports
    txn_ids: set[str] = field(default_factory=set)
    merchants: set[str] = field(default_factory=set)  # merchants they paid (their graph cities change)
    found_in: dict[str, int] = field(default_factory=dict)  # store -> rows of theirs found

    def as_journal(self) -> dict:
        return {
            "customer_id": self.customer_id, "tokens": sorted(self.tokens), "clear": sorted(self.clear),
            "txn_ids": sorted(self.txn_ids), "merchants": sorted(self.merchants), "found_in": self.found_in,
        }

    @classmethod
    def from_journal(cls, data: dict) -> "Subject":
        return cls(data["customer_id"], set(data["tokens"]), set(data["clear"]), set(data["txn_ids"]),
                   set(data["merchants"]), dict(data["found_in"]))


def own_identifier_values(rows: pl.DataFrame) -> set[str]:
    """Values of the row's customer's own identifiers in canonical rows (tokens or clear text)."""
    values: set[str] = set()
    for column in OWN_COLUMNS:
        if column in rows.columns:
            values.update(rows.get_column(column).drop_nulls().cast(pl.String).to_list())
    if "payer_vpa" in rows.columns and "direction" in rows.columns:
        values.update(rows.filter(pl.col("direction") == "DEBIT").get_column("payer_vpa").drop_nulls().to_list())
    return values


def _canonical_tables(layout: DataLayout) -> list[tuple[str, pl.LazyFrame]]:
    """Stores holding canonical transaction rows (customer_id plus pseudonymised identifiers)."""
    tables = []
    if has_parquet(layout.transactions):
        tables.append(("processed/transactions", pl.scan_parquet(parquet_glob(layout.transactions), hive_partitioning=False)))
    quarantine = layout.root / "quarantine" / "transactions"
    if has_parquet(quarantine):
        tables.append(("quarantine/transactions", pl.scan_parquet(
            parquet_glob(quarantine), hive_partitioning=False, missing_columns="insert", extra_columns="ignore")))
    return tables


def _select_present(scan: pl.LazyFrame, columns: tuple[str, ...]) -> pl.LazyFrame:
    names = scan.collect_schema().names()
    return scan.select(c for c in columns if c in names)


def raw_files(raw: Path) -> list[Path]:
    if not raw.exists():
        return []
    return sorted(p for p in raw.rglob("*") if p.is_file() and p.suffix.lower() in FORMAT_BY_SUFFIX
                  and not p.name.startswith("."))


def transaction_files(raw: Path, mapping: Mapping) -> set[Path]:
    return {p.resolve() for p in raw.glob(mapping.transactions) if p.is_file()} if raw.exists() else set()


def read_raw_text(path: Path, mapping: Mapping | None) -> pl.DataFrame:
    """A raw file with every column as it is stored (CSV as text); CSV options from the mapping."""
    fmt = file_format(path, None)
    if fmt == "csv":
        options = mapping.csv if mapping is not None else None
        return pl.read_csv(path, infer_schema=False, separator=options.delimiter if options else ",",
                           quote_char=options.quote_char if options else '"')
    if fmt == "parquet":
        return pl.read_parquet(path)
    return pl.read_ndjson(path)


def _string_cells_equal(frame: pl.DataFrame, values: set[str]) -> pl.Expr:
    columns = [c for c, t in frame.schema.items() if t == pl.String]
    if not columns or not values:
        return pl.lit(False)
    wanted = pl.Series(sorted(values), dtype=pl.String).implode()
    return pl.any_horizontal(pl.col(c).is_in(wanted).fill_null(False) for c in columns)


def find_subject(
    layout: DataLayout, customer_id: str, key: bytes, mapping: Mapping, raw_dirs: list[Path],
    extra_identifiers: list[str] = (),
) -> Subject:
    subject = Subject(customer_id)
    tokens = Pseudonymiser(key)
    own_tokens: set[str] = set()
    for store, scan in _canonical_tables(layout):
        mine = _select_present(scan, ("txn_id", "customer_id", "direction", "counterparty", "counterparty_type",
                                      *PII_FIELDS)).filter(pl.col("customer_id") == customer_id).collect()
        if mine.height:
            subject.found_in[store] = mine.height
            subject.txn_ids.update(mine.get_column("txn_id").drop_nulls().to_list())
            own_tokens |= own_identifier_values(mine)
            if "counterparty_type" in mine.columns:
                paid = mine.filter((pl.col("counterparty_type") == "MERCHANT") & (pl.col("direction") == "DEBIT"))
                subject.merchants.update(paid.get_column("counterparty").drop_nulls().to_list())

    clear: set[str] = set(v.strip() for v in extra_identifiers if v.strip())
    master_values: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="finrisk-erase-") as workdir:  # transcoded copies die with it
        master_values |= _scan_raw(subject, clear, customer_id, mapping, raw_dirs, Path(workdir))
    master_values.discard(customer_id)

    # Master-record values count when they reach an identifier column of the processed data.
    candidates = tokens.table(pl.Series(sorted(master_values | clear), dtype=pl.String))
    in_data = _values_in_identifier_columns(layout, set(candidates.get_column("token").to_list()))
    for value, token in candidates.iter_rows():
        if value in clear or token in in_data or token in own_tokens:
            clear.add(value)
            own_tokens.add(token)

    shared = _others_own_identifiers(layout, customer_id, own_tokens)
    subject.tokens = own_tokens - shared
    subject.clear = {v for v, t in candidates.iter_rows() if v in clear and t not in shared}
    if not subject.found_in and not subject.tokens:
        raise SubjectNotFound(f"customer {customer_id!r} was not found in {layout.root} (raw, processed or quarantine)")
    return subject


def _scan_raw(subject: Subject, clear: set[str], customer_id: str, mapping: Mapping, raw_dirs: list[Path],
              workdir: Path) -> set[str]:
    """Add the customer's raw rows to `subject` and their own identifiers to `clear`; returns the
    values of their rows in other raw files (a customer master file)."""
    master_values: set[str] = set()
    for raw in raw_dirs:
        own_files = transaction_files(raw, mapping)
        for path in raw_files(raw):
            if path.resolve() in own_files:
                try:
                    source = read_source(path, file_format(path, mapping.format), mapping.csv,
                                         sorted(set(mapping.columns.values())), workdir)
                    rows = to_canonical(source, mapping).filter(pl.col("customer_id") == customer_id)
                except IngestError:
                    continue  # a file ingest cannot read holds nothing that reached the data
                if rows.height:
                    subject.found_in["raw"] = subject.found_in.get("raw", 0) + rows.height
                    subject.txn_ids.update(rows.get_column("txn_id").drop_nulls().to_list())
                    clear |= own_identifier_values(rows)
            else:
                frame = read_raw_text(path, None)
                rows = frame.filter(_string_cells_equal(frame, {customer_id}))
                if rows.height:
                    subject.found_in["raw"] = subject.found_in.get("raw", 0) + rows.height
                    for column, dtype in rows.schema.items():
                        if dtype == pl.String:
                            master_values.update(rows.get_column(column).drop_nulls().to_list())
    return master_values


def _values_in_identifier_columns(layout: DataLayout, values: set[str]) -> set[str]:
    if not values:
        return set()
    wanted = pl.Series(sorted(values), dtype=pl.String).implode()
    found: set[str] = set()
    for _, scan in _canonical_tables(layout):
        present = _select_present(scan, IDENTIFIER_COLUMNS)
        for column in present.collect_schema().names():
            hits = present.select(pl.col(column)).filter(pl.col(column).is_in(wanted)).unique().collect()
            found.update(hits.get_column(column).to_list())
    return found


def _others_own_identifiers(layout: DataLayout, customer_id: str, tokens: set[str]) -> set[str]:
    """Which of `tokens` are also another customer's own identifiers."""
    if not tokens:
        return set()
    wanted = pl.Series(sorted(tokens), dtype=pl.String).implode()
    shared: set[str] = set()
    for _, scan in _canonical_tables(layout):
        others = _select_present(scan, ("customer_id", "direction", *PII_FIELDS)).filter(
            pl.col("customer_id") != customer_id
        )
        names = others.collect_schema().names()
        for column in (c for c in PII_FIELDS if c in names):
            rows = others.filter(pl.col(column).is_in(wanted))
            if column == "payer_vpa":
                rows = rows.filter(pl.col("direction") == "DEBIT")
            shared.update(rows.select(column).unique().collect().get_column(column).to_list())
    return shared
