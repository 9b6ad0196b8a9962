"""The twin in words: a customer's normal behaviour, and how one transaction compares with it."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from features.twin import Twin
from finrisk.schema import BUSINESS_TZ

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
NIGHT_HOURS = range(0, 6)


def format_inr(paise: float | int | None) -> str:
    """INR with Indian digit grouping (1,23,45,678), whole rupees."""
    if paise is None or (isinstance(paise, float) and np.isnan(paise)):
        return "-"
    rupees = int(round(paise / 100))
    sign, digits = ("-" if rupees < 0 else ""), str(abs(rupees))
    if len(digits) > 3:
        head, tail = digits[:-3], digits[-3:]
        groups = [head[max(i - 2, 0):i] for i in range(len(head), 0, -2)][::-1]
        digits = ",".join(groups + [tail])
    return f"INR {sign}{digits}"


def _local(ms: float | int | None) -> datetime | None:
    if ms is None or (isinstance(ms, float) and np.isnan(ms)):
        return None
    return datetime.fromtimestamp(ms / 1000, timezone.utc).astimezone(ZoneInfo(BUSINESS_TZ))


def _hours_phrase(hours: list[int]) -> str:
    """Contiguous runs of hours as 'HH:00-HH:59' pieces."""
    runs, start = [], None
    for h in range(25):
        inside = h < 24 and h in hours
        if inside and start is None:
            start = h
        elif not inside and start is not None:
            runs.append(f"{start:02d}:00-{h - 1:02d}:59")
            start = None
    return ", ".join(runs)


@dataclass
class CustomerView:
    """What the twin knows about one customer, ready to print."""

    customer_id: str
    as_of: str
    lines: list[tuple[str, str]]  # (heading, text)
    hour_weekday: np.ndarray  # 7 x 24 counts
    counterparties: pl.DataFrame
    devices: pl.DataFrame
    places: pl.DataFrame
    amounts: pl.DataFrame


def describe_customer(twin: Twin, customer_id: str) -> CustomerView | None:
    p = twin.customer(customer_id)
    if p is None:
        return None
    grid = np.asarray(p["hour_weekday_counts"], dtype=np.int64).reshape(7, 24)
    hours = grid.sum(axis=0)
    active = [h for h in range(24) if hours[h] > 0]
    lines = [
        ("history", f"{p['txn_count']:,} transactions, {_local(p['first_ms']):%d %b %Y} "
                    f"to {_local(p['last_ms']):%d %b %Y %H:%M}"),
        ("amounts", f"median {format_inr(p['p50_paise'])}, 90th percentile {format_inr(p['p90_paise'])}, "
                    f"99th percentile {format_inr(p['p99_paise'])}"),
        ("hours", f"active {_hours_phrase(active) or 'never'}; busiest {int(hours.argmax()):02d}:00; "
                  + ("never transacts between 00:00 and 06:00" if hours[list(NIGHT_HOURS)].sum() == 0
                     else f"{hours[list(NIGHT_HOURS)].sum() / max(hours.sum(), 1):.0%} of transactions at night")),
        ("weekdays", ", ".join(f"{WEEKDAYS[d]} {n}" for d, n in enumerate(grid.sum(axis=1)))),
    ]
    if p.get("salary_count"):
        lines.append((
            "income", f"salary {format_inr(p['salary_median_paise'])} every {p['salary_interval_days'] or 0:.0f} days "
                      f"around day {p['salary_day_of_month'] or 0:.0f} of the month ({p['salary_count']} credits, "
                      f"last {_local(p['last_salary_ms']):%d %b %Y})",
        ))
    else:
        lines.append(("income", "no salary credits seen"))
    lines.append((
        "balance velocity", f"net flow {format_inr(p['net_flow_7d_paise'])} over the last 7 days, "
                            f"{format_inr(p['net_flow_30d_paise'])} over 30 days "
                            f"(credits {format_inr(p['credits_30d_paise'])}, debits {format_inr(p['debits_30d_paise'])})",
    ))
    trend = p["spend_trend_7d_vs_30d"]
    lines.append((
        "recent trend", f"spend {format_inr(p['spend_7d_paise'] / 7)}/day over the last 7 days vs "
                        f"{format_inr(p['spend_30d_paise'] / 30)}/day over 30 days"
                        + ("" if trend is None else f" (x{trend:.2f})"),
    ))
    return CustomerView(
        customer_id=customer_id,
        as_of=twin.as_of.isoformat(),
        lines=lines,
        hour_weekday=grid,
        counterparties=twin.counterparties.filter(pl.col("customer_id") == customer_id).head(10),
        devices=twin.devices.filter(pl.col("customer_id") == customer_id),
        places=twin.places.filter(pl.col("customer_id") == customer_id).head(10),
        amounts=twin.amounts.filter(pl.col("customer_id") == customer_id),
    )


def compare_with_normal(twin: Twin, txn: dict) -> str:
    """One sentence setting a transaction (customer_id, ts, amount_paise, counterparty) against the
    customer's twin, e.g. 'INR 48,000 at 02:13 to a new payee; this customer's 99th percentile is
    INR 6,200 and they never transact between 00:00 and 06:00'."""
    p = twin.customer(txn["customer_id"])
    when = txn["ts"].astimezone(ZoneInfo(BUSINESS_TZ))
    head = f"{format_inr(txn['amount_paise'])} at {when:%H:%M}"
    if p is None:
        return f"{head}; the customer has no history before {twin.as_of.isoformat()}"
    known = twin.counterparties.filter(
        (pl.col("customer_id") == txn["customer_id"]) & (pl.col("counterparty") == txn.get("counterparty"))
    )
    if txn.get("counterparty") is not None:
        head += " to a new payee" if known.height == 0 else f" to a payee seen {known.item(0, 'txn_count')} times before"
    facts = [f"this customer's 99th percentile is {format_inr(p['p99_paise'])}"]
    hours = np.asarray(p["hour_weekday_counts"], dtype=np.int64).reshape(7, 24).sum(axis=0)
    if when.hour in NIGHT_HOURS and hours[list(NIGHT_HOURS)].sum() == 0:
        facts.append("they never transact between 00:00 and 06:00")
    elif hours[when.hour] == 0:
        facts.append(f"they never transact between {when.hour:02d}:00 and {when.hour:02d}:59")
    return f"{head}; " + " and ".join(facts)
