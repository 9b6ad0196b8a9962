"""Retry policy for tasks that call external services (MLflow, Neo4j): retry with backoff on
errors that can go away (connection refused, timeouts, a locked or restarting store), and fail at
once on the rest (no champion, no labels, bad dates), whose message is what the person needs."""
from __future__ import annotations

BACKOFF_SECONDS = [5, 20, 60]
# By class name, so this module imports none of the clients.
TRANSIENT = {
    "ServiceUnavailable", "SessionExpired", "TransientError",  # neo4j
    "OperationalError",  # sqlalchemy: a locked SQLite store, a dropped connection
    "ConnectionError", "ConnectTimeout", "ReadTimeout", "ChunkedEncodingError",  # requests / builtins
}


def is_transient(exc: BaseException | None) -> bool:
    while exc is not None:
        if isinstance(exc, (ConnectionError, TimeoutError)) or type(exc).__name__ in TRANSIENT:
            return True
        if type(exc).__name__ == "MlflowException" and getattr(exc, "error_code", "") == "TEMPORARILY_UNAVAILABLE":
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def retry_if_transient(task, task_run, state) -> bool:
    """Prefect retry_condition_fn: continue to the retry policy only for a transient error."""
    return is_transient(state.result(raise_on_failure=False))


RETRY_EXTERNAL = dict(retries=len(BACKOFF_SECONDS), retry_delay_seconds=BACKOFF_SECONDS, retry_condition_fn=retry_if_transient)
