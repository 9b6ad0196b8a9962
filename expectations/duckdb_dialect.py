"""A DuckDB SQLAlchemy dialect that Great Expectations' SQL path can run every suite on.

Three gaps between duckdb-engine and GX (with SQLAlchemy 2.1) are closed here, without touching GX:

* GX fetches rows after it has returned the connection to the pool; duckdb-engine drops an
  unfetched result at that point, so every metric came back empty. Results (small, aggregate
  metric rows) are buffered in the execution context.
* GX picks its regex and LIKE SQL by the dialect family a dialect module names in `.dialect`;
  DuckDB's `~` and `LIKE` behave as PostgreSQL's, so the dialect instance names that family.
  (An instance attribute: SQLAlchemy reads a class-level `dialect` as a module alias.)
* SQLAlchemy 2.1's PostgreSQL column reflection queries `pg_collation`, which DuckDB lacks, so
  column types (GX's schema expectations) are read from DuckDB's information_schema instead.
"""
from __future__ import annotations

from duckdb_engine import Dialect as DuckDBDialect
from sqlalchemy import text
from sqlalchemy import types as sqltypes
from sqlalchemy.dialects import postgresql, registry
from sqlalchemy.engine.cursor import FullyBufferedCursorFetchStrategy

SCHEME = "duckdb_buffered"

_TYPES = {
    "VARCHAR": sqltypes.VARCHAR,
    "BIGINT": sqltypes.BIGINT,
    "INTEGER": sqltypes.INTEGER,
    "SMALLINT": sqltypes.SMALLINT,
    "TINYINT": sqltypes.SMALLINT,
    "UBIGINT": sqltypes.BIGINT,
    "UINTEGER": sqltypes.BIGINT,
    "DOUBLE": sqltypes.DOUBLE_PRECISION,
    "FLOAT": sqltypes.FLOAT,
    "BOOLEAN": sqltypes.BOOLEAN,
    "DATE": sqltypes.DATE,
    "TIMESTAMP": sqltypes.TIMESTAMP,
}


def _sqlalchemy_type(duckdb_type: str) -> sqltypes.TypeEngine:
    name = duckdb_type.upper()
    if name == "TIMESTAMP WITH TIME ZONE":
        return sqltypes.TIMESTAMP(timezone=True)
    if name.startswith("DECIMAL"):
        return sqltypes.DECIMAL()
    if name.endswith("[]"):
        return sqltypes.ARRAY(_sqlalchemy_type(name[:-2]))
    return _TYPES.get(name, sqltypes.NullType)()


class _BufferedExecutionContext(DuckDBDialect.execution_ctx_cls):
    def post_exec(self):
        super().post_exec()
        if self.cursor.description is not None:
            self.cursor_fetch_strategy = FullyBufferedCursorFetchStrategy(
                self.cursor, self.cursor.description, self.cursor.fetchall()
            )


class BufferedDuckDBDialect(DuckDBDialect):
    supports_statement_cache = False
    execution_ctx_cls = _BufferedExecutionContext

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.dialect = postgresql.dialect  # the family GX uses for regex and LIKE SQL

    def get_columns(self, connection, table_name, schema=None, **kw):
        rows = connection.execute(
            text(
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                "WHERE table_name = :table AND table_schema = coalesce(:schema, current_schema()) "
                "ORDER BY ordinal_position"
            ),
            {"table": table_name, "schema": schema},
        ).all()
        return [
            {"name": name, "type": _sqlalchemy_type(data_type), "nullable": nullable == "YES", "default": None}
            for name, data_type, nullable in rows
        ]


def register() -> None:
    registry.register(SCHEME, __name__, "BufferedDuckDBDialect")


def connection_string(database_path) -> str:
    register()
    return f"{SCHEME}:///{database_path}"
