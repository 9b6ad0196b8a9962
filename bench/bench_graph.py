"""Graph benchmarks: bulk import of the 10-million-transaction graph, the nightly incremental upsert
of one day through the Python driver, and the graph features (Polars) against Cypher.

Set-up (cached under bench/out/graph/): the generator's 90,000 customers x 90 days (~10 M
transactions) converted to the processed layout with Polars (bulk-imported but for the last two
days, which are then loaded one night at a time); a second, wider dataset (250,000
customers x 40 days) whose graph has more than 1 M nodes and 5 M relationships. Pseudonyms are
stand-ins of the ingest tokens' length (this measures loading, not the HMAC). The benchmark runs
its own Neo4j server (bench/out/graph/neo4j, Bolt 7689, HTTP 7476, heap and page cache 2 GiB each,
fresh data every run) and stops it at the end. Every measured step runs in a subprocess under
/usr/bin/time -v, so each figure comes with that process's peak memory.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
BOLT_PORT, HTTP_PORT, MEMORY = 7689, 7476, "2g"
DATASETS = {"10m": (90_000, 90), "wide": (250_000, 40)}
SEED = 7


# --- data -----------------------------------------------------------------------------------------

def _stand_in_token(column: str) -> pl.Expr:
    """'tk_' + 40 digits: two seeded 64-bit hashes, the same length order as the ingest's tokens."""
    col = pl.col(column)
    return pl.when(col.is_null()).then(None).otherwise(
        pl.concat_str(pl.lit("tk_"), col.hash(1).cast(pl.String).str.zfill(20), col.hash(2).cast(pl.String).str.zfill(20))
    )


def processed_data(cache: Path, customers: int, days: int) -> Path:
    """Generated raw exports converted to processed/transactions (+ labels), made once and reused."""
    from finrisk.io import DataLayout, write_parquet_atomic
    from finrisk.schema import BUSINESS_TZ, TRANSACTION_SCHEMA
    from finrisk.synthetic import generate

    root = cache / f"data-{customers}x{days}"
    if (root / ".complete").exists():
        return root
    raw = cache / f"raw-{customers}x{days}"
    if not (raw / ".complete").exists():
        generate(raw, customers=customers, days=days, seed=SEED)
        (raw / ".complete").touch()
    layout = DataLayout(root)
    ts = pl.col("txn_time").str.to_datetime("%Y-%m-%d %H:%M:%S", time_unit="us").dt.replace_time_zone(BUSINESS_TZ)
    for path in sorted((raw / "transactions").glob("*.csv")):
        day = pl.read_csv(path, infer_schema=False).select(
            pl.col("txn_ref").alias("txn_id"),
            ts.dt.convert_time_zone("UTC").alias("ts"),
            "customer_id",
            _stand_in_token("account_number").alias("account_id"),
            pl.when(pl.col("counterparty_type") == "P2P").then(_stand_in_token("counterparty_id"))
            .otherwise(pl.col("counterparty_id")).alias("counterparty"),
            "counterparty_type", pl.col("mcc").replace("", None), "channel", "direction",
            (pl.col("amount_inr").str.replace(".", "", literal=True).cast(pl.Int64)).alias("amount_paise"),
            "status", pl.col("device_id").replace("", None), "city", "state", "pincode", "ifsc",
            _stand_in_token("payer_vpa").alias("payer_vpa"),
            ts.dt.date().cast(pl.String).alias("date"),
        )
        day = day.with_columns(
            pl.lit(None, TRANSACTION_SCHEMA[c]).alias(c) for c in TRANSACTION_SCHEMA if c not in day.columns
        )
        for (date,), part in day.partition_by("date", as_dict=True, include_key=False).items():
            target = layout.partition(layout.transactions, date)
            if target.exists():
                part = pl.concat([pl.read_parquet(target), part], how="diagonal_relaxed")
            write_parquet_atomic(part.sort("ts", "txn_id"), target)
    labels = pl.read_csv(raw / "labels.csv", infer_schema=False).select(
        pl.col("txn_ref").alias("txn_id"), pl.col("label").cast(pl.Int8), "fraud_type",
        pl.col("reported_at").str.to_datetime(time_unit="us", time_zone="UTC"),
    )
    write_parquet_atomic(labels, layout.labels)
    (root / ".complete").touch()
    return root


def without_last_days(data: Path, target: Path, count: int) -> tuple[Path, list[str]]:
    """A data dir holding every day but the last `count` (hard links), for 'bulk import, then new
    days one night at a time'; returns it and the days left out."""
    days = sorted(p.name for p in (data / "processed" / "transactions").glob("date=*"))
    if not (target / ".complete").exists():
        shutil.rmtree(target, ignore_errors=True)
        for day in days[:-count]:
            (target / "processed" / "transactions" / day).mkdir(parents=True)
            os.link(data / "processed" / "transactions" / day / "part-0.parquet",
                    target / "processed" / "transactions" / day / "part-0.parquet")
        (target / ".complete").touch()
    return target, [day.removeprefix("date=") for day in days[-count:]]


# --- measured steps (each runs in its own process) ------------------------------------------------

def _settings():
    from finrisk.config import get_settings

    return get_settings()


def _driver():
    from graph_loaders.neo4j_load import connect

    s = _settings()
    return connect(s.neo4j_uri, s.neo4j_user, s.require_neo4j_password(), notifications_min_severity="OFF")


def step_bulk(data_dir: str) -> dict:
    from graph_loaders.bulk_import import bulk_load

    return bulk_load(_settings(), Path(data_dir), work_dir=Path(data_dir).parent / "import-files").as_dict()


def step_warm() -> dict:
    """Read every relationship's properties once, as a server that has been up a while would have."""
    start = time.perf_counter()
    driver = _driver()
    try:
        driver.execute_query("MATCH ()-[r]->() RETURN count(r.count) + count(r.first_seen) + count(r.txn_count)")
        driver.execute_query("MATCH (n) RETURN count(n.customer_id) + count(n.vpa) + count(n.device_id)")
    finally:
        driver.close()
    return {"seconds": time.perf_counter() - start}


def _server_cpu_seconds() -> float | None:
    """CPU time (user + system) of the bench server so far: unlike wall time, it hardly depends on
    what else runs on the shared machine."""
    try:
        pid = (_settings().neo4j_home / "run" / "neo4j.pid").read_text().strip()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def step_upsert(data_dir: str, day: str, workers: int, batch_rows: int) -> dict:
    from finrisk.io import DataLayout, scan_partitioned
    from graph_loaders.incremental import day_frames, partition_rows, record_loaded_days, write_frames
    from graph_loaders.neo4j_load import graph_counts

    driver = _driver()
    try:
        start = time.perf_counter()
        frames = day_frames(scan_partitioned(DataLayout(Path(data_dir)).transactions), [day])
        framed, server_cpu = time.perf_counter(), _server_cpu_seconds()
        created = write_frames(driver, "neo4j", frames.graph, frames.prune, batch_rows=batch_rows, workers=workers)
        record_loaded_days(driver, "neo4j", {day: partition_rows(DataLayout(Path(data_dir)))[day]})
        written, server_cpu_after = time.perf_counter(), _server_cpu_seconds()
        counts = graph_counts(driver, "neo4j")
    finally:
        driver.close()
    return {
        "rust_packstream": "neo4j._rust" in sys.modules and sys.modules["neo4j._rust"] is not None,
        "nodes": frames.graph.node_count(), "relationships": frames.graph.rel_count(), "new_relationships": created,
        "frames_seconds": framed - start, "write_seconds": written - framed, "graph": counts,
        "server_cpu_seconds": None if server_cpu is None else server_cpu_after - server_cpu,
    }


def step_features(data_dir: str, day: str) -> dict:
    from graph_loaders.graph_features import graph_features_as_of

    start = time.perf_counter()
    features = graph_features_as_of(Path(data_dir), day)
    return {"customers": features.height, "seconds": time.perf_counter() - start}


def step_cypher_features(data_dir: str, day: str, sample: int) -> dict:
    """The same kind of figures from Neo4j: degrees of every customer, and the distance to the nearest
    known-fraud customer for a small sample (the graph holds all history, so neither is an as-of
    value). Community has no graph algorithms library, so the distance is one shortest-path search
    per (customer, fraud customer) pair; the time per customer is what matters."""
    from neo4j import Query

    from finrisk.io import DataLayout, scan_partitioned
    from graph_loaders.graph_features import day_start_utc, read_labels

    layout = DataLayout(Path(data_dir))
    labels = read_labels(layout).filter(pl.col("reported_at") < day_start_utc(day))
    fraud_customers = (
        scan_partitioned(layout.transactions).join(labels.lazy(), on="txn_id", how="semi")
        .select("customer_id").unique().collect().get_column("customer_id").to_list()
    )
    customers = scan_partitioned(layout.transactions).select("customer_id").unique().sort("customer_id").collect()
    chosen = customers.sample(n=sample, seed=1).get_column("customer_id").to_list()
    driver = _driver()
    try:
        start = time.perf_counter()
        degrees, _, _ = driver.execute_query(
            "MATCH (c:Customer) RETURN c.customer_id AS id, COUNT { (c)-[:PAID]->() } AS merchants, "
            "COUNT { (c)-[:USES]->() } AS devices, COUNT { (c)-[:TRANSFERRED]->() } AS payees", routing_="r")
        degree_seconds = time.perf_counter() - start
        start = time.perf_counter()
        found, _, _ = driver.execute_query(
            Query("UNWIND $ids AS id MATCH (c:Customer {customer_id: id}) "
                  "OPTIONAL MATCH p = ANY SHORTEST (c)-[:USES|OWNS|TRANSFERRED]-{0,6}(f:Customer) "
                  "WHERE f.customer_id IN $fraud RETURN id, min(length(p)) AS hops", timeout=900),
            parameters_={"ids": chosen, "fraud": fraud_customers}, routing_="r")
        path_seconds = time.perf_counter() - start
    finally:
        driver.close()
    return {"degree_customers": len(degrees), "degree_seconds": degree_seconds,
            "fraud_customers": len(fraud_customers), "shortest_path_customers": len(found),
            "shortest_path_seconds": path_seconds, "shortest_path_seconds_per_customer": path_seconds / len(found)}


STEPS = {"bulk": step_bulk, "warm": step_warm, "upsert": step_upsert, "features": step_features,
         "cypher_features": step_cypher_features}


# --- driver ------------------------------------------------------------------------------------------

def _keep(out_dir: Path, figures: dict) -> None:
    """Figures so far, so a step that fails late does not lose the earlier ones."""
    (out_dir / "figures-so-far.json").write_text(json.dumps(figures, indent=2, default=str))


def _measured(step: str, *args, env: dict[str, str], no_rust: bool = False) -> dict:
    """Run one step in a child Python under /usr/bin/time -v: its JSON result, wall time, peak RSS."""
    code = ("import sys; sys.modules['neo4j._rust'] = None; " if no_rust else "") + (
        "import json, sys; from bench.bench_graph import STEPS; "
        "print(json.dumps(STEPS[sys.argv[1]](*json.loads(sys.argv[2])), default=str))"
    )
    start = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-v", sys.executable, "-c", code, step, json.dumps(list(args))],
        cwd=PROJECT, env=env, capture_output=True, text=True,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"bench step {step} failed:\n{proc.stderr[-4000:]}")
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**result, "wall_seconds": round(wall, 2), "peak_rss_mib": int(peak.group(1)) // 1024 if peak else None}


def _neo4j_settings(home: Path, password: str):
    from finrisk.config import Settings

    return Settings(neo4j_home=home, neo4j_bolt_port=BOLT_PORT, neo4j_http_port=HTTP_PORT,
                    neo4j_uri=f"bolt://127.0.0.1:{BOLT_PORT}", neo4j_password=password,
                    neo4j_heap=MEMORY, neo4j_pagecache=MEMORY)


def _server_peak_rss_mib(home: Path) -> int | None:
    pid_file = home / "run" / "neo4j.pid"
    try:
        status = Path(f"/proc/{pid_file.read_text().strip()}/status").read_text()
    except OSError:
        return None
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(match.group(1)) // 1024 if match else None


def _rates(bulk: dict) -> dict:
    return {
        **{k: (round(v, 2) if isinstance(v, float) else v) for k, v in bulk.items()},
        "relationships_per_s_importer": round(bulk["relationships"] / bulk["importer_seconds"]),
        "relationships_per_s_admin_wall": round(bulk["relationships"] / bulk["import_seconds"]),
    }


def _upsert_figures(run: dict) -> dict:
    return {
        **{k: (round(v, 2) if isinstance(v, float) else v) for k, v in run.items() if k != "graph"},
        "relationships_per_s_write": round(run["relationships"] / run["write_seconds"]),
        "relationships_per_s_end_to_end": round(run["relationships"] / (run["frames_seconds"] + run["write_seconds"])),
    }


def main(out_dir: Path) -> dict:
    from finrisk.services import neo4j_down, neo4j_install, neo4j_up

    out_dir.mkdir(parents=True, exist_ok=True)
    home = out_dir / "neo4j"
    password = secrets.token_urlsafe(18)  # a throwaway server: fresh data and a new password every run
    settings = _neo4j_settings(home, password)
    neo4j_down(settings)
    shutil.rmtree(home / "data", ignore_errors=True)
    if not (home / "conf" / "neo4j.conf").exists():
        neo4j_install(settings)
    env = dict(os.environ, FINRISK_NEO4J_HOME=str(home), FINRISK_NEO4J_BOLT_PORT=str(BOLT_PORT),
               FINRISK_NEO4J_HTTP_PORT=str(HTTP_PORT), FINRISK_NEO4J_URI=f"bolt://127.0.0.1:{BOLT_PORT}",
               FINRISK_NEO4J_PASSWORD=password, FINRISK_NEO4J_HEAP=MEMORY, FINRISK_NEO4J_PAGECACHE=MEMORY,
               PYTHONPATH=str(PROJECT))
    figures: dict = {"neo4j_memory": f"heap {MEMORY}, page cache {MEMORY}", "machine_shared": True,
                     "load_average_at_start": os.getloadavg()}
    try:
        neo4j_up(settings)
        data = processed_data(out_dir, *DATASETS["10m"])
        before, (first_night, new_day) = without_last_days(data, out_dir / "data-10m-before-last-2-days", 2)
        tx_rows = pl.scan_parquet(str(data / "processed" / "transactions" / "**" / "*.parquet")).select(pl.len())
        figures["dataset_10m"] = {"customers": DATASETS["10m"][0], "days": DATASETS["10m"][1],
                                  "transactions": tx_rows.collect().item()}

        # 1. bulk import of every day but the last two, switched in
        figures["bulk_10m"] = _rates(_measured("bulk", str(before), env=env))
        _keep(out_dir, figures)

        # 2. incremental: re-run the last imported day once with the server cold, warm the cache,
        #    load the next day (the first write load since the server started: the JVM compiles the
        #    write paths on the way, several seconds of server CPU), then the last day (the nightly
        #    case: a server that loaded the night before), re-runs of it (nothing changes), without
        #    the Rust packstream extension, and with one writer.
        previous_day = sorted(p.name for p in (before / "processed" / "transactions").glob("date=*"))[-1][5:]
        figures["upsert_rerun_cold"] = _upsert_figures(_measured("upsert", str(data), previous_day, 2, 10_000, env=env))
        _keep(out_dir, figures)
        figures["warm_up"] = _measured("warm", env=env)
        figures["upsert_new_day_first_after_start"] = _upsert_figures(
            _measured("upsert", str(data), first_night, 2, 10_000, env=env))
        _keep(out_dir, figures)
        new = _measured("upsert", str(data), new_day, 2, 10_000, env=env)
        figures["upsert_new_day"] = _upsert_figures(new)
        _keep(out_dir, figures)
        rerun = _measured("upsert", str(data), new_day, 2, 10_000, env=env)
        figures["upsert_rerun_same_day"] = _upsert_figures(rerun)
        _keep(out_dir, figures)
        figures["rerun_changed_counts"] = rerun["graph"] != new["graph"]
        figures["upsert_rerun_pure_python_packstream"] = _upsert_figures(
            _measured("upsert", str(data), new_day, 2, 10_000, env=env, no_rust=True))
        figures["upsert_rerun_one_writer"] = _upsert_figures(_measured("upsert", str(data), new_day, 1, 10_000, env=env))
        _keep(out_dir, figures)
        figures["graph_after_new_day"] = new["graph"]

        # 3. graph features as of the new day: Polars over the edge lists vs Cypher on the server
        figures["features_polars"] = _measured("features", str(data), new_day, env=env)
        _keep(out_dir, figures)
        try:
            figures["features_cypher"] = _measured("cypher_features", str(data), new_day, 10, env=env)
        except RuntimeError as exc:  # e.g. the shortest-path searches ran past their timeout
            figures["features_cypher"] = {"error": str(exc).splitlines()[-1][:300]}

        # 4. the wide dataset: more than 1 M nodes and 5 M relationships
        if os.environ.get("BENCH_GRAPH_WIDE", "1") != "0":
            wide = processed_data(out_dir, *DATASETS["wide"])
            figures["bulk_wide"] = {"customers": DATASETS["wide"][0], "days": DATASETS["wide"][1],
                                    **_rates(_measured("bulk", str(wide), env=env))}
        figures["neo4j_server_peak_rss_mib"] = _server_peak_rss_mib(home)
        figures["load_average_at_end"] = os.getloadavg()
    finally:
        neo4j_down(settings)
    return figures
