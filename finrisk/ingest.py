"""Raw source files -> canonical, validated, pseudonymised, Hive-partitioned Parquet.

One run: read and parse every file (Polars), drop duplicates (within the batch and against what
is already loaded), stage the batch as Parquet (in groups of files), validate it with the GX
suite on DuckDB, quarantine the failing rows with their reasons, replace direct identifiers by
keyed tokens, publish the rest into date partitions, then the same for fraud labels, then
validate what landed in processed/. See docs/ingest.md. Every row that comes in is accounted for: in = loaded + quarantined + duplicates.
"""
from __future__ import annotations

import os
import shutil
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from expectations.labels import label_suite
from expectations.runner import GxProject, SuiteOutcome
from expectations.transactions import processed_transaction_suite, processed_view_sql, raw_transaction_suite
from finrisk.ingest_read import (
    FILE_ID, ROW_ID, IngestError, find_files, iter_transactions, read_labels, with_row_ids,
)
from finrisk.ingest_write import (
    RunLock, merge_labels, publish_transactions, quarantine_root, sweep_leftovers, write_quarantine,
)
from finrisk import progress
from finrisk.io import DataLayout, has_parquet, parquet_glob
from finrisk.mapping import Mapping
from finrisk.privacy import Pseudonymiser, check_key
from finrisk.rotation_chain import check_data_chain
from finrisk.schema import BUSINESS_TZ, LABEL_SCHEMA, PERSON_COUNTERPARTY_TYPES, PII_FIELDS

__all__ = [
    "AccountingError", "IngestError", "IngestReport", "IngestRun", "ThresholdError",
    "ingest", "ingest_labels", "ingest_transactions", "source_files",
]

# Identifier columns: pseudonymised before anything is written, and their failing values are
# never stored in validation results.
IDENTIFIER_COLUMNS = (*PII_FIELDS, "counterparty")
# Rows read, staged, pseudonymised and published as one group (whole files): bounds memory
# whatever the batch size (FINRISK_INGEST_CHUNK_ROWS trades memory for a little speed).
CHUNK_ROWS = int(os.environ.get("FINRISK_INGEST_CHUNK_ROWS", "2000000"))


class AccountingError(IngestError):
    """Rows in did not equal loaded + quarantined + duplicates."""


class ThresholdError(IngestError):
    """Too large a share of the rows failed validation; nothing was loaded."""

    def __init__(self, message: str, report: "IngestReport"):
        super().__init__(message)
        self.report = report


@dataclass
class IngestReport:
    run_id: str = ""
    files: list[str] = field(default_factory=list)
    rows_in: int = 0
    loaded: int = 0
    quarantined: int = 0
    duplicates: int = 0  # repeated within the batch or already loaded by an earlier run
    duplicates_in_batch: int = 0
    labels_in: int = 0
    labels_loaded: int = 0
    labels_quarantined: int = 0
    labels_duplicates: int = 0
    labels_total: int = 0  # size of the labels table after the run
    dates: list[str] = field(default_factory=list)
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    label_quarantine_reasons: dict[str, int] = field(default_factory=dict)
    validation: dict[str, dict] = field(default_factory=dict)  # suite -> success and failed expectations
    data_docs: str = ""
    seconds: dict[str, float] = field(default_factory=dict)

    def check(self) -> "IngestReport":
        if self.rows_in != self.loaded + self.quarantined + self.duplicates:
            raise AccountingError(
                f"rows in ({self.rows_in}) != loaded ({self.loaded}) + quarantined ({self.quarantined}) "
                f"+ duplicates ({self.duplicates})"
            )
        if self.labels_in != self.labels_loaded + self.labels_quarantined + self.labels_duplicates:
            raise AccountingError(
                f"labels in ({self.labels_in}) != loaded ({self.labels_loaded}) + quarantined "
                f"({self.labels_quarantined}) + duplicates ({self.labels_duplicates})"
            )
        return self

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        text = (f"in {self.rows_in:,} = loaded {self.loaded:,} + quarantined {self.quarantined:,} "
                f"+ duplicates {self.duplicates:,}")
        if self.labels_in:
            text += (f"; labels in {self.labels_in:,} = loaded {self.labels_loaded:,} + quarantined "
                     f"{self.labels_quarantined:,} + duplicates {self.labels_duplicates:,}")
        return text


class IngestRun:
    """One run's shared state: id, work folder (under staging/), clock, GX project, timings."""

    def __init__(self, layout: DataLayout):
        self.layout = layout
        self.now = datetime.now(timezone.utc)
        self.id = f"{self.now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        self.workdir = layout.staging / self.id
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o700)  # the staged batch still holds raw identifiers until pseudonymised
        self.gx = GxProject(layout.root, layout.staging / "validation.duckdb")
        self.seconds: dict[str, float] = {}

    @contextmanager
    def timed(self, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = round(self.seconds.get(stage, 0.0) + time.perf_counter() - start, 3)

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)
        (self.layout.staging / "validation.duckdb").unlink(missing_ok=True)
        (self.layout.staging / "validation.duckdb.wal").unlink(missing_ok=True)


@contextmanager
def open_run(layout: DataLayout):
    """Lock the data directory, clear what a killed run left, and hand out a fresh run."""
    with RunLock(layout.root, IngestError):
        sweep_leftovers(layout)
        run = IngestRun(layout)
        try:
            yield run
        finally:
            run.close()


def source_files(source: Path, pattern: str, fmt=None) -> list[Path]:
    return find_files([Path(source)], pattern, fmt)


def _label_files(sources: list[Path], mapping: Mapping, label_sources: list[Path] | None) -> list[Path]:
    if mapping.labels is None or mapping.labels.path is None:
        return []
    if label_sources:
        return find_files(label_sources, mapping.labels.path, mapping.labels.format)
    found = []
    for source in sources:
        folder = Path(source) if Path(source).is_dir() else Path(source).parent
        try:
            found += find_files([folder], mapping.labels.path, mapping.labels.format)
        except IngestError:
            continue  # labels arrive separately and late: a source without them is normal
    return found


def _reason_counts(bad: pl.DataFrame) -> dict[str, int]:
    if bad.height == 0:
        return {}
    counts = bad.select(pl.col("reasons").list.explode().alias("reason")).group_by("reason").len().sort("reason")
    return dict(counts.iter_rows())


def _file_starts(batch: pl.DataFrame) -> pl.DataFrame:
    """The `_row` of each file's first row, to turn batch positions into row numbers per file."""
    # On two columns only: a group_by on the whole frame rechunked every column first.
    ids = pl.DataFrame([batch.get_column(FILE_ID), batch.get_column(ROW_ID)])
    return ids.group_by(FILE_ID).agg(pl.col(ROW_ID).min().alias("_first"))


def _quarantine_rows(bad: pl.DataFrame, first_row: pl.DataFrame, files: list[Path], run: IngestRun) -> pl.DataFrame:
    """Bad rows with the file they came from and their data row number in it (1 = first after the header)."""
    names = pl.DataFrame({FILE_ID: range(len(files)), "_source": [f.name for f in files]},
                         schema={FILE_ID: pl.UInt32, "_source": pl.String})
    return (
        bad.join(first_row, on=FILE_ID, how="left").join(names, on=FILE_ID, how="left")
        .with_columns(
            (pl.col(ROW_ID) - pl.col("_first") + 1).alias("_line"),
            pl.lit(run.id).alias("run_id"),
            pl.lit(run.now).alias("quarantined_at"),
        )
        .drop("_first", FILE_ID)
        .sort(ROW_ID)
    )


class KnownIds:
    """The txn_ids already in processed/ or kept earlier in this batch, to spot duplicates exactly.

    Ids are compared by a 64-bit hash first (an integer set, eight bytes per stored id); only ids
    whose hash matches are compared as strings, so a hash collision can never drop a new
    transaction. Stored ids are read as strings only once some id of the batch matches one (a
    re-run or an overlapping file).
    """

    SEED = 0x1D5

    def __init__(self, base: Path):
        self.base = base
        self.stored = (
            pl.scan_parquet(parquet_glob(base)).select(pl.col("txn_id").hash(self.SEED)).collect().to_series()
            if has_parquet(base) else pl.Series("txn_id", [], pl.UInt64)
        )
        self._hashes: list[pl.Series] = []
        self._ids: list[pl.Series] = []
        self._stored_ids: pl.DataFrame | None = None

    def add(self, ids: pl.Series) -> None:
        ids = ids.drop_nulls()
        self._hashes.append(ids.hash(self.SEED))
        self._ids.append(ids)

    def _earlier(self, candidates: pl.Series, hashes: pl.Series) -> pl.Series:
        if not self._ids:
            return pl.repeat(False, candidates.len(), eager=True)
        earlier = pl.DataFrame({"h": pl.concat(self._hashes), "id": pl.concat(self._ids)})
        return candidates.is_in(earlier.filter(pl.col("h").is_in(hashes.implode())).get_column("id").implode())

    def _stored(self, candidates: pl.Series, hashes: pl.Series) -> pl.Series:
        if self._stored_ids is None:
            # Read once, on the first possible match (a re-run or an overlapping file).
            self._stored_ids = (
                pl.scan_parquet(parquet_glob(self.base)).select(pl.col("txn_id").hash(self.SEED).alias("h"), "txn_id")
                .collect()
            )
        matching = self._stored_ids.filter(pl.col("h").is_in(hashes.implode())).get_column("txn_id")
        return candidates.is_in(matching.implode())

    def seen(self, ids: pl.Series) -> tuple[pl.Series, pl.Series]:
        """(kept earlier in this batch, already stored) masks for `ids`; nulls are neither."""
        hashes = ids.hash(self.SEED)
        masks = []
        for pool, exact in ((pl.concat(self._hashes) if self._hashes else None, self._earlier), (self.stored, self._stored)):
            mask = pl.repeat(False, ids.len(), eager=True)
            if pool is not None and pool.len():
                maybe = hashes.is_in(pool.implode()) & ids.is_not_null()
                if maybe.any():
                    mask = mask.scatter(maybe.arg_true(), exact(ids.filter(maybe), hashes.filter(maybe)))
            masks.append(mask)
        return masks[0], masks[1]


def first_occurrence(ids: pl.Series) -> pl.Series:
    """True for the first row of each id (and for every null id, which validation rejects).

    Decided on a 64-bit hash, which is several times cheaper than hashing the strings; rows the
    hash calls repeats (real duplicates, or in theory a collision) are re-checked on the strings.
    """
    hashed = ids.hash(0x1D5)
    first = hashed.is_first_distinct()
    if first.all():
        return first
    suspects = hashed.is_in(hashed.filter(~first).unique())
    exact = ids.filter(suspects).is_first_distinct()
    return first.scatter(suspects.arg_true(), exact) | ids.is_null()


def _provided(mapping: Mapping) -> set[str]:
    return set(mapping.columns) | set(mapping.static)


def _person_counterparty() -> pl.Expr:
    return pl.col("counterparty_type").is_in(list(PERSON_COUNTERPARTY_TYPES)) | pl.col("counterparty").str.contains(
        "@", literal=True
    )


def ingest_transactions(
    files: list[Path], mapping: Mapping, layout: DataLayout, key: bytes, threshold: float,
    run: IngestRun | None = None,
) -> IngestReport:
    """Ingest transaction files; raises ThresholdError (after quarantining) when too many rows are bad.

    Files are read and staged in groups of about CHUNK_ROWS rows and published in the same
    groups, so memory stays bounded whatever the size of the batch.
    """
    if run is None:
        with open_run(layout) as own:
            return ingest_transactions(files, mapping, layout, key, threshold, own)
    key = check_key(key)
    check_data_chain(layout, key)  # under the run lock: tokens of two key chains never meet
    report = IngestReport(run_id=run.id, files=[f.name for f in files])
    known = KnownIds(layout.transactions)
    staged: list[Path] = []
    staged_rows = [0]
    starts: list[pl.DataFrame] = []
    pending: list[pl.DataFrame] = []

    def stage_group() -> None:
        batch = with_row_ids(pending, report.rows_in)
        pending.clear()
        report.rows_in += batch.height
        starts.append(_file_starts(batch))
        with run.timed("dedupe"):
            ids = batch.get_column("txn_id")
            first = first_occurrence(ids)
            earlier, stored = known.seen(ids)
            keep = first & ~earlier & ~stored
            report.duplicates_in_batch += int((~first | earlier).sum())
            fresh = batch if keep.all() else batch.filter(keep)
            report.duplicates += batch.height - fresh.height
            staged_rows[0] += fresh.height
            known.add(ids.filter(first & ~earlier))  # later repeats of these are repeats within the batch
        if fresh.height:
            with run.timed("stage"):
                path = run.workdir / f"transactions-{len(staged):04d}.parquet"
                # Uncompressed: written once, read by DuckDB (validation) and by the publish step.
                fresh.write_parquet(path, compression="uncompressed", statistics=False)
                staged.append(path)

    parts = iter_transactions(files, mapping, run.workdir)
    files_read = 0
    while True:
        with run.timed("read"):
            part = next(parts, None)
        if part is None:
            break
        files_read += 1
        progress.report("reading source files", files_read, len(files))
        pending.append(part)
        if sum(p.height for p in pending) >= CHUNK_ROWS:
            stage_group()
    if pending:
        stage_group()
    starts_table = pl.concat(starts) if starts else pl.DataFrame(schema={FILE_ID: pl.UInt32, "_first": pl.Int64})

    failures = pl.DataFrame(schema={ROW_ID: pl.Int64, "reasons": pl.List(pl.String)})
    staged_glob = (run.workdir / "transactions-*.parquet").as_posix()
    if staged:
        run.gx.define_view("transactions_batch", f"SELECT * EXCLUDE ({FILE_ID}) FROM read_parquet('{staged_glob}')")
        with run.timed("validate"):
            outcome = run.gx.validate(
                raw_transaction_suite(_provided(mapping), run.now), "transactions_batch", run.id,
                sensitive_columns=IDENTIFIER_COLUMNS,
            )
        failures = outcome.failures
        report.validation[outcome.suite] = {"success": outcome.success, "failed": outcome.failed()}
    protect = {"counterparty": _person_counterparty()}
    tokens = Pseudonymiser(key)
    try:
        with run.timed("quarantine"):
            bad = pl.DataFrame()
            if failures.height:
                bad = pl.scan_parquet(staged_glob).join(failures.lazy(), on=ROW_ID, how="inner").collect()
                bad = _quarantine_rows(tokens.apply(bad, IDENTIFIER_COLUMNS, where=protect), starts_table, files, run)
            report.quarantine_reasons = _reason_counts(bad) if bad.height else {}
            report.quarantined = bad.height
            # Every row in is staged or a duplicate, and every staged row publishes or quarantines:
            # a failing row that is not found in staging stops the run here, before any write.
            if failures.height != bad.height or staged_rows[0] + report.duplicates != report.rows_in:
                raise AccountingError(
                    f"rows in ({report.rows_in:,}) != staged ({staged_rows[0]:,}) + duplicates ({report.duplicates:,}), "
                    f"or {failures.height:,} failing rows but {bad.height:,} found in staging"
                )
            write_quarantine(bad, quarantine_root(layout, "transactions"), [f.name for f in files])
        # The share of all rows in: a re-run of a file whose few bad rows are all that is new must
        # not fail just because those rows are now the whole validated remainder.
        share = report.quarantined / report.rows_in if report.rows_in else 0.0
        if share > threshold:
            raise ThresholdError(
                f"{report.quarantined:,} of {report.rows_in:,} rows ({share:.1%}) failed validation, above the "
                f"threshold of {threshold:.1%}; nothing was loaded (see {quarantine_root(layout, 'transactions')}). "
                f"Reasons: {report.quarantine_reasons}",
                report,
            )
        dates: set[str] = set()
        for done, path in enumerate(staged, 1):
            with run.timed("pseudonymise"):
                part = pl.read_parquet(path)
                if failures.height:
                    part = part.join(failures, on=ROW_ID, how="anti", maintain_order="left")
                part = tokens.apply(part, IDENTIFIER_COLUMNS, where=protect)
            with run.timed("publish"):
                written, gained = publish_transactions(part, layout)
            dates.update(written)
            report.loaded += gained
            del part
            path.unlink()  # raw identifiers: gone as soon as they are not needed
            progress.report("pseudonymising and writing", done, len(staged))
        report.dates = sorted(dates)
    finally:
        for path in staged:
            path.unlink(missing_ok=True)
    return report.check()


def _labels_view_sql(staged: Path, layout: DataLayout) -> str:
    if has_parquet(layout.transactions):
        known = f"SELECT txn_id, ts FROM read_parquet('{parquet_glob(layout.transactions)}', hive_partitioning = false)"
    else:
        known = "SELECT NULL::VARCHAR AS txn_id, NULL::TIMESTAMPTZ AS ts WHERE false"
    return (
        f"SELECT l.*, t.txn_id IS NOT NULL AS txn_loaded, t.ts AS txn_ts "
        f"FROM read_parquet('{staged.as_posix()}') AS l LEFT JOIN ({known}) AS t ON l.txn_id = t.txn_id"
    )


def ingest_labels(
    files: list[Path], mapping: Mapping, layout: DataLayout, threshold: float, report: IngestReport,
    run: IngestRun | None = None,
) -> IngestReport:
    """Add fraud labels; a label for a transaction that is not loaded is quarantined, not dropped."""
    if run is None:
        with open_run(layout) as own:
            return ingest_labels(files, mapping, layout, threshold, report, own)
    if mapping.labels is None or not files:
        return report
    with run.timed("labels"):
        batch = read_labels(files, mapping.labels, mapping.label_columns(), mapping.timezone, run.workdir)
        report.labels_in = batch.height
        fresh = batch.filter(first_occurrence(batch.get_column("txn_id")))
        if layout.labels.exists():
            fresh = fresh.join(pl.read_parquet(layout.labels, columns=["txn_id"]), on="txn_id", how="anti",
                               maintain_order="left")
        report.labels_duplicates = batch.height - fresh.height
        failures = pl.DataFrame(schema={ROW_ID: pl.Int64, "reasons": pl.List(pl.String)})
        if fresh.height:
            staged = run.workdir / "labels.parquet"
            fresh.drop(FILE_ID).write_parquet(staged)
            run.gx.define_table("labels_batch", _labels_view_sql(staged, layout))
            outcome = run.gx.validate(label_suite(run.now), "labels_batch", run.id)
            failures = outcome.failures
            report.validation[outcome.suite] = {"success": outcome.success, "failed": outcome.failed()}
        bad = _quarantine_rows(fresh.join(failures, on=ROW_ID, how="inner"), _file_starts(batch), files, run)
        report.labels_quarantined = bad.height
        good = fresh.join(failures, on=ROW_ID, how="anti", maintain_order="left")
        report.label_quarantine_reasons = _reason_counts(bad)
        write_quarantine(bad, quarantine_root(layout, "labels"), [f.name for f in files])
        share = report.labels_quarantined / report.labels_in if report.labels_in else 0.0
        if share > threshold:
            raise ThresholdError(
                f"{report.labels_quarantined:,} of {report.labels_in:,} labels ({share:.1%}) failed validation, above "
                f"the threshold of {threshold:.1%}; no labels were added. Reasons: {report.label_quarantine_reasons}",
                report,
            )
        if good.height:
            before, report.labels_total = merge_labels(good.select(list(LABEL_SCHEMA)), layout)
            report.labels_loaded = report.labels_total - before
        else:
            report.labels_total = pl.scan_parquet(layout.labels).select(pl.len()).collect().item() if layout.labels.exists() else 0
    return report.check()


def validate_processed(mapping: Mapping, layout: DataLayout, report: IngestReport, run: IngestRun) -> SuiteOutcome | None:
    """The processed-table suite over the partitions this run wrote; a failure fails the run."""
    if not report.dates:
        return None
    run.gx.define_view(
        "transactions_processed",
        processed_view_sql(parquet_glob(layout.transactions), report.dates, _provided(mapping), BUSINESS_TZ),
    )
    with run.timed("validate_processed"):
        outcome = run.gx.validate(processed_transaction_suite(_provided(mapping)), "transactions_processed", run.id,
                                  row_ids=False, sensitive_columns=IDENTIFIER_COLUMNS)
    report.validation[outcome.suite] = {"success": outcome.success, "failed": outcome.failed()}
    return outcome


def ingest(
    sources: list[Path], mapping: Mapping, layout: DataLayout, key: bytes, threshold: float,
    label_sources: list[Path] | None = None,
) -> IngestReport:
    """Transactions, then labels, then the processed-table checks, then the Data Docs."""
    key = check_key(key)
    with open_run(layout) as run:
        label_files = _label_files(sources, mapping, label_sources)
        files = find_files(sources, mapping.transactions, mapping.format, exclude={p.resolve() for p in label_files})
        if mapping.labels is not None and mapping.labels.path is None:
            label_files = files
        report = IngestReport(run_id=run.id)
        try:
            report = ingest_transactions(files, mapping, layout, key, threshold, run)
            report = ingest_labels(label_files, mapping, layout, threshold, report, run)
            outcome = validate_processed(mapping, layout, report, run)
        except ThresholdError as exc:
            report = exc.report
            raise
        finally:
            with run.timed("data_docs"):
                report.data_docs = str(run.gx.build_docs())
            report.seconds = dict(run.seconds)
        if outcome is not None and not outcome.success:
            failed = "; ".join(f"{f['expectation']} ({f['unexpected_count']})" for f in outcome.failed())
            raise IngestError(f"the processed table failed its checks: {failed}; see {report.data_docs}")
        return report.check()
