"""Full initial load: Parquet files for `neo4j-admin database import full`, imported into a fresh
database that is then switched in.

The import writes a staging database next to the live one while the server keeps serving the old
graph; only the switch (stop, swap the two store folders, start) takes the server down. The old
store is kept until the new one is online, and put back if the server will not start on the new
one. Community serves a single user database, so switching by folders is the way to "switch in"
without CREATE DATABASE; users and passwords live in `system` and are untouched.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from finrisk.config import Settings
from finrisk.io import DataLayout, scan_partitioned
from finrisk.services import NEO4J_SCRIPTS, neo4j_down, neo4j_up
from graph_loaders.edges import GraphFrames, graph_frames
from graph_loaders.incremental import NothingToLoad, partition_rows
from graph_loaders.model import DATETIME, LOADED_DAY, NODES, RELATIONSHIPS, end_key, start_key
from graph_loaders.neo4j_load import connect
from graph_loaders.schema import ensure_schema


class BulkImportError(RuntimeError):
    """The import could not run or failed; the message says why and what state the server is in."""


@dataclass
class ImportFiles:
    nodes: list[tuple[str, Path]] = field(default_factory=list)  # (label, parquet file)
    relationships: list[tuple[str, Path]] = field(default_factory=list)  # (type, parquet file)
    node_rows: int = 0
    relationship_rows: int = 0


@dataclass
class BulkImportReport:
    nodes: int
    relationships: int
    days: int
    frames_seconds: float
    files_seconds: float  # writing the Parquet input
    import_seconds: float  # neo4j-admin, JVM start included
    importer_seconds: float | None  # the importer's own figure
    switch_seconds: float  # stop, swap, start, constraints built and online

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _typed(frame: pl.DataFrame, props: tuple[tuple[str, str], ...]) -> pl.DataFrame:
    """Times as UTC instants (Parquet TIMESTAMP adjusted to UTC: the importer makes DateTime with offset Z)."""
    return frame.with_columns(pl.col(name).dt.convert_time_zone("UTC") for name, kind in props if kind == DATETIME)


def write_import_files(frames: GraphFrames, out_dir: Path, days: dict[str, int]) -> ImportFiles:
    """One Parquet file per node label and per relationship spec; column names are import headers.

    Every node gets a store id of its own (`--id-type=actual`): labels take consecutive ranges
    from 0, and relationships name their ends by those ids, so the importer needs no id mapping
    (looking up 14 M relationship ends in its id index was a quarter of the import's CPU). Parquet
    carries typed values: times arrive as instants instead of ISO strings the importer would have
    to parse (a third of the CPU of a CSV import). Keys stay ordinary properties.
    """
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    files = ImportFiles()
    loaded = pl.DataFrame({"date": list(days), "rows": list(days.values())}, schema={"date": pl.String, "rows": pl.Int64})
    store_ids: dict[str, pl.DataFrame] = {}
    first_id = 0
    for node, frame in [*((n, frames.nodes[n.label]) for n in NODES), (LOADED_DAY, loaded)]:
        numbered = frame.select(
            (pl.int_range(pl.len(), dtype=pl.Int64) + first_id).alias(":ID"), node.key, *(n for n, _ in node.props)
        )
        first_id += frame.height
        store_ids[node.label] = numbered.select(pl.col(node.key), pl.col(":ID"))
        path = out_dir / f"{node.label}.parquet"
        _typed(numbered, node.props).write_parquet(path)
        files.nodes.append((node.label, path))
        files.node_rows += frame.height
    for rel in RELATIONSHIPS:
        start, end = start_key(rel), end_key(rel)
        frame = (
            frames.rels[rel.name]
            .join(store_ids[rel.start].rename({":ID": ":START_ID"}), on=start, how="inner")
            .join(store_ids[rel.end].rename({":ID": ":END_ID"}), on=end, how="inner")
            .select(":START_ID", ":END_ID", *(name for name, _ in rel.props))
        )
        if frame.height != frames.rels[rel.name].height:
            raise BulkImportError(f"{rel.name}: {frames.rels[rel.name].height - frame.height} relationships end on no node")
        path = out_dir / f"{rel.name}.parquet"
        _typed(frame, rel.props).write_parquet(path)
        files.relationships.append((rel.type, path))
        files.relationship_rows += frame.height
    return files


def import_arguments(files: ImportFiles, database: str, threads: int | None = None,
                     max_off_heap: str = "2G") -> list[str]:
    """neo4j-admin arguments; the database name comes before the repeatable options (picocli).

    No --schema: Community's record format cannot build indexes during the import ("Record format
    batch import does not support schema changes"), so constraints are created after the switch.
    """
    args = [
        "database", "import", "full", database, "--overwrite-destination", "--input-type=parquet",
        "--id-type=actual", f"--max-off-heap-memory={max_off_heap}",
    ]
    if threads:
        args.append(f"--threads={threads}")
    args += [f"--nodes={label}={path}" for label, path in files.nodes]
    args += [f"--relationships={rel_type}={path}" for rel_type, path in files.relationships]
    return args


def require_local_server(settings: Settings) -> None:
    if not (settings.neo4j_home / "conf" / "neo4j.conf").exists():
        raise BulkImportError(
            f"the bulk import needs the local Neo4j server under {settings.neo4j_home} (run `finrisk setup`); "
            "for a remote server use the incremental load (`finrisk graph load` without --full)"
        )


def run_admin_import(settings: Settings, args: list[str], heap: str = "1g") -> float | None:
    """Run neo4j-admin; returns the importer's own time ("IMPORT DONE in ...") in seconds."""
    env = dict(os.environ, HEAP_SIZE=heap)
    proc = subprocess.run(
        ["bash", str(NEO4J_SCRIPTS / "admin.sh"), str(settings.neo4j_home), *args],
        env=env, capture_output=True, text=True,
    )
    log = settings.neo4j_home / "logs" / "import.out"
    log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        last = next((line for line in reversed((proc.stderr or proc.stdout).splitlines()) if line.strip()), "")
        raise BulkImportError(f"neo4j-admin import failed, the live graph is unchanged: {last.strip()} (log: {log})")
    return importer_seconds(proc.stdout)


def importer_seconds(output: str) -> float | None:
    match = re.search(r"IMPORT DONE in ((?:\d+ms\s*|\d+[hms]\s*)+)", output)
    if not match:
        return None
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+)(ms|h|m|s)", match.group(1)))


def _store_dirs(settings: Settings, database: str) -> list[Path]:
    data = settings.neo4j_home / "data"
    return [data / "databases" / database, data / "transactions" / database]


def switch_in(settings: Settings, staging: str, database: str) -> None:
    """Stop the server, put the staging store in place of the live one, start; roll back on failure."""
    neo4j_down(settings)
    swapped: list[tuple[Path, Path, Path]] = []
    for new, live in zip(_store_dirs(settings, staging), _store_dirs(settings, database)):
        previous = live.with_name(live.name + ".previous")
        shutil.rmtree(previous, ignore_errors=True)
        if live.exists():
            live.rename(previous)
        new.rename(live)
        swapped.append((new, live, previous))
    try:
        neo4j_up(settings)
    except Exception as exc:
        neo4j_down(settings)
        for new, live, previous in swapped:
            shutil.rmtree(live, ignore_errors=True)
            if previous.exists():
                previous.rename(live)
        neo4j_up(settings)
        raise BulkImportError(f"the server did not start on the imported graph; the old graph is back: {exc}") from exc
    for _, _, previous in swapped:
        shutil.rmtree(previous, ignore_errors=True)


def bulk_load(settings: Settings, data_dir: Path, work_dir: Path | None = None, threads: int | None = None,
              import_heap: str = "1g", max_off_heap: str = "2G") -> BulkImportReport:
    """Build the whole graph from processed data with neo4j-admin and switch it in."""
    require_local_server(settings)
    layout = DataLayout(Path(data_dir))
    rows = partition_rows(layout)
    if not rows:
        raise NothingToLoad(f"no processed transactions under {layout.transactions}; run ingest first")
    database = settings.neo4j_database
    staging = f"{database}-staging"
    work_dir = Path(work_dir) if work_dir else layout.root / "graph_import"

    started = time.perf_counter()
    frames = graph_frames(scan_partitioned(layout.transactions))
    framed = time.perf_counter()
    files = write_import_files(frames, work_dir, rows)
    written = time.perf_counter()
    for leftover in _store_dirs(settings, staging):
        shutil.rmtree(leftover, ignore_errors=True)
    importer = run_admin_import(settings, import_arguments(files, staging, threads, max_off_heap), import_heap)
    imported = time.perf_counter()
    switch_in(settings, staging, database)
    driver = connect(settings.neo4j_uri, settings.neo4j_user, settings.require_neo4j_password(),
                     notifications_min_severity="OFF")
    try:
        ensure_schema(driver, database)  # builds the unique indexes over the imported nodes
    finally:
        driver.close()
    switched = time.perf_counter()
    shutil.rmtree(work_dir, ignore_errors=True)
    return BulkImportReport(
        nodes=files.node_rows - len(rows), relationships=files.relationship_rows, days=len(rows),
        frames_seconds=framed - started, files_seconds=written - framed, import_seconds=imported - written,
        importer_seconds=importer,
        switch_seconds=switched - imported,
    )
