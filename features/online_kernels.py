"""The customer's and the counterparty's features of new transactions in the online state
(features.online_state), as compiled loops over what the state gathered for them.

customer_features sums each row's 30-day window and earlier rows of the day, then applies the
timing, velocity, pair, device and place arithmetic of the families to the sums;
counterparty_features counts the counterparty's rows, first contacts and usable labels before each
row. A scoring call is usually one transaction: as array expressions these were some hundred NumPy
calls on arrays of length one, each costing more than the arithmetic it does.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from features.device_place import travel_from
from features.merchant import HIGH_AMOUNT_PERCENTILE, KNOWN_RISK_WINDOW, RISK_WINDOWS
from features.spec import DAY_MS, WINDOW_MS
from features.timing import SALARY_RECENT_DAYS
from features.velocity import MIN_LOG_STD

PAIR_BITS = 32  # (customer, counterparty or device) pairs as one int64: customer code << 32 | other code
WINDOWS = tuple(WINDOW_MS)
WINDOW_LIMITS = np.array([WINDOW_MS[w] for w in WINDOWS], dtype=np.int64)
W1H, W24H, W7D, W30D = (WINDOWS.index(w) for w in ("1h", "24h", "7d", "30d"))
WINDOW_MS_7D = WINDOW_MS["7d"]
N_WINDOWS = len(WINDOWS)

# The twin's running totals per customer (features.online_state.CUSTOMER_TOTALS), by position.
TOTALS = (
    "txn_count", "hour_sin_sum", "hour_cos_sum", "night_count", "log_amount_sum", "log_amount_sq_sum",
    "amount_sum_paise", "device_count", "last_ms", "last_salary_ms", "last_lat", "last_lon", "last_geo_ms",
    "last_city", "last_state",
)
T_SIN, T_COS, T_NIGHT, T_PAISE, T_DEVICES, T_LAST_MS, T_LAST_SALARY, T_LAT, T_LON, T_GEO_MS, T_CITY, T_STATE = (
    TOTALS.index(n) for n in ("hour_sin_sum", "hour_cos_sum", "night_count", "amount_sum_paise", "device_count",
                              "last_ms", "last_salary_ms", "last_lat", "last_lon", "last_geo_ms", "last_city",
                              "last_state"))

# Columns the loop reads from the gathered rows, in this order.
WINDOW_READS = ("ms", "paise", "inflow", "net")
DAY_READS = ("ms", "paise", "sin", "cos", "night", "hour", "weekday", "counterparty", "device", "salary", "city",
             "state", "lat", "lon")

OUTPUTS = (
    "hour_deviation", "hour_profile_share", "weekday_profile_share", "night_share_prior", "seconds_since_prev",
    *(name for w in WINDOWS for name in (f"txn_count_{w}", f"amount_sum_{w}_rupees")),
    "interarrival_mean_30d_s", "interarrival_ratio", "days_since_salary", "is_salary_day",
    "amount_vs_30d_mean", "amount_to_max_30d", "amount_log_zscore", "amount_percentile", "large_amount_count_7d",
    "count_acceleration_1h_24h", "spend_acceleration_24h_30d", "inflow_24h_rupees", "net_flow_7d_rupees",
    "pair_txn_count", "first_time_counterparty", "pair_tenure_days", "pair_spend_share",
    "new_counterparty_high_amount", "new_device", "devices_per_customer", "city_changed", "state_changed",
    "distance_from_prev_km", "travel_speed_kmh", "impossible_travel",
    # from labels only: the customer's own fraud history
    "customer_fraud_count_known", "customer_fraud_count_known_30d", "customer_days_since_fraud_known",
)
CUSTOMER_LABEL_FREE = len(OUTPUTS) - 3
_BASE = 5 + 2 * N_WINDOWS  # the position of interarrival_mean_30d_s


@njit(cache=True, inline="always")
def _max(a, b):
    """np.maximum: NaN when either is NaN."""
    if a != a or b != b:
        return np.nan
    return a if a >= b else b


@njit(cache=True, inline="always")
def _share(part, whole):
    return part / whole if whole > 0 else np.nan


HISTORY_READS = ("x", "x2", "bucket")  # what amount_history reads of the day's earlier rows
T_COUNT, T_LOG_SUM, T_LOG_SQ = (TOTALS.index(n) for n in ("txn_count", "log_amount_sum", "log_amount_sq_sum"))


@njit(nogil=True, cache=True)
def amount_history(c, bucket, position, known, totals, hist, hist_below, gseg, gmat, gcols):
    """features.velocity.amount_history of k rows: the count, log-amount sum and sum of squares of
    each row's earlier transactions (twin totals plus gmat: its earlier rows of the day, HISTORY_READS
    at gcols, by row in gseg) and the amount percentile among them (hist: the twin's amount bands)."""
    k = len(c)
    n, s1, s2, percentile = np.zeros(k), np.zeros(k), np.zeros(k), np.full(k, np.nan)
    same, below = np.zeros(k), np.zeros(k)
    for j in range(len(gseg)):
        i = gseg[j]
        n[i] += 1
        s1[i] += gmat[j, gcols[0]]
        s2[i] += gmat[j, gcols[1]]
        band = gmat[j, gcols[2]]
        if band == bucket[i]:
            same[i] += 1
        elif band < bucket[i]:
            below[i] += 1
    for i in range(k):
        n[i] += totals[i, T_COUNT]
        s1[i] += totals[i, T_LOG_SUM]
        s2[i] += totals[i, T_LOG_SQ]
        if known[i]:
            same[i] += hist[c[i], bucket[i]]
            if bucket[i] > 0:
                below[i] += hist_below[c[i], bucket[i] - 1]
        if n[i] > 0:
            percentile[i] = (below[i] + position[i] * same[i]) / n[i]
    return n, s1, s2, percentile


@njit(cache=True, inline="always")
def _value_of(keys, values, key):
    """features.online_store.IntMap.get for one key (-1 when absent)."""
    at = np.searchsorted(keys, key)
    return values[at] if at < len(keys) and keys[at] == key else -1


@njit(nogil=True, cache=True)
def customer_features(
    ms, m, d, c, hour, weekday, angle, paise, x, city, state, lat, lon,
    known, totals, n, log_sum, log_sq_sum, percentile, hour_counts, weekday_counts,
    wseg, wmat, wcols, wlarge, gseg, gmat, gcols, shift, origin,
    pair_keys, pair_rows, pair_count, pair_first_ms, pair_paise, device_keys, device_rows, device_count, openings,
    labels, has_labels,
):
    """The OUTPUTS columns (k rows) of rows with the given values. wseg/wmat: each row's rows in its
    30-day window (WINDOW_READS at wcols of wmat, in any order); gseg/gmat: each row's earlier rows
    of the day (DAY_READS at gcols), grouped by row and in time order within a row. pair_keys ->
    pair_rows: the twin's customer x counterparty pairs (customer << PAIR_BITS | counterparty) and
    their row in pair_count..pair_paise; the same for devices; openings: the customer's first
    contacts with devices the twin does not know, keyed (customer, ms) as the state keys rows;
    labels: when the customer's fraud labels became usable, keyed the same way."""
    k = len(ms)
    out = np.full((k, len(OUTPUTS)), np.nan)
    counts = np.zeros((k, N_WINDOWS))
    sums = np.zeros((k, N_WINDOWS))
    large_7d, inflow_24h, net_7d = np.zeros(k), np.zeros(k), np.zeros(k)
    first_30d, max_30d = np.full(k, np.nan), np.full(k, np.nan)
    for j in range(len(wseg)):
        i = wseg[j]
        at, amount = wmat[j, wcols[0]], wmat[j, wcols[1]]
        age = ms[i] - at
        for w in range(N_WINDOWS):
            if age <= WINDOW_LIMITS[w]:
                counts[i, w] += 1
                sums[i, w] += amount
        if age <= WINDOW_LIMITS[W7D]:
            large_7d[i] += wlarge[j]
            net_7d[i] += wmat[j, wcols[3]]
        if age <= WINDOW_LIMITS[W24H]:
            inflow_24h[i] += wmat[j, wcols[2]]
        first_30d[i] = at if first_30d[i] != first_30d[i] else min(first_30d[i], at)
        max_30d[i] = amount if max_30d[i] != max_30d[i] else max(max_30d[i], amount)

    g_ms, g_paise, g_sin, g_cos, g_night, g_hour, g_weekday, g_cp, g_device, g_salary, g_city, g_state, g_lat, g_lon = (
        gcols[0], gcols[1], gcols[2], gcols[3], gcols[4], gcols[5], gcols[6], gcols[7], gcols[8], gcols[9], gcols[10],
        gcols[11], gcols[12], gcols[13])
    day = np.zeros((k, 9))  # sin, cos, night, same hour, same weekday, pair rows, pair paise, device rows, paise
    latest = np.full((k, 5), -1)  # the latest earlier row: any, salary, city, state, coordinates
    first_day = np.full(k, np.inf)
    for j in range(len(gseg)):
        i = gseg[j]
        row_paise = gmat[j, g_paise]
        day[i, 0] += gmat[j, g_sin]
        day[i, 1] += gmat[j, g_cos]
        day[i, 2] += gmat[j, g_night]
        if gmat[j, g_hour] == hour[i]:
            day[i, 3] += 1
        if gmat[j, g_weekday] == weekday[i]:
            day[i, 4] += 1
        if m[i] >= 0 and gmat[j, g_cp] == m[i]:
            day[i, 5] += 1
            day[i, 6] += row_paise
            first_day[i] = min(first_day[i], gmat[j, g_ms])
        if d[i] >= 0 and gmat[j, g_device] == d[i]:
            day[i, 7] += 1
        day[i, 8] += row_paise
        latest[i, 0] = j
        if gmat[j, g_salary] == 1:
            latest[i, 1] = j
        if gmat[j, g_city] >= 0:
            latest[i, 2] = j
        if gmat[j, g_state] >= 0:
            latest[i, 3] = j
        if gmat[j, g_lat] == gmat[j, g_lat] and gmat[j, g_lon] == gmat[j, g_lon]:
            latest[i, 4] = j

    for i in range(k):
        t = totals[i]
        o = out[i]
        pair_at = _value_of(pair_keys, pair_rows, (c[i] << PAIR_BITS) | m[i]) if m[i] >= 0 else -1
        device_at = _value_of(device_keys, device_rows, (c[i] << PAIR_BITS) | d[i]) if d[i] >= 0 else -1
        base = c[i] << shift
        now = base | (ms[i] - origin)
        devices_counted = np.searchsorted(openings, now) - np.searchsorted(openings, base)
        n_before = n[i]
        # timing
        sin_sum, cos_sum = day[i, 0] + t[T_SIN], day[i, 1] + t[T_COS]
        resultant = math.hypot(sin_sum, cos_sum) / (n_before if n_before > 0 else 1.0)
        usual = math.atan2(sin_sum, cos_sum)
        gap = abs((angle[i] - usual + np.pi) % (2 * np.pi) - np.pi) * 24 / (2 * np.pi)
        if n_before > 0 and resultant > 1e-6:
            o[0] = gap
        twin_hour = hour_counts[c[i], hour[i]] if known[i] else 0
        twin_weekday = weekday_counts[c[i], weekday[i]] if known[i] else 0
        o[1] = _share(day[i, 3] + twin_hour, n_before)
        o[2] = _share(day[i, 4] + twin_weekday, n_before)
        o[3] = _share(day[i, 2] + t[T_NIGHT], n_before)
        prev_ms = gmat[latest[i, 0], g_ms] if latest[i, 0] >= 0 else t[T_LAST_MS]
        since_prev = (ms[i] - prev_ms) / 1000
        o[4] = since_prev
        for w in range(N_WINDOWS):
            o[5 + 2 * w] = counts[i, w]
            o[6 + 2 * w] = sums[i, w] / 100
        count = counts[i, W30D]
        mean_gap = (prev_ms - first_30d[i]) / max(count - 1, 1.0) / 1000 if count >= 2 else np.nan
        o[_BASE] = mean_gap
        o[_BASE + 1] = since_prev / mean_gap if mean_gap > 0 else np.nan
        salary_ms = gmat[latest[i, 1], g_ms] if latest[i, 1] >= 0 else t[T_LAST_SALARY]
        days = (ms[i] - salary_ms) / DAY_MS
        o[_BASE + 2] = days
        o[_BASE + 3] = 1.0 if days <= SALARY_RECENT_DAYS else 0.0
        # velocity
        rupees = paise[i] / 100
        sum_30d = sums[i, W30D] / 100
        o[_BASE + 4] = rupees / (sum_30d / max(count, 1.0)) if count > 0 else np.nan
        o[_BASE + 5] = rupees / (max_30d[i] / 100) if max_30d[i] > 0 else np.nan
        rows = n[i]
        mean = log_sum[i] / (rows if rows > 0 else 1.0)
        var = (log_sq_sum[i] - log_sum[i] * mean) / (rows - 1 if rows > 1 else 1.0)
        std = _max(math.sqrt(_max(var, 0.0)), MIN_LOG_STD)
        o[_BASE + 6] = (x[i] - mean) / std if rows >= 2 else np.nan
        o[_BASE + 7] = percentile[i]
        o[_BASE + 8] = large_7d[i]
        o[_BASE + 9] = counts[i, W1H] / (counts[i, W24H] / 24) if counts[i, W24H] > 0 else np.nan
        o[_BASE + 10] = (sums[i, W24H] / 100) / (sum_30d / 30) if sum_30d > 0 else np.nan
        o[_BASE + 11] = inflow_24h[i] / 100
        o[_BASE + 12] = net_7d[i] / 100
        # the customer x counterparty pair
        first_time = np.nan
        if m[i] >= 0:
            pair_n = day[i, 5] + (pair_count[pair_at] if pair_at >= 0 else 0.0)
            o[_BASE + 13] = pair_n
            first_time = 1.0 if pair_n == 0 else 0.0
            o[_BASE + 14] = first_time
        first_ms = pair_first_ms[pair_at] if pair_at >= 0 else np.nan
        if first_ms != first_ms:
            first_ms = np.nan if math.isinf(first_day[i]) else first_day[i]
        o[_BASE + 15] = (ms[i] - first_ms) / DAY_MS
        customer_spend = day[i, 8] + t[T_PAISE]
        if m[i] >= 0 and customer_spend > 0:
            o[_BASE + 16] = (day[i, 6] + (pair_paise[pair_at] if pair_at >= 0 else 0.0)) / customer_spend
        if percentile[i] == percentile[i] and first_time == first_time:
            o[_BASE + 17] = 1.0 if first_time == 1 and percentile[i] > HIGH_AMOUNT_PERCENTILE else 0.0
        # the customer x device pair, and the customer's devices
        if d[i] >= 0:
            seen = day[i, 7] + (device_count[device_at] if device_at >= 0 else 0.0)
            o[_BASE + 18] = 1.0 if seen == 0 else 0.0
        o[_BASE + 19] = devices_counted + t[T_DEVICES]
        # places: the latest earlier place of the day, else the twin's last known one
        previous = gmat[latest[i, 2], g_city] if latest[i, 2] >= 0 else t[T_CITY]
        if city[i] >= 0 and previous >= 0:
            o[_BASE + 20] = 1.0 if city[i] != previous else 0.0
        previous = gmat[latest[i, 3], g_state] if latest[i, 3] >= 0 else t[T_STATE]
        if state[i] >= 0 and previous >= 0:
            o[_BASE + 21] = 1.0 if state[i] != previous else 0.0
        at = latest[i, 4]
        prev_lat = gmat[at, g_lat] if at >= 0 else t[T_LAT]
        prev_lon = gmat[at, g_lon] if at >= 0 else t[T_LON]
        prev_geo = gmat[at, g_ms] if at >= 0 else t[T_GEO_MS]
        km, speed, impossible = travel_from(prev_lat, prev_lon, prev_geo, lat[i], lon[i], ms[i])
        o[_BASE + 22] = km
        o[_BASE + 23] = speed
        o[_BASE + 24] = impossible
        if has_labels:
            usable = np.searchsorted(labels, now)
            o[_BASE + 25] = usable - np.searchsorted(labels, base)
            o[_BASE + 26] = usable - np.searchsorted(labels, max(base | (ms[i] - WINDOW_LIMITS[W30D] - origin), base))
            if usable > 0 and labels[usable - 1] >= base:
                o[_BASE + 27] = (now - labels[usable - 1]) / DAY_MS
    return out


RISK_MS = np.array([DAY_MS, WINDOW_MS["7d"], WINDOW_MS["30d"]], dtype=np.int64)  # as features.merchant, by RISK_WINDOWS
assert RISK_WINDOWS == ("1d", "7d", "30d")
KNOWN_RISK = RISK_WINDOWS.index(KNOWN_RISK_WINDOW)
COUNTERPARTY_OUTPUTS = (
    "merchant_fan_in", "merchant_txn_count_7d",
    "merchant_fraud_count_known", "merchant_days_since_fraud_known", "merchant_fraud_known_for_days",
    *(name for w in RISK_WINDOWS for name in (f"merchant_fraud_count_{w}", f"merchant_fraud_rate_{w}")),
)
LABEL_FREE = 2  # the outputs before these need no labels


@njit(cache=True, inline="always")
def _below(level0, level1, level2, key):
    """Rows of the three levels of a features.online_store.Rows with a key below `key`."""
    return np.searchsorted(level0, key) + np.searchsorted(level1, key) + np.searchsorted(level2, key)


@njit(nogil=True, cache=True)
def counterparty_features(m, ms, shift, origin, delay_ms, level0, level1, level2, openings, fan_in, labels,
                          has_labels):
    """The COUNTERPARTY_OUTPUTS columns (NaN without a counterparty; only the first LABEL_FREE
    without labels). level0..2: the keys of the counterparty's rows (features.online_store.Rows
    levels); openings: first contacts of pairs the twin does not know; fan_in: the twin's distinct
    customers by counterparty code; labels: instants labels became usable, keyed the same way."""
    k = len(m)
    out = np.full((k, len(COUNTERPARTY_OUTPUTS)), np.nan)
    n_labels = len(labels)
    for i in range(k):
        if m[i] < 0:
            continue
        o = out[i]
        base = m[i] << shift
        now = base | (ms[i] - origin)
        twin_fan_in = fan_in[m[i]] if m[i] < len(fan_in) else 0.0
        if twin_fan_in != twin_fan_in:
            twin_fan_in = 0.0
        o[0] = np.searchsorted(openings, now) - np.searchsorted(openings, base) + twin_fan_in
        o[1] = _below(level0, level1, level2, now) - _below(level0, level1, level2, base | (ms[i] - WINDOW_MS_7D - origin))
        if not has_labels:
            continue
        usable_now = np.searchsorted(labels, now)
        o[2] = usable_now - np.searchsorted(labels, base)
        at = usable_now - 1
        if at >= 0 and labels[at] >= base:
            o[3] = (now - labels[at]) / DAY_MS
        delayed = ms[i] - delay_ms
        exposed_until = _below(level0, level1, level2, base | (delayed - origin))
        for w in range(len(RISK_MS)):
            bound = max(base | (ms[i] - RISK_MS[w] - origin), base)
            usable = usable_now - np.searchsorted(labels, bound)
            if w == KNOWN_RISK:
                first = np.searchsorted(labels, bound)
                if first < n_labels and labels[first] < now:
                    o[4] = (now - labels[first]) / DAY_MS
            exposed = exposed_until - _below(level0, level1, level2, base | (delayed - RISK_MS[w] - origin))
            o[5 + 2 * w] = usable
            o[6 + 2 * w] = usable / max(exposed, 1) if exposed > 0 else np.nan
    return out
