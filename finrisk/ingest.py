"""Raw source files -> canonical, pseudonymised, validated, Hive-partitioned Parquet.

Every row that comes in is accounted for: in = loaded + quarantined + duplicates.
"""
from __future__ import annotations

import glob
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import polars as pl

from expectations.transactions import ROW_ID, validate_batch
from finrisk.io import DataLayout, has_parquet, parquet_glob, write_parquet_atomic
from finrisk.mapping import Mapping
from finrisk.privacy import pseudonymise
from finrisk.schema import BUSINESS_TZ, LABEL_SCHEMA, PII_FIELDS, TRANSACTION_SCHEMA


class IngestError(RuntimeError):
    """Input that cannot be ingested; the message says what and where."""


class AccountingError(IngestError):
    """Rows in did not equal loaded + quarantined + duplicates."""


@dataclass
class IngestReport:
    rows_in: int = 0
    loaded: int = 0
    quarantined: int = 0
    duplicates: int = 0
    labels_in: int = 0
    labels_loaded: int = 0
    dates: list[str] = field(default_factory=list)
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def check(self) -> "IngestReport":
        if self.rows_in != self.loaded + self.quarantined + self.duplicates:
            raise AccountingError(
                f"rows in ({self.rows_in}) != loaded ({self.loaded}) + quarantined ({self.quarantined}) "
                f"+ duplicates ({self.duplicates})"
            )
        return self

    def as_dict(self) -> dict:
        return asdict(self)


def source_files(source: Path, pattern: str) -> list[Path]:
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.exists():
        raise IngestError(f"source not found: {source}")
    files = sorted(Path(p) for p in glob.glob(str(source / pattern), recursive=True))
    if not files:
        raise IngestError(f"no files matching {pattern!r} under {source}")
    return files


def read_raw(files: list[Path], mapping: Mapping) -> pl.DataFrame:
    """All source columns as text, plus the source file name; parsing happens in to_canonical."""
    frames = []
    for path in files:
        try:
            if mapping.format == "csv":
                frame = pl.read_csv(path, infer_schema=False, encoding="utf8")
            elif mapping.format == "parquet":
                frame = pl.read_parquet(path).cast(pl.String)
            else:
                frame = pl.read_ndjson(path, infer_schema_length=None).cast(pl.String)
        except (pl.exceptions.ComputeError, OSError, UnicodeDecodeError) as exc:
            raise IngestError(f"cannot read {path}: {exc}") from exc
        missing = sorted(set(mapping.columns.values()) - set(frame.columns))
        if missing:
            raise IngestError(f"{path.name}: mapped column(s) missing from the file: {', '.join(missing)}")
        frames.append(frame.with_columns(pl.lit(path.name).alias("_source")))
    return pl.concat(frames, how="diagonal_relaxed")


def _parse_ts(col: pl.Expr, mapping: Mapping) -> pl.Expr:
    if mapping.timestamp_format:
        naive = col.str.strptime(pl.Datetime("us"), mapping.timestamp_format, strict=False)
        local = naive.dt.replace_time_zone(mapping.timezone, ambiguous="earliest", non_existent="null")
    else:
        local = col.str.to_datetime(time_unit="us", time_zone="UTC", strict=False)
    return local.dt.convert_time_zone("UTC")


def _parse_amount(col: pl.Expr, mapping: Mapping) -> pl.Expr:
    if mapping.amount_unit == "paise":
        return col.str.strip_chars().cast(pl.Int64, strict=False)
    # Exact: decimal text -> Decimal -> paise. Never through float.
    return (col.str.strip_chars().cast(pl.Decimal(22, 2), strict=False) * 100).cast(pl.Int64, strict=False)


def to_canonical(raw: pl.DataFrame, mapping: Mapping, key: bytes) -> pl.DataFrame:
    """Rename, parse and pseudonymise; unmapped fields are null. Keeps `_row` and `_source`."""
    exprs = []
    for name, dtype in TRANSACTION_SCHEMA.items():
        src = mapping.columns.get(name)
        if src is not None:
            col = pl.col(src)
            if name == "ts":
                expr = _parse_ts(col, mapping)
            elif name == "amount_paise":
                expr = _parse_amount(col, mapping)
            elif dtype == pl.String:
                expr = col.str.strip_chars().replace("", None)
            else:
                expr = col.cast(dtype, strict=False)
        elif name in mapping.static:
            expr = pl.lit(mapping.static[name])
        else:
            expr = pl.lit(None)
        exprs.append(expr.cast(dtype).alias(name))
    canonical = raw.with_row_index(ROW_ID).select(
        pl.col(ROW_ID).cast(pl.Int64), *exprs, pl.col("_source")
    )
    canonical = canonical.with_columns(pl.col("channel", "direction", "status").str.to_uppercase())
    pii = list(PII_FIELDS)
    # Person-to-person counterparties are VPAs: direct identifiers too.
    canonical = pseudonymise(canonical, pii, key)
    p2p = canonical.filter(pl.col("counterparty_type") == "P2P").select(ROW_ID, "counterparty")
    if p2p.height:
        p2p = pseudonymise(p2p, ["counterparty"], key)
        canonical = canonical.update(p2p, on=ROW_ID)
    return canonical


def existing_txn_ids(layout: DataLayout) -> pl.DataFrame:
    if not has_parquet(layout.transactions):
        return pl.DataFrame(schema={"txn_id": pl.String})
    return pl.scan_parquet(parquet_glob(layout.transactions)).select("txn_id").collect()


def _business_date(ts: pl.Expr) -> pl.Expr:
    return ts.dt.convert_time_zone(BUSINESS_TZ).dt.date().cast(pl.String)


def publish(good: pl.DataFrame, layout: DataLayout) -> list[str]:
    """Merge rows into their date partitions; each partition file is replaced atomically."""
    good = good.with_columns(_business_date(pl.col("ts")).alias("date"))
    dates = sorted(good.get_column("date").unique().to_list())
    for day, part in good.partition_by("date", as_dict=True, include_key=False).items():
        day = day[0]
        target = layout.partition(layout.transactions, day)
        if target.exists():
            part = pl.concat([pl.read_parquet(target), part], how="vertical_relaxed")
        part = part.unique("txn_id", keep="first").sort("ts", "txn_id")
        write_parquet_atomic(part, target)
    return dates


def quarantine(bad: pl.DataFrame, layout: DataLayout) -> None:
    """Failing rows with their reasons, one file per source file (a re-run replaces it)."""
    for (source,), part in bad.partition_by("_source", as_dict=True).items():
        write_parquet_atomic(part, layout.quarantine / f"source={source}" / "part-0.parquet")


def ingest_transactions(
    files: list[Path], mapping: Mapping, layout: DataLayout, key: bytes, threshold: float
) -> IngestReport:
    report = IngestReport(files=[f.name for f in files])
    raw = read_raw(files, mapping)
    report.rows_in = raw.height
    if raw.height == 0:
        return report.check()
    canonical = to_canonical(raw, mapping, key)

    # Duplicates: repeated within this batch, or already loaded by an earlier run.
    seen = existing_txn_ids(layout)
    first = canonical.filter(pl.col("txn_id").is_null() | pl.col("txn_id").is_first_distinct())
    fresh = first.join(seen, on="txn_id", how="anti", nulls_equal=False)
    report.duplicates = canonical.height - fresh.height

    run_dir = layout.staging / uuid.uuid4().hex
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        staged = run_dir / "batch.parquet"
        fresh.write_parquet(staged)
        outcome = validate_batch(staged, run_dir)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)

    bad = fresh.join(outcome.failures, on=ROW_ID, how="inner")
    good = fresh.join(outcome.failures, on=ROW_ID, how="anti")
    report.quarantined = bad.height
    report.loaded = good.height
    report.quarantine_reasons = {
        r["reasons"]: r["len"]
        for r in bad.select(pl.col("reasons").list.explode()).group_by("reasons").len().iter_rows(named=True)
    }
    report.check()
    share = bad.height / report.rows_in
    if bad.height:
        quarantine(bad, layout)
    if share > threshold:
        raise IngestError(
            f"{bad.height} of {report.rows_in} rows ({share:.1%}) failed validation, above the "
            f"threshold of {threshold:.1%}; nothing was loaded. Reasons: {report.quarantine_reasons}"
        )
    report.dates = publish(good.drop(ROW_ID, "_source"), layout)
    return report


def ingest_labels(source: Path, mapping: Mapping, layout: DataLayout) -> tuple[int, int]:
    """Fraud labels (arriving late) merged into one table; returns (rows in, rows now stored)."""
    if mapping.labels is None:
        return 0, 0
    path = Path(source) / mapping.labels.path if Path(source).is_dir() else Path(source).parent / mapping.labels.path
    if not path.exists():
        return 0, 0
    raw = pl.read_csv(path, infer_schema=False)
    cols = mapping.labels.columns
    labels = raw.select(
        pl.col(cols["txn_id"]).alias("txn_id"),
        pl.col(cols.get("label", cols["txn_id"])).cast(pl.Int8, strict=False).fill_null(1).alias("label")
        if "label" in cols else pl.lit(1, pl.Int8).alias("label"),
        (pl.col(cols["fraud_type"]) if "fraud_type" in cols else pl.lit(None, pl.String)).alias("fraud_type"),
        pl.col(cols["reported_at"]).str.to_datetime(time_unit="us", time_zone="UTC", strict=False).alias("reported_at"),
    ).cast(LABEL_SCHEMA)
    if layout.labels.exists():
        labels = pl.concat([pl.read_parquet(layout.labels), labels])
    labels = labels.filter(pl.col("txn_id").is_not_null()).unique("txn_id", keep="first").sort("txn_id")
    write_parquet_atomic(labels, layout.labels)
    return raw.height, labels.height
