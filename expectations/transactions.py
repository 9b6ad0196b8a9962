"""Great Expectations suite for the canonical transaction batch, run through GX's SQL path on DuckDB.

Each expectation is evaluated by GX itself; with result_format COMPLETE it returns the row number
(`_row`) of every failing row, which is how bad rows are sent to quarantine with their reasons.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import great_expectations as gx
import great_expectations.expectations as gxe
import polars as pl

from expectations.duckdb_dialect import connection_string
from finrisk.schema import CHANNELS, DIRECTIONS, STATUSES

ROW_ID = "_row"
MAX_AMOUNT_PAISE = 10**12  # INR 1,000 crore: above this a single payment is not plausible


def transaction_suite(now: datetime | None = None) -> gx.ExpectationSuite:
    now = now or datetime.now(timezone.utc)
    suite = gx.ExpectationSuite(name="canonical_transactions")
    for column in ("txn_id", "ts", "customer_id", "amount_paise", "channel", "direction"):
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=column))
    suite.add_expectation(gxe.ExpectColumnValuesToBeUnique(column="txn_id"))
    suite.add_expectation(
        gxe.ExpectColumnValuesToBeBetween(column="amount_paise", min_value=1, max_value=MAX_AMOUNT_PAISE)
    )
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="channel", value_set=list(CHANNELS)))
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="direction", value_set=list(DIRECTIONS)))
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="status", value_set=list(STATUSES)))
    suite.add_expectation(
        gxe.ExpectColumnValuesToBeBetween(
            column="ts_epoch_s",
            min_value=int(datetime(2000, 1, 1, tzinfo=timezone.utc).timestamp()),
            max_value=int((now + timedelta(days=1)).timestamp()),
        )
    )
    return suite


def _describe(config) -> str:
    kwargs = config.kwargs
    column = kwargs.get("column", "")
    short = config.type.removeprefix("expect_column_values_to_")
    return f"{column}: {short}"


@dataclass
class ValidationOutcome:
    failures: pl.DataFrame  # one row per failing row: _row, reasons (list[str])
    summary: list[dict]     # one entry per expectation
    success: bool


def validate_batch(batch_parquet: Path, workdir: Path, now: datetime | None = None) -> ValidationOutcome:
    """Run the suite over a staged Parquet batch (which must carry the `_row` column)."""
    workdir.mkdir(parents=True, exist_ok=True)
    db_path = workdir / "batch.duckdb"
    db_path.unlink(missing_ok=True)
    con = duckdb.connect(str(db_path))
    # A view, not a copy: GX's SQL runs straight over the Parquet file.
    con.execute(
        f"CREATE VIEW batch AS SELECT *, epoch(ts)::BIGINT AS ts_epoch_s "
        f"FROM read_parquet('{batch_parquet.as_posix()}')"
    )
    con.close()

    context = gx.get_context(mode="ephemeral")
    source = context.data_sources.add_sql(name="staged", connection_string=connection_string(db_path))
    batch_definition = source.add_table_asset(name="batch", table_name="batch").add_batch_definition_whole_table(
        "whole"
    )
    suite = context.suites.add(transaction_suite(now))
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name="canonical_transactions", data=batch_definition, suite=suite)
    )
    result = validation.run(
        result_format={
            "result_format": "COMPLETE",
            "unexpected_index_column_names": [ROW_ID],
            "return_unexpected_index_query": False,
        }
    )
    failures: list[pl.DataFrame] = []
    summary: list[dict] = []
    for res in result.results:
        reason = _describe(res.expectation_config)
        if res.exception_info and res.exception_info.get("raised_exception"):
            raise RuntimeError(f"expectation {reason} could not run: {res.exception_info.get('exception_message')}")
        rows = [item[ROW_ID] for item in (res.result.get("unexpected_index_list") or [])]
        summary.append(
            {"expectation": reason, "success": bool(res.success), "unexpected_count": res.result.get("unexpected_count", 0)}
        )
        if rows:
            failures.append(pl.DataFrame({ROW_ID: rows}, schema={ROW_ID: pl.Int64}).with_columns(reason=pl.lit(reason)))
    db_path.unlink(missing_ok=True)
    if failures:
        failed = pl.concat(failures).group_by(ROW_ID).agg(pl.col("reason").unique().sort().alias("reasons"))
    else:
        failed = pl.DataFrame(schema={ROW_ID: pl.Int64, "reasons": pl.List(pl.String)})
    (workdir / "validation_result.json").write_text(json.dumps(summary, indent=2))
    return ValidationOutcome(failures=failed, summary=summary, success=bool(result.success))
