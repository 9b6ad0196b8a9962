"""Scoring service benchmark: `finrisk serve` on loopback under an open-loop load generator.

Set-up: a generated dataset (2,000 customers x 40 days), its batch features, a champion trained on
them in a temporary MLflow store, and the twin of day 36. The service runs as a real process under
`/usr/bin/time -v` (peak memory); the load generator (asyncio + httpx, in this process) sends single
transactions at fixed rates, each request timed from the instant it was due (so queueing counts),
bounded in count and time, then batches of 1,000 to the batch endpoint. The transactions are the
day's own, re-sent under fresh txn_ids so every request is scored, not answered from the retry cache.
"""
from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).parent
RATES = (200, 500, 1000)
SECONDS_PER_RATE = 3
DRAIN_LIMIT_S = 90  # requests still unanswered this long after the last was due are counted as unfinished
BATCH_SIZE = 1000
BATCHES = 3
API_KEY = "bench-key-" + "b" * 24
MODEL_NAME = "finrisk-fraud-bench"
DAY_OFFSET = 35


def _prepare(out_dir: Path) -> tuple[Path, pl.DataFrame]:
    from bench.feature_data import processed_table
    from features.store import feature_table
    from features.transactions import transaction_features
    from features.twin import build_twin, write_twin
    from finrisk.io import DataLayout, scan_partitioned
    from models.fraud_model import TrainWindows, train_fraud_model
    from models.registry import configure, load_alias, log_and_register
    from tasks.train import day_start_utc

    data = processed_table(HERE / "out" / "feature-data", 2000, 40, seed=7)
    layout = DataLayout(data)
    tx = scan_partitioned(layout.transactions)
    first_day = tx.select(pl.col("date").min()).collect().item()
    day = (pl.Series([first_day]).str.to_date()[0]) + timedelta(days=DAY_OFFSET)
    labels = pl.read_parquet(layout.labels)
    configure(f"sqlite:///{out_dir / 'mlruns' / 'mlflow.db'}", out_dir / "mlruns" / "artifacts")
    if load_alias(MODEL_NAME, "champion") is None:
        table = feature_table(transaction_features(tx, labels, 7))
        windows = TrainWindows.before(day_start_utc(day), table.get_column("ts").min(), 7, 7)
        result = train_fraud_model(table.filter(pl.col("date") < day.isoformat()), labels, windows, 7)
        log_and_register(result, MODEL_NAME, "bench")
    write_twin(build_twin(tx, day, labels, 7), data)
    rows = tx.filter(pl.col("date") == day.isoformat()).drop("date").collect().sort("ts", "txn_id")
    return data, rows


def _bodies(rows: pl.DataFrame, copies: int) -> list[dict]:
    from service.scoring import TRANSACTION_FIELDS

    shown = rows.select([c for c in TRANSACTION_FIELDS if c in rows.columns]).with_columns(
        pl.col("ts").dt.convert_time_zone("Asia/Kolkata").dt.to_string("%Y-%m-%dT%H:%M:%S%.6f%:z")
    )
    base = [{k: v for k, v in r.items() if v is not None} for r in shown.to_dicts()]
    return [{**b, "txn_id": f"{b['txn_id']}-r{k}"} for k in range(copies) for b in base]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _single_at_rate(url: str, bodies: list[dict], rate: int, seconds: int) -> dict:
    import httpx

    count = rate * seconds
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": API_KEY}, timeout=30, limits=limits) as client:
        start = time.perf_counter()

        async def one(i: int, body: dict) -> None:
            nonlocal errors
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            try:
                response = await client.post("/v1/score", json=body)
                if response.status_code != 200:
                    errors += 1
                    return
            except httpx.HTTPError:
                errors += 1
                return
            latencies.append(time.perf_counter() - due)

        tasks = [asyncio.create_task(one(i, b)) for i, b in enumerate(bodies[:count])]
        done, pending = await asyncio.wait(tasks, timeout=seconds + DRAIN_LIMIT_S)
        for task in pending:
            task.cancel()
        wall = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    return {
        "offered_per_s": rate, "requests": count, "ok": len(latencies), "errors": errors, "unfinished": len(pending),
        "achieved_per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 1) if len(ms) else None,
        "p99_ms": round(float(np.percentile(ms, 99)), 1) if len(ms) else None,
    }


def _batches(url: str, bodies: list[dict]) -> dict:
    import httpx

    with httpx.Client(base_url=url, headers={"X-API-Key": API_KEY}, timeout=120) as client:
        times = []
        for k in range(BATCHES):
            chunk = bodies[k * BATCH_SIZE:(k + 1) * BATCH_SIZE]
            start = time.perf_counter()
            response = client.post("/v1/score/batch", json={"transactions": chunk})
            response.raise_for_status()
            times.append(time.perf_counter() - start)
    total = BATCH_SIZE * BATCHES
    return {
        "batch_size": BATCH_SIZE, "batches": BATCHES, "txn_per_s": round(total / sum(times)),
        "batch_p50_ms": round(float(np.percentile(np.array(times) * 1000, 50)), 1),
    }


def main(out_dir: Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    data, rows = _prepare(out_dir)
    serve_dir = out_dir / "serve-data"
    if serve_dir.exists():
        import shutil

        shutil.rmtree(serve_dir)
    serve_dir.mkdir()
    for name in ("processed",):
        os.symlink(data / name, serve_dir / name)
    needed = sum(r * SECONDS_PER_RATE for r in RATES) + BATCH_SIZE * BATCHES
    bodies = _bodies(rows, needed // rows.height + 1)
    port = _free_port()
    env = {
        **os.environ, "FINRISK_API_KEYS": API_KEY, "FINRISK_MLFLOW_MODEL_NAME": MODEL_NAME,
        "FINRISK_MLRUNS_DIR": str(out_dir / "mlruns"), "FINRISK_MLFLOW_TRACKING_URI": "",
    }
    proc = subprocess.Popen(
        ["/usr/bin/time", "-v", sys.executable, "-m", "finrisk.cli_serve", "serve", "--data-dir", str(serve_dir),
         "--port", str(port)],
        cwd=HERE.parent, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group: SIGINT reaches the service under `time`
    )
    url = f"http://127.0.0.1:{port}"
    figures: dict = {"transactions_in_day": rows.height, "twin_customers": 2000}
    try:
        import httpx

        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the service did not become ready")
            time.sleep(0.5)
        used = 0
        singles = []
        for rate in RATES:
            part = bodies[used:used + rate * SECONDS_PER_RATE]
            used += len(part)
            singles.append(asyncio.run(_single_at_rate(url, part, rate, SECONDS_PER_RATE)))
        figures["single"] = singles
        figures["batch"] = _batches(url, bodies[used:])
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # `time` ignores it and reports once the service has stopped
        _, stderr = proc.communicate(timeout=120)
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr or "")
    figures["service_peak_rss_mib"] = round(int(peak.group(1)) / 1024) if peak else None
    figures["note"] = "2 cores shared by the service, the load generator and other work on the machine"
    return figures
