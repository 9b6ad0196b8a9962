"""Device and place: new devices, shared devices, moves between cities and impossible travel."""
from __future__ import annotations

import math

import numpy as np
import polars as pl
from numba import njit

from features.context import ENTITY_KEYS, FeatureContext
from features.inputs import codes_in, dense_codes
from features.spec import FeatureColumns, HOUR_MS, Feature, family

EARTH_RADIUS_KM = 6371.0
IMPOSSIBLE_SPEED_KMH = 900.0  # faster than a domestic flight
IMPOSSIBLE_MIN_KM = 50.0  # below this, a jump is more likely geolocation noise than travel
MIN_TRAVEL_HOURS = 1 / 60  # speeds over gaps shorter than a minute are computed as over a minute

REUSE_HEAP = False  # runs when the most features are already held: a reused heap would raise the peak
TIMELINES = ("customer", "device_pair", "device")  # entity timelines this family reads
CACHED = ("_lat", "_lon")  # shared values it reads

FEATURES = family(
    "device_place",
    Feature(
        "new_device", "customer x device", "all", "the customer has never used this device before",
        ("customer_id", "device_id", "ts"), dtype=pl.Int8,
    ),
    Feature(
        "devices_per_customer", "customer", "all", "distinct devices the customer used before",
        ("customer_id", "device_id", "ts"), dtype=pl.Int32,
    ),
    Feature(
        "customers_per_device", "device", "all", "distinct customers seen on this device before",
        ("customer_id", "device_id", "ts"), dtype=pl.Int32,
    ),
    Feature(
        "city_changed", "customer", "all", "the city differs from the customer's previous known city",
        ("customer_id", "city", "ts"), dtype=pl.Int8,
    ),
    Feature(
        "state_changed", "customer", "all", "the state differs from the customer's previous known state",
        ("customer_id", "state", "ts"), dtype=pl.Int8,
    ),
    Feature(
        "distance_from_prev_km", "customer", "all", "km from the customer's previous geolocated transaction",
        ("customer_id", "latitude", "longitude", "ts"),
    ),
    Feature(
        "travel_speed_kmh", "customer", "all",
        "km/h needed to get here from the previous geolocated transaction (gaps under a minute count as a minute)",
        ("customer_id", "latitude", "longitude", "ts"),
    ),
    Feature(
        "impossible_travel", "customer", "all", "more than 50 km from the previous place at over 900 km/h",
        ("customer_id", "latitude", "longitude", "ts"), dtype=pl.Int8,
    ),
)


def _before_text(ctx: FeatureContext, column: str) -> pl.Series:
    """Per row: the twin's value of a customer text column (null without history)."""
    if ctx.history is None:
        return pl.Series(column, [None] * ctx.n, dtype=pl.String)
    keys = ENTITY_KEYS["customer"]
    return ctx.events.select(keys).join(
        ctx.history.customers.select(*keys, column), on=list(keys), how="left", maintain_order="left"
    ).get_column(column)


def compute(ctx: FeatureContext) -> dict[str, np.ndarray | pl.Series]:
    out = FeatureColumns(FEATURES)
    customer = ctx.timeline("customer")
    if ctx.has("device_id"):
        device_known = ctx.events.get_column("device_id").is_not_null().to_numpy()
        pairs = ctx.timeline("device_pair")
        seen = pairs.put(pairs.counted_before()) + ctx.before("device_pair", "txn_count")
        out["new_device"] = np.where(device_known, (seen == 0).astype(np.float64), np.nan)
        opens = np.where(ctx.has_before("device_pair"), 0.0, pairs.put(pairs.opens_entity().astype(np.float64), fill=0.0))
        out["devices_per_customer"] = customer.put(customer.sum_before(customer.take(opens))) + ctx.before(
            "customer", "device_count"
        )
        devices = ctx.timeline("device")
        sharing = devices.put(devices.sum_before(devices.take(opens))) + ctx.before("device", "customer_count")
        out["customers_per_device"] = np.where(device_known, sharing, np.nan)
        del seen, opens, sharing, pairs, devices
        ctx.forget("device_pair")  # no later family reads these two
        ctx.forget("device")
    for column, name in (("city", "city_changed"), ("state", "state_changed")):
        if not ctx.has(column):
            continue
        codes, coding = dense_codes(ctx.events.get_column(column))  # compare integers, not text
        prev = customer.last_row_before(codes >= 0)
        previous = np.where(prev >= 0, codes[np.maximum(prev, 0)], -1)
        if ctx.online:  # no earlier place in the recent events: the twin's last known one
            known = codes_in(_before_text(ctx, f"last_{column}"), coding)
            previous = np.where(prev >= 0, previous, known)
        out[name] = np.where((codes < 0) | (previous < 0), np.nan, codes != previous)
    if ctx.has("latitude", "longitude"):
        lat = ctx.values("_lat", pl.col("latitude"))
        lon = ctx.values("_lon", pl.col("longitude"))
        located = ~np.isnan(lat) & ~np.isnan(lon)
        prev = customer.last_row_before(located)
        n = ctx.n
        km, speed, impossible = travel(
            prev, lat, lon, ctx.ms, *(np.broadcast_to(np.asarray(ctx.before("customer", name, np.nan), np.float64), n)
                                      for name in ("last_lat", "last_lon", "last_geo_ms")),
        )
        out["distance_from_prev_km"] = km
        out["travel_speed_kmh"] = speed
        out["impossible_travel"] = impossible
    return out


@njit(cache=True)
def haversine_km(lat1, lon1, lat2, lon2):
    """Great-circle km between two points (NaN when a coordinate is missing)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    if a != a:
        return np.nan
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(max(a, 0.0), 1.0)))


@njit(cache=True)
def travel_from(prev_lat, prev_lon, prev_ms, lat, lon, ms):
    """km from the previous place, the speed that needs (gaps under MIN_TRAVEL_HOURS count as that),
    and whether that is impossible travel (1.0 / 0.0); NaN where a place or time is missing."""
    km = haversine_km(prev_lat, prev_lon, lat, lon)
    hours = (ms - prev_ms) / HOUR_MS
    if hours != hours:
        return km, np.nan, np.nan
    speed = km / max(hours, MIN_TRAVEL_HOURS)
    if speed != speed:
        return km, speed, np.nan
    return km, speed, 1.0 if km > IMPOSSIBLE_MIN_KM and speed > IMPOSSIBLE_SPEED_KMH else 0.0


@njit(nogil=True, cache=True)
def travel(prev, lat, lon, ms, last_lat, last_lon, last_ms):
    """travel_from for every row, from its previous located row `prev` (-1: the twin's last place);
    float32, the features' stored type."""
    n = len(prev)
    km, speed, impossible = np.empty(n, np.float32), np.empty(n, np.float32), np.empty(n, np.float32)
    for i in range(n):
        j = prev[i]
        if j >= 0:
            km[i], speed[i], impossible[i] = travel_from(lat[j], lon[j], ms[j], lat[i], lon[i], ms[i])
        else:
            km[i], speed[i], impossible[i] = travel_from(last_lat[i], last_lon[i], last_ms[i], lat[i], lon[i], ms[i])
    return km, speed, impossible
