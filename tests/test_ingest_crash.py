"""A run killed (SIGKILL) while it writes partitions leaves nothing half-written visible, and the
next run ends in exactly the state of a run that was never interrupted."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

from finrisk.config import PROJECT_ROOT
from finrisk.ingest import ingest
from finrisk.io import DataLayout, scan_partitioned
from finrisk.mapping import load_mapping

KEY = b"crash-test-key-0123456789abcdef"
INGEST = (
    "import sys; from pathlib import Path; from finrisk.ingest import ingest; from finrisk.io import DataLayout; "
    "from finrisk.mapping import load_mapping; "
    f"ingest([Path(sys.argv[1])], load_mapping(), DataLayout(Path(sys.argv[2])), {KEY!r}, 0.05)"
)


def _state(data: Path) -> dict[str, pl.DataFrame]:
    layout = DataLayout(data)
    return {
        "transactions": scan_partitioned(layout.transactions).collect().sort("txn_id"),
        "labels": pl.read_parquet(layout.labels).sort("txn_id"),
    }


def _kill_while_publishing(source: Path, data: Path) -> int:
    """Start an ingest in a child process and kill it once its first partition file exists."""
    env = {**os.environ, "FINRISK_INGEST_CHUNK_ROWS": "400"}  # many small chunks: a long publish phase
    child = subprocess.Popen([sys.executable, "-c", INGEST, str(source), str(data)], cwd=PROJECT_ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partitions = DataLayout(data).transactions
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and child.poll() is None:
            if partitions.exists() and any(partitions.rglob("*.parquet")):
                child.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
    finally:
        child.kill()
        child.wait()
    return child.returncode


def test_killed_run_then_rerun_equals_an_uninterrupted_run(small_raw, tmp_path):
    mapping = load_mapping()
    clean = tmp_path / "clean"
    ingest([small_raw], mapping, DataLayout(clean), KEY, 0.05)
    expected = _state(clean)
    expected_partitions = len(list(DataLayout(clean).transactions.rglob("*.parquet")))

    crashed = tmp_path / "crashed"
    assert _kill_while_publishing(small_raw, crashed) == -signal.SIGKILL
    visible = list(DataLayout(crashed).transactions.rglob("*.parquet"))
    assert 0 < len(visible) < expected_partitions  # killed half-way through publishing
    for path in visible:  # whatever a reader can see is a whole, readable partition
        assert pl.read_parquet(path).height > 0
    leftovers = list((crashed / "staging").rglob("*"))  # the killed run's staging (raw identifiers) ...

    report = ingest([small_raw], mapping, DataLayout(crashed), KEY, 0.05)
    assert report.rows_in == report.loaded + report.quarantined + report.duplicates
    assert report.duplicates > 0  # what the killed run had published is recognised, not loaded again
    assert leftovers and not any(p.exists() for p in leftovers if p.suffix == ".parquet")  # ... is swept
    assert not list(crashed.rglob("*.tmp"))
    state = _state(crashed)
    for table, frame in expected.items():
        assert state[table].equals(frame), table
