"""Source files (CSV, Parquet, JSON Lines) -> the canonical transaction and label columns, lazily.

Every source column is read as it is stored and parsed by a Polars expression, per file, so one
file with an odd type does not change how another is read. A value that is present but cannot be
parsed (a timestamp, an amount, a coordinate, a label) becomes null and its source text is kept in
`<field>_unparsed`, which the validation suite rejects: the row is quarantined, never silently
changed.
"""
from __future__ import annotations

import codecs
import glob
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from finrisk.mapping import (
    EPOCH_FORMATS, FORMAT_BY_SUFFIX, UPPERCASE_FIELDS, CsvOptions, FileFormat, LabelSource, Mapping,
)
from finrisk.schema import LABEL_SCHEMA, TRANSACTION_SCHEMA

ROW_ID = "_row"    # position of the row in the batch (all files, in order)
FILE_ID = "_file"  # index of the source file in the batch's file list
TRUNCATED = "_truncated"  # true on the last row of a text file that ends inside it
# Fields whose source text is parsed (not just trimmed); a parse failure keeps the text.
PARSED_FIELDS = ("ts", "amount_paise", "latitude", "longitude")
LABEL_PARSED_FIELDS = ("label", "reported_at")
JSON_SCHEMA_SAMPLE = 1000
_AMOUNT_TEXT = {
    # Two decimals at most (trailing zeros allowed): a third significant decimal is not money.
    "rupees": r"^[+-]?[0-9]+(\.[0-9]{0,2}0*)?$",
    "paise": r"^[+-]?[0-9]+$",
}
_ISO_AWARE = ("%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z")
_ISO_NAIVE = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d")
_LABEL_WORDS = {"1": 1, "0": 0, "TRUE": 1, "FALSE": 0, "YES": 1, "NO": 0, "Y": 1, "N": 0, "FRAUD": 1, "GENUINE": 0}


class IngestError(RuntimeError):
    """Input that cannot be ingested; the message says what and where."""


def unparsed(field: str) -> str:
    return f"{field}_unparsed"


# ----------------------------------------------------------------------------------------------
# Finding and opening files
# ----------------------------------------------------------------------------------------------

def file_format(path: Path, declared: FileFormat | None) -> FileFormat:
    if declared:
        return declared
    try:
        return FORMAT_BY_SUFFIX[path.suffix.lower()]
    except KeyError:
        raise IngestError(
            f"{path}: cannot tell the format from the extension {path.suffix!r}; set `format:` in the mapping "
            f"(csv, parquet or jsonl)"
        ) from None


def find_files(sources: list[Path], pattern: str, declared: FileFormat | None, exclude: set[Path] = frozenset()) -> list[Path]:
    """Files given directly, plus those matching `pattern` under each folder; in order, each once."""
    found: list[Path] = []
    for source in sources:
        source = Path(source)
        if source.is_file():
            found.append(source)
            continue
        if not source.exists():
            raise IngestError(f"source not found: {source}")
        matches = sorted(
            Path(p) for p in glob.glob(str(source / pattern), recursive=True)
            if Path(p).is_file() and not Path(p).name.startswith(".")
        )
        if declared is None:  # a broad glob: only files whose extension names a known format
            matches = [p for p in matches if p.suffix.lower() in FORMAT_BY_SUFFIX]
        matches = [p for p in matches if p.resolve() not in exclude]
        if not matches:
            raise IngestError(f"no files matching {pattern!r} under {source}")
        found.extend(matches)
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def _utf8_copy(path: Path, encoding: str, workdir: Path) -> Path:
    """Polars reads UTF-8 only: other encodings are transcoded once into the run's work folder."""
    target = workdir / f"utf8-{abs(hash(path.resolve()))}-{path.name}"
    try:
        with open(path, "r", encoding=encoding, newline="") as src, open(target, "w", encoding="utf-8", newline="") as dst:
            shutil.copyfileobj(src, dst, 1 << 22)
    except UnicodeDecodeError as exc:
        raise IngestError(f"{path}: not valid {encoding} at byte {exc.start}: {exc.reason}") from exc
    return target


def _first_bad_utf8(path: Path) -> str | None:
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                return f"byte {offset + exc.start}"
            offset += len(chunk)
    return None


def _delimiter_hint(columns: list[str], options: CsvOptions) -> str:
    if len(columns) == 1:
        for candidate in (";", "\t", "|", ","):
            if candidate != options.delimiter and candidate in columns[0]:
                return (f"; the header looks {candidate!r}-delimited but the mapping says {options.delimiter!r}"
                        f" (set csv.delimiter)")
    return ""


def _scan_csv(path: Path, options: CsvOptions, workdir: Path) -> pl.LazyFrame:
    if path.stat().st_size == 0:
        raise IngestError(f"{path}: the file is empty (0 bytes), not even a header row")
    if options.encoding not in ("utf8", "utf8-lossy"):
        path = _utf8_copy(path, options.encoding, workdir)
    return pl.scan_csv(
        path, infer_schema=False, separator=options.delimiter, quote_char=options.quote_char,
        encoding=options.encoding if options.encoding == "utf8-lossy" else "utf8",
    )


def _scan_jsonl(path: Path, needed: list[str]) -> pl.LazyFrame:
    if path.stat().st_size == 0:
        return pl.LazyFrame(schema={c: pl.String for c in needed})
    sampled = pl.scan_ndjson(path, infer_schema_length=JSON_SCHEMA_SAMPLE).collect_schema()
    missing = [c for c in needed if c not in sampled]
    if missing:
        raise IngestError(
            f"{path}: mapped field(s) not found in the first {JSON_SCHEMA_SAMPLE} records: {', '.join(missing)}"
        )
    # Read the mapped keys as text so numbers and strings parse through the same expressions.
    return pl.scan_ndjson(path, schema={c: pl.String for c in needed})


def open_source(path: Path, fmt: FileFormat, options: CsvOptions, needed: list[str], workdir: Path) -> pl.LazyFrame:
    """A lazy scan of one file holding at least the `needed` source columns; clear errors otherwise."""
    try:
        if fmt == "csv":
            scan = _scan_csv(path, options, workdir)
        elif fmt == "parquet":
            scan = pl.scan_parquet(path)
        else:
            scan = _scan_jsonl(path, needed)
        columns = list(scan.collect_schema())
    except IngestError:
        raise
    except (pl.exceptions.PolarsError, OSError, json.JSONDecodeError) as exc:
        if fmt == "jsonl":
            raise explain_read_failure([path], lambda p: fmt, options, exc) from exc
        raise IngestError(f"cannot read {path} as {fmt}: {_first_line(exc)}") from exc
    missing = [c for c in needed if c not in columns]
    if missing:
        hint = _delimiter_hint(columns, options) if fmt == "csv" else ""
        raise IngestError(
            f"{path.name}: mapped column(s) missing from the file: {', '.join(missing)}{hint}"
        )
    return scan


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def explain_read_failure(files: list[Path], fmt_of, options: CsvOptions, exc: BaseException) -> IngestError:
    """A collect over many files failed: find the file (and for text, where) to name in the message."""
    message = _first_line(exc)
    for path in files:
        fmt = fmt_of(path)
        if fmt == "csv" and options.encoding == "utf8" and "utf-8" in message.lower():
            where = _first_bad_utf8(path)
            if where:
                return IngestError(
                    f"{path}: not valid UTF-8 at {where}; set csv.encoding in the mapping (e.g. cp1252 or latin-1)"
                )
        if fmt == "jsonl":
            with open(path, "rb") as fh:
                for number, line in enumerate(fh, start=1):
                    if line.strip():
                        try:
                            json.loads(line)
                        except (json.JSONDecodeError, UnicodeDecodeError) as err:
                            return IngestError(f"{path}: line {number} is not valid JSON ({err}); the file may be truncated")
    where = str(files[0]) if len(files) == 1 else "the source files"
    return IngestError(f"cannot read {where}: {message}")


# ----------------------------------------------------------------------------------------------
# Parsing
# ----------------------------------------------------------------------------------------------

def _as_text(col: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    text = col if dtype == pl.String else col.cast(pl.String)
    return text.str.strip_chars().replace("", None)


def _localise(naive: pl.Expr, tz: str) -> pl.Expr:
    return naive.dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null").dt.convert_time_zone("UTC")


def parse_timestamp(col: pl.Expr, dtype: pl.DataType, tz: str, fmt: str | None) -> pl.Expr:
    """Any timestamp representation -> Datetime(us, UTC); text without a zone is in `tz`."""
    if isinstance(dtype, pl.Datetime):
        col = col.dt.cast_time_unit("us")
        return col.dt.convert_time_zone("UTC") if dtype.time_zone else _localise(col, tz)
    if isinstance(dtype, pl.Date):
        return _localise(col.cast(pl.Datetime("us")), tz)
    if dtype.is_numeric():
        if fmt not in EPOCH_FORMATS:
            raise IngestError("numeric timestamps need timestamp_format: epoch_s, epoch_ms or epoch_us")
        return pl.from_epoch(col.cast(pl.Int64, strict=False), time_unit=EPOCH_FORMATS[fmt]).dt.replace_time_zone("UTC")
    text = col if dtype == pl.String else col.cast(pl.String)
    if fmt in EPOCH_FORMATS:
        number = text.cast(pl.Int64, strict=False)
        return pl.from_epoch(number, time_unit=EPOCH_FORMATS[fmt]).dt.replace_time_zone("UTC")
    if fmt:
        if any(z in fmt for z in ("%z", "%Z", "%:z", "%#z")):
            return text.str.to_datetime(fmt, time_unit="us", time_zone="UTC", strict=False)
        return _localise(text.str.to_datetime(fmt, time_unit="us", strict=False), tz)
    aware = [text.str.to_datetime(f, time_unit="us", time_zone="UTC", strict=False) for f in _ISO_AWARE]
    naive = [_localise(text.str.to_datetime(f, time_unit="us", strict=False), tz) for f in _ISO_NAIVE]
    return pl.coalesce(*aware, *naive)


def parse_amount(col: pl.Expr, dtype: pl.DataType, unit: str) -> pl.Expr:
    """Exact integer paise: decimal text is checked and cast through Decimal, never through float."""
    if dtype.is_integer():
        return col.cast(pl.Int64) * (100 if unit == "rupees" else 1)
    if dtype.is_float():
        scaled = col * (100 if unit == "rupees" else 1)
        whole = scaled.round(0)
        return pl.when(scaled.is_finite() & ((scaled - whole).abs() < 1e-6)).then(whole.cast(pl.Int64, strict=False))
    text = col if dtype == pl.String else _as_text(col, dtype)
    if unit == "paise":
        return pl.when(text.str.contains(_AMOUNT_TEXT["paise"])).then(text.cast(pl.Int64, strict=False))
    paise = (text.cast(pl.Decimal(38, 2), strict=False) * 100).cast(pl.Int64, strict=False)
    return pl.when(text.str.contains(_AMOUNT_TEXT["rupees"])).then(paise)


def parse_label(col: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if dtype == pl.Boolean or dtype.is_integer():
        return col.cast(pl.Int8, strict=False)
    text = (col if dtype == pl.String else _as_text(col, dtype)).str.to_uppercase()
    return text.replace_strict(list(_LABEL_WORDS), list(_LABEL_WORDS.values()), default=None, return_dtype=pl.Int8)


def _field_expr(name: str, src: pl.Expr, dtype: pl.DataType, mapping: Mapping) -> pl.Expr:
    """Parse one source column (already trimmed if text) into a canonical field."""
    if name == "ts":
        return parse_timestamp(src, dtype, mapping.timezone, mapping.timestamp_format)
    if name == "amount_paise":
        return parse_amount(src, dtype, mapping.amount_unit)
    if TRANSACTION_SCHEMA[name] == pl.Float64:
        return src.cast(pl.Float64, strict=False)
    text = src if dtype == pl.String else _as_text(src, dtype)
    if name in UPPERCASE_FIELDS:
        text = text.str.to_uppercase()
    if name in mapping.values:
        text = text.replace(mapping.values[name])
    return text


def _trimmed(frame: pl.DataFrame, sources: dict[str, str]) -> pl.DataFrame:
    """One column per mapped field: text trimmed once (empty -> null), other types as stored."""
    return frame.select(
        (_as_text(pl.col(src), pl.String) if frame.schema[src] == pl.String else pl.col(src)).alias(field)
        for field, src in sources.items()
    )


def to_canonical(frame: pl.DataFrame, mapping: Mapping) -> pl.DataFrame:
    """One source file's rows as canonical columns plus `<field>_unparsed` for the parsed fields."""
    fields = _trimmed(frame, mapping.columns)
    schema = fields.schema
    exprs, kept_text = [], []
    for name, dtype in TRANSACTION_SCHEMA.items():
        if name in mapping.columns:
            src, src_dtype = pl.col(name), schema[name]
        elif name in mapping.static:
            src, src_dtype = pl.lit(str(mapping.static[name]).strip()), pl.String
        else:
            exprs.append(pl.lit(None, dtype).alias(name))
            continue
        exprs.append(_field_expr(name, src, src_dtype, mapping).cast(dtype).alias(name))
        if name in PARSED_FIELDS:
            kept_text.append(_as_text(src, src_dtype).alias(f"__text_{name}") if src_dtype != pl.String
                             else src.alias(f"__text_{name}"))
    parsed = fields.select(*exprs, *kept_text)
    return parsed.select(
        *TRANSACTION_SCHEMA,
        *(
            (pl.when(pl.col(name).is_null()).then(pl.col(f"__text_{name}")) if f"__text_{name}" in parsed.columns
             else pl.lit(None, pl.String)).alias(unparsed(name))
            for name in PARSED_FIELDS
        ),
    )


def ends_mid_row(path: Path) -> bool:
    """A text export that does not end with a line break was cut off inside its last row."""
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        if fh.tell() == 0:
            return False
        fh.seek(-1, 2)
        return fh.read(1) not in (b"\n", b"\r")


def read_source(path: Path, fmt: FileFormat, options: CsvOptions, needed: list[str], workdir: Path) -> pl.DataFrame:
    scan = open_source(path, fmt, options, needed, workdir)
    try:
        return scan.select(needed).collect()
    except pl.exceptions.PolarsError as exc:
        raise explain_read_failure([path], lambda p: fmt, options, exc) from exc


def iter_transactions(files: list[Path], mapping: Mapping, workdir: Path) -> Iterator[pl.DataFrame]:
    """Each file in turn as canonical columns plus `_file` (its index) and `_truncated`."""
    needed = sorted(set(mapping.columns.values()))
    for index, path in enumerate(files):
        fmt = file_format(path, mapping.format)
        raw = read_source(path, fmt, mapping.csv, needed, workdir)
        try:
            part = to_canonical(raw, mapping)
        except IngestError as exc:
            raise IngestError(f"{path.name}: {exc}") from None
        del raw
        cut = fmt == "csv" and part.height > 0 and ends_mid_row(path)
        part = part.with_columns(
            pl.lit(index, pl.UInt32).alias(FILE_ID),
            (pl.when(pl.int_range(pl.len()) == pl.len() - 1).then(True) if cut else pl.lit(None, pl.Boolean))
            .alias(TRUNCATED),
        )
        # One chunk per file: the reader's many small chunks slow every later step.
        yield part.rechunk()


def with_row_ids(parts: list[pl.DataFrame], first_row: int = 0) -> pl.DataFrame:
    """Parts as one frame whose `_row` numbers continue from `first_row`."""
    batch = pl.concat(parts, how="vertical", rechunk=False)
    return batch.with_row_index(ROW_ID, offset=first_row).with_columns(pl.col(ROW_ID).cast(pl.Int64))


def read_transactions(files: list[Path], mapping: Mapping, workdir: Path) -> pl.DataFrame:
    """All files as one canonical batch with `_row` (position in the batch) and `_file` (file index)."""
    return with_row_ids(list(iter_transactions(files, mapping, workdir)))


def read_labels(files: list[Path], source: LabelSource, columns: dict[str, str], tz: str, workdir: Path) -> pl.DataFrame:
    """Labels as canonical columns plus `label_unparsed` / `reported_at_unparsed`, `_row` and `_file`."""
    needed = sorted(set(columns.values()))
    parts = []
    for index, path in enumerate(files):
        raw = read_source(path, file_format(path, source.format), source.csv, needed, workdir)
        fields = _trimmed(raw, columns)
        del raw
        if source.path is None:
            # Labels inside the transaction files: only the rows that carry one are labels.
            fields = fields.filter(pl.any_horizontal(pl.col(c).is_not_null() for c in ("label", "reported_at") if c in columns))
        schema = fields.schema
        exprs, kept_text = [], []
        for name, dtype in LABEL_SCHEMA.items():
            if name in columns:
                src, src_dtype = pl.col(name), schema[name]
            elif name in source.static:
                src, src_dtype = pl.lit(str(source.static[name]).strip()), pl.String
            else:
                exprs.append(pl.lit(None, dtype).alias(name))
                continue
            if name == "reported_at":
                parsed = parse_timestamp(src, src_dtype, source.timezone or tz, source.timestamp_format)
            elif name == "label":
                parsed = parse_label(src, src_dtype)
            else:
                parsed = src if src_dtype == pl.String else _as_text(src, src_dtype)
            exprs.append(parsed.cast(dtype).alias(name))
            if name in LABEL_PARSED_FIELDS:
                kept_text.append((src if src_dtype == pl.String else _as_text(src, src_dtype)).alias(f"__text_{name}"))
        part = fields.select(*exprs, *kept_text)
        part = part.select(
            *LABEL_SCHEMA,
            *(
                (pl.when(pl.col(name).is_null()).then(pl.col(f"__text_{name}")) if f"__text_{name}" in part.columns
                 else pl.lit(None, pl.String)).alias(unparsed(name))
                for name in LABEL_PARSED_FIELDS
            ),
            pl.lit(index, pl.UInt32).alias(FILE_ID),
        )
        parts.append(part)
    batch = pl.concat(parts, how="vertical", rechunk=False)
    return batch.with_row_index(ROW_ID).with_columns(pl.col(ROW_ID).cast(pl.Int64))
