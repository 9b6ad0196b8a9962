"""Sorted per-entity rows and events for the online feature state (features.online_state).

Every structure is keyed like a Timeline: entity code in the high bits of an int64, milliseconds
since an origin below, so "the entity's rows in [a, b)" is one `searchsorted` per bound, for any
number of rows at once. Updates never change an array in place: they build new arrays, so the
state before a batch can be put back by keeping references to the old ones.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from features.inputs import FeatureInputError

KEY_BITS = 62
# Rows the middle and the smallest level take before they are merged into the next larger one.
LEVEL_LIMITS = (32_768, 1_024)


def _bits(value: int) -> int:
    return max(int(value).bit_length(), 1)


class KeySpace:
    """(entity code, epoch ms) -> int64 key; instants from `origin_ms` (inclusive) to `end_ms` (exclusive)."""

    def __init__(self, origin_ms: int, end_ms: int):
        self.origin_ms, self.end_ms = int(origin_ms), int(end_ms)
        self.shift = _bits(self.end_ms - self.origin_ms)
        self._last = (1 << self.shift) - 1

    def check(self, n_codes: int) -> None:
        if _bits(max(n_codes - 1, 0)) + self.shift > KEY_BITS:
            raise FeatureInputError(f"{n_codes:,} entities over this time span do not fit one 62-bit key")

    def key(self, codes: np.ndarray, ms) -> np.ndarray:
        """Keys of instants inside the span (the state only asks for those)."""
        return (codes << self.shift) | (ms - self.origin_ms)

    def base(self, codes: np.ndarray) -> np.ndarray:
        return np.asarray(codes, dtype=np.int64) << self.shift


def spans(starts: np.ndarray, stops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(segment, position) of every position in the ranges [starts[i], stops[i])."""
    lengths = np.maximum(stops - starts, 0)
    segment = np.repeat(np.arange(len(starts)), lengths)
    first = np.cumsum(lengths) - lengths
    return segment, np.arange(lengths.sum()) - np.repeat(first - starts, lengths)


@dataclass
class Level:
    """Rows sorted by key: numeric columns as one float64 matrix (integers up to 2**53 stay exact),
    others (and the one column that changes after insertion) as arrays of their own."""

    keys: np.ndarray
    matrix: np.ndarray  # (rows, len(names))
    others: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def sorted(cls, keys: np.ndarray, matrix: np.ndarray, others: dict[str, np.ndarray]) -> "Level":
        order = np.argsort(keys, kind="stable")  # equal keys keep their arrival order
        return cls(keys[order], matrix[order], {name: values[order] for name, values in others.items()})

    def joined(self, other: "Level") -> "Level":
        return Level.sorted(
            np.concatenate([self.keys, other.keys]), np.concatenate([self.matrix, other.matrix]),
            {name: np.concatenate([values, other.others[name]]) for name, values in self.others.items()},
        )


@dataclass
class Gathered:
    """Rows found for many ranges at once: which range each belongs to, and its columns."""

    segment: np.ndarray
    matrix: np.ndarray
    others: dict[str, np.ndarray]
    index: dict[str, int]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.others[name] if name in self.others else self.matrix[:, self.index[name]]

    def reordered(self, order: np.ndarray) -> "Gathered":
        return Gathered(self.segment[order], self.matrix[order],
                        {name: values[order] for name, values in self.others.items()}, self.index)


@dataclass
class Rows:
    """Rows of one entity kind with value columns, in levels of growing size (a log-structured
    merge): inserts go to the smallest, which is merged into the next once it outgrows its limit,
    so an insert copies a few thousand rows and the large level is rebuilt only rarely."""

    names: tuple[str, ...]  # the numeric columns, in matrix order
    levels: tuple[Level, ...]  # largest first; the last takes the inserts

    @property
    def index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}

    @classmethod
    def build(cls, keys: np.ndarray, numbers: dict[str, np.ndarray], others: dict[str, np.ndarray] | None = None) -> "Rows":
        names = tuple(numbers)
        level = Level.sorted(keys, _matrix(numbers, names, len(keys)), dict(others or {}))
        return cls(names, (level, *(_empty(level) for _ in LEVEL_LIMITS)))

    def inserted(self, keys: np.ndarray, numbers: dict[str, np.ndarray],
                 others: dict[str, np.ndarray] | None = None) -> tuple["Rows", np.ndarray]:
        """The rows with these added (to the smallest level), and where they landed in it."""
        fresh = self.levels[-1]
        new = Level(keys, _matrix(numbers, self.names, len(keys)), dict(others or {}))
        order = np.argsort(np.concatenate([fresh.keys, keys]), kind="stable")
        landed = np.empty(len(order), dtype=np.int64)
        landed[order] = np.arange(len(order))
        joined = Level(
            np.concatenate([fresh.keys, keys])[order], np.concatenate([fresh.matrix, new.matrix])[order],
            {name: np.concatenate([values, new.others[name]])[order] for name, values in fresh.others.items()},
        )
        return Rows(self.names, (*self.levels[:-1], joined)), landed[len(fresh):]

    def with_fresh(self, name: str, positions: np.ndarray, values: np.ndarray) -> "Rows":
        """A copy with the column `name` (one of the others) set at these positions of the smallest level."""
        fresh = self.levels[-1]
        column = fresh.others[name].copy()
        column[positions] = values
        return Rows(self.names, (*self.levels[:-1], Level(fresh.keys, fresh.matrix, {**fresh.others, name: column})))

    def settled(self) -> "Rows":
        """The same rows with each level over its limit merged into the next larger one."""
        levels = list(self.levels)
        for i in range(len(levels) - 1, 0, -1):  # smallest first: a merge can push the next one over
            if len(levels[i]) > LEVEL_LIMITS[i - 1]:
                levels[i - 1], levels[i] = levels[i - 1].joined(levels[i]), _empty(levels[i])
        return self if all(a is b for a, b in zip(levels, self.levels)) else Rows(self.names, tuple(levels))

    def _filled(self):
        return [level for level in self.levels if len(level)]

    def below(self, keys: np.ndarray) -> np.ndarray:
        """Rows with a key below each of `keys` (any shape): differences of these count ranges."""
        return sum(np.searchsorted(level.keys, keys) for level in self._filled())

    def count(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Rows with lo <= key < hi."""
        return sum(np.searchsorted(level.keys, hi) - np.searchsorted(level.keys, lo) for level in self._filled())

    def gather(self, lo: np.ndarray, hi: np.ndarray, names: tuple[str, ...] | None = None,
               others: tuple[str, ...] | None = None) -> Gathered:
        """The rows with lo[i] <= key < hi[i] for every i (segment i), from every level: the numeric
        columns `names` and the other columns `others` (all when None), level by level."""
        full = self.index
        names = self.names if names is None else names
        columns = np.array([full[n] for n in names], dtype=np.int64)
        index = {n: i for i, n in enumerate(names)}
        whole = len(names) == len(self.names)
        parts = []
        for level in self._filled():
            starts, stops = np.searchsorted(level.keys, lo), np.searchsorted(level.keys, hi)
            if not (stops > starts).any():  # nothing of this level in any range (common for a few rows)
                continue
            segment, position = spans(starts, stops)
            matrix = level.matrix[position] if whole else level.matrix[position[:, None], columns]
            wanted = level.others if others is None else {n: level.others[n] for n in others}
            parts.append((segment, matrix, {n: v[position] for n, v in wanted.items()}))
        if not parts:
            empty = self.levels[0]
            wanted = empty.others if others is None else {n: empty.others[n] for n in others}
            return Gathered(np.zeros(0, np.int64), np.zeros((0, len(names))), {n: v[:0] for n, v in wanted.items()}, index)
        if len(parts) == 1:
            return Gathered(*parts[0], index)
        return Gathered(
            np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            {name: np.concatenate([p[2][name] for p in parts]) for name in parts[0][2]}, index,
        )

    def with_values(self, name: str, lo: np.ndarray, hi: np.ndarray, row_ids: np.ndarray, values: np.ndarray) -> "Rows":
        """A copy with the column `name` (one of the others) set for the rows `row_ids` (column
        "row_id"), found in the key ranges [lo, hi)."""
        if not len(row_ids):
            return self
        order = np.argsort(row_ids)
        ids_sorted, values_sorted = row_ids[order], values[order]
        row_id = self.index["row_id"]
        levels = []
        for level in self.levels:
            _, position = spans(np.searchsorted(level.keys, lo), np.searchsorted(level.keys, hi))
            ids = level.matrix[position, row_id].astype(np.int64)
            hit = np.isin(ids, ids_sorted)
            if not hit.any():
                levels.append(level)
                continue
            column = level.others[name].copy()
            column[position[hit]] = values_sorted[np.searchsorted(ids_sorted, ids[hit])]
            levels.append(Level(level.keys, level.matrix, {**level.others, name: column}))
        return Rows(self.names, tuple(levels))


def _empty(like: Level) -> Level:
    return Level(like.keys[:0], like.matrix[:0], {name: values[:0] for name, values in like.others.items()})


def _matrix(numbers: dict[str, np.ndarray], names: tuple[str, ...], n: int) -> np.ndarray:
    if not names:
        return np.zeros((n, 0))
    return np.array([numbers[name] for name in names], dtype=np.float64).T.copy()  # rows contiguous


@dataclass
class Events:
    """Instants of outside events per entity (fraud labels becoming usable, first contacts), sorted."""

    keys: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def inserted(self, keys: np.ndarray) -> "Events":
        return Events(np.sort(np.concatenate([self.keys, keys]))) if len(keys) else self

    def removed(self, keys: np.ndarray) -> "Events":
        """Without one occurrence of each of `keys` (which must be present)."""
        if not len(keys):
            return self
        keys = np.sort(keys)
        positions = np.searchsorted(self.keys, keys)
        for i in range(1, len(positions)):  # the same key twice: take the next occurrence
            if positions[i] <= positions[i - 1] and keys[i] == keys[i - 1]:
                positions[i] = positions[i - 1] + 1
        return Events(np.delete(self.keys, positions))

    def count(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.keys, hi) - np.searchsorted(self.keys, lo)

    def below(self, keys: np.ndarray) -> np.ndarray:
        """Events with a key below each of `keys` (any shape)."""
        return np.searchsorted(self.keys, keys)

    def latest(self, base: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Key of the entity's latest event before hi, or -1."""
        at = np.searchsorted(self.keys, hi) - 1
        found = self.keys[np.maximum(at, 0)] if len(self.keys) else np.zeros(len(hi), np.int64)
        return np.where((at >= 0) & (found >= base), found, -1)

    def earliest(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Key of the entity's earliest event in [lo, hi), or -1."""
        at = np.searchsorted(self.keys, lo)
        found = self.keys[np.minimum(at, len(self.keys) - 1)] if len(self.keys) else np.zeros(len(lo), np.int64)
        return np.where((at < len(self.keys)) & (found < hi), found, -1)


@dataclass
class IntMap:
    """int64 keys -> int64 values, sorted; looked up for many keys at once."""

    keys: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    values: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @classmethod
    def build(cls, keys: np.ndarray, values: np.ndarray) -> "IntMap":
        order = np.argsort(keys, kind="stable")
        return cls(np.asarray(keys, np.int64)[order], np.asarray(values)[order])

    def find(self, keys: np.ndarray) -> np.ndarray:
        """Position of each key, or -1."""
        if not len(self.keys):
            return np.full(len(keys), -1, dtype=np.int64)
        safe = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)  # past the end: a smaller key, no match
        return np.where(self.keys[safe] == keys, safe, -1)

    def get(self, keys: np.ndarray, default: int = -1) -> np.ndarray:
        """The value of each key, or default."""
        at = self.find(keys)
        return np.where(at >= 0, self.values[np.maximum(at, 0)] if len(self.values) else default, default)

    def updated(self, keys: np.ndarray, values: np.ndarray) -> "IntMap":
        """With `keys` (distinct) set to `values`, added where new."""
        at = self.find(keys)
        new_values = self.values.copy()
        new_values[at[at >= 0]] = values[at >= 0]
        fresh = at < 0
        if not fresh.any():
            return IntMap(self.keys, new_values)
        return IntMap.build(np.concatenate([self.keys, keys[fresh]]), np.concatenate([new_values, values[fresh]]))
