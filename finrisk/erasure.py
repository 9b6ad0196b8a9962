"""Right to erasure (DPDP Act 2023, s. 12): remove a customer from every store, prove it, certify it.

One erasure:
1. find the customer's rows and identifiers in raw, processed and quarantine data
   (`finrisk.erasure_subject`), and write a journal (`erasure/.pending-<ref>.json`, owner-only)
   holding them and a fresh secret, so a crashed erasure resumes with the same erased markers;
2. Neo4j: re-key shared nodes, delete the customer and what only they reached (`erasure_graph`);
3. every Parquet table under the data directory, the raw exports and derived documents
   (`erasure_files`), each file rewritten atomically;
4. Neo4j again: recompute the relationships of the customers and merchants whose data changed;
5. scan the data directory, the MLflow store and the audit log for any of the identifiers, and
   the graph for any node keyed by them;
6. write the certificate (`erasure/certificate-<id>.json` and `.txt`), add the subject
   reference to the erasure register, record the erasure in the audit log, delete the journal
   (and with it the secret: from then on no one can link an erased marker to anything).

Nothing of the customer's in clear is kept: the certificate, register and audit event name them
by subject reference (`finrisk.subjects`).
"""
from __future__ import annotations

import json
import os
import secrets
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from finrisk import audit
from finrisk.erasure_files import (
    Residual, find_traces, raw_marker, scrub_journals, scrub_parquet_tree, scrub_raw, sweep_documents, token_marker,
)
from finrisk.erasure_subject import Subject, SubjectNotFound, find_subject
from finrisk.ingest_write import RunLock
from finrisk.io import DataLayout, write_parquet_atomic
from finrisk.mapping import Mapping, load_mapping
from finrisk.privacy import Pseudonymiser, check_key
from finrisk.rotation_chain import check_data_chain
from finrisk.subjects import subject_ref

__all__ = ["ErasureBusy", "ErasureCertificate", "ErasureIncomplete", "SubjectNotFound", "erase_customer", "erased_subjects"]

REGISTER_SCHEMA = {"subject_ref": pl.String, "erased_at": pl.Datetime("us", "UTC"), "certificate_id": pl.String}


class ErasureBusy(RuntimeError):
    """An ingest (or another erasure) holds the data directory."""


class ErasureIncomplete(RuntimeError):
    """The erasure ran but a trace of the customer is left; the certificate lists where."""

    def __init__(self, message: str, certificate: "ErasureCertificate"):
        super().__init__(message)
        self.certificate = certificate


def erasure_dir(layout: DataLayout) -> Path:
    return layout.root / "erasure"


def register_path(layout: DataLayout) -> Path:
    return erasure_dir(layout) / "register.parquet"


def erased_subjects(layout: DataLayout) -> pl.DataFrame:
    path = register_path(layout)
    return pl.read_parquet(path) if path.exists() else pl.DataFrame(schema=REGISTER_SCHEMA)


@dataclass
class ErasureCertificate:
    certificate_id: str
    subject_ref: str
    requested_at: str
    completed_at: str = ""
    actor: str = ""
    complete: bool = False
    found: dict[str, int] = field(default_factory=dict)  # store -> the customer's rows found before
    stores: list[dict] = field(default_factory=list)
    graph: dict | None = None
    scanned: list[str] = field(default_factory=list)
    residual: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    json_path: str = ""
    text_path: str = ""

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("json_path", "text_path")}

    def text(self) -> str:
        lines = [
            "ERASURE CERTIFICATE (DPDP Act 2023, right to erasure)",
            f"certificate      {self.certificate_id}",
            f"data principal   {self.subject_ref} (keyed reference; the customer id is not kept)",
            f"requested (UTC)  {self.requested_at}",
            f"completed (UTC)  {self.completed_at}",
            f"carried out by   {self.actor}",
            f"outcome          {'COMPLETE: no trace found' if self.complete else 'INCOMPLETE: traces remain'}",
            "",
            "store                                rows deleted  values anonymised  files rewritten  files deleted",
        ]
        for s in self.stores:
            lines.append(f"{s['store']:<36} {s['rows_deleted']:>12,} {s['values_anonymised']:>18,} "
                         f"{s['files_rewritten']:>16,} {s['files_deleted']:>14,}")
        if self.graph is not None:
            lines += ["", "Neo4j: " + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in self.graph.items())]
        lines += ["", "searched for any remaining identifier: " + "; ".join(self.scanned)]
        lines += [f"REMAINING: {r['path']} ({r['occurrences']})" for r in self.residual]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


class Journal:
    """The in-flight erasure's state: the subject's identifiers and the marker secret, owner-only."""

    def __init__(self, layout: DataLayout, ref: str):
        self.path = erasure_dir(layout) / f".pending-{ref}.json"

    def load(self) -> dict | None:
        return json.loads(self.path.read_text()) if self.path.exists() else None

    def save(self, state: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.{uuid.uuid4().hex}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(state, handle)
        os.replace(tmp, self.path)

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)


def _markers(subject: Subject, salt: bytes, key: bytes) -> tuple[dict[str, str], dict[str, str]]:
    """token -> erased token, clear raw value -> erased raw value."""
    tokens = {t: token_marker(t, salt) for t in sorted(subject.tokens)}
    table = Pseudonymiser(key).table(pl.Series(sorted(subject.clear), dtype=pl.String))
    clear = {value: raw_marker(token, salt) for value, token in table.iter_rows() if token in subject.tokens}
    return tokens, clear


def _append_register(layout: DataLayout, ref: str, when: datetime, certificate_id: str) -> None:
    row = pl.DataFrame({"subject_ref": [ref], "erased_at": [when], "certificate_id": [certificate_id]},
                       schema=REGISTER_SCHEMA)
    table = pl.concat([erased_subjects(layout), row]).unique("subject_ref", keep="first", maintain_order=True)
    write_parquet_atomic(table, register_path(layout))


def _write_certificate(layout: DataLayout, certificate: ErasureCertificate) -> None:
    folder = erasure_dir(layout)
    folder.mkdir(parents=True, exist_ok=True)
    for suffix, body in ((".json", json.dumps(certificate.as_dict(), indent=2)), (".txt", certificate.text())):
        path = folder / f"certificate-{certificate.certificate_id}{suffix}"
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(body, encoding="utf-8")
        os.replace(tmp, path)
        if suffix == ".json":
            certificate.json_path = str(path)
        else:
            certificate.text_path = str(path)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def erase_customer(
    data_dir: Path,
    customer_id: str,
    key: bytes,
    *,
    mapping: Mapping | None = None,
    raw_dirs: list[Path] | None = None,
    driver=None,
    database: str = "neo4j",
    mlflow_paths: list[Path] = (),
    audit_log: Path | None = None,
    actor: str | None = None,
    extra_identifiers: list[str] = (),
    progress=None,
) -> ErasureCertificate:
    """Erase one customer everywhere; returns the certificate, raises ErasureIncomplete (after
    writing the certificate) when the final search still finds a trace, SubjectNotFound when no
    store holds the customer.

    driver: a Neo4j driver, or None for an installation without a graph.
    mlflow_paths: the MLflow backend store and artifact folders to search.
    progress: optional callable(step description), for a status line.
    """
    customer_id = customer_id.strip()
    if not customer_id:
        raise ValueError("the customer id is empty")
    key = check_key(key)
    layout = DataLayout(Path(data_dir))
    mapping = mapping or load_mapping(None)
    raw_dirs = [Path(p) for p in raw_dirs] if raw_dirs is not None else [layout.raw]
    step = progress or (lambda _: None)
    # The ingest lock: an ingest merging into a partition meanwhile could write the rows back.
    with RunLock(layout.root, ErasureBusy):
        check_data_chain(layout, key, "erasure")  # the customer's tokens are those of the data's key chain
        return _erase(layout, customer_id, key, mapping, raw_dirs, driver, database, mlflow_paths, audit_log, actor,
                      extra_identifiers, step)


def _erase(layout, customer_id, key, mapping, raw_dirs, driver, database, mlflow_paths, audit_log, actor,
           extra_identifiers, step) -> ErasureCertificate:
    ref = subject_ref(customer_id, key)
    journal = Journal(layout, ref)
    state = journal.load()
    if state is None:
        if ref in set(erased_subjects(layout).get_column("subject_ref").to_list()):
            raise SubjectNotFound(f"customer {customer_id!r} was already erased (see {erasure_dir(layout)})")
        step("finding the customer's rows and identifiers")
        subject = find_subject(layout, customer_id, key, mapping, raw_dirs, list(extra_identifiers))
        from graph_loaders.incremental import partition_rows

        state = {
            "certificate_id": uuid.uuid4().hex[:16], "requested_at": _now().isoformat(timespec="seconds"),
            "salt": secrets.token_hex(32), "subject": subject.as_journal(), "rows_before": partition_rows(layout),
            "neighbours": None, "graph": None, "stores": None, "touched": None,
        }
        journal.save(state)
    subject = Subject.from_journal(state["subject"])
    token_markers, clear_markers = _markers(subject, bytes.fromhex(state["salt"]), key)

    if driver is not None and state["graph"] is None:
        from finrisk.erasure_graph import delete_subject, neighbourhood

        step("Neo4j: deleting the customer's node")
        state["neighbours"] = neighbourhood(driver, database, customer_id)
        journal.save(state)
        state["graph"] = delete_subject(driver, database, customer_id, token_markers, state["neighbours"]).as_dict()
        journal.save(state)

    if state["stores"] is None:
        step("rewriting Parquet tables, raw exports and reports")
        tables, touched = scrub_parquet_tree(layout.root, subject, token_markers)
        results = [*tables.values(), scrub_raw(raw_dirs, subject, clear_markers, mapping), sweep_documents(layout.root, subject),
                   scrub_journals(layout.root, subject, token_markers)]
        state["stores"] = [r.as_dict() for r in results if r.rows_deleted or r.values_anonymised or r.files_deleted
                           or r.files_rewritten]
        state["touched"] = sorted(touched)
        journal.save(state)

    graph_report = None
    if driver is not None:
        from finrisk.erasure_graph import GraphErasure, refresh_entities, subject_nodes

        step("Neo4j: recomputing the relationships that changed")
        graph_report = refresh_entities(
            driver, database, layout, set(state["touched"]), subject.merchants, state["rows_before"],
            state["neighbours"] or [], GraphErasure(**state["graph"]),
        ).as_dict()

    step("searching every store for what is left")
    roots = _outermost([layout.root, *raw_dirs, *(Path(p) for p in mlflow_paths)])
    residual: list[Residual] = find_traces(roots, subject, skip={"staging"})
    notes = _notes(driver)
    if audit_log is not None:
        roots.append(Path(audit_log))
        earlier = sum(r.occurrences for r in find_traces([Path(audit_log)], subject))
        if earlier:
            # The log is append-only evidence of processing (kept under law); it is not rewritten.
            notes.append(f"{earlier} earlier audit event(s) name the customer in clear; the append-only audit "
                         "log is kept as evidence of processing")
    if driver is not None:
        left = subject_nodes(driver, database, customer_id, subject.tokens)
        if left:
            residual.append(Residual(f"neo4j database {database}", left))

    completed = _now()
    certificate = ErasureCertificate(
        certificate_id=state["certificate_id"], subject_ref=ref, requested_at=state["requested_at"],
        completed_at=completed.isoformat(timespec="seconds"), actor=actor or audit.default_actor(),
        complete=not residual, found=subject.found_in, stores=state["stores"], graph=graph_report,
        scanned=[str(r) for r in roots] + ([f"neo4j database {database}"] if driver is not None else []),
        residual=[asdict(r) for r in residual],
        notes=notes,
    )
    _write_certificate(layout, certificate)
    if residual:
        raise ErasureIncomplete(
            f"erasure ran, but {len(residual)} place(s) still hold the customer's identifiers; see "
            f"{certificate.text_path} (run the same command again once they are dealt with)",
            certificate,
        )
    _append_register(layout, ref, completed, certificate.certificate_id)
    if audit_log is not None:
        audit.record(audit_log, "erasure", ref, {
            "certificate_id": certificate.certificate_id,
            "rows_deleted": sum(s["rows_deleted"] for s in certificate.stores),
            "values_anonymised": sum(s["values_anonymised"] for s in certificate.stores),
            "certificate": certificate.json_path,
        }, actor=actor)
    journal.delete()
    return certificate


def _outermost(paths: list[Path]) -> list[Path]:
    """The folders to search, each once: a raw folder inside the data directory is searched with it."""
    resolved = list(dict.fromkeys(Path(p).resolve() for p in paths))
    return [p for p in resolved if not any(p != other and p.is_relative_to(other) for other in resolved)]


def _notes(driver) -> list[str]:
    notes = [
        "Other customers' aggregate features, twins and graph features are recomputed without this customer "
        "by the next nightly run; models trained earlier keep no identifier and age out as they are retrained.",
        "Deleted data may persist in backups and in freed disk blocks until they are overwritten or expire.",
    ]
    if driver is None:
        notes.append("No graph store was configured for this erasure.")
    else:
        notes.append("Neo4j keeps deleted records in its transaction logs until they are rotated out "
                     "(db.tx_log.rotation.retention_policy).")
    return notes
