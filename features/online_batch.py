"""A batch of new transactions for the online feature state (features.online_state): the values
each row carries by itself (its instant, time of day in Asia/Kolkata, log amount, amount band, the
codes of its customer, counterparty and device), and the features that come out, as the model and
the feature table take them."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from types import SimpleNamespace

import numpy as np
import polars as pl

from features import basic
from features.catalogue import CATALOGUE
from features.inputs import FEATURE_FIELDS, REQUIRED_FIELDS, FeatureInputError
from features.spec import DAY_MS, HOUR_MS
from features.velocity import amount_bucket
from finrisk.schema import CHANNELS

CHANNEL_CODES = {channel: code for code, channel in enumerate(CHANNELS)}  # as features.basic numbers them


@lru_cache(maxsize=None)
def _mcc_group_code(mcc: str | None) -> float:
    """features.basic's merchant category group code (NaN without an MCC)."""
    group = basic._group_of(mcc)
    return np.nan if group is None else float(MCC_CODES[group])


MCC_CODES = {name: code for code, name in enumerate([*basic.MCC_GROUP_NAMES, "other"])}


class _Columns:
    """Column access to a Polars frame or a dict of lists, without a query per column."""

    def __init__(self, tx):
        self.frame = tx if isinstance(tx, pl.DataFrame) else None
        self.tx = tx
        self.n = tx.height if self.frame is not None else len(tx["txn_id"])

    def strings(self, name: str) -> list:
        if self.frame is not None:
            return self.frame.get_column(name).to_list() if name in self.frame.columns else [None] * self.n
        return list(self.tx.get(name) or [None] * self.n)

    def numbers(self, name: str, dtype=np.float64) -> np.ndarray:
        if self.frame is not None:
            if name not in self.frame.columns:
                return np.full(self.n, np.nan)
            values = self.frame.get_column(name)
            if values.null_count():
                values = values.cast(pl.Float64).fill_null(np.nan)
            return values.to_numpy().astype(dtype)
        values = self.tx.get(name) or [None] * self.n
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64).astype(dtype)

    def ts_us(self) -> np.ndarray:
        """Epoch microseconds (UTC) of a timezone-aware `ts`."""
        if self.frame is not None:
            ts = self.frame.get_column("ts")
            if not isinstance(ts.dtype, pl.Datetime) or ts.dtype.time_zone is None:
                raise FeatureInputError(f"column ts must be a timezone-aware datetime, got {ts.dtype}")
            return ts.to_numpy().astype("datetime64[us]").astype(np.int64)
        return np.array(self.tx["ts_us"], dtype=np.int64)


class Codes:
    """Dense integer codes for strings, new ones numbered as they come (None -> -1)."""

    def __init__(self, index: dict[str, int] | None = None):
        self.index: dict[str, int] = index if index is not None else {}

    def __len__(self) -> int:
        return len(self.index)

    def encode(self, values: list) -> np.ndarray:
        index = self.index
        return np.fromiter(
            (-1 if v is None else index.setdefault(v, len(index)) for v in values), dtype=np.int64, count=len(values)
        )


@dataclass
class EntityCodes:
    """The codes of every kind of entity the state numbers."""

    customers: Codes
    counterparties: Codes
    devices: Codes
    cities: Codes
    states: Codes

    @classmethod
    def empty(cls) -> "EntityCodes":
        return cls(Codes(), Codes(), Codes(), Codes(), Codes())

    def copy(self) -> "EntityCodes":
        kinds = (self.customers, self.counterparties, self.devices, self.cities, self.states)
        return EntityCodes(*(Codes(dict(codes.index)) for codes in kinds))

    def largest(self) -> int:
        return max(len(self.customers), len(self.counterparties), len(self.devices))


def stacked(columns: list) -> np.ndarray:
    """Equal-length columns side by side, as float64 (np.column_stack, at a fraction of its cost)."""
    return np.array(columns, dtype=np.float64).T


def _ordered(values: list, order: np.ndarray) -> list:
    """The values in time order (as given when they already are)."""
    if len(values) < 2 or (order[1:] > order[:-1]).all():
        return values
    return [values[i] for i in order.tolist()]


def row_values(tx, codes: EntityCodes, offset_ms: int) -> SimpleNamespace:
    """The rows' own values, in time order (ts, txn_id): what the families compute per row
    before they look at any history (time of day in Asia/Kolkata, log amount, amount band, ...)."""
    col = _Columns(tx)
    ts_us = col.ts_us()
    txn = np.array(col.strings("txn_id"), dtype=object)
    if len(ts_us) < 2 or (ts_us[1:] > ts_us[:-1]).all():  # already in time order (the usual case)
        order = np.arange(len(ts_us))
    else:  # time order, ties by txn_id: the families' row order
        order = np.lexsort((txn.astype(str), ts_us))
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    strings = {name: _ordered(col.strings(name), order) for name in (
        "customer_id", "counterparty", "device_id", "city", "state", "channel", "direction", "mcc", "counterparty_type",
        "status")}
    ts_us = ts_us[order]
    ms = ts_us // 1000  # epoch milliseconds, floored as Polars floors them
    paise = col.numbers("amount_paise", np.int64)[order]
    local_ms = ms + offset_ms
    days = local_ms // DAY_MS
    hour = (local_ms // HOUR_MS) % 24
    minute = (local_ms // 60_000) % 60
    dates = days.astype("datetime64[D]")
    direction = strings["direction"]
    credit = np.fromiter((v == "CREDIT" for v in direction), dtype=np.int64, count=len(direction))
    debit = np.fromiter((v == "DEBIT" for v in direction), dtype=np.int64, count=len(direction))
    salary = np.fromiter(
        (t == "SALARY" and (v or "CREDIT") == "CREDIT" for t, v in zip(strings["counterparty_type"], direction)),
        dtype=np.int64, count=len(direction))
    lat, lon = col.numbers("latitude")[order], col.numbers("longitude")[order]
    # features.inputs.present_fields: the fields with a value in these rows
    present = {name for name, values in strings.items() if any(v is not None for v in values)}
    present |= {name for name, values in (("latitude", lat), ("longitude", lon)) if not np.isnan(values).all()}
    present = (present | {"txn_id", "ts", "amount_paise"}) & set(FEATURE_FIELDS) if len(order) else set(REQUIRED_FIELDS)
    return SimpleNamespace(
        order=position, txn=txn[order], ts_us=ts_us, ms=ms, paise=paise,
        c=codes.customers.encode(strings["customer_id"]), m=codes.counterparties.encode(strings["counterparty"]),
        d=codes.devices.encode(strings["device_id"]), city=codes.cities.encode(strings["city"]),
        state=codes.states.encode(strings["state"]), lat=lat, lon=lon,
        hour=hour, weekday=(days + 3) % 7, day=(dates - dates.astype("datetime64[M]")).astype(np.int64) + 1,
        angle=(hour + minute / 60) * (2 * np.pi / 24),
        x=np.log10(np.maximum(paise / 100, 0.01)), bucket=amount_bucket(paise),
        credit=credit, debit=debit, salary=salary,
        channel_code=np.array([CHANNEL_CODES.get(v, -1) for v in strings["channel"]], dtype=np.int64),
        is_debit=np.array([np.nan if v is None else float(v == "DEBIT") for v in direction]),
        mcc_group_code=np.array([_mcc_group_code(v) for v in strings["mcc"]], dtype=np.float64),
        fields=frozenset(present), strings=strings,
    )


@dataclass
class Batch:
    """Features of one batch of new transactions, in the order they were given."""

    txn_ids: list[str]
    values: dict[str, np.ndarray]  # by feature name, in time order; NaN for null
    order: np.ndarray  # input position -> time-order position
    fields: frozenset[str]

    def matrix(self, columns: tuple[str, ...]) -> np.ndarray:
        """The model's float64 inputs: each feature as its dtype holds it, null as NaN."""
        available = _available(self.fields)
        nothing = np.full(len(self.order), np.nan)
        out = stacked([self.values[name] if name in available and name in self.values else nothing for name in columns])
        single = _float32_positions(tuple(columns))
        out[:, single] = out[:, single].astype(np.float32)
        return out[self.order]

    def frame(self) -> pl.DataFrame:
        """txn_id and every catalogue feature, with the declared dtypes (as compute_features gives them)."""
        columns = [pl.Series("txn_id", np.asarray(self.txn_ids, dtype=object)[self.order].tolist(), dtype=pl.String)]
        available = _available(self.fields)
        for f in CATALOGUE:
            if f.name in available and f.name in self.values:
                values = np.asarray(self.values[f.name])[self.order]
                columns.append(pl.Series(f.name, values, nan_to_null=values.dtype.kind == "f").cast(
                    RETURNED_DTYPES[f.name], strict=False))
            else:
                columns.append(pl.Series(f.name, [None] * len(self.order), dtype=f.dtype))
        return pl.DataFrame(columns)


@lru_cache(maxsize=64)
def _available(fields: frozenset[str]) -> frozenset[str]:
    return frozenset(f.name for f in CATALOGUE if f.available(fields))


# features.basic returns the log amount as computed (Float64); every other feature has its declared dtype.
RETURNED_DTYPES = {f.name: (pl.Float64 if f.name == "amount_rupees_log" else f.dtype) for f in CATALOGUE}


@lru_cache(maxsize=64)
def _float32_positions(columns: tuple[str, ...]) -> list[int]:
    """Where the model's columns are Float32 features (held at that precision, as the batch path holds them)."""
    return [j for j, name in enumerate(columns) if RETURNED_DTYPES.get(name) == pl.Float32]
