"""Timing: when the transaction happens, against the customer's own rhythm."""
from __future__ import annotations

import numpy as np
import polars as pl

from features.context import FeatureContext
from features.velocity import customer_windows
from features.inputs import business_offset_ms, ms_range
from features.spec import FeatureColumns, DAY_MS, HOUR_MS, MINUTE_MS, Feature, family
from finrisk.schema import BUSINESS_TZ

SALARY_RECENT_DAYS = 2  # salary-day flag: a salary credit arrived within this many days before

TIMELINES = ("customer",)  # entity timelines this family reads
CACHED = ("_local", "_customer_windows")  # shared values it reads

FEATURES = family(
    "timing",
    Feature("hour_of_day", "transaction", None, "hour of day in Asia/Kolkata", ("ts",), dtype=pl.Int8),
    Feature("day_of_week", "transaction", None, "weekday in Asia/Kolkata, 1 = Monday", ("ts",), dtype=pl.Int8),
    Feature("is_night", "transaction", None, "between 00:00 and 05:59 Asia/Kolkata", ("ts",), dtype=pl.Int8),
    Feature("is_weekend", "transaction", None, "Saturday or Sunday in Asia/Kolkata", ("ts",), dtype=pl.Int8),
    Feature(
        "is_payday_window", "transaction", None,
        "calendar salary window: day of month 28 or later, or 3 or earlier", ("ts",), dtype=pl.Int8,
    ),
    Feature(
        "hour_deviation", "customer", "all",
        "hours between this time of day and the customer's usual time of day (circular mean; 0-12)",
        ("customer_id", "ts"),
    ),
    Feature(
        "hour_profile_share", "customer", "all",
        "share of the customer's earlier transactions in this hour of day (0 = never at this hour)",
        ("customer_id", "ts"),
    ),
    Feature(
        "weekday_profile_share", "customer", "all",
        "share of the customer's earlier transactions on this weekday", ("customer_id", "ts"),
    ),
    Feature(
        "night_share_prior", "customer", "all",
        "share of the customer's earlier transactions made at night (00:00-05:59)", ("customer_id", "ts"),
    ),
    Feature(
        "seconds_since_prev", "customer", "all", "seconds since the customer's previous transaction",
        ("customer_id", "ts"),
    ),
    Feature(
        "interarrival_mean_30d_s", "customer", "30d",
        "mean seconds between the customer's transactions in the 30 days before", ("customer_id", "ts"),
    ),
    Feature(
        "interarrival_ratio", "customer", "30d",
        "seconds since the previous transaction over the customer's 30-day mean gap (small = sudden)",
        ("customer_id", "ts"),
    ),
    Feature(
        "days_since_salary", "customer", "all", "days since the customer's last salary credit",
        ("customer_id", "ts", "counterparty_type"),
    ),
    Feature(
        "is_salary_day", "customer", "2d", "a salary credit reached the customer in the 2 days before",
        ("customer_id", "ts", "counterparty_type"), dtype=pl.Int8,
    ),
)


def local_time(events: pl.DataFrame) -> list[pl.Expr]:
    """hour (0-23), clock (fractional hours), weekday (0 = Monday), day of month, in Asia/Kolkata."""
    offset = business_offset_ms(*ms_range(events))
    if offset is None:  # a zone with daylight saving: let Polars convert each instant
        local = pl.col("ts").dt.convert_time_zone(BUSINESS_TZ)
        hour, minute, weekday, day = local.dt.hour(), local.dt.minute(), local.dt.weekday() - 1, local.dt.day()
    else:  # integer arithmetic on epoch milliseconds: far cheaper than a time-zone conversion per row
        local_ms = pl.col("_ms") + offset
        days = local_ms // DAY_MS
        hour = (local_ms // HOUR_MS) % 24
        minute = (local_ms // MINUTE_MS) % 60
        weekday = (days + 3) % 7  # 1970-01-01 was a Thursday
        day = days.cast(pl.Int32).cast(pl.Date).dt.day()
    return [
        hour.cast(pl.Int8).alias("_hour"),
        (hour + minute / 60).alias("_clock"),
        weekday.cast(pl.Int8).alias("_weekday"),
        day.cast(pl.Int8).alias("_day"),
    ]


def clock_angle() -> pl.Expr:
    return pl.col("_clock") * (2 * np.pi / 24)


def salary_credit() -> pl.Expr:
    return (pl.col("counterparty_type") == "SALARY") & (pl.col("direction").fill_null("CREDIT") == "CREDIT")


def _with_local(ctx: FeatureContext) -> pl.DataFrame:
    if "_local" not in ctx._columns:
        ctx._columns["_local"] = ctx.events.select(local_time(ctx.events))
    return ctx._columns["_local"]


def compute(ctx: FeatureContext) -> dict[str, np.ndarray | pl.Series]:
    local = _with_local(ctx)
    hour = local.get_column("_hour").to_numpy()  # int8: every use below reads them as they are
    weekday = local.get_column("_weekday").to_numpy()
    day = local.get_column("_day").to_numpy()
    angle = local.select(clock_angle()).to_series().to_numpy()
    is_night = hour < 6
    out = FeatureColumns(FEATURES)
    out["hour_of_day"] = hour
    out["day_of_week"] = weekday + 1
    out["is_night"] = is_night
    out["is_weekend"] = weekday >= 5
    out["is_payday_window"] = (day >= 28) | (day <= 3)
    tl = ctx.timeline("customer")
    n_before = tl.put(tl.counted_before()) + ctx.before("customer", "txn_count")
    has_history = n_before > 0
    sin_sum = tl.put(tl.sum_before(tl.take(np.sin(angle)))) + ctx.before("customer", "hour_sin_sum")
    cos_sum = tl.put(tl.sum_before(tl.take(np.cos(angle)))) + ctx.before("customer", "hour_cos_sum")
    resultant = np.hypot(sin_sum, cos_sum) / np.where(has_history, n_before, 1)
    usual = np.arctan2(sin_sum, cos_sum)
    gap = angle - usual  # |angle - usual| wrapped to [0, pi], in hours; in place: one working array
    gap += np.pi
    np.remainder(gap, 2 * np.pi, out=gap)
    gap -= np.pi
    np.abs(gap, out=gap)
    gap *= 24
    gap /= 2 * np.pi
    out["hour_deviation"] = np.where(has_history & (resultant > 1e-6), gap, np.nan)
    del has_history, sin_sum, cos_sum, resultant, usual, gap  # a float64 per row each: freed as the family goes

    same_hour, _ = tl.bucket_counts_before(tl.take(hour), 24, with_below=False)
    out["hour_profile_share"] = _share(tl.put(same_hour) + _in_bucket(ctx, "hour_counts", 24, hour), n_before)
    same_weekday, _ = tl.bucket_counts_before(tl.take(weekday), 7, with_below=False)
    out["weekday_profile_share"] = _share(
        tl.put(same_weekday) + _in_bucket(ctx, "weekday_counts", 7, weekday), n_before
    )
    nights = tl.put(tl.sum_before(tl.take(is_night))) + ctx.before("customer", "night_count")
    out["night_share_prior"] = _share(nights, n_before)
    del same_hour, same_weekday, nights, n_before

    time = tl.time
    previous = tl.last_before()
    prev_ms = tl.put(np.where(previous >= 0, time[np.maximum(previous, 0)], np.nan))
    prev_ms = np.where(np.isnan(prev_ms), ctx.before("customer", "last_ms", np.nan), prev_ms)
    since_prev = (ctx.ms - prev_ms) / 1000
    out["seconds_since_prev"] = since_prev
    windows = customer_windows(ctx)
    count = windows["count_30d"]
    last = np.where(previous >= 0, time[np.maximum(previous, 0)], np.nan)
    span = last - windows["first_time_30d"]  # first to last of the customer's transactions in the window
    mean_gap = tl.put(np.where(count >= 2, span / np.maximum(count - 1, 1) / 1000, np.nan))
    out["interarrival_mean_30d_s"] = mean_gap
    out["interarrival_ratio"] = np.where(mean_gap > 0, since_prev / np.where(mean_gap > 0, mean_gap, 1), np.nan)
    del prev_ms, since_prev, count, last, span, mean_gap

    if ctx.has("counterparty_type"):
        salary = ctx.events.select(salary_credit().fill_null(False)).to_series().to_numpy()
        last_salary = tl.last_before(tl.take(salary))
        salary_ms = tl.put(np.where(last_salary >= 0, time[np.maximum(last_salary, 0)], np.nan))
        salary_ms = np.where(np.isnan(salary_ms), ctx.before("customer", "last_salary_ms", np.nan), salary_ms)
        days = (ctx.ms - salary_ms) / DAY_MS
        out["days_since_salary"] = days
        out["is_salary_day"] = np.where(days <= SALARY_RECENT_DAYS, 1, 0)
    return out


def _in_bucket(ctx: FeatureContext, column: str, width: int, bucket: np.ndarray):
    """The twin's count in the row's bucket (0 in the batch path)."""
    counts = ctx.before_list("customer", column, width)
    return 0 if counts is None else counts[np.arange(ctx.n), bucket]


def _share(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    return np.where(whole > 0, part / np.where(whole > 0, whole, 1), np.nan)
