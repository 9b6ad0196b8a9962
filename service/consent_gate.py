"""Consent and erasure at scoring time: which customers the service and `score_recent` may not process.

The rule is `finrisk.consent`'s for the purpose fraud_detection: a customer whose consent is
withdrawn (or, with FINRISK_CONSENT_REQUIRED, was never given) or who is on the erasure register is
not processed at all, history included. The gate asks `excluded_customers` itself, once per
customer, and keeps the answers while neither file changes (processed/consent/consent.parquet,
erasure/register.parquet; told by one stat of each per request) and no recorded grant or
withdrawal time is passed. Consent and erasure are recorded by other processes, so the files are
the only channel.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from finrisk.consent import ConsentError, consent_inputs, excluded_customers, read_consent
from finrisk.io import DataLayout

PURPOSE = "fraud_detection"
CONSENT, ERASURE = "consent", "erasure"

__all__ = ["ConsentError", "ConsentGate", "PURPOSE"]


def _file_state(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


class ConsentGate:
    def __init__(self, data_dir: Path, required: bool = False, key: bytes | None = None):
        self.layout = DataLayout(Path(data_dir))
        self.required = required
        self.key = key
        self.paths = tuple(consent_inputs(self.layout))  # the consent table, the erasure register
        self._states = tuple(_file_state(p) for p in self.paths)
        self._excluded: dict[str, bool] = {}
        self._next_change = self._next_transition(datetime.now(timezone.utc))

    @property
    def recorded(self) -> bool:
        """Anything to honour at all (as in honour_consent: nothing recorded, nothing read)."""
        return self.required or any(s is not None for s in self._states)

    def refresh(self) -> set[str]:
        """What changed since the last call: "erasure" when the register changed, "consent" when the
        consent table changed or a grant or withdrawal recorded for a later time took effect; the
        cached answers are dropped then."""
        states = tuple(_file_state(p) for p in self.paths)  # taken before reading: a later change is seen next time
        changed = {name for name, old, new in zip((CONSENT, ERASURE), self._states, states) if old != new}
        now = datetime.now(timezone.utc)
        if self._next_change is not None and now >= self._next_change:
            changed.add(CONSENT)  # a grant or withdrawal recorded for a later time takes effect now
        if changed:
            self._states = states
            self._excluded.clear()
            self._next_change = self._next_transition(now)
        return changed

    def _next_transition(self, now: datetime) -> datetime | None:
        """The earliest grant or withdrawal for the purpose recorded for later than now."""
        if self._states[0] is None:
            return None
        table = read_consent(self.layout).filter(pl.col("purpose") == PURPOSE)
        later = pl.concat([table.get_column("granted_at"), table.get_column("withdrawn_at")]).drop_nulls()
        later = later.filter(later > now)
        return later.min() if later.len() else None

    def excluded(self, customers: Iterable[str]) -> set[str]:
        """Those of `customers` who may not be processed now. Raises ConsentError when the erasure
        register cannot be honoured (no pseudonymisation key)."""
        if not self.recorded:
            return set()
        wanted = set(customers)
        unknown = [c for c in wanted if c not in self._excluded]  # distinct customers of a request, not rows
        if unknown:
            found = set(
                excluded_customers(
                    self.layout, PURPOSE, pl.Series("customer_id", unknown, pl.String), self.required, self.key
                ).to_list()
            )
            self._excluded.update((c, c in found) for c in unknown)
        return {c for c in wanted if self._excluded[c]}

    def prime(self, customers: pl.Series) -> None:
        """Decide for many customers in one call (the twin's, when a day is opened)."""
        if self.recorded and customers.len():
            self.excluded(customers.unique().to_list())
