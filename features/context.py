"""What every feature family reads: the events in time order, which fields they carry, the entity
timelines (built once, shared by the families) and, on the online path, the twin's running totals."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import polars as pl

from features.inputs import codes_in, columns_codes, dense_codes, present_fields
from features.spec import DAY_MS, WINDOW_MS
from features.timeline import Timeline

LABELS_FIELD = "fraud_labels"  # pseudo-field: present when a label table was given

# Entity kinds: the columns that identify one entity of that kind.
ENTITY_KEYS: dict[str, tuple[str, ...]] = {
    "customer": ("customer_id",),
    "counterparty": ("counterparty",),
    "pair": ("customer_id", "counterparty"),
    "device": ("device_id",),
    "device_pair": ("customer_id", "device_id"),
    "peer": ("peer_group",),
}
WINDOWED = ("customer", "counterparty")  # kinds whose features look at time windows, not only totals


@dataclass
class HistoryState:
    """Running totals of everything before `since_ms`, per entity (from the twin), for the online path.

    Each frame is keyed by its entity's columns (ENTITY_KEYS) and holds that entity's totals under
    the names the families look up; `label_events` lists fraud labels as (counterparty, customer_id, available_ms).
    """

    since_ms: int
    customers: pl.DataFrame
    pairs: pl.DataFrame
    device_pairs: pl.DataFrame
    devices: pl.DataFrame
    counterparties: pl.DataFrame
    label_events: pl.DataFrame
    peers: pl.DataFrame | None = None


@dataclass
class FeatureContext:
    events: pl.DataFrame  # prepared (features.inputs.prepare_events): time order, `_ms` column
    label_delay_days: float
    label_events: pl.DataFrame | None = None  # counterparty, customer_id, available_ms
    peer_groups: pl.DataFrame | None = None  # customer_id, peer_group
    history: HistoryState | None = None  # online path only
    fields: frozenset[str] = frozenset()
    _codes: dict = field(default_factory=dict)
    _categories: dict = field(default_factory=dict)
    _timelines: dict = field(default_factory=dict)
    _columns: dict = field(default_factory=dict)
    _base: dict = field(default_factory=dict)

    def __post_init__(self):
        fields = set(self.fields or present_fields(self.events))
        if self.label_events is not None:
            fields.add(LABELS_FIELD)
        if self.peer_groups is not None:
            self.events = self.events.join(
                self.peer_groups.select("customer_id", pl.col("peer_group").cast(pl.Int64)),
                on="customer_id", how="left", maintain_order="left",
            )
            fields.add("peer_group")
        self.fields = frozenset(fields)

    # ---- basic accessors ------------------------------------------------------------------------

    @property
    def n(self) -> int:
        return self.events.height

    @property
    def online(self) -> bool:
        return self.history is not None

    @property
    def since_ms(self) -> int | None:
        return None if self.history is None else self.history.since_ms

    @property
    def label_delay_ms(self) -> int:
        return int(timedelta(days=self.label_delay_days).total_seconds() * 1000)

    def has(self, *names: str) -> bool:
        return all(n in self.fields for n in names)

    def has_entity(self, kind: str) -> bool:
        """The data carries the columns that identify this kind of entity."""
        return self.has(*ENTITY_KEYS[kind])

    def column(self, name: str) -> np.ndarray:
        if name not in self._columns:
            self._columns[name] = self.events.get_column(name).to_numpy()
        return self._columns[name]

    def values(self, name: str, expr: pl.Expr) -> np.ndarray:
        """A derived per-row column (as float64, NaN for null), computed once."""
        if name not in self._columns:
            self._columns[name] = self.events.select(expr.cast(pl.Float64)).to_series().fill_null(np.nan).to_numpy()
        return self._columns[name]

    @property
    def ms(self) -> np.ndarray:
        return self.column("_ms")

    # ---- entities -------------------------------------------------------------------------------

    def code_entities(self, kinds: list[str]) -> None:
        """Number the single-column entity kinds in one query (their casts run in parallel)."""
        single = [k for k in kinds if len(ENTITY_KEYS[k]) == 1 and k not in self._codes]
        columns = [ENTITY_KEYS[k][0] for k in single]
        for kind, (codes, coding) in zip(single, columns_codes(self.events, columns).values()):
            self._codes[kind] = (codes, coding.size)
            self._categories[kind] = coding

    def codes(self, kind: str) -> tuple[np.ndarray, int]:
        if kind not in self._codes:
            keys = ENTITY_KEYS[kind]
            if len(keys) == 1:
                codes, coding = dense_codes(self.events.get_column(keys[0]))
                self._codes[kind] = (codes, coding.size)
                self._categories[kind] = coding
            else:
                self._codes[kind] = _pair_codes(*(self.codes(_single(k)) for k in keys))
        return self._codes[kind]

    def codes_of(self, kind: str, values: pl.Series) -> np.ndarray:
        """Codes of outside values (e.g. the counterparties of labels) in this context's numbering."""
        self.codes(kind)
        return codes_in(values, self._categories[kind])

    def origin_ms(self) -> int:
        """Time zero of windowed timelines: before every event and every label we count."""
        if "origin" not in self._columns:
            first = int(self.ms.min()) if self.n else 0
            if self.label_events is not None and self.label_events.height:
                first = min(first, int(self.label_events.get_column("available_ms").min()))
            self._columns["origin"] = first - 1
        return self._columns["origin"]

    def horizon_ms(self) -> int:
        return WINDOW_MS["30d"] + self.label_delay_ms + DAY_MS

    def timeline(self, kind: str) -> Timeline:
        if kind not in self._timelines:
            codes, n_codes = self.codes(kind)
            windowed = kind in WINDOWED
            self._timelines[kind] = Timeline(
                codes, n_codes, self.ms,
                origin_ms=self.origin_ms() if windowed else None,
                horizon_ms=self.horizon_ms() if windowed else 0,
                since_ms=self.since_ms,
            )
        return self._timelines[kind]

    def forget(self, kind: str) -> None:
        """Free one timeline now (a family that is the last to read it, once it is done with it)."""
        self._timelines.pop(kind, None)

    def release(self, timelines: set[str], cached: set[str]) -> None:
        """Free the timelines and shared values no later family needs (each holds arrays of every row)."""
        for kind in list(self._timelines):
            if kind not in timelines:
                del self._timelines[kind]
        for name in [n for n in self._columns if n.startswith("_") and n not in cached and n != "_ms"]:
            del self._columns[name]

    # ---- the twin's totals (online path) --------------------------------------------------------

    def before(self, kind: str, column: str, default: float = 0.0) -> np.ndarray:
        """Per row: the twin's total `column` for the row's entity (default without history; in the
        batch path a scalar, which numpy broadcasts)."""
        if self.history is None:
            return np.float64(default)
        cache_key = (kind, column)
        if cache_key not in self._base:
            table = self._history_table(kind)
            keys = ENTITY_KEYS[kind]
            joined = self.events.select(keys).join(
                table.select(*keys, pl.col(column).alias("_v")), on=list(keys), how="left", maintain_order="left"
            )
            self._base[cache_key] = joined.get_column("_v").cast(pl.Float64).fill_null(np.nan).to_numpy()
        values = self._base[cache_key]
        return np.where(np.isnan(values), default, values)

    def before_list(self, kind: str, column: str, width: int) -> np.ndarray | None:
        """Per row: the twin's list column (e.g. a histogram) as a (rows, width) matrix; None in the batch path."""
        if self.history is None:
            return None
        table = self._history_table(kind)
        keys = ENTITY_KEYS[kind]
        joined = self.events.select(keys).join(
            table.select(*keys, pl.col(column).alias("_v")), on=list(keys), how="left", maintain_order="left"
        )
        filled = joined.select(
            pl.col("_v").fill_null(pl.lit([0] * width, dtype=pl.List(pl.Int64))).list.to_array(width)
        ).to_series()
        return filled.to_numpy().astype(np.int64).reshape(self.n, width)

    def has_before(self, kind: str) -> np.ndarray:
        """Per row: the twin knows the row's entity."""
        return ~np.isnan(self.before(kind, "txn_count", np.nan))

    def _history_table(self, kind: str) -> pl.DataFrame:
        h = self.history
        tables = {
            "customer": h.customers, "pair": h.pairs, "device_pair": h.device_pairs,
            "device": h.devices, "counterparty": h.counterparties, "peer": h.peers,
        }
        table = tables[kind]
        if table is None:
            raise ValueError(f"the twin has no {kind} totals")
        return table


def _single(column: str) -> str:
    return {"customer_id": "customer", "counterparty": "counterparty", "device_id": "device"}[column]


def _pair_codes(left: tuple[np.ndarray, int], right: tuple[np.ndarray, int]) -> tuple[np.ndarray, int]:
    """Codes for pairs of entities: left * n_right + right, re-numbered densely when that gets large."""
    (a, na), (b, nb) = left, right
    valid = (a >= 0) & (b >= 0)
    combined = np.where(valid, a * max(nb, 1) + b, -1)
    if (na * max(nb, 1)).bit_length() + (len(a) + 1).bit_length() <= 62:  # fits a timeline key as it is
        return combined, max(na * nb, 1)
    present = combined[valid]
    distinct, inverse = np.unique(present, return_inverse=True)
    dense = np.full(len(combined), -1, dtype=np.int64)
    dense[valid] = inverse
    return dense, len(distinct)
