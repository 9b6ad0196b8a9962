"""The twin's rows of one customer, found by key instead of by scanning (the customer view).

The index numbers the rows of each twin table by customer, counterparty and device once, so a
request gathers its customer's rows directly out of tables of millions of rows.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import polars as pl

from features.twin import Twin


class KeyIndex:
    """Row positions of a frame by the values of one column (nulls left out)."""

    def __init__(self, values: pl.Series):
        frame = (
            pl.DataFrame({"key": values, "row": pl.int_range(values.len(), eager=True, dtype=pl.Int64)})
            .drop_nulls("key")
            .sort("key", "row")
        )
        self.rows = frame.get_column("row").to_numpy()
        runs = frame.with_row_index("at").group_by("key", maintain_order=True).agg(
            pl.col("at").first(), pl.len().alias("n")
        )
        # One dict entry per distinct key, built in C by zip: lookups are O(1) per request.
        self.spans = dict(zip(runs.get_column("key").to_list(), zip(runs.get_column("at").to_list(), runs.get_column("n").to_list())))

    def positions(self, keys: Iterable[str]) -> list[np.ndarray]:
        found = []
        for key in keys:  # the handful of keys in one request, not rows
            span = self.spans.get(key)
            if span is not None:
                found.append(self.rows[span[0]: span[0] + span[1]])
        return found


def _gather(frame: pl.DataFrame, parts: list[np.ndarray]) -> pl.DataFrame:
    """The rows at the union of the positions, in the frame's own order (the twin keeps time order)."""
    if not parts:
        return frame.clear()
    return frame[np.unique(np.concatenate(parts))]


class TwinIndex:
    """A twin with its tables indexed by customer, counterparty and device."""

    def __init__(self, twin: Twin):
        self.twin = twin
        self._recent = {c: KeyIndex(twin.recent.get_column(c)) for c in ("customer_id", "counterparty", "device_id")}
        self._profiles = KeyIndex(twin.profiles.get_column("customer_id"))
        self._pairs = {c: KeyIndex(twin.counterparties.get_column(c)) for c in ("customer_id", "counterparty")}
        self._devices = {c: KeyIndex(twin.devices.get_column(c)) for c in ("customer_id", "device_id")}

    def slice(self, transactions: pl.DataFrame) -> Twin:
        """The twin restricted to what the transactions' features read.

        Per-entity totals are complete for the transactions' own customers, counterparties and
        devices (every customer of a counterparty or device is kept, for fan-in and sharing counts);
        other entities that appear in the context rows are only there as neighbours and their own
        features are not returned.
        """
        customers = transactions.get_column("customer_id").unique().to_list()
        counterparties = transactions.get_column("counterparty").drop_nulls().unique().to_list()
        devices = transactions.get_column("device_id").drop_nulls().unique().to_list()
        twin = self.twin
        recent = _gather(
            twin.recent,
            self._recent["customer_id"].positions(customers)
            + self._recent["counterparty"].positions(counterparties)
            + self._recent["device_id"].positions(devices),
        )
        return Twin(
            as_of=twin.as_of,
            meta=twin.meta,
            profiles=_gather(twin.profiles, self._profiles.positions(customers)),
            counterparties=_gather(
                twin.counterparties,
                self._pairs["customer_id"].positions(customers) + self._pairs["counterparty"].positions(counterparties),
            ),
            devices=_gather(
                twin.devices,
                self._devices["customer_id"].positions(customers) + self._devices["device_id"].positions(devices),
            ),
            places=twin.places.clear(),
            amounts=twin.amounts.clear(),
            recent=recent,
            label_events=twin.label_events,
        )
