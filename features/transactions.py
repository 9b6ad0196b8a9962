"""Batch path: point-in-time features for every transaction of a history.

A feature for a transaction at time t uses only events strictly before t and fraud labels usable
before t (reported, plus the label delay). Features whose fields the data lacks come out null.
"""
from __future__ import annotations

import ctypes
from contextlib import contextmanager

import numpy as np
import polars as pl

from features.catalogue import CATALOGUE, FAMILIES
from features.context import FeatureContext
from features.inputs import prepare_events
from features.merchant import label_events

DEFAULT_LABEL_DELAY_DAYS = 7


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc mallopt parameters
_GLIBC_MMAP_MAX, _GLIBC_TRIM_THRESHOLD = 65536, 128 * 1024  # glibc's defaults
_GLIBC_MMAP_CEILING = 32 * 2**20  # arrays up to this size are reused from the heap anyway


def _glibc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:  # not glibc (macOS, musl): nothing to tune
        return None


@contextmanager
def _heap_reused(enabled: bool = True):
    """Large arrays freed while a family runs stay in the heap for its next ones, and go back to the
    kernel when it ends. glibc unmaps every array over 32 MB on free, and the kernel zeroes each page
    of the next one again: at 10 M rows that page clearing was a fifth of the run."""
    libc = _glibc() if enabled else None
    if libc is None:
        yield
        return
    libc.mallopt(_M_MMAP_MAX, 0)
    libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    try:
        yield
    finally:
        libc.mallopt(_M_MMAP_MAX, _GLIBC_MMAP_MAX)
        libc.mallopt(_M_TRIM_THRESHOLD, _GLIBC_TRIM_THRESHOLD)
        libc.malloc_trim(0)


def _run_family(module, ctx: FeatureContext) -> dict[str, pl.Series]:
    if not any(f.available(ctx.fields) for f in module.FEATURES):
        return {}
    # a family that runs when most features are already held keeps to the kernel's pages (peak memory)
    reuse = getattr(module, "REUSE_HEAP", True) and ctx.n * 8 > _GLIBC_MMAP_CEILING
    with _heap_reused(reuse), np.errstate(divide="ignore", invalid="ignore"):
        return dict(module.compute(ctx))  # empty histories give NaN, turned into null


def compute_features(ctx: FeatureContext) -> pl.DataFrame:
    """One column per catalogue feature, in the row order of ctx.events."""
    values: dict[str, pl.Series] = {}
    ctx.code_entities([k for k in ("customer", "counterparty", "device", "peer") if ctx.has_entity(k)])
    for i, module in enumerate(FAMILIES):
        values.update(_run_family(module, ctx))
        later = FAMILIES[i + 1:]
        ctx.release({k for m in later for k in m.TIMELINES}, {c for m in later for c in m.CACHED})
    columns = [
        values[f.name] if f.available(ctx.fields) and f.name in values
        else pl.Series(f.name, [None] * ctx.n, dtype=f.dtype)
        for f in CATALOGUE
    ]
    return pl.DataFrame(columns)


def transaction_features(
    tx: pl.LazyFrame | pl.DataFrame,
    labels: pl.DataFrame | None = None,
    label_delay_days: float = DEFAULT_LABEL_DELAY_DAYS,
    peer_groups: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The transactions (sorted by ts, txn_id) with every catalogue feature appended.

    labels: txn_id, label, reported_at (fraud labels; None leaves the merchant-risk features null).
    peer_groups: customer_id, peer_group (None leaves the peer features null).
    """
    if label_delay_days < 0:
        raise ValueError(f"label_delay_days must be >= 0, got {label_delay_days}")
    events = prepare_events(tx)
    known = None if labels is None else label_events(events, labels, label_delay_days)
    ctx = FeatureContext(events, label_delay_days, known, peer_groups)
    features = compute_features(ctx)
    return pl.concat([events.drop("_ms"), features], how="horizontal")


def customer_velocity_features(tx: pl.LazyFrame) -> pl.LazyFrame:
    """Every catalogue feature without labels or peer groups (the walking skeleton's entry point)."""
    return transaction_features(tx).lazy()


__all__ = ["CATALOGUE", "compute_features", "customer_velocity_features", "transaction_features"]
