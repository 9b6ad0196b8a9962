"""A DuckDB SQLAlchemy dialect whose results survive the connection closing.

Great Expectations' SQL engine fetches rows after it has returned the connection to the pool;
duckdb-engine drops an unfetched result at that point, so every metric came back empty. Buffering
the (small, aggregate) metric results in the execution context fixes that without touching GX.
"""
from __future__ import annotations

from duckdb_engine import Dialect as DuckDBDialect
from sqlalchemy.dialects import registry
from sqlalchemy.engine.cursor import FullyBufferedCursorFetchStrategy

SCHEME = "duckdb_buffered"


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


def register() -> None:
    registry.register(SCHEME, __name__, "BufferedDuckDBDialect")


def connection_string(database_path) -> str:
    register()
    return f"{SCHEME}:///{database_path}"
