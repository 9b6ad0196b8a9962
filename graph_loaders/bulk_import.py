"""Full initial load: CSV files for `neo4j-admin database import full`, imported into a fresh
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
from graph_loaders.model import DATETIME, LOADED_DAY, NODES, RELATIONSHIPS, NodeSpec, RelSpec, end_key, start_key
from graph_loaders.neo4j_load import connect
from graph_loaders.schema import ensure_schema

CSV_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%.6fZ"  # UTC; Neo4j reads it as a DateTime with offset Z


class BulkImportError(RuntimeError):
    """The import could not run or failed; the message says why and what state the server is in."""


@dataclass
class ImportFiles:
    nodes: list[tuple[str, Path, Path]] = field(default_factory=list)  # (label, header, data)
    relationships: list[tuple[str, Path, Path]] = field(default_factory=list)  # (type, header, data)
    node_rows: int = 0
    relationship_rows: int = 0


@dataclass
class BulkImportReport:
    nodes: int
    relationships: int
    days: int
    frames_seconds: float
    csv_seconds: float
    import_seconds: float  # neo4j-admin, JVM start included
    importer_seconds: float | None  # the importer's own figure
    switch_seconds: float  # stop, swap, start, constraints built and online

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _header_field(name: str, kind: str) -> str:
    return f"{name}:{kind}"


def node_header(node: NodeSpec) -> str:
    return ",".join([f":ID({node.label})", node.key, *(_header_field(n, k) for n, k in node.props)])


def relationship_header(rel: RelSpec) -> str:
    return ",".join([
        f":START_ID({rel.start})", f":END_ID({rel.end})", *(_header_field(n, k) for n, k in rel.props),
    ])


def _csv_ready(frame: pl.DataFrame, kinds: dict[str, str]) -> pl.DataFrame:
    return frame.with_columns(
        pl.col(name).dt.convert_time_zone("UTC").dt.strftime(CSV_TIME_FORMAT)
        for name, kind in kinds.items() if kind == DATETIME
    )


def write_import_files(frames: GraphFrames, out_dir: Path, days: dict[str, int]) -> ImportFiles:
    """One header file and one headerless data file per node label and per relationship spec.

    Nodes get integer import ids (their row number within the label) and relationships refer to
    those: the importer maps integers much faster than strings; the keys are ordinary properties.
    """
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    files = ImportFiles()
    loaded = pl.DataFrame({"date": list(days), "rows": list(days.values())}, schema={"date": pl.String, "rows": pl.Int64})
    import_ids: dict[str, pl.DataFrame] = {}
    for node, frame in [*((n, frames.nodes[n.label]) for n in NODES), (LOADED_DAY, loaded)]:
        numbered = frame.with_row_index("_import_id")
        import_ids[node.label] = numbered.select(node.key, "_import_id")
        header, data = out_dir / f"{node.label}.header.csv", out_dir / f"{node.label}.csv"
        header.write_text(node_header(node) + "\n")
        _csv_ready(numbered, dict(node.props)).write_csv(data, include_header=False)
        files.nodes.append((node.label, header, data))
        files.node_rows += frame.height
    for rel in RELATIONSHIPS:
        start, end = start_key(rel), end_key(rel)
        frame = (
            frames.rels[rel.name]
            .join(import_ids[rel.start].rename({"_import_id": "_start"}), on=start, how="inner")
            .join(import_ids[rel.end].rename({"_import_id": "_end"}), on=end, how="inner")
            .select("_start", "_end", *(name for name, _ in rel.props))
        )
        if frame.height != frames.rels[rel.name].height:
            raise BulkImportError(f"{rel.name}: {frames.rels[rel.name].height - frame.height} relationships end on no node")
        header, data = out_dir / f"{rel.name}.header.csv", out_dir / f"{rel.name}.csv"
        header.write_text(relationship_header(rel) + "\n")
        _csv_ready(frame, dict(rel.props)).write_csv(data, include_header=False)
        files.relationships.append((rel.type, header, data))
        files.relationship_rows += frame.height
    return files


def import_arguments(files: ImportFiles, database: str, threads: int | None = None,
                     max_off_heap: str = "2G") -> list[str]:
    """neo4j-admin arguments; the database name comes before the repeatable options (picocli).

    No --schema: Community's record format cannot build indexes during the import ("Record format
    batch import does not support schema changes"), so constraints are created after the switch.
    """
    args = [
        "database", "import", "full", database, "--overwrite-destination", "--id-type=integer",
        f"--max-off-heap-memory={max_off_heap}",
    ]
    if threads:
        args.append(f"--threads={threads}")
    args += [f"--nodes={label}={header},{data}" for label, header, data in files.nodes]
    args += [f"--relationships={rel_type}={header},{data}" for rel_type, header, data in files.relationships]
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
        frames_seconds=framed - started, csv_seconds=written - framed, import_seconds=imported - written,
        importer_seconds=importer,
        switch_seconds=switched - imported,
    )
