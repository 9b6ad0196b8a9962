"""Rotation of the pseudonymisation key: a new key appended to the chain, every stored pseudonym wrapped once.

Why wrapping: HMAC cannot be inverted and raw exports are deleted after the retention period, so
stored tokens cannot be recomputed from the identifiers; instead each token t becomes
`tk_` + HMAC(k_new, t), which is exactly what ingest computes under the chain extended by k_new
(`finrisk.privacy`), so fresh data joins rotated data.

One rotation, under the data directory's run lock (no ingest or erasure meanwhile):
1. check the configured chain against the data's fingerprint and that no erasure is half done;
   generate the new key (unless the data is behind the configured chain, see below); list every
   old pseudonym in the stores (`rotation_files`); write the journal
   (`rotation/.pending.json`, owner-only, holding the new key until the chain is stored) and the
   list of old pseudonyms;
2. rewrite each file holding one (`write_parquet_atomic`; text files by temporary name and
   rename), appending each finished file to `rotation/done.log`;
3. Neo4j: re-key the nodes keyed by one of those pseudonyms (`rotation_graph`);
4. search the data directory again (a file still holding an old pseudonym is rewritten), Neo4j,
   and, for the report, the MLflow store and the audit log;
5. store the extended chain where the configured one is kept (key file or .env), record the new
   fingerprint in the data directory, write the audit event, delete the journal.
Killed at any point, the same command resumes from the journal with the same new key. Only listed
old pseudonyms are replaced, so a file rewritten again (killed between its rename and its line in
done.log) does not change: no pseudonym is ever wrapped twice.

Several datasets may share the key. After one is rotated, the configured chain is longer than the
others'; rotating one of those wraps its pseudonyms under the keys it lacks and draws no new key.
"""
from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from finrisk import audit, progress
from finrisk.erasure_files import store_name
from finrisk.ingest_write import RunLock
from finrisk.io import DataLayout, write_parquet_atomic
from finrisk.privacy import chain_fingerprint, check_key, extend_chain, key_chain
from finrisk.rotation_chain import (
    ROTATION_DIR, ChainStore, KeyChainMismatch, check_data_chain, older_chain_length, pending_rotation_path,
    record_fingerprint, recorded_fingerprint,
)
from finrisk.rotation_files import (
    files_under, parquet_pseudonyms, remaining, rewrite_parquet, rewrite_text, rotation_parquet_files,
    rotation_text_files, text_tokens, wrapped,
)
from finrisk.setup_env import write_private

__all__ = ["RotationBusy", "RotationError", "RotationIncomplete", "RotationReport", "rotate_keys"]


class RotationError(RuntimeError):
    """A rotation cannot start or finish; the message says why and what to do."""


class RotationBusy(RotationError):
    """An ingest, erasure or another rotation holds the data directory."""


class RotationIncomplete(RotationError):
    """Old pseudonyms are still in the data after the rewrite; the journal is kept."""


@dataclass
class RotationReport:
    rotation_id: str
    started_at: str
    completed_at: str = ""
    actor: str = ""
    resumed: bool = False
    new_key: bool = True  # False: a dataset brought up to a chain another dataset's rotation extended
    keys: int = 0  # in the chain after the rotation
    fingerprint_before: str = ""
    fingerprint_after: str = ""
    chain_stored_in: str = ""
    pseudonyms: int = 0  # distinct old pseudonyms wrapped
    files_rewritten: int = 0
    values_rewritten: int = 0
    stores: list[dict] = field(default_factory=list)  # store -> files, values
    graph_nodes_rekeyed: int | None = None
    scanned: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


class Journal:
    """The rotation in flight: the plan and the new key (owner-only), the old pseudonyms, the files done."""

    def __init__(self, layout: DataLayout):
        self.folder = layout.root / ROTATION_DIR
        self.path = pending_rotation_path(layout)
        self.old_path = self.folder / "old-pseudonyms.parquet"
        self.done_path = self.folder / "done.log"

    def load(self) -> dict | None:
        return json.loads(self.path.read_text()) if self.path.exists() else None

    def save(self, state: dict) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private(self.path, json.dumps(state, indent=1).encode())

    def save_old(self, old: pl.Series) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_parquet_atomic(old.rename("old").to_frame(), self.old_path)

    def old(self) -> pl.Series:
        return pl.read_parquet(self.old_path).get_column("old")

    def done(self) -> dict[str, int]:
        """Files finished so far -> values replaced (a torn last line was never finished)."""
        if not self.done_path.exists():
            return {}
        text = self.done_path.read_text()
        if text and not text.endswith("\n"):
            with open(self.done_path, "a") as handle:
                handle.write("\n")  # end the torn line, so the next one starts clean
        lines = [line for line in text.split("\n")[:-1] if "\t" in line]
        return {path: int(count) for path, count in (line.rsplit("\t", 1) for line in lines)}

    def mark_done(self, relative: str, replaced: int) -> None:
        # Not fsynced: a line lost in a power cut only means the file is read again, which changes nothing.
        with open(self.done_path, "a") as handle:
            handle.write(f"{relative}\t{replaced}\n")

    def delete(self) -> None:
        self.done_path.unlink(missing_ok=True)
        self.old_path.unlink(missing_ok=True)
        self.path.unlink()  # last: until it is gone the rotation counts as unfinished
        try:
            self.folder.rmdir()
        except OSError:
            pass


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _pending_erasures(layout: DataLayout) -> list[Path]:
    folder = layout.root / "erasure"
    return sorted(folder.glob(".pending-*.json")) if folder.is_dir() else []


def _plan(layout: DataLayout, audit_log: Path | None) -> tuple[list[str], pl.Series]:
    """The files holding pseudonyms (relative paths) and every distinct old pseudonym."""
    root = layout.root
    parquet, text = rotation_parquet_files(root), rotation_text_files(root, audit_log)
    files, found = [], []
    for done, path in enumerate(parquet + text, 1):
        values = parquet_pseudonyms(path) if path.suffix == ".parquet" else text_tokens(path)
        if values.len():
            files.append(str(path.relative_to(root)))
            found.append(values)
        progress.report("finding pseudonyms", done, len(parquet) + len(text))
    # The graph is not searched for more: it is loaded from these files, and may be shared with
    # other datasets whose nodes a rotation of this one must leave alone.
    old = pl.concat(found).unique().sort() if found else pl.Series("old", [], pl.String)
    return files, old


def _rewrite(root: Path, relative: str, mapping: pl.DataFrame) -> int:
    path = root / relative
    if not path.exists():
        return 0  # deleted since the plan (an erasure cannot run meanwhile; a derived file may go)
    return rewrite_parquet(path, mapping) if path.suffix == ".parquet" else rewrite_text(path, mapping)


def rotate_keys(
    data_dir: Path,
    key: bytes,
    store: ChainStore,
    *,
    driver=None,
    database: str = "neo4j",
    mlflow_paths: list[Path] = (),
    audit_log: Path | None = None,
    actor: str | None = None,
    step=None,
) -> RotationReport:
    """Rotate the pseudonymisation key of one data directory, or finish a rotation that was killed.

    key: the configured chain (before the rotation, or already the new chain when a killed
    rotation had stored it); store: where that chain is kept, to store the new one;
    driver: a Neo4j driver, or None for an installation without a graph;
    mlflow_paths: the MLflow store folders to search (reported, never rewritten);
    step: optional callable(description) for a status line.
    """
    key = check_key(key)
    layout = DataLayout(Path(data_dir))
    if not layout.root.is_dir():
        raise RotationError(f"data directory not found: {layout.root}")
    say = step or (lambda _: None)
    with RunLock(layout.root, RotationBusy):
        return _rotate(layout, key, store, driver, database, list(mlflow_paths), audit_log, actor, say)


def _start(layout: DataLayout, key: bytes, graph: bool, audit_log: Path | None, journal: Journal, say) -> dict:
    pending = _pending_erasures(layout)
    if pending:
        raise RotationError(f"an erasure is half done ({pending[0].name}); run the same `finrisk erase` again to "
                            "finish it, then rotate")
    recorded = recorded_fingerprint(layout)
    older = older_chain_length(recorded["fingerprint"], key) if recorded else None
    if older is None:
        check_data_chain(layout, key, "rotation")  # the configured chain is the data's (or binds it)
        wrap_keys, before = secrets.token_hex(32).encode(), key
    else:
        # Another dataset sharing the key was rotated: wrap under the keys this one lacks, draw none.
        wrap_keys, before = b",".join(key_chain(key)[older:]), b",".join(key_chain(key)[:older])
    say("listing the pseudonyms in every store")
    files, old = _plan(layout, audit_log)
    state = {
        "rotation_id": uuid.uuid4().hex[:16], "started_at": _now(), "wrap_keys": wrap_keys.decode(),
        "keys_before": len(key_chain(before)), "fingerprint_before": chain_fingerprint(before),
        "fingerprint_after": chain_fingerprint(extend_chain(before, wrap_keys)), "new_key": older is None,
        "graph": graph, "files": files, "graph_rekeyed": None,
    }
    journal.save_old(old)
    journal.save(state)  # from here on the rotation is pending: ingest refuses until it completes
    return state


def _rotate(layout, key, store, driver, database, mlflow_paths, audit_log, actor, say) -> RotationReport:
    journal = Journal(layout)
    state = journal.load()
    resumed = state is not None
    if state is None:
        state = _start(layout, key, driver is not None, audit_log, journal, say)
    configured = chain_fingerprint(key)
    if configured not in (state["fingerprint_before"], state["fingerprint_after"]):
        raise KeyChainMismatch(f"the rotation pending in {layout.root} was started under another key chain "
                               f"(fingerprint {state['fingerprint_before']}, configured {configured}); configure that chain and run "
                               "the same command again")
    if state["graph"] and driver is None:
        raise RotationError("this rotation also re-keys Neo4j: run it again with the graph reachable")
    wrap_keys = state["wrap_keys"].encode()
    old = journal.old()
    mapping = wrapped(old, wrap_keys)

    done = journal.done()
    for relative in [f for f in state["files"] if f not in done]:
        replaced = _rewrite(layout.root, relative, mapping)
        journal.mark_done(relative, replaced)
        done[relative] = replaced
        progress.report("rewriting files", len(done), len(state["files"]))

    if state["graph"] and state["graph_rekeyed"] is None:
        from finrisk.rotation_graph import rekey_graph

        say("Neo4j: re-keying token-keyed nodes")
        state["graph_rekeyed"] = rekey_graph(driver, database, mapping, progress.report)
        journal.save(state)

    say("searching every store for old pseudonyms")
    late = remaining(rotation_parquet_files(layout.root) + rotation_text_files(layout.root, audit_log), old)
    for path in late:  # written after the plan by something that ignored the lock: rewrite it too
        relative = str(Path(path).relative_to(layout.root))
        done[relative] = done.get(relative, 0) + _rewrite(layout.root, relative, mapping)
        journal.mark_done(relative, done[relative])
    left = remaining(rotation_parquet_files(layout.root) + rotation_text_files(layout.root, audit_log), old)
    if state["graph"]:
        from finrisk.rotation_graph import graph_remaining, rekey_graph

        if graph_remaining(driver, database, old):  # a graph load since the plan: re-key again
            state["graph_rekeyed"] += rekey_graph(driver, database, mapping)
        if graph_remaining(driver, database, old):
            left[f"neo4j database {database}"] = graph_remaining(driver, database, old)
    if left:
        raise RotationIncomplete(
            f"{len(left)} place(s) still hold old pseudonyms (e.g. {next(iter(left))}); nothing else may write to "
            f"{layout.root} during a rotation: stop it and run the same command again"
        )

    new_chain = key if configured == state["fingerprint_after"] else extend_chain(key, wrap_keys)
    if configured != state["fingerprint_after"]:
        say(f"storing the new key chain in {store.describe()}")
        store.save(new_chain)
    if chain_fingerprint(check_key(store.read())) != state["fingerprint_after"]:
        raise RotationError(f"the key chain read back from {store.describe()} is not the new one; the new key is "
                            f"still in {journal.path} (owner-only): fix the store and run the same command again")
    record_fingerprint(layout, new_chain, "rotation")

    report = _report(layout, state, done, old, resumed, actor, store, mlflow_paths, audit_log, database)
    if audit_log is not None:
        audit.record(audit_log, "key_rotation", str(layout.root), {
            "rotation_id": report.rotation_id, "new_key": report.new_key,
            "fingerprint_before": report.fingerprint_before, "fingerprint_after": report.fingerprint_after,
            "keys": report.keys, "files_rewritten": report.files_rewritten, "values_rewritten": report.values_rewritten,
            "graph_nodes_rekeyed": report.graph_nodes_rekeyed, "chain_stored_in": report.chain_stored_in,
        }, actor=actor)
    journal.delete()  # and with it the only copy of the new key outside the chain store
    return report


def _report(layout, state, done, old, resumed, actor, store, mlflow_paths, audit_log, database) -> RotationReport:
    by_store: dict[str, dict] = {}
    for relative, count in done.items():
        if count:
            entry = by_store.setdefault(store_name(layout.root, layout.root / relative),
                                        {"store": store_name(layout.root, layout.root / relative), "files": 0, "values": 0})
            entry["files"] += 1
            entry["values"] += count
    notes = []
    outside = [Path(p) for p in (*mlflow_paths, *([audit_log] if audit_log is not None else []))]
    for path, count in remaining(files_under(outside), old).items():
        # Evidence and experiment records are not rewritten: the audit log is append-only, and
        # MLflow keeps what a run logged (training logs no pseudonym; this finds one if it did).
        notes.append(f"{path} still holds {count} old pseudonym(s); it is not rewritten")
    return RotationReport(
        rotation_id=state["rotation_id"], started_at=state["started_at"], completed_at=_now(),
        actor=actor or audit.default_actor(), resumed=resumed, new_key=state["new_key"],
        keys=state["keys_before"] + len(key_chain(state["wrap_keys"].encode())),
        fingerprint_before=state["fingerprint_before"], fingerprint_after=state["fingerprint_after"],
        chain_stored_in=store.describe(), pseudonyms=old.len(),
        files_rewritten=sum(1 for c in done.values() if c), values_rewritten=sum(done.values()),
        stores=sorted(by_store.values(), key=lambda s: s["store"]), graph_nodes_rekeyed=state["graph_rekeyed"],
        scanned=[str(layout.root), *map(str, outside)] + ([f"neo4j database {database}"] if state["graph"] else []),
        notes=notes,
    )
