"""GX suites for transactions: the incoming (canonical, not yet pseudonymised) batch and the
processed table after publishing.

Every expectation carries `meta.reason`, the short text a quarantined row lists for it.
Expectations for fields the source does not provide are left out, so a source without, say,
an IFSC column is not quarantined wholesale; the suite records which fields it checked.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import great_expectations as gx
import great_expectations.expectations as gxe
import polars as pl
from great_expectations.expectations.row_conditions import Column

from finrisk.privacy import TOKEN_HEX_CHARS, TOKEN_PREFIX
from finrisk.schema import CHANNELS, DIRECTIONS, PERSON_COUNTERPARTY_TYPES, PII_FIELDS, PROCESSED_COLUMNS, STATUSES, TRANSACTION_SCHEMA

ROW_ID = "_row"
TRUNCATED = "_truncated"
RAW_SUITE = "transactions_raw"
PROCESSED_SUITE = "transactions_processed"
MAX_AMOUNT_PAISE = 10**12  # INR 1,000 crore: above this a single payment is not plausible
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
CLOCK_SKEW = timedelta(minutes=15)  # a timestamp later than now + this is in the future
PARSED_FIELDS = ("ts", "amount_paise", "latitude", "longitude")
ALWAYS_REQUIRED = ("txn_id", "ts", "customer_id", "amount_paise")
REQUIRED_WHEN_GIVEN = ("channel", "direction")

# Formats (anchored regexes, evaluated by DuckDB through GX).
FORMATS = {
    "mcc": (r"^[0-9]{4}$", "4 digits"),
    "ifsc": (r"^[A-Z]{4}0[A-Z0-9]{6}$", "IFSC format"),
    "pincode": (r"^[1-9][0-9]{5}$", "6-digit PIN code"),
    "payer_vpa": (r"^[A-Za-z0-9._-]{1,256}@[A-Za-z][A-Za-z0-9]{1,63}$", "VPA format"),
    "email": (r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$", "e-mail format"),
    "pan": (r"^[A-Z]{5}[0-9]{4}[A-Z]$", "PAN format"),
    "aadhaar": (r"^[2-9][0-9]{11}$", "Aadhaar format"),
}
VPA_FORMAT = FORMATS["payer_vpa"][0]
TOKEN_LENGTH = len(TOKEN_PREFIX) + TOKEN_HEX_CHARS


def _reason(reason: str) -> dict:
    return {"reason": reason}


def _gx_type(dtype: pl.DataType) -> str:
    """The SQLAlchemy type name GX checks a DuckDB column against."""
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMP"
    return {pl.String: "VARCHAR", pl.Int64: "BIGINT", pl.Float64: "DOUBLE_PRECISION", pl.Int8: "SMALLINT"}[dtype]


def raw_transaction_suite(provided: set[str], now: datetime | None = None) -> gx.ExpectationSuite:
    """Checks on the incoming canonical batch (`_row`, canonical fields, `<field>_unparsed`)."""
    now = now or datetime.now(timezone.utc)
    suite = gx.ExpectationSuite(name=RAW_SUITE, meta={"fields_checked": sorted(provided)})
    add = suite.add_expectation
    columns = [ROW_ID, *TRANSACTION_SCHEMA, *(f"{f}_unparsed" for f in PARSED_FIELDS), TRUNCATED]
    # Column types here are those the parser casts to; the processed suite checks the stored types.
    add(gxe.ExpectTableColumnsToMatchSet(column_set=columns, exact_match=True, meta=_reason("table: columns")))
    add(gxe.ExpectColumnValuesToBeNull(
        column=TRUNCATED, meta=_reason("row: cut off where the file ends (truncated file)")))
    for name in (*ALWAYS_REQUIRED, *(f for f in REQUIRED_WHEN_GIVEN if f in provided)):
        add(gxe.ExpectColumnValuesToNotBeNull(column=name, meta=_reason(f"{name}: missing")))
    for name in PARSED_FIELDS:
        if name in provided:
            add(gxe.ExpectColumnValuesToBeNull(column=f"{name}_unparsed", meta=_reason(f"{name}: cannot be parsed")))
    # No uniqueness check here: duplicates are dropped and counted before validation (they are
    # not bad rows); the processed suite proves txn_id unique in what was published.
    add(gxe.ExpectColumnValuesToBeBetween(
        column="amount_paise", min_value=1, max_value=MAX_AMOUNT_PAISE,
        meta=_reason("amount_paise: not between 1 paise and INR 1,000 crore")))
    add(gxe.ExpectColumnValuesToBeBetween(
        column="ts", min_value=EARLIEST, max_value=now + CLOCK_SKEW,
        meta=_reason("ts: in the future or before 2000")))
    for name, allowed in (("channel", CHANNELS), ("direction", DIRECTIONS), ("status", STATUSES), ("currency", ("INR",))):
        if name in provided:
            add(gxe.ExpectColumnValuesToBeInSet(column=name, value_set=list(allowed), meta=_reason(f"{name}: unknown value")))
    for name in ("latitude", "longitude"):
        if name in provided:
            bound = 90 if name == "latitude" else 180
            add(gxe.ExpectColumnValuesToBeBetween(
                column=name, min_value=-bound, max_value=bound, meta=_reason(f"{name}: out of range")))
    for name, (regex, what) in FORMATS.items():
        if name in provided:
            add(gxe.ExpectColumnValuesToMatchRegex(column=name, regex=regex, meta=_reason(f"{name}: not a valid {what}")))
    if "counterparty" in provided and "counterparty_type" in provided:
        for kind in PERSON_COUNTERPARTY_TYPES:
            add(gxe.ExpectColumnValuesToMatchRegex(
                column="counterparty", regex=VPA_FORMAT, row_condition=Column("counterparty_type") == kind,
                meta=_reason(f"counterparty: {kind} payee is not a valid VPA format")))
    return suite


def _token_targets(provided: set[str]) -> list[tuple[str, str | None]]:
    targets = [(name, None) for name in PII_FIELDS if name in provided]
    if "counterparty" in provided and "counterparty_type" in provided:
        targets += [("counterparty", kind) for kind in PERSON_COUNTERPARTY_TYPES]
    return targets


def _token_flag(name: str, kind: str | None) -> str:
    return f"{name}_is_token" if kind is None else f"{name}_{kind.lower()}_is_token"


def processed_view_sql(parquet_glob: str, dates: list[str], provided: set[str], business_tz: str) -> str:
    """The processed partitions of `dates` as a DuckDB query, plus the columns the suite checks:
    the business date of each ts and, per identifier column, whether the value is a token.

    A token is `tk_` and 35 characters: DuckDB keeps a string's length and first bytes inline,
    so this reads each identifier column once and costs a fraction of a regex.
    """
    flags = []
    for name, kind in _token_targets(provided):
        is_token = f"({name} IS NULL OR (prefix({name}, '{TOKEN_PREFIX}') AND length({name}) = {TOKEN_LENGTH}))"
        if kind is not None:
            is_token = f"(counterparty_type IS DISTINCT FROM '{kind}' OR {is_token})"
        flags.append(f"{is_token} AS {_token_flag(name, kind)}")
    days = ", ".join(f"'{d}'" for d in dates)
    return (
        f"SELECT *, strftime(timezone('{business_tz}', ts), '%Y-%m-%d') AS ts_business_date"
        + "".join(f", {flag}" for flag in flags)
        + f" FROM read_parquet('{parquet_glob}', hive_partitioning = true, hive_types = {{'date': VARCHAR}})"
        + f" WHERE date IN ({days})"
    )


def processed_transaction_suite(provided: set[str]) -> gx.ExpectationSuite:
    """Checks on what landed in processed/ (the partitions this run wrote): schema, keys,
    uniqueness, amounts, identifiers only as tokens, and each row in its business-date partition.
    The batch is `processed_view_sql`."""
    suite = gx.ExpectationSuite(name=PROCESSED_SUITE)
    add = suite.add_expectation
    flags = [_token_flag(name, kind) for name, kind in _token_targets(provided)]
    add(gxe.ExpectTableColumnsToMatchSet(
        column_set=[*PROCESSED_COLUMNS, "date", "ts_business_date", *flags], exact_match=True,
        meta=_reason("table: columns")))
    for name in PROCESSED_COLUMNS:
        dtype = TRANSACTION_SCHEMA[name]
        add(gxe.ExpectColumnValuesToBeOfType(column=name, type_=_gx_type(dtype), meta=_reason(f"{name}: type")))
    for name in ALWAYS_REQUIRED:
        add(gxe.ExpectColumnValuesToNotBeNull(column=name, meta=_reason(f"{name}: missing")))
    add(gxe.ExpectColumnProportionOfUniqueValuesToBeBetween(
        column="txn_id", min_value=1.0, max_value=1.0, meta=_reason("txn_id: not unique")))
    add(gxe.ExpectColumnValuesToBeBetween(
        column="amount_paise", min_value=1, max_value=MAX_AMOUNT_PAISE, meta=_reason("amount_paise: out of range")))
    add(gxe.ExpectColumnPairValuesToBeEqual(
        column_A="date", column_B="ts_business_date", meta=_reason("date: partition is not the business date of ts")))
    for (name, kind), flag in zip(_token_targets(provided), flags):
        what = name if kind is None else f"{name} ({kind})"
        add(gxe.ExpectColumnValuesToBeInSet(column=flag, value_set=[True], meta=_reason(f"{what}: not pseudonymised")))
    return suite
