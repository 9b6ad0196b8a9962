"""The online path, kept incrementally: features of a day's new transactions from the twin and the
transactions already seen that day, without running the feature families again for each call.

`features.online.online_features` runs every family over the twin's recent events and the day so
far; for one transaction that is a few hundred small queries. This state holds what those families
read, per entity, in sorted arrays (features.online_store): the twin's running totals by entity
code, the rows that time windows reach (the twin's recent events and the day's rows), the first
contacts of new customer x counterparty and customer x device pairs, and the fraud labels by when
they became usable. A batch of new transactions is added, and every catalogue feature of each of
them is then the family's own arithmetic on what these arrays hold before its instant, for all rows
of the batch at once. The declarations (catalogue, windows, thresholds, helpers) are the families'
own; tests/test_online_parity.py checks every feature against the batch path, transaction by
transaction and in batches.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import polars as pl

from features.context import LABELS_FIELD
from features.inputs import FeatureInputError, business_offset_ms
from features.merchant import label_events
from features.online_kernels import (
    COUNTERPARTY_OUTPUTS, CUSTOMER_LABEL_FREE, DAY_READS, HISTORY_READS, LABEL_FREE, OUTPUTS, PAIR_BITS, TOTALS,
    WINDOW_READS, amount_history, counterparty_features, customer_features,
)
from features.online_batch import Batch, EntityCodes, row_values
from features.online_store import Events, Gathered, IntMap, KeySpace, Rows
from features.spec import DAY_MS, WINDOW_MS
from features.twin import Twin
from features.velocity import AMOUNT_BUCKETS, LARGE_MIN_HISTORY, LARGE_PERCENTILE, _bucket_position

NEVER = np.iinfo(np.int64).max
WINDOW_COLUMNS = ("row_id", "ms", "paise", "inflow", "net")  # what the windows sum
DAY_COLUMNS = (  # what the day's earlier rows give besides
    "ms", "ts_us", "paise", "sin", "cos", "hour", "weekday", "night", "x", "x2", "bucket", "salary", "city", "state",
    "lat", "lon", "counterparty", "device",
)
# The twin's running totals per customer that the families read (features.twin._profiles).
CUSTOMER_TOTALS = TOTALS
TOTAL_DEFAULTS = np.array([np.nan if name.startswith("last_") else 0.0 for name in CUSTOMER_TOTALS])
TOTAL_DEFAULTS[[CUSTOMER_TOTALS.index("last_city"), CUSTOMER_TOTALS.index("last_state")]] = -1


def _column(frame: pl.DataFrame, name: str, dtype=np.float64, fill=np.nan) -> np.ndarray:
    return frame.get_column(name).cast(pl.Float64).fill_null(fill).to_numpy().astype(dtype)


def _lookup(values: np.ndarray, codes: np.ndarray, default: float) -> np.ndarray:
    """values[code] where the twin knows the entity (codes below its size), else default; NaN -> default."""
    known = (codes >= 0) & (codes < len(values))
    out = np.full(len(codes), default, dtype=np.float64)
    out[known] = values[codes[known]]
    return np.where(np.isnan(out), default, out)


def _positions(index: dict[str, int], names: tuple[str, ...]) -> np.ndarray:
    return np.array([index[name] for name in names], dtype=np.int64)


@dataclass
class Undo:
    parts: dict


class OnlineState:
    """The features of the twin's day, transaction by transaction, from per-entity state.

    `stage(rows)` adds new transactions of the day and returns their features; `commit()` keeps
    them, `rollback(undo)` puts the state back as it was before (e.g. when the journal write failed).
    """

    def __init__(self, twin: Twin, labels: pl.DataFrame | None = None):
        self.twin = twin
        self.since = twin.since_ms
        self.delay_ms = int(timedelta(days=twin.label_delay_days).total_seconds() * 1000)
        # Asia/Kolkata keeps one UTC offset: local time is integer arithmetic, as features.timing does it.
        self.offset_ms = business_offset_ms(self.since, self.since + DAY_MS - 1)
        if self.offset_ms is None:
            raise FeatureInputError("the business time zone changes its UTC offset during the day")
        self.extra_labels = labels if labels is not None and twin.label_delay_days < 1 else None
        known = twin.label_events if twin.meta.get("labels") is not None else None
        self.has_labels = known is not None or self.extra_labels is not None
        self.fields = twin.fields | ({LABELS_FIELD} if self.has_labels else set())
        self.codes = EntityCodes.empty()
        self._row_ids = 0
        self._load_totals(twin)
        lookback_ms = (int(twin.meta.get("lookback_days") or 0) + 1) * DAY_MS
        first_label = int(known.get_column("available_ms").min()) if known is not None and known.height else self.since
        self.keys = KeySpace(min(self.since - lookback_ms, first_label) - 1, self.since + DAY_MS)
        recent = twin.recent.with_columns(pl.col("ts").dt.epoch("ms").alias("_ms"))
        self._load_rows(recent)
        self._load_labels(known, recent)
        self.pair_first, self.device_pair_first = IntMap(), IntMap()
        self.cp_openings, self.device_openings, self.customer_device_openings = Events(), Events(), Events()
        self.keys.check(self.codes.largest())

    # ---- the twin ------------------------------------------------------------------------------

    def _load_totals(self, twin: Twin) -> None:
        """The twin's running totals as arrays by entity code (the twin's entities are numbered first)."""
        p = twin.profiles
        self.codes.customers.encode(p.get_column("customer_id").to_list())
        p = p.with_columns(  # places as codes, compared as integers
            pl.Series("last_city", self.codes.cities.encode(p.get_column("last_city").to_list())).replace(-1, None),
            pl.Series("last_state", self.codes.states.encode(p.get_column("last_state").to_list())).replace(-1, None),
        )
        scalars = np.column_stack([_column(p, name) for name in CUSTOMER_TOTALS]) if p.height else np.zeros(
            (0, len(CUSTOMER_TOTALS)))
        self.c_scalars = np.where(np.isnan(scalars), TOTAL_DEFAULTS, scalars)
        self.c_total = {}
        for name, width in (("hour_counts", 24), ("weekday_counts", 7), ("amount_hist", AMOUNT_BUCKETS)):
            filled = p.select(pl.col(name).fill_null(pl.lit([0] * width, dtype=pl.List(pl.Int64))).list.to_array(width))
            self.c_total[name] = filled.to_series().to_numpy().astype(np.int64).reshape(p.height, width)
        self.c_total["amount_hist_below"] = np.cumsum(self.c_total["amount_hist"], axis=1)

        pairs = twin.counterparties
        self.codes.counterparties.encode(pairs.get_column("counterparty").unique(maintain_order=True).to_list())
        pc = self.codes.customers.encode(pairs.get_column("customer_id").to_list())
        pm = self.codes.counterparties.encode(pairs.get_column("counterparty").to_list())
        self.cp_fan_in = np.bincount(pm, minlength=len(self.codes.counterparties)).astype(np.float64)
        self.pair_index = IntMap.build((pc << PAIR_BITS) | pm, np.arange(pairs.height))
        self.pair_total = {"first_ms": _column(pairs, "first_ms"),
                           **{name: _column(pairs, name, fill=0.0) for name in ("txn_count", "amount_sum_paise")}}

        devices = twin.devices
        self.codes.devices.encode(devices.get_column("device_id").unique(maintain_order=True).to_list())
        dc = self.codes.customers.encode(devices.get_column("customer_id").to_list())
        dd = self.codes.devices.encode(devices.get_column("device_id").to_list())
        self.device_customers = np.bincount(dd, minlength=len(self.codes.devices)).astype(np.float64)
        self.device_pair_index = IntMap.build((dc << PAIR_BITS) | dd, np.arange(devices.height))
        self.device_pair_count = _column(devices, "txn_count", fill=0.0)

    def _load_rows(self, recent: pl.DataFrame) -> None:
        """The twin's recent events: what the windows reach back to before the day."""
        n = recent.height
        c = self.codes.customers.encode(recent.get_column("customer_id").to_list())
        m = self.codes.counterparties.encode(recent.get_column("counterparty").to_list())
        d = self.codes.devices.encode(recent.get_column("device_id").to_list())
        ms = recent.get_column("_ms").to_numpy()
        paise = recent.get_column("amount_paise").to_numpy().astype(np.int64)
        direction = recent.get_column("direction")
        credit = direction.eq("CREDIT").fill_null(False).to_numpy().astype(np.int64)
        debit = direction.eq("DEBIT").fill_null(False).to_numpy().astype(np.int64)
        zeros = np.zeros(n)
        ids = self._new_ids(n)
        numbers = {
            "row_id": ids, "ms": ms, "ts_us": recent.get_column("ts").dt.epoch("us").to_numpy(), "paise": paise,
            "inflow": paise * credit, "net": paise * (credit - debit),
            # The rest is read only for the day's rows (the twin's totals cover everything before).
            "sin": zeros, "cos": zeros, "hour": zeros, "weekday": zeros, "night": zeros, "x": zeros, "x2": zeros,
            "bucket": zeros, "salary": zeros, "city": zeros - 1, "state": zeros - 1, "lat": zeros + np.nan,
            "lon": zeros + np.nan, "counterparty": m, "device": d,
        }
        others = {"txn": recent.get_column("txn_id").to_numpy().astype(object),
                  "large": recent.get_column("_large").fill_null(0).to_numpy().astype(np.int64)}
        self.customer_rows = Rows.build(self.keys.key(c, ms), numbers, others)
        has_m = m >= 0
        self.counterparty_rows = Rows.build(self.keys.key(m[has_m], ms[has_m]), {})

    def _load_labels(self, known: pl.DataFrame | None, recent: pl.DataFrame) -> None:
        self.cp_labels, self.customer_labels = Events(), Events()
        self._label_triples = None
        events = known
        if self.extra_labels is not None:  # as online_features: the twin's labels and these, each once
            extra = label_events(recent, self.extra_labels, self.twin.label_delay_days)
            events = extra if events is None else pl.concat([events, extra]).unique()
            self._label_triples = set(events.iter_rows())
        if events is not None:
            self._add_label_events(events)

    def _add_label_events(self, events: pl.DataFrame) -> None:
        events = events.filter(pl.col("available_ms") < self.keys.end_ms)  # later ones are for later days
        ms = events.get_column("available_ms").to_numpy()
        m = self.codes.counterparties.encode(events.get_column("counterparty").to_list())
        c = self.codes.customers.encode(events.get_column("customer_id").to_list())
        self.cp_labels = self.cp_labels.inserted(self.keys.key(m[m >= 0], ms[m >= 0]))
        self.customer_labels = self.customer_labels.inserted(self.keys.key(c[c >= 0], ms[c >= 0]))

    def _new_ids(self, n: int) -> np.ndarray:
        ids = np.arange(self._row_ids, self._row_ids + n, dtype=np.int64)
        self._row_ids += n
        return ids

    # ---- adding a batch --------------------------------------------------------------------------

    MUTABLE = ("customer_rows", "counterparty_rows", "cp_labels", "customer_labels", "pair_first", "device_pair_first",
               "cp_openings", "device_openings", "customer_device_openings", "fields", "_label_triples")

    def stage(self, tx: pl.DataFrame) -> tuple[Batch, Undo]:
        """Add transactions of the day (canonical columns, distinct txn_ids, not seen before) and return
        their features; each sees exactly the transactions strictly before it in time."""
        undo = Undo({name: getattr(self, name) for name in self.MUTABLE})
        try:
            with np.errstate(divide="ignore", invalid="ignore"):  # empty histories give NaN, as in the families
                return self._stage(tx), undo
        except BaseException:
            self.rollback(undo)
            raise

    def fork(self) -> "OnlineState":
        """An independent copy: arrays are shared, since no update changes one in place."""
        other = copy.copy(self)
        other.codes = self.codes.copy()
        return other

    def rollback(self, undo: Undo) -> None:
        for name, value in undo.parts.items():
            setattr(self, name, value)

    def commit(self) -> None:
        self.customer_rows = self.customer_rows.settled()
        self.counterparty_rows = self.counterparty_rows.settled()

    def _stage(self, tx) -> Batch:
        r = row_values(tx, self.codes, self.offset_ms)
        k, c, m, d, ms, paise = len(r.ms), r.c, r.m, r.d, r.ms, r.paise
        if k and (ms.min() < self.since or ms.max() >= self.since + DAY_MS):
            raise FeatureInputError(f"the twin as of {self.twin.as_of.isoformat()} serves transactions of that day only")
        self.keys.check(self.codes.largest())
        self.fields = self.fields | r.fields
        ids = self._new_ids(k)
        row_key = self.keys.key(c, ms)
        self.customer_rows, landed = self.customer_rows.inserted(row_key, {
            "row_id": ids, "ms": ms, "ts_us": r.ts_us, "paise": paise,
            "inflow": paise * r.credit, "net": paise * (r.credit - r.debit),
            "sin": np.sin(r.angle), "cos": np.cos(r.angle), "hour": r.hour, "weekday": r.weekday,
            "night": r.hour < 6, "x": r.x, "x2": r.x * r.x, "bucket": r.bucket,
            "salary": r.salary, "city": r.city, "state": r.state, "lat": r.lat, "lon": r.lon,
            "counterparty": m, "device": d,
        }, {"txn": r.txn, "large": np.zeros(k, np.int64)})
        self.counterparty_rows, _ = self.counterparty_rows.inserted(self.keys.key(m[m >= 0], ms[m >= 0]), {})
        self._first_contacts(c, m, d, ms)
        if self.extra_labels is not None:
            self._extra_label_events(r)

        self._refresh_later_flags(c, ms, ids)  # before the windows below read those flags
        # Each row's earlier rows of the day (all columns, in time order) and of the 30 days before it
        # (what the windows sum), this batch's earlier ones included.
        r.day_rows = self._customer_day(self.keys.key(c, self.since), row_key)
        r.window = self.customer_rows.gather(self.keys.key(c, ms - WINDOW_MS["30d"]), row_key, WINDOW_COLUMNS, ("large",))
        # The "unusually large" flag of each new row reads only earlier amounts: set before the windows read it.
        r.history = self._amount_history(r.day_rows, c, r.bucket, _bucket_position(paise, r.bucket))
        large = ((r.history["percentile"] > LARGE_PERCENTILE) & (r.history["n"] >= LARGE_MIN_HISTORY)).astype(np.int64)
        self.customer_rows = self.customer_rows.with_fresh("large", landed, large)
        if k > 1:  # this batch's rows in each other's windows carry their new flags
            inside = r.window["row_id"].astype(np.int64) - ids[0]
            mine = (inside >= 0) & (inside < k)
            if mine.any():
                r.window.others["large"] = np.where(mine, large[np.clip(inside, 0, k - 1)], r.window["large"])

        values = {
            "amount_rupees_log": r.x, "channel_code": r.channel_code, "is_debit": r.is_debit,
            "mcc_group_code": r.mcc_group_code,
            "hour_of_day": r.hour, "day_of_week": r.weekday + 1, "is_night": (r.hour < 6).astype(np.int64),
            "is_weekend": r.weekday >= 5, "is_payday_window": (r.day >= 28) | (r.day <= 3),
        }
        self._customer_features(r, values)
        self._counterparty_features(r, values)
        self._device_features(r, values)
        return Batch(r.txn.tolist(), values, r.order, self.fields)

    # ---- what each new row changes besides its own row ---------------------------------------------

    def _first_contacts(self, c: np.ndarray, m: np.ndarray, d: np.ndarray, ms: np.ndarray) -> None:
        """The first row of the day of a pair the twin does not know adds one to the counterparty's fan-in
        (customer x counterparty) and to the device's customers and the customer's devices (customer x device)."""
        self.pair_first, opened, closed = self._first_of_day(c, m, ms, self.pair_index, self.pair_first)
        if len(opened[0]):  # (a contact is only replaced by an earlier one it opens)
            self.cp_openings = self.cp_openings.removed(self.keys.key(closed[0], closed[1])).inserted(
                self.keys.key(opened[0], opened[1]))
        self.device_pair_first, opened, closed = self._first_of_day(c, d, ms, self.device_pair_index, self.device_pair_first)
        if len(opened[0]):
            self.device_openings = self.device_openings.removed(self.keys.key(closed[0], closed[1])).inserted(
                self.keys.key(opened[0], opened[1]))
            # the same first contacts, counted on the customer's side
            self.customer_device_openings = self.customer_device_openings.removed(
                self.keys.key(closed[2], closed[1])
            ).inserted(self.keys.key(opened[2], opened[1]))

    @staticmethod
    def _first_of_day(c, other, ms, twin_pairs: IntMap, first: IntMap):
        """New first instants of the day's pairs: the map updated, and (other, ms, customer) of the
        first contacts added and of those replaced (a transaction that arrived late but happened earlier)."""
        none = (np.zeros(0, np.int64),) * 3
        valid = other >= 0
        pairs = (c[valid] << PAIR_BITS) | other[valid]
        new = twin_pairs.find(pairs) < 0
        if not new.any():
            return first, none, none
        pairs, when = pairs[new], ms[valid][new]
        distinct, inverse = np.unique(pairs, return_inverse=True)
        earliest = np.full(len(distinct), NEVER)
        np.minimum.at(earliest, inverse, when)
        at = first.find(distinct)
        before = np.where(at >= 0, first.values[np.maximum(at, 0)] if len(first.values) else 0, NEVER)
        moved = earliest < before
        distinct, earliest, replaced = distinct[moved], earliest[moved], (at >= 0)[moved]
        mask = (1 << PAIR_BITS) - 1
        opened = (distinct & mask, earliest, distinct >> PAIR_BITS)
        old = before[moved][replaced]
        closed = (distinct[replaced] & mask, old, distinct[replaced] >> PAIR_BITS)
        return first.updated(distinct, earliest), opened, closed

    def _extra_label_events(self, r) -> None:
        frame = pl.DataFrame({
            "txn_id": r.txn.tolist(), "counterparty": r.strings["counterparty"], "customer_id": r.strings["customer_id"],
            "ts": pl.Series(r.ts_us).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        }, schema_overrides={"counterparty": pl.String, "customer_id": pl.String})
        found = label_events(frame, self.extra_labels, self.twin.label_delay_days)
        fresh = [row for row in found.iter_rows() if row not in self._label_triples]  # labels, not rows
        if fresh:
            self._label_triples = self._label_triples | set(fresh)
            self._add_label_events(pl.DataFrame(fresh, schema=found.schema, orient="row"))

    def _refresh_later_flags(self, c: np.ndarray, ms: np.ndarray, new_ids: np.ndarray) -> None:
        """A transaction that arrived after later ones of its customer changes their amount history:
        their "unusually large" flags are computed again."""
        if len(c) == 1:  # the usual call: np.unique costs more than the rest of this check
            customers, inverse, earliest = c, np.zeros(1, np.int64), ms
        else:
            customers, inverse = np.unique(c, return_inverse=True)
            earliest = np.full(len(customers), NEVER)
            np.minimum.at(earliest, inverse, ms)
        lo, hi = self.keys.key(customers, earliest + 1), self.keys.key(customers, self.since + DAY_MS)
        if self.customer_rows.count(lo, hi).sum() == (ms > earliest[inverse]).sum():  # only this batch's own later rows
            return
        later = self.customer_rows.gather(lo, hi)
        keep = ~np.isin(later["row_id"].astype(np.int64), new_ids)
        if not keep.any():
            return
        code = customers[later.segment[keep]]
        row_ms = later["ms"][keep].astype(np.int64)
        paise, bucket = later["paise"][keep].astype(np.int64), later["bucket"][keep].astype(np.int64)
        key = self.keys.key(code, row_ms)
        history = self._amount_history(self._customer_day(self.keys.key(code, self.since), key), code, bucket,
                                       _bucket_position(paise, bucket))
        flags = ((history["percentile"] > LARGE_PERCENTILE) & (history["n"] >= LARGE_MIN_HISTORY)).astype(np.int64)
        ids = later["row_id"][keep].astype(np.int64)
        self.customer_rows = self.customer_rows.with_values("large", key, key + 1, ids, flags)

    # ---- features ----------------------------------------------------------------------------------

    def _totals(self, c: np.ndarray) -> dict[str, np.ndarray]:
        """The twin's running totals of each row's customer, as `ctx.before` gives them: null and
        unknown customers as 0 for sums and counts, NaN (-1 for places) for the last-seen values."""
        known = (c >= 0) & (c < len(self.c_scalars))
        values = np.where(known[:, None], self.c_scalars[np.where(known, c, 0)] if len(self.c_scalars) else np.nan,
                          TOTAL_DEFAULTS)
        return {name: values[:, j] for j, name in enumerate(CUSTOMER_TOTALS)} | {"known": known, "matrix": values}

    def _amount_history(self, g: Gathered, c, bucket, position) -> dict[str, np.ndarray]:
        """features.velocity.amount_history for these rows from their earlier rows of the day and
        the twin's totals and histogram."""
        t = self._totals(c)
        n, log_sum, log_sq_sum, percentile = amount_history(
            c, bucket, position, t["known"], t["matrix"], self.c_total["amount_hist"],
            self.c_total["amount_hist_below"], g.segment, g.matrix, _positions(g.index, HISTORY_READS),
        )
        return {"n": n, "log_sum": log_sum, "log_sq_sum": log_sq_sum, "percentile": percentile, "totals": t}

    def _customer_day(self, lo: np.ndarray, hi: np.ndarray) -> Gathered:
        """The customer's rows in [lo, hi) for each row, in time order (ties as the families order rows)."""
        g = self.customer_rows.gather(lo, hi, DAY_COLUMNS, ("txn",))
        if len(g.segment) < 2:
            return g
        ts = g["ts_us"]
        order = np.lexsort((ts, g.segment))
        seg, ts_sorted = g.segment[order], ts[order]
        tied = np.flatnonzero((seg[1:] == seg[:-1]) & (ts_sorted[1:] == ts_sorted[:-1]))
        if len(tied):  # the same microsecond: such rows by txn_id, as the families order them
            members = np.unique(np.concatenate([tied, tied + 1]))
            run = np.cumsum(np.r_[True, np.diff(members) > 1])  # consecutive tied positions form a run
            by_txn = np.lexsort((g["txn"][order[members]].astype(str), run))
            order[members] = order[members][by_txn]
        return g.reordered(order)

    def _customer_features(self, r, out: dict) -> None:
        h, w, g = r.history, r.window, r.day_rows
        t = h["totals"]
        values = customer_features(
            r.ms, r.m, r.d, r.c, r.hour, r.weekday, r.angle, r.paise, r.x, r.city, r.state, r.lat, r.lon,
            t["known"], t["matrix"], h["n"], h["log_sum"], h["log_sq_sum"], h["percentile"],
            self.c_total["hour_counts"], self.c_total["weekday_counts"],
            w.segment, w.matrix, _positions(w.index, WINDOW_READS), w["large"],
            g.segment, g.matrix, _positions(g.index, DAY_READS), self.keys.shift, self.keys.origin_ms,
            self.pair_index.keys, self.pair_index.values, self.pair_total["txn_count"], self.pair_total["first_ms"],
            self.pair_total["amount_sum_paise"], self.device_pair_index.keys, self.device_pair_index.values,
            self.device_pair_count, self.customer_device_openings.keys, self.customer_labels.keys, self.has_labels,
        )
        out.update(zip(OUTPUTS if self.has_labels else OUTPUTS[:CUSTOMER_LABEL_FREE], values.T))

    def _counterparty_features(self, r, out: dict) -> None:
        level0, level1, level2 = (level.keys for level in self.counterparty_rows.levels)
        values = counterparty_features(
            r.m, r.ms, self.keys.shift, self.keys.origin_ms, self.delay_ms, level0, level1, level2,
            self.cp_openings.keys, self.cp_fan_in, self.cp_labels.keys, self.has_labels,
        )
        names = COUNTERPARTY_OUTPUTS if self.has_labels else COUNTERPARTY_OUTPUTS[:LABEL_FREE]
        out.update(zip(names, values.T))

    def _device_features(self, r, out: dict) -> None:
        has_d = r.d >= 0
        d = np.maximum(r.d, 0)
        sharing = self.device_openings.count(self.keys.base(d), self.keys.key(d, r.ms)) + _lookup(
            self.device_customers, r.d, 0.0)
        out["customers_per_device"] = np.where(has_d, sharing, np.nan)
