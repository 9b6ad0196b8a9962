"""Consent and purpose (DPDP Act 2023, ss. 6-7): what each customer agreed to, and honouring it.

`processed/consent/consent.parquet` holds one row per (customer, purpose): when consent was
granted and, if it was, when it was withdrawn. Processing reads transactions through
`honour_consent`, which drops every customer whose consent for that purpose is withdrawn (or,
with FINRISK_CONSENT_REQUIRED, never given), and every customer on the erasure register (so a
re-delivered export cannot bring an erased customer back). Withdrawal stops all further
processing of the customer's data for that purpose, history included; the data itself stays
only as long as retention requires (see `finrisk retention` and `finrisk erase`).

Purposes:
- fraud_detection: behavioural features, the Customer Financial Twin and fraud scoring;
- model_training: using the customer's history to train and evaluate models.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from finrisk.io import DataLayout, write_parquet_atomic

PURPOSES = ("fraud_detection", "model_training")
CONSENT_SCHEMA = {
    "customer_id": pl.String, "purpose": pl.String, "granted_at": pl.Datetime("us", "UTC"),
    "withdrawn_at": pl.Datetime("us", "UTC"), "recorded_at": pl.Datetime("us", "UTC"), "recorded_by": pl.String,
}


class ConsentError(ValueError):
    """A consent record cannot be written; the message says why."""


def consent_path(layout: DataLayout) -> Path:
    return layout.root / "processed" / "consent" / "consent.parquet"


def read_consent(layout: DataLayout) -> pl.DataFrame:
    path = consent_path(layout)
    return pl.read_parquet(path) if path.exists() else pl.DataFrame(schema=CONSENT_SCHEMA)


def _check(customer_id: str, purpose: str) -> None:
    if not customer_id.strip():
        raise ConsentError("the customer id is empty")
    if purpose not in PURPOSES:
        raise ConsentError(f"unknown purpose {purpose!r}; choose from {', '.join(PURPOSES)}")


def record_consent(layout: DataLayout, customer_id: str, purpose: str, action: str, at: datetime,
                   recorded_by: str) -> dict:
    """Grant or withdraw one purpose for one customer; returns the customer's row for that purpose."""
    _check(customer_id, purpose)
    if at.tzinfo is None:
        raise ConsentError("the time of a consent event must carry a time zone")
    table = read_consent(layout)
    current = table.filter((pl.col("customer_id") == customer_id) & (pl.col("purpose") == purpose))
    now = datetime.now(timezone.utc)
    if action == "grant":
        row = {"granted_at": at, "withdrawn_at": None}
    elif action == "withdraw":
        granted = current.get_column("granted_at")[0] if current.height else None
        if granted is not None and at < granted:
            raise ConsentError(f"withdrawal at {at.isoformat()} is before the grant at {granted.isoformat()}")
        row = {"granted_at": granted, "withdrawn_at": at}
    else:
        raise ConsentError(f"action must be grant or withdraw, not {action!r}")
    new = pl.DataFrame([{"customer_id": customer_id, "purpose": purpose, **row, "recorded_at": now,
                         "recorded_by": recorded_by}], schema=CONSENT_SCHEMA)
    rest = table.filter(~((pl.col("customer_id") == customer_id) & (pl.col("purpose") == purpose)))
    write_parquet_atomic(pl.concat([rest, new]).sort("customer_id", "purpose"), consent_path(layout))
    return new.row(0, named=True)


def excluded_customers(layout: DataLayout, purpose: str, customers: pl.Series, required: bool = False,
                       key: bytes | None = None, at: datetime | None = None) -> pl.Series:
    """Which of `customers` may not be processed for `purpose` at `at` (default now)."""
    _check("-", purpose)
    at = at or datetime.now(timezone.utc)
    table = read_consent(layout).filter(pl.col("purpose") == purpose)
    withdrawn = pl.col("withdrawn_at").is_not_null() & (pl.col("withdrawn_at") <= at)
    granted = pl.col("granted_at").is_not_null() & (pl.col("granted_at") <= at) & ~withdrawn
    distinct = customers.drop_nulls().unique().cast(pl.String).rename("customer_id").to_frame()
    if required:
        allowed = table.filter(granted).select("customer_id")
        out = distinct.join(allowed, on="customer_id", how="anti")
    else:
        out = distinct.join(table.filter(withdrawn).select("customer_id"), on="customer_id", how="semi")
    from finrisk.erasure import erased_subjects

    erased = erased_subjects(layout)
    if erased.height:
        if key is None:
            raise ConsentError("the erasure register is not empty, so FINRISK_PSEUDONYM_KEY is needed to honour it")
        from finrisk.subjects import subject_refs

        refs = distinct.with_columns(subject_refs(distinct.get_column("customer_id"), key).alias("ref"))
        back = refs.join(erased.select(pl.col("subject_ref").alias("ref")), on="ref", how="semi").select("customer_id")
        out = pl.concat([out, back]).unique()
    return out.get_column("customer_id").sort()


def honour_consent(frame: pl.LazyFrame | pl.DataFrame, layout: DataLayout, purpose: str, required: bool = False,
                   key: bytes | None = None):
    """`frame` without the rows of customers who may not be processed for `purpose`."""
    lazy = frame.lazy()
    has_records = consent_path(layout).exists() or required
    from finrisk.erasure import register_path

    if not has_records and not register_path(layout).exists():
        return frame  # nothing recorded: nothing to honour, nothing read
    customers = lazy.select(pl.col("customer_id").unique()).collect().get_column("customer_id")
    excluded = excluded_customers(layout, purpose, customers, required, key)
    if excluded.len() == 0:
        return frame
    kept = lazy.filter(~pl.col("customer_id").is_in(excluded.implode()))
    return kept if isinstance(frame, pl.LazyFrame) else kept.collect()


def consent_inputs(layout: DataLayout) -> list[Path]:
    """The files `honour_consent` reads: a cache of anything computed through it must key on them."""
    from finrisk.erasure import register_path

    return [consent_path(layout), register_path(layout)]
