"""Scoring service benchmark: `finrisk serve` on loopback under an open-loop load generator.

Set-up: a generated dataset (2,000 customers x 40 days) with ip and coordinates, its batch features,
a champion trained on them in a temporary MLflow store, and the twin of day 36. The service runs as
a real process under `/usr/bin/time -v` (peak memory). The load generator runs in this process: plain HTTP/1.1 over
asyncio streams with the requests encoded beforehand, so that it needs far less CPU than the
service it measures (an HTTP client library needs more per request than the service does, and both
share the machine's two cores). Each request is timed from the instant it was due, so queueing
counts. First a warm-up, then one request at a time (unloaded latency), then single transactions
at fixed rates, then batches of 1,000 to the batch endpoint (after one warm-up batch). The transactions are the day's own,
re-sent under fresh txn_ids and in time order, so every request is scored, not answered from the
retry cache.
"""
from __future__ import annotations

import asyncio
import json
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
SECONDS_PER_RATE = 5
WARM_UP = 300
UNLOADED = 300
DRAIN_LIMIT_S = 90  # requests still unanswered this long after the last was due are counted as unfinished
BATCH_SIZE = 1000
BATCHES = 5
API_KEY = "bench-key-" + "b" * 24
MODEL_NAME = "finrisk-fraud-bench"
DAY_OFFSET = 35


def _prepare(out_dir: Path) -> tuple[Path, pl.DataFrame]:
    from bench.feature_data import processed_table
    from features.store import feature_table
    from features.transactions import transaction_features
    from features.twin import build_twin, write_twin
    from finrisk.io import DataLayout, scan_partitioned
    from finrisk.sensitive import with_sensitive
    from models.fraud_model import TrainWindows, train_fraud_model
    from models.registry import configure, load_alias, log_and_register
    from tasks.train import day_start_utc

    data = processed_table(HERE / "out" / "feature-data", 2000, 40, seed=7)
    layout = DataLayout(data)
    tx = with_sensitive(scan_partitioned(layout.transactions), layout)  # requests carry ip and coordinates
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
    """Each transaction `copies` times under fresh txn_ids, copies next to each other: time order."""
    from service.scoring import TRANSACTION_FIELDS

    shown = rows.select([c for c in TRANSACTION_FIELDS if c in rows.columns]).with_columns(
        pl.col("ts").dt.convert_time_zone("Asia/Kolkata").dt.to_string("%Y-%m-%dT%H:%M:%S%.6f%:z")
    )
    base = [{k: v for k, v in r.items() if v is not None} for r in shown.to_dicts()]
    return [{**b, "txn_id": f"{b['txn_id']}-r{k}"} for b in base for k in range(copies)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(path: str, body: dict, port: int) -> bytes:
    data = json.dumps(body, separators=(",", ":")).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-API-Key: {API_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n")
    return head.encode() + data


async def _exchange(connection, request: bytes) -> int:
    reader, writer = connection
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return int(head[9:12])


def _summary(latencies: list[float], **extra) -> dict:
    ms = np.array(latencies) * 1000
    return {
        **extra, "ok": len(latencies),
        "p50_ms": round(float(np.percentile(ms, 50)), 2) if len(ms) else None,
        "p99_ms": round(float(np.percentile(ms, 99)), 2) if len(ms) else None,
        "max_ms": round(float(ms.max()), 2) if len(ms) else None,
    }


async def _at_rate(port: int, requests: list[bytes], rate: float) -> dict:
    """Open loop: request i is due at start + i / rate, on an idle keep-alive connection (a new one
    when all are busy), whatever happened to the earlier ones."""
    idle: list = []
    latencies: list[float] = []
    errors = opened = 0
    start = time.perf_counter() + 0.05

    async def one(i: int, request: bytes) -> None:
        nonlocal errors, opened
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        try:
            if idle:
                connection = idle.pop()
            else:
                opened += 1
                connection = await asyncio.open_connection("127.0.0.1", port)
            status = await _exchange(connection, request)
        except (OSError, asyncio.IncompleteReadError):
            errors += 1
            return
        idle.append(connection)
        if status != 200:
            errors += 1
            return
        latencies.append(time.perf_counter() - due)

    tasks = [asyncio.create_task(one(i, r)) for i, r in enumerate(requests)]
    _, pending = await asyncio.wait(tasks, timeout=len(requests) / rate + DRAIN_LIMIT_S)
    for task in pending:
        task.cancel()
    wall = time.perf_counter() - start
    for _, writer in idle:
        writer.close()
    return _summary(latencies, offered_per_s=rate, requests=len(requests), errors=errors, unfinished=len(pending),
                    connections=opened, achieved_per_s=round(len(latencies) / wall, 1))


async def _one_at_a_time(port: int, requests: list[bytes]) -> dict:
    connection = await asyncio.open_connection("127.0.0.1", port)
    latencies = []
    for request in requests:
        started = time.perf_counter()
        if await _exchange(connection, request) == 200:
            latencies.append(time.perf_counter() - started)
    connection[1].close()
    return _summary(latencies, requests=len(requests))


async def _batches(port: int, requests: list[bytes]) -> dict:
    connection = await asyncio.open_connection("127.0.0.1", port)
    times = []
    for request in requests:
        started = time.perf_counter()
        status = await _exchange(connection, request)
        if status != 200:
            raise RuntimeError(f"the batch endpoint answered {status}")
        times.append(time.perf_counter() - started)
    connection[1].close()
    return {
        "batch_size": BATCH_SIZE, "batches": len(requests), "txn_per_s": round(BATCH_SIZE * len(requests) / sum(times)),
        "batch_p50_ms": round(float(np.percentile(np.array(times) * 1000, 50)), 1),
        "batch_max_ms": round(max(times) * 1000, 1),
    }


def main(out_dir: Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    data, rows = _prepare(out_dir)
    serve_dir = out_dir / "serve-data"
    if serve_dir.exists():
        import shutil

        shutil.rmtree(serve_dir)
    serve_dir.mkdir()
    os.symlink(data / "processed", serve_dir / "processed")
    singles = WARM_UP + UNLOADED + sum(r * SECONDS_PER_RATE for r in RATES)
    bodies = _bodies(rows, (singles + BATCH_SIZE * (BATCHES + 1)) // rows.height + 1)
    port = _free_port()
    single_requests = [_request("/v1/score", b, port) for b in bodies[:singles]]
    rest = bodies[singles:]
    batch_requests = [_request("/v1/score/batch", {"transactions": rest[k * BATCH_SIZE:(k + 1) * BATCH_SIZE]}, port)
                      for k in range(BATCHES + 1)]  # the first warms the batch path up, not counted
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
    figures: dict = {"transactions_in_day": rows.height, "twin_customers": 2000}
    try:
        import httpx

        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the service did not become ready")
            time.sleep(0.5)
        used = WARM_UP
        asyncio.run(_at_rate(port, single_requests[:WARM_UP], 100))
        figures["unloaded"] = asyncio.run(_one_at_a_time(port, single_requests[used:used + UNLOADED]))
        used += UNLOADED
        figures["single"] = []
        for rate in RATES:
            part = single_requests[used:used + rate * SECONDS_PER_RATE]
            used += len(part)
            figures["single"].append(asyncio.run(_at_rate(port, part, rate)))
        asyncio.run(_batches(port, batch_requests[:1]))
        figures["batch"] = asyncio.run(_batches(port, batch_requests[1:]))
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # `time` ignores it and reports once the service has stopped
        _, stderr = proc.communicate(timeout=120)
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr or "")
    figures["service_peak_rss_mib"] = round(int(peak.group(1)) / 1024) if peak else None
    figures["load_average_1m"] = round(os.getloadavg()[0], 2)
    figures["note"] = "2 cores shared by the service, the load generator and other work on the machine"
    return figures
