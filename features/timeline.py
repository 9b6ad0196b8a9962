"""Entity timelines: the rows of one kind of entity sorted by (entity, instant), so that "what did this
row's entity do strictly before this row" becomes prefix sums and rolling windows over one array.

Each entity and its instant are packed into one int64 key (entity code in the high bits, time in the
low bits): one integer sort per entity kind instead of a sort per window, and every window is a
Polars `rolling_*_by` over that key. Rows at the same instant share a key, so they never see each other.

A timeline can start its running totals at `since` (the online path): totals then cover only rows
from `since` on, and the caller adds the twin's totals for everything before.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl
from numba import njit

from features.inputs import FeatureInputError

KEY_BITS = 62  # keep clear of the sign bit and of overflow in key - window arithmetic


def _bits(value: int) -> int:
    return max(int(value).bit_length(), 1)


def _sort_order(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions that sort `key`, and the sorted keys; rows with equal keys (one entity, one instant)
    stay in row order, so "the previous row" is the same on every run."""
    order = pl.Series(key).arg_sort().to_numpy().copy()
    sorted_key = np.empty(len(key), dtype=np.int64)
    _gather(key, order, sorted_key)
    tied = np.flatnonzero(sorted_key[1:] == sorted_key[:-1])
    if len(tied):  # rare: re-order only the runs of equal keys by row position
        members = np.unique(np.concatenate([tied, tied + 1]))
        fixed = members[np.lexsort((order[members], sorted_key[members]))]
        order[members] = order[fixed]  # equal keys: the sorted keys stay as they are
    return order, sorted_key


RADIX_BITS = 20  # entity codes are sorted in digits of at most this many bits: at most 1 M counters a pass


@njit(nogil=True, cache=True)
def _entity_order(code, n_codes, time, offset, base, shift, order, key):
    """Stable radix sort of rows by entity code into `order`, when `time` never decreases (rows in time
    order, as the features take them): a few linear passes instead of a comparison sort of the keys,
    and rows of one entity at one instant stay in row order. Fills `key` with the sorted keys (code in
    the high bits, offset - base in the low) on the way. Returns False, order unfilled, otherwise and
    when a code lies outside 0 .. n_codes - 1."""
    n = len(code)
    for p in range(1, n):
        if time[p] < time[p - 1]:
            return False
    for p in range(n):
        if code[p] < 0 or code[p] >= n_codes:  # the loops below do not check bounds
            return False
    bits = 1
    while (1 << bits) < n_codes:
        bits += 1
    passes = (bits + RADIX_BITS - 1) // RADIX_BITS
    width = (bits + passes - 1) // passes
    mask = (1 << width) - 1
    if passes == 1:  # one counting pass straight from the codes
        slot = np.zeros(n_codes + 1, dtype=np.int64)
        for p in range(n):
            slot[code[p] + 1] += 1
        for c in range(n_codes):
            slot[c + 1] += slot[c]
        for p in range(n):
            c = code[p]
            order[slot[c]] = p
            key[slot[c]] = (np.int64(c) << shift) | np.int64(offset[p] - base)
            slot[c] += 1
        return True
    # Several digits, least significant first; each pass is stable. The first reads the codes in row
    # order, the last writes `order` and `key`; between them (code, row) pairs go through buffers.
    keys = np.empty(n, dtype=np.int64)
    rows = np.empty(n, dtype=order.dtype)
    slot = _digit_slots(code, 0, mask)
    for p in range(n):
        d = code[p] & mask
        keys[slot[d]] = code[p]
        rows[slot[d]] = p
        slot[d] += 1
    if passes > 2:
        spare_keys = np.empty(n, dtype=np.int64)
        spare_rows = np.empty(n, dtype=order.dtype)
        for k in range(1, passes - 1):
            slot = _digit_slots(keys, k * width, mask)
            for p in range(n):
                d = (keys[p] >> (k * width)) & mask
                spare_keys[slot[d]] = keys[p]
                spare_rows[slot[d]] = rows[p]
                slot[d] += 1
            keys, spare_keys = spare_keys, keys
            rows, spare_rows = spare_rows, rows
    digit = (passes - 1) * width
    slot = _digit_slots(keys, digit, mask)
    for p in range(n):
        d = (keys[p] >> digit) & mask
        order[slot[d]] = rows[p]
        key[slot[d]] = (keys[p] << shift) | np.int64(offset[rows[p]] - base)
        slot[d] += 1
    return True


@njit(nogil=True, cache=True)
def _digit_slots(keys, digit, mask):
    """Where each value of the digit (keys >> digit) & mask starts in a stable counting sort."""
    slot = np.zeros(mask + 2, dtype=np.int64)
    for p in range(len(keys)):
        slot[((keys[p] >> digit) & mask) + 1] += 1
    for d in range(mask + 1):
        slot[d + 1] += slot[d]
    return slot


# Row order <-> timeline order in compiled loops: numpy's fancy indexing first copies the int32
# positions to int64, which at 10 M rows costs as much as the random accesses themselves.
@njit(nogil=True, cache=True)
def _gather_part(values, idx, out, lo, hi):
    for p in range(lo, hi):
        out[p] = values[idx[p]]


@njit(nogil=True, cache=True)
def _scatter_part(values, idx, out, lo, hi):
    for p in range(lo, hi):
        out[idx[p]] = values[p]


_SPLIT_FROM = 1 << 20  # below this many positions a second thread costs more than it saves
_pool: tuple[int, ThreadPoolExecutor] | None = None


def _in_halves(kernel, n: int, *args, mid: int | None = None) -> None:
    """kernel(*args, lo, hi) over [0, mid) on a second thread and [mid, n) on this one (mid: n // 2,
    or the first position of an entity for loops that carry state along an entity). The loops are
    bound by memory latency, which two cores hide twice as well; each half writes its own elements."""
    global _pool
    if n < _SPLIT_FROM:
        kernel(*args, 0, n)
        return
    if _pool is None or _pool[0] != os.getpid():  # a forked child gets its own thread
        _pool = (os.getpid(), ThreadPoolExecutor(1, thread_name_prefix="timeline"))
    mid = n // 2 if mid is None else mid
    other = _pool[1].submit(kernel, *args, 0, mid)
    try:
        kernel(*args, mid, n)
    finally:
        other.result()


def _gather(values, idx, out):
    _in_halves(_gather_part, len(idx), values, idx, out)


def _scatter(values, idx, out):
    _in_halves(_scatter_part, len(idx), values, idx, out)


def _entity_mid(key: np.ndarray, shift: int) -> int:
    """The first position of the entity after the middle one (sorted keys): where state-carrying loops split."""
    if len(key) < _SPLIT_FROM:
        return 0
    return int(np.searchsorted(key, ((int(key[len(key) // 2]) >> shift) + 1) << shift))


@njit(nogil=True, cache=True)
def _starts(key, shift, start, first, lo, hi):
    """Per position of sorted keys: where its entity's positions start, and where its key's do."""
    for p in range(lo, hi):
        if p == 0 or (key[p] >> shift) != (key[p - 1] >> shift):
            start[p] = p
        else:
            start[p] = start[p - 1]
        first[p] = p if p == 0 or key[p] != key[p - 1] else first[p - 1]


@njit(nogil=True, cache=True)
def _sums_before(values, first, begin, start, out, lo, hi):
    """out[p] = sum of values over positions [begin[p], first[p]) of p's entity, as one running sum
    per entity: one pass, nothing allocated."""
    total = 0  # the entity's values so far (from begin)
    at_instant = 0  # ... before the current instant
    for p in range(lo, hi):
        if start[p] == p:
            total = 0
        if first[p] == p:
            at_instant = total
        out[p] = at_instant if first[p] > begin[p] else 0
        if p >= begin[p]:
            total += values[p]


@njit(nogil=True, cache=True)
def _last_marked_before(first, start, mask, use_mask, out, lo, hi):
    """out[p]: position of the latest marked position before first[p] and not before start[p], or -1."""
    running = -1  # latest marked position so far
    before_instant = -1  # ... before the current instant's first position
    for p in range(lo, hi):
        if first[p] == p:
            before_instant = running
        out[p] = before_instant if before_instant >= start[p] else -1
        if not use_mask or mask[p]:
            running = p


@njit(nogil=True, cache=True)
def _bucket_counts(buckets, n_buckets, first, begin, start, with_below, same, below, lo, hi):
    """Per position: the entity's counted positions (from begin) before its instant in the same bucket,
    and in lower buckets. One pass with one counter per bucket; the rows of an instant are added to
    the counters only when the next instant starts, so they never count each other."""
    counts = np.zeros(n_buckets, dtype=np.int64)
    pending = lo  # first position not yet added to the counters
    for p in range(lo, hi):
        if start[p] == p:  # a new entity
            counts[:] = 0
            pending = p
        elif first[p] == p:  # a new instant of the same entity: add the previous ones
            for q in range(pending, p):
                b = buckets[q]
                if q >= begin[q] and 0 <= b < n_buckets:
                    counts[b] += 1
            pending = p
        b = buckets[p]
        if b < 0 or b >= n_buckets:
            same[p] = -1
            if with_below:
                below[p] = -1
            continue
        same[p] = counts[b]
        if with_below:
            lower = 0
            for c in range(b):
                lower += counts[c]
            below[p] = lower


@njit(nogil=True, cache=True)
def _rows_of(positions, idx, out, lo, hi):
    """out[idx[p]] = idx[positions[p]], or -1 where positions[p] is -1: timeline positions as rows."""
    for p in range(lo, hi):
        q = positions[p]
        out[idx[p]] = idx[q] if q >= 0 else -1


def _index_dtype(n: int):
    return np.int32 if n < (1 << 31) - 1 else np.int64


class Timeline:
    """Rows with a non-null entity code, sorted by (entity, instant).

    Arrays named in the methods are in timeline (sorted) order unless they end in `_rows`.
    """

    def __init__(
        self,
        codes: np.ndarray,
        n_codes: int,
        ms: np.ndarray,
        *,
        origin_ms: int | None = None,
        horizon_ms: int = 0,
        since_ms: int | None = None,
    ):
        self.n_rows = len(codes)
        self._ms = ms
        index = _index_dtype(self.n_rows + 1)
        valid = codes >= 0
        rows = None if valid.all() else np.flatnonzero(valid).astype(index)  # None: every row
        code = codes if rows is None else codes[rows]
        time = ms if rows is None else ms[rows]
        del valid
        self.windowed = origin_ms is not None
        self.origin_ms = origin_ms
        if self.windowed:
            # Real time axis: windows can be looked up; the horizon keeps key - window inside the entity.
            offset, base = time, origin_ms
            if len(time) and time.min() < origin_ms:
                raise ValueError("origin_ms must not be later than the first instant")
            span = (int(time.max()) - origin_ms if len(time) else 0) + horizon_ms + 1
        else:
            # Running totals only: the rank of the instant orders rows with far fewer bits than milliseconds.
            is_new = np.ones(len(time), dtype=bool)
            is_new[1:] = time[1:] != time[:-1]
            offset, base = np.cumsum(is_new), 0
            self._instants = time[is_new]
            span = int(offset[-1]) + 1 if len(offset) else 1
            del is_new
        self.shift = _bits(span)
        if _bits(max(n_codes - 1, 0)) + self.shift > KEY_BITS:
            raise FeatureInputError(
                f"{n_codes:,} entities over this time span do not fit one 62-bit key; split the history"
            )
        order = np.empty(len(code), dtype=index)
        self.key = np.empty(len(code), dtype=np.int64)
        if not _entity_order(code, max(n_codes, 0), time, offset, base, self.shift, order, self.key):
            order, self.key = _sort_order((code.astype(np.int64) << self.shift) | (offset - base).astype(np.int64))
        del code, time, offset
        if rows is None:
            self.idx = order.astype(index, copy=False)  # row position of each timeline position
        else:
            self.idx = np.empty(len(order), dtype=index)
            _gather(rows, order, self.idx)
        del order, rows
        self.start = np.empty(len(self.key), dtype=index)  # the entity's first position
        self.first = np.empty(len(self.key), dtype=index)  # the instant's first position: rows before this instant
        self._mid = _entity_mid(self.key, self.shift)
        _in_halves(_starts, len(self.key), self.key, self.shift, self.start, self.first, mid=self._mid)
        if since_ms is None:
            self.begin = self.start
        else:
            since_offset = (since_ms - origin_ms) if self.windowed else int(np.searchsorted(self._instants, since_ms)) + 1
            self.begin = np.searchsorted(self.key, self.base_key + max(since_offset, 0), side="left").astype(index)

    @property
    def base_key(self) -> np.ndarray:
        """Smallest key of the row's entity."""
        return (self.key >> self.shift) << self.shift

    @property
    def time(self) -> np.ndarray:
        """Epoch milliseconds of each timeline position."""
        if self.windowed:
            return (self.key & ((1 << self.shift) - 1)) + self.origin_ms
        return self._ms[self.idx]

    def __len__(self) -> int:
        return len(self.key)

    # ---- moving values between row order and timeline order ------------------------------------

    def take(self, values_rows: np.ndarray) -> np.ndarray:
        values_rows = np.asarray(values_rows)
        if values_rows.ndim != 1 or values_rows.dtype == object:
            return values_rows[self.idx]
        if len(values_rows) != self.n_rows:  # the loop does not check bounds
            raise ValueError(f"take expects {self.n_rows} values in row order, got {len(values_rows)}")
        out = np.empty(len(self.idx), dtype=values_rows.dtype)
        _gather(values_rows, self.idx, out)
        return out

    def put(self, values: np.ndarray, fill: float = np.nan) -> np.ndarray:
        """Back to row order; rows outside the timeline (null entity) get `fill`."""
        if len(self.idx) == self.n_rows:  # every row is on the timeline: nothing to fill
            out = np.empty(self.n_rows, dtype=np.float64)
        else:
            out = np.full(self.n_rows, fill, dtype=np.float64)
        values = np.asarray(values)
        if values.shape != self.idx.shape:  # the loop does not check bounds
            raise ValueError(f"put expects {len(self.idx)} values in timeline order, got shape {values.shape}")
        _scatter(values, self.idx, out)
        return out

    # ---- running totals over the entity's whole history (from `since` online) -------------------

    def counted_before(self) -> np.ndarray:
        """Rows of the entity before this row's instant (and from `begin`)."""
        return np.maximum(self.first - self.begin, 0)

    def sum_before(self, values: np.ndarray) -> np.ndarray:
        dtype = np.float64 if values.dtype.kind == "f" else np.int64
        if values.shape != self.idx.shape:  # the loop does not check bounds
            raise ValueError(f"sum_before expects {len(self.idx)} values in timeline order, got shape {values.shape}")
        out = np.empty(len(values), dtype=dtype)
        _in_halves(_sums_before, len(values), values, self.first, self.begin, self.start, out, mid=self._mid)
        return out

    def opens_entity(self) -> np.ndarray:
        """True on the first counted row of each entity (the row that makes it known)."""
        return np.arange(len(self.key)) == self.begin

    def first_time(self) -> np.ndarray:
        """Instant (ms) of the entity's first counted row if it is before this row, else NaN."""
        begin = np.minimum(self.begin, max(len(self.key) - 1, 0))
        return np.where(self.first > self.begin, self._ms[self.idx[begin]], np.nan)

    def last_before(self, mask: np.ndarray | None = None) -> np.ndarray:
        """Timeline position of the entity's latest row (satisfying mask) before this instant, or -1."""
        use_mask = mask is not None
        if use_mask and mask.shape != self.idx.shape:  # the loop does not check bounds
            raise ValueError(f"last_before expects {len(self.idx)} flags in timeline order, got shape {mask.shape}")
        out = np.empty(len(self.key), dtype=self.idx.dtype)
        mask = mask if use_mask else np.zeros(0, dtype=bool)
        _in_halves(_last_marked_before, len(out), self.first, self.start, mask, use_mask, out, mid=self._mid)
        return out

    def last_row_before(self, mask_rows: np.ndarray) -> np.ndarray:
        """Row of the entity's latest row satisfying mask (in row order) before this row's instant, or
        -1; rows outside the timeline get -1."""
        out = np.full(self.n_rows, -1, dtype=self.idx.dtype)
        _in_halves(_rows_of, len(self.idx), self.last_before(self.take(mask_rows)), self.idx, out)
        return out

    # ---- windows over real time -----------------------------------------------------------------

    def rolling(
        self, values: dict[str, np.ndarray], specs: dict[str, tuple[str | None, str, int]]
    ) -> dict[str, np.ndarray]:
        """Several aggregates over each row's window [t - window, t), in one parallel Polars query.

        values: input columns in timeline order; specs: output name -> (input name, or None to count
        rows; "sum" | "min" | "max"; window in ms). Empty windows give 0 for sums and NaN for min/max.
        The key spacing (horizon) keeps every window inside its own entity.
        """
        if not self.windowed:
            raise ValueError("this timeline was built without a time axis")
        frame = pl.DataFrame({"_key": self.key, "_one": np.ones(len(self.key), dtype=np.int32), **values})
        frame = frame.with_columns(pl.col("_key").set_sorted())
        exprs = []
        for name, (column, how, window_ms) in specs.items():
            source = pl.col("_one" if column is None else column)
            rolled = getattr(source, f"rolling_{how}_by")("_key", window_size=f"{window_ms}i", closed="left")
            exprs.append(rolled.alias(name))
        result = frame.select(exprs)
        del frame
        out = {}
        for name in specs:
            column = result.get_column(name)
            if column.dtype.is_integer() and column.null_count() == 0:
                out[name] = column.to_numpy()  # counts and sums: no copy to float
            else:
                out[name] = column.cast(pl.Float64).fill_null(np.nan).to_numpy()
        return out

    def events_before(self, event_codes: np.ndarray, event_ms: np.ndarray, origin_ms: int) -> "EventCounts":
        """Counts of outside events (e.g. fraud labels becoming usable) of each row's entity before it."""
        return EventCounts(self, event_codes, event_ms, origin_ms)

    # ---- counts per bucket (amount bands, hours, weekdays) ------------------------------------

    def bucket_counts_before(
        self, buckets: np.ndarray, n_buckets: int, with_below: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """For each row: the entity's earlier rows in the same bucket, and (with_below) in lower buckets.

        Rows with bucket -1 (or any bucket outside 0 .. n_buckets - 1) are not counted and get -1.
        """
        if buckets.shape != self.idx.shape:  # the loop does not check bounds
            raise ValueError(f"bucket_counts_before expects {len(self.idx)} buckets, got shape {buckets.shape}")
        same = np.empty(len(self.key), dtype=np.int64)
        below = np.empty(len(self.key) if with_below else 0, dtype=np.int64)
        _in_halves(_bucket_counts, len(buckets), buckets, n_buckets, self.first, self.begin, self.start, with_below, same,
                   below, mid=self._mid)
        return same, below if with_below else None


ALL_HISTORY_MS = 1 << 62  # a window longer than any history: everything since the entity's first key


class EventCounts:
    """Outside events keyed like a timeline's rows, counted before each row.

    The timeline's keys and the event keys are both sorted, and so is every window's lower bound
    (the later of t - window and the entity's first key), so each look-up is one merge pass."""

    def __init__(self, timeline: Timeline, event_codes: np.ndarray, event_ms: np.ndarray, origin_ms: int):
        offset = event_ms - origin_ms
        keep = (event_codes >= 0) & (offset >= 0) & (offset < (1 << timeline.shift))
        self.timeline = timeline
        self.events = np.sort((event_codes[keep].astype(np.int64) << timeline.shift) | offset[keep])
        self.hi = self._below(-1)  # events before each row's instant

    def _below(self, window_ms: int) -> np.ndarray:
        out = np.empty(len(self.timeline.key), dtype=np.int64)
        _merge_below(self.events, self.timeline.key, self.timeline.shift, window_ms, out)
        return out

    def before(self, window_ms: int | None = None) -> np.ndarray:
        """Events in [t - window, t), or anywhere before t when window is None."""
        return self.hi - self._below(ALL_HISTORY_MS if window_ms is None else window_ms)

    def since_latest(self) -> np.ndarray:
        """ms from the entity's latest event before t to t; NaN when it has none."""
        return self._since(self._below(ALL_HISTORY_MS), latest=True)

    def since_earliest(self, window_ms: int) -> np.ndarray:
        """ms from the entity's earliest event in [t - window, t) to t; NaN when there is none."""
        return self._since(self._below(window_ms), latest=False)

    def _since(self, lo: np.ndarray, latest: bool) -> np.ndarray:
        out = np.empty(len(self.hi), dtype=np.float64)
        _in_halves(_since_event, len(out), self.events, self.timeline.key, lo, self.hi, latest, out)
        return out


@njit(nogil=True, cache=True)
def _merge_below(events, key, shift, window, out):
    """out[p] = the number of events below key[p] when window is -1, else below the later of
    key[p] - window and the entity's first key. These bounds never decrease along the sorted keys,
    so one pointer walks the sorted events once."""
    j = 0
    m = len(events)
    for p in range(len(key)):
        bound = key[p]
        if window >= 0:
            bound = max(key[p] - window, (key[p] >> shift) << shift)
        while j < m and events[j] < bound:
            j += 1
        out[p] = j


@njit(nogil=True, cache=True)
def _since_event(events, key, lo, hi, latest, out, start, stop):
    """key - the latest (or earliest) event in [lo, hi); NaN when that range is empty."""
    for p in range(start, stop):
        if hi[p] > lo[p]:
            out[p] = key[p] - events[hi[p] - 1 if latest else lo[p]]
        else:
            out[p] = np.nan
