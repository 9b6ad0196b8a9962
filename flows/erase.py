"""Erasure flow: one customer removed from every store, with a certificate."""
from __future__ import annotations

from pathlib import Path

from prefect import flow
from pydantic import SecretStr

from tasks.privacy import erase_customer_task


@flow(name="erase")
def erase(customer_id: SecretStr, data_dir: Path, raw_dir: Path | None = None, graph: bool = True) -> dict:
    """Erase a customer from raw and processed data, quarantine, features, twins, scores, alerts,
    reports, Neo4j and the MLflow store; write the erasure certificate under DATA_DIR/erasure/.

    customer_id: the bank's customer id (kept masked in the run history);
    raw_dir: the raw exports (default: DATA_DIR/raw); graph: also erase from Neo4j.
    """
    return erase_customer_task(customer_id, data_dir, [raw_dir] if raw_dir else None, graph)
