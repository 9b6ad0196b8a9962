"""Erasure benchmark: one customer erased from a demo-sized data directory (raw exports, processed
transactions and labels, quarantine, the feature table and a twin), measured in a child process
under /usr/bin/time, including the final search of every file for what is left. Neo4j is left out
(its part is a handful of parameterised statements plus a recompute of the affected customers).

The data directory is built once (real ingest, features, twin) and copied before each run.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
CUSTOMERS, DAYS, SEED = 2_000, 60, 7
KEY = "bench-only-key-0123456789abcdef"  # a fixed, non-secret key: the data is synthetic

WORKER = """
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
from finrisk.erasure import erase_customer
start = time.perf_counter()
certificate = erase_customer(Path(sys.argv[1]), sys.argv[2], sys.argv[3].encode())
done = time.perf_counter()
print("REPORT " + json.dumps({"import_s": round(start - t0, 2), "erase_s": round(done - start, 2),
                              "stores": certificate.stores, "complete": certificate.complete}))
"""


def _prepared(cache: Path) -> Path:
    """raw/ + a real ingest + features + twin, made once."""
    root = cache / f"data-{CUSTOMERS}x{DAYS}-s{SEED}"
    if (root / ".complete").exists():
        return root
    from bench.feature_data import generated_raw
    from features.store import feature_table, write_feature_table
    from features.transactions import transaction_features
    from features.twin import build_twin, write_twin
    from finrisk.ingest import ingest
    from finrisk.io import DataLayout, scan_partitioned
    from finrisk.mapping import load_mapping
    import polars as pl

    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(generated_raw(cache, CUSTOMERS, DAYS, SEED), root / "raw")
    layout = DataLayout(root)
    ingest([root / "raw"], load_mapping(), layout, KEY.encode(), 0.05)
    tx = scan_partitioned(layout.transactions)
    labels = pl.read_parquet(layout.labels)
    write_feature_table(feature_table(transaction_features(tx, labels, 7)), layout.features)
    last = tx.select("date").max().collect().item()
    from datetime import date, timedelta

    write_twin(build_twin(tx, date.fromisoformat(last) + timedelta(days=1), labels, 7), root)
    (root / ".complete").touch()
    return root


def _busiest_customer(root: Path) -> str:
    from finrisk.io import DataLayout, scan_partitioned

    counts = scan_partitioned(DataLayout(root).transactions).group_by("customer_id").len().collect()
    return counts.sort("len", "customer_id", descending=[True, False]).get_column("customer_id")[0]


def _timed_run(data: Path, customer: str) -> dict:
    cmd = ["/usr/bin/time", "-v", sys.executable, "-c", WORKER, str(data), customer, KEY]
    load = os.getloadavg()[0]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"erasure failed:\n{done.stderr[-4000:]}")
    report = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("REPORT "))[7:])

    def gnu(name: str) -> float:
        return float(re.search(rf"{re.escape(name)}: ([\d.:]+)", done.stderr).group(1).split(":")[-1])

    return {
        "wall_s": round(wall, 1),
        "erase_s": report["erase_s"],
        "import_s": report["import_s"],
        "peak_rss_gib": round(gnu("Maximum resident set size (kbytes)") / 2**20, 2),
        "load_average_before": round(load, 2),
        "complete": report["complete"],
        "rows_deleted": sum(s["rows_deleted"] for s in report["stores"]),
        "values_anonymised": sum(s["values_anonymised"] for s in report["stores"]),
        "files_rewritten": sum(s["files_rewritten"] for s in report["stores"]),
    }


def main(out_dir: Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    source = _prepared(out_dir)
    customer = _busiest_customer(source)
    work = out_dir / "work"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(source, work)
    try:
        run = _timed_run(work, customer)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    files = sum(1 for p in source.rglob("*") if p.is_file())
    size = sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
    return {
        "data": f"finrisk generate --customers {CUSTOMERS} --days {DAYS} --seed {SEED}, ingested, features and "
                f"twin: {files:,} files, {size / 2**20:,.0f} MiB",
        "erased": "the customer with the most transactions",
        "run": run,
    }
