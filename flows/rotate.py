"""Key rotation flow: a new pseudonymisation key appended to the chain, every stored token wrapped."""
from __future__ import annotations

from pathlib import Path

from prefect import flow

from tasks.privacy import rotate_keys_task


@flow(name="rotate-keys")
def rotate_keys(data_dir: Path, graph: bool = True) -> dict:
    """Rotate the pseudonymisation key of a dataset: generate a key, wrap every token in every store
    (Parquet tables, the scoring journal, reports, Neo4j), then store the longer key chain where the
    configured one is kept (FINRISK_PSEUDONYM_KEY_FILE or .env). Run it again to finish a rotation
    that was interrupted.

    graph: also re-key Neo4j (off only where no graph is kept).
    """
    return rotate_keys_task(data_dir, graph)
