"""Timeline windows, running sums and look-ups against worked examples and plain loops, on random
histories with ties (several rows of one entity at one instant) and rows without an entity."""
from __future__ import annotations

import numpy as np
import pytest

import features.timeline
from features.timeline import Timeline, _sort_order

DAY = 86_400_000


@pytest.fixture(autouse=True, params=["one thread", "two threads"])
def threads(request, monkeypatch):
    """Every check twice: as small inputs run, and with each loop split over two threads (as from a
    million positions on)."""
    if request.param == "two threads":
        monkeypatch.setattr(features.timeline, "_SPLIT_FROM", 1)
    return request.param


def _history(seed: int, n: int = 4000, entities: int = 60):
    rng = np.random.default_rng(seed)
    codes = rng.integers(-1, entities, n)  # -1: no entity (not on the timeline)
    ms = np.sort(1_700_000_000_000 + rng.integers(0, 40 * DAY, n) // 60_000 * 60_000)  # rows in time order, as
    # the features take them; whole minutes, so ties happen
    amounts = rng.integers(0, 100_000, n)
    return codes, ms, amounts


def test_windows_exclude_the_same_instant_and_other_entities():
    codes = np.array([0, 0, 0, 1, 1])
    ms = np.array([1_000, 2_000, 2_000, 1_500, 2_500])
    tl = Timeline(codes, 2, ms, origin_ms=0, horizon_ms=10_000)
    out = tl.rolling({"v": tl.take(np.array([5, 7, 11, 13, 17]))},
                     {"n": (None, "sum", 5_000), "s": ("v", "sum", 5_000), "top": ("v", "max", 5_000)})
    by_row = {name: tl.put(values) for name, values in out.items()}
    assert by_row["n"].tolist() == [0, 1, 1, 0, 1]  # the two rows at 2,000 do not see each other
    assert by_row["s"].tolist() == [0, 5, 5, 0, 13]
    assert np.isnan(by_row["top"][0]) and by_row["top"][1:].tolist()[:2] == [5, 5] and by_row["top"][4] == 13


def test_sums_and_latest_before_match_a_plain_loop():
    codes, ms, amounts = _history(7, n=1500, entities=25)
    tl = Timeline(codes, 25, ms)
    flags = amounts % 3 == 0
    sums = tl.put(tl.sum_before(tl.take(amounts)))
    latest = tl.last_before(tl.take(flags))
    row_latest = np.where(latest >= 0, tl.idx[np.maximum(latest, 0)], -1)
    where = np.full(len(codes), -1)
    where[tl.idx] = row_latest
    for i in np.flatnonzero(codes >= 0):
        earlier = np.flatnonzero((codes == codes[i]) & (ms < ms[i]))
        assert sums[i] == amounts[earlier].sum()
        marked = earlier[flags[earlier]]
        if len(marked):  # the latest marked earlier row (ties at one instant: any of them has its time)
            assert ms[where[i]] == ms[marked].max() and flags[where[i]]
        else:
            assert where[i] == -1


def test_timeline_refuses_values_of_the_wrong_length():
    tl = Timeline(np.array([0, 1, 0]), 2, np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="expects 3 values"):
        tl.take(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="expects 3 values"):
        tl.put(np.array([1.0]))



def test_rows_in_time_order_sort_like_the_keys():
    """The linear sort of rows already in time order gives the same timeline as sorting the keys,
    and rows out of time order fall back to sorting the keys."""
    codes, ms, amounts = _history(11, n=3000, entities=40)
    tl = Timeline(codes, 40, ms, origin_ms=int(ms[0]), horizon_ms=DAY)
    rows = np.flatnonzero(codes >= 0)
    order, key = _sort_order((codes[rows].astype(np.int64) << tl.shift) | (ms[rows] - ms[0]))
    assert np.array_equal(tl.key, key) and np.array_equal(tl.idx, rows[order])

    shuffled = np.random.default_rng(3).permutation(len(ms))
    out_of_order = Timeline(codes[shuffled], 40, ms[shuffled], origin_ms=int(ms[0]), horizon_ms=DAY)
    assert np.array_equal(out_of_order.key, tl.key)
    sums = out_of_order.put(out_of_order.sum_before(out_of_order.take(amounts[shuffled])))
    for i in np.flatnonzero(codes[shuffled] >= 0):
        earlier = (codes[shuffled] == codes[shuffled][i]) & (ms[shuffled] < ms[shuffled][i])
        assert sums[i] == amounts[shuffled][earlier].sum()


@pytest.mark.parametrize("spread", [1_000_003_117, 1_000_000_000_039])  # codes up to ~2^35 and ~2^45
def test_sparse_codes_sort_in_several_digits(spread):
    """Codes far larger than the rows (entity pairs) take two or three radix passes and sort the same."""
    codes, ms, _ = _history(5, n=3000, entities=40)
    sparse = np.where(codes >= 0, codes * spread + (codes * 7919) % 1013, -1)
    tl = Timeline(sparse, 40 * spread, ms)
    rows = np.flatnonzero(sparse >= 0)
    rank = np.unique(ms[rows], return_inverse=True)[1] + 1
    order, key = _sort_order((sparse[rows].astype(np.int64) << tl.shift) | rank)
    assert np.array_equal(tl.key, key) and np.array_equal(tl.idx, rows[order])


def test_event_counts_match_a_plain_loop():
    """Outside events (labels becoming usable) counted before each row, in a window and in all history."""
    codes, ms, _ = _history(13, n=2000, entities=30)
    origin = int(ms[0]) - 1
    tl = Timeline(codes, 30, ms, origin_ms=origin, horizon_ms=10 * DAY)
    rng = np.random.default_rng(2)
    event_codes = rng.integers(-1, 30, 300)
    event_ms = origin + 1 + rng.integers(0, 40 * DAY, 300)
    counts = tl.events_before(event_codes, event_ms, origin)
    in_week = tl.put(counts.before(7 * DAY))
    ever = tl.put(counts.before())
    latest = tl.put(counts.since_latest())
    earliest = tl.put(counts.since_earliest(7 * DAY))
    for i in np.flatnonzero(codes >= 0):
        mine = event_ms[event_codes == codes[i]]
        seen = mine[mine < ms[i]]
        week = seen[seen >= ms[i] - 7 * DAY]
        assert ever[i] == len(seen) and in_week[i] == len(week)
        assert latest[i] == ms[i] - seen.max() if len(seen) else np.isnan(latest[i])
        assert earliest[i] == ms[i] - week.min() if len(week) else np.isnan(earliest[i])


def test_bucket_counts_match_a_plain_loop():
    """Earlier rows of the entity in the same bucket and in lower ones; rows at one instant never count
    each other; rows without a bucket (-1) are not counted and get -1."""
    codes, ms, amounts = _history(17, n=2500, entities=20)
    buckets = np.where(amounts % 11 == 0, -1, amounts % 6)
    tl = Timeline(codes, 20, ms)
    same_tl, below_tl = tl.bucket_counts_before(tl.take(buckets), 6)
    same, below = np.full(len(codes), -9), np.full(len(codes), -9)
    same[tl.idx], below[tl.idx] = same_tl, below_tl
    for i in np.flatnonzero(codes >= 0):
        earlier = (codes == codes[i]) & (ms < ms[i]) & (buckets >= 0)
        if buckets[i] < 0:
            assert same[i] == -1 and below[i] == -1
        else:
            assert same[i] == (earlier & (buckets == buckets[i])).sum()
            assert below[i] == (earlier & (buckets < buckets[i])).sum()


def test_window_counts_and_sums_match_a_plain_loop():
    codes, ms, amounts = _history(19, n=2500, entities=20)
    tl = Timeline(codes, 20, ms, origin_ms=int(ms[0]) - 1, horizon_ms=8 * DAY)
    specs = {"n_1d": (None, "sum", DAY), "s_1d": ("v", "sum", DAY), "s_7d": ("v", "sum", 7 * DAY),
             "top_7d": ("v", "max", 7 * DAY)}
    rolled = {k: tl.put(v) for k, v in tl.rolling({"v": tl.take(amounts)}, specs).items()}
    for i in np.flatnonzero(codes >= 0):
        mine = (codes == codes[i]) & (ms < ms[i])
        day, week = mine & (ms >= ms[i] - DAY), mine & (ms >= ms[i] - 7 * DAY)
        assert rolled["n_1d"][i] == day.sum() and rolled["s_1d"][i] == amounts[day].sum()
        assert rolled["s_7d"][i] == amounts[week].sum()
        assert rolled["top_7d"][i] == amounts[week].max() if week.any() else np.isnan(rolled["top_7d"][i])
