"""Run a GX suite through GX's SQL path on DuckDB, store the result and render it as Data Docs.

One GX file context per data directory (`<data_dir>/gx/`) holds the suites, every stored
validation result and the Data Docs site (`<data_dir>/gx/uncommitted/data_docs/local_site/`).
The batches are DuckDB views (over staged Parquet or the processed table) in one DuckDB file.

A suite runs in two passes so that ten million clean rows cost one aggregate query per metric,
not three: first every expectation with result_format BOOLEAN_ONLY (GX bundles the column
metrics into single aggregate queries), then only the failed ones again with COMPLETE and
`unexpected_index_column_names=["_row"]`, which returns the row number of every failing row.
Before a result is stored, failing values of identifier columns are removed: raw personal data
never reaches the result store or the HTML.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import great_expectations as gx
import polars as pl
from great_expectations.core import ExpectationSuite, ExpectationSuiteValidationResult
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.types.base import ProgressBarsConfig
from great_expectations.data_context.types.resource_identifiers import (
    ExpectationSuiteIdentifier,
    ValidationResultIdentifier,
)

from expectations.duckdb_dialect import connection_string

DATASOURCE = "finrisk_duckdb"
ROW_ID = "_row"
ALL_FAILING_ROWS = 2**62  # "no limit" for GX's LIMIT clause on the failing-row query
PARTIAL_ROWS = 20  # failing row numbers / values kept in a stored result; the full list is in quarantine
_DROPPED_RESULT_KEYS = ("unexpected_list", "unexpected_index_list", "unexpected_index_query")

# GX warns once per type check that the DuckDB dialect module is not one it ships; the check
# still runs on SQLAlchemy's generic types, so the warning is noise in every run's log.
logging.getLogger("great_expectations.expectations.type_comparison").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", module="great_expectations")


def reason_of(config) -> str:
    meta = config.meta or {}
    if "reason" in meta:
        return meta["reason"]
    column = config.kwargs.get("column", "")
    return f"{column}: {config.type.removeprefix('expect_column_values_to_')}"


@dataclass
class SuiteOutcome:
    suite: str
    success: bool
    failures: pl.DataFrame  # one row per failing row: _row, reasons (list[str])
    summary: list[dict] = field(default_factory=list)  # per expectation: reason, success, unexpected_count

    def failed(self) -> list[dict]:
        return [s for s in self.summary if not s["success"]]


class GxProject:
    """The data directory's GX project: suites, results and Data Docs; batches are DuckDB views."""

    def __init__(self, data_dir: Path, database: Path):
        self.root = Path(data_dir)
        self.database = Path(database)
        self.root.mkdir(parents=True, exist_ok=True)
        self.context = gx.get_context(mode="file", project_root_dir=str(self.root))
        if self.context.progress_bars is None or self.context.progress_bars.get("globally", True):
            # No tqdm bars on the terminal or in Prefect logs for every metric batch.
            self.context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
            self.context.variables.save()
        self._source = self._datasource()
        self._stored: list[ValidationResultIdentifier] = []

    def _datasource(self):
        wanted = connection_string(self.database)
        try:
            source = self.context.data_sources.get(DATASOURCE)
        except (KeyError, ValueError):
            source = None
        if source is None or source.connection_string != wanted:
            if source is not None:
                self.context.data_sources.delete(DATASOURCE)
            source = self.context.data_sources.add_sql(name=DATASOURCE, connection_string=wanted)
        return source

    def define_view(self, name: str, sql: str) -> None:
        """(Re)define a batch as a DuckDB view, e.g. over staged Parquet; no data is copied."""
        # Through GX's own engine: DuckDB refuses a second in-process connection with other settings.
        with self._source.get_engine().begin() as conn:
            _drop(conn, name)
            conn.exec_driver_sql(f'CREATE VIEW "{name}" AS {sql}')

    def define_table(self, name: str, sql: str) -> None:
        """(Re)create a batch as a DuckDB table: for small batches built by an expensive query
        (a join against ten million processed rows), which every metric query would repeat."""
        with self._source.get_engine().begin() as conn:
            _drop(conn, name)
            conn.exec_driver_sql(f'CREATE TABLE "{name}" AS {sql}')

    def _batch(self, table: str):
        try:
            asset = self._source.get_asset(table)
        except LookupError:
            asset = self._source.add_table_asset(name=table, table_name=table)
        try:
            definition = asset.get_batch_definition("whole")
        except (KeyError, LookupError, ValueError):
            definition = asset.add_batch_definition_whole_table("whole")
        return definition.get_batch()

    def validate(
        self,
        suite: ExpectationSuite,
        table: str,
        run_name: str,
        row_ids: bool = True,
        sensitive_columns: tuple[str, ...] = (),
    ) -> SuiteOutcome:
        """Validate the view `table`; with row_ids, name every failing row by its `_row`."""
        suite = self.context.suites.add_or_update(suite)
        batch = self._batch(table)
        first = batch.validate(suite, result_format="BOOLEAN_ONLY")
        raised = [r for r in first.results if r.exception_info and r.exception_info.get("raised_exception")]
        if raised:
            config = raised[0].expectation_config
            raise RuntimeError(
                f"expectation {reason_of(config)!r} of suite {suite.name} could not run: "
                f"{raised[0].exception_info.get('exception_message')}"
            )
        failed_ids = {r.expectation_config.id for r in first.results if not r.success}
        detail = {}
        if failed_ids:
            again = ExpectationSuite(name=suite.name)
            for expectation in suite.expectations:
                if expectation.id in failed_ids:
                    again.add_expectation(expectation.copy(update={"id": None}))
            # GX's SQL path cuts the failing-row list at partial_unexpected_count (default 20): lift
            # the cut so every failing row is named (the stored result is trimmed to PARTIAL_ROWS).
            result_format = {"result_format": "COMPLETE", "return_unexpected_index_query": False,
                             "partial_unexpected_count": ALL_FAILING_ROWS}
            if row_ids:
                result_format["unexpected_index_column_names"] = [ROW_ID]
            second = batch.validate(again, result_format=result_format)
            detail = {reason_of(r.expectation_config): r for r in second.results}

        results, summary, failures = [], [], []
        for res in first.results:
            reason = reason_of(res.expectation_config)
            full = detail.get(reason, res)
            count = (full.result or {}).get("unexpected_count")
            summary.append({"expectation": reason, "success": bool(res.success), "unexpected_count": count or 0})
            if row_ids and not res.success:
                rows = [item[ROW_ID] for item in (full.result or {}).get("unexpected_index_list") or []]
                if rows:
                    failures.append(pl.DataFrame({ROW_ID: rows, "reason": reason}, schema={ROW_ID: pl.Int64, "reason": pl.String}))
            results.append(_sanitised(full, sensitive_columns))
        self._store(suite, batch, first, results, run_name)
        if failures:
            failed = pl.concat(failures).group_by(ROW_ID).agg(pl.col("reason").unique().sort().alias("reasons"))
        else:
            failed = pl.DataFrame(schema={ROW_ID: pl.Int64, "reasons": pl.List(pl.String)})
        return SuiteOutcome(suite=suite.name, success=bool(first.success), failures=failed, summary=summary)

    def _store(self, suite, batch, first: ExpectationSuiteValidationResult, results: list, run_name: str) -> None:
        run_id = RunIdentifier(run_name=run_name, run_time=datetime.now(timezone.utc))
        stored = ExpectationSuiteValidationResult(
            success=first.success,
            results=results,
            suite_name=suite.name,
            statistics=first.statistics,
            meta={**first.meta, "run_id": run_id, "validation_time": run_id.run_time},
        )
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite.name),
            run_id=run_id,
            batch_identifier=batch.id,
        )
        self.context.validation_results_store.store_validation_results(
            suite_validation_result=stored,
            suite_validation_result_identifier=key,
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite.name),
        )
        self._stored.append(key)

    def build_docs(self) -> Path:
        """Render the results stored by this project object (and the index); returns index.html."""
        resources = self._stored + [ExpectationSuiteIdentifier(name=n) for n in sorted({k.expectation_suite_identifier.name for k in self._stored})]
        sites = self.context.build_data_docs(resource_identifiers=resources or None)
        url = next(iter(sites.values()))
        return Path(url.removeprefix("file://"))


def _drop(conn, name: str) -> None:
    """Drop a batch whether it is a view or a table (DuckDB's DROP names the kind)."""
    kind = conn.exec_driver_sql(
        "SELECT table_type FROM information_schema.tables WHERE table_name = ? AND table_schema = current_schema()",
        (name,),
    ).scalar()
    if kind is not None:
        conn.exec_driver_sql(f'DROP {"VIEW" if kind == "VIEW" else "TABLE"} "{name}"')


def _sanitised(result, sensitive_columns: tuple[str, ...]):
    """A copy of an expectation result fit to store: short lists, no failing identifier values."""
    res = result.result or {}
    column = result.expectation_config.kwargs.get("column")
    columns = {column, result.expectation_config.kwargs.get("column_A"), result.expectation_config.kwargs.get("column_B")}
    keep = {k: v for k, v in res.items() if k not in _DROPPED_RESULT_KEYS}
    if res.get("unexpected_index_list"):
        keep["partial_unexpected_index_list"] = [
            {ROW_ID: item[ROW_ID]} for item in res["unexpected_index_list"][:PARTIAL_ROWS]
        ]
    if columns & set(sensitive_columns):
        for k in ("partial_unexpected_list", "partial_unexpected_counts"):
            keep.pop(k, None)
        keep["details"] = {"note": "failing values of identifier columns are not stored"}
    elif "partial_unexpected_list" in keep:
        keep["partial_unexpected_list"] = keep["partial_unexpected_list"][:PARTIAL_ROWS]
    copy = result.__class__(
        success=result.success,
        expectation_config=result.expectation_config,
        result=keep,
        meta=result.meta,
        exception_info=result.exception_info,
    )
    return copy
