"""Small matplotlib charts for the daily report, returned as inline SVG text (no files, no CDN)."""
from __future__ import annotations

import io
import re
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from matplotlib import ticker

from finrisk.schema import BUSINESS_TZ

IST = ZoneInfo(BUSINESS_TZ)
INK, MUTED, ALERT, GRID, TWIN = "#1f2937", "#94a3b8", "#dc2626", "#e5e7eb", "#1e3a8a"
STYLE = {
    "svg.fonttype": "none",  # text stays text: smaller files, the page's own font
    "font.family": "sans-serif",
    "font.size": 8,
    "axes.edgecolor": GRID,
    "axes.labelcolor": INK,
    "axes.titlesize": 8.5,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "xtick.color": "#6b7280",
    "ytick.color": "#6b7280",
    "axes.grid": True,
    "grid.color": GRID,
    "grid.linewidth": 0.6,
}


def _svg(fig, salt: str) -> str:
    """The figure as an <svg> element; the salt keeps clip-path ids unique across charts on one page."""
    buf = io.StringIO()
    with plt.rc_context({"svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", bbox_inches="tight", transparent=True)
    plt.close(fig)
    text = buf.getvalue()
    text = re.sub(r"<metadata>.*?</metadata>", "", text[text.index("<svg"):], flags=re.S)
    # Scale with the page instead of fixed points.
    return re.sub(r'<svg([^>]*?) width="[^"]+" height="([^"]+)"', r'<svg\1 class="chart" role="img"', text, count=1)


def _rupees(paise: pl.Series) -> np.ndarray:
    return paise.cast(pl.Float64).to_numpy() / 100


def _rupee_axis(ax) -> None:
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: _short_inr(v)))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())


def _short_inr(rupees: float) -> str:
    """Axis labels in the Indian way: thousand, lakh, crore."""
    if rupees >= 1e7:
        return f"₹{rupees / 1e7:g} Cr"
    if rupees >= 1e5:
        return f"₹{rupees / 1e5:g} L"
    if rupees >= 1e3:
        return f"₹{rupees / 1e3:g}k"
    return f"₹{rupees:g}"


def customer_chart(
    history: pl.DataFrame, alerted_txn_ids: list[str], day: date, days: int, salt: str, twin: dict | None = None
) -> str:
    """A customer's last `days` days: every amount over time, and how their activity spreads over the
    hours of the day; the alerted transactions in red. With a twin, its usual amounts (p50 / p99) are
    drawn across the timeline and its hour profile (all history before the day) replaces the 30-day one.

    history: txn_id, ts (UTC), amount_paise for this customer.
    """
    local = history.with_columns(
        pl.col("ts").dt.convert_time_zone(BUSINESS_TZ).alias("local"),
        pl.col("txn_id").is_in(alerted_txn_ids).alias("alerted"),
    ).with_columns(
        (pl.col("local").dt.hour() + pl.col("local").dt.minute() / 60).alias("hour")
    )
    usual, flagged = local.filter(~pl.col("alerted")), local.filter(pl.col("alerted"))
    start = datetime.combine(day - timedelta(days=days - 1), time(0), IST)
    end = datetime.combine(day + timedelta(days=1), time(0), IST)
    twin = twin or {}

    with plt.rc_context(STYLE):
        fig, (timeline, hours) = plt.subplots(
            1, 2, figsize=(6.2, 2.0), gridspec_kw={"width_ratios": [2.2, 1]}
        )
        timeline.scatter(usual["local"].to_list(), _rupees(usual["amount_paise"]), s=9, color=MUTED, alpha=0.8,
                         linewidths=0)
        timeline.scatter(flagged["local"].to_list(), _rupees(flagged["amount_paise"]), s=22, color=ALERT,
                         linewidths=0, zorder=3)
        for key, style in (("p50_paise", (0, (4, 3))), ("p99_paise", (0, (1, 2)))):
            if twin.get(key):
                timeline.axhline(twin[key] / 100, color=TWIN, linewidth=1, linestyle=style)
                timeline.annotate(f"twin {key.split('_')[0]}", (0, twin[key] / 100), xycoords=("axes fraction", "data"),
                                  xytext=(2, 2), textcoords="offset points", color=TWIN, fontsize=6.5)
        timeline.axvspan(datetime.combine(day, time(0), IST), end, color="#fee2e2", alpha=0.6, linewidth=0)
        timeline.set_xlim(start, end)
        timeline.xaxis.set_major_locator(mdates.DayLocator(interval=max(1, days // 6), tz=IST))
        timeline.xaxis.set_major_formatter(mdates.DateFormatter("%d %b", tz=IST))
        _rupee_axis(timeline)
        timeline.set_title(f"Amounts, last {days} days (IST)")

        hour_counts = twin.get("hour_counts")
        if hour_counts is not None and len(hour_counts) == 24:
            hours.bar(np.arange(24) + 0.5, hour_counts, width=0.9, color=TWIN, alpha=0.35)
            hours.set_title("Usual hours (twin)")
        else:
            hours.hist(usual["hour"].to_numpy(), bins=np.arange(25), color=MUTED, alpha=0.9)
            hours.set_title("Hour of day")
        for hour in flagged["hour"].to_list():
            hours.axvline(hour, color=ALERT, linewidth=1.2)
        hours.set_xlim(0, 24)
        hours.set_xticks([0, 6, 12, 18, 24])
        hours.set_ylabel("transactions")
        fig.tight_layout(w_pad=1.5)
        return _svg(fig, salt)


def score_distribution_chart(scores: pl.Series, cutoff: float | None, salt: str = "scores") -> str:
    """The day's scores (log counts), with the lowest score that still made the alert list."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(5.6, 2.0))
        ax.hist(scores.to_numpy(), bins=np.linspace(0, 1, 41), color="#64748b")
        if cutoff is not None:
            ax.axvline(cutoff, color=ALERT, linewidth=1.2)
            right = cutoff < 0.5  # keep the label inside the axes
            ax.annotate(
                "alert cut-off", (cutoff, 1), xycoords=("data", "axes fraction"), xytext=(4 if right else -4, -10),
                textcoords="offset points", ha="left" if right else "right", color=ALERT, fontsize=7.5,
            )
        ax.set_yscale("log")
        ax.set_xlim(0, 1)
        ax.set_xlabel("score")
        ax.set_ylabel("transactions")
        ax.set_title("Scores of the day")
        fig.tight_layout()
        return _svg(fig, salt)


def hourly_alerts_chart(scores: pl.DataFrame, alerted_txn_ids: list[str], salt: str = "hours") -> str:
    """Transactions and alerts per hour of the business day (IST)."""
    per_hour = (
        scores.select(
            pl.col("ts").dt.convert_time_zone(BUSINESS_TZ).dt.hour().alias("hour"),
            pl.col("txn_id").is_in(alerted_txn_ids).alias("alerted"),
        )
        .group_by("hour")
        .agg(pl.len().alias("transactions"), pl.col("alerted").sum().alias("alerts"))
    )
    full = pl.DataFrame({"hour": np.arange(24, dtype=np.int8)}).join(
        per_hour.with_columns(pl.col("hour").cast(pl.Int8)), on="hour", how="left"
    ).fill_null(0).sort("hour")
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(5.6, 2.0))
        hours = full["hour"].to_numpy()
        ax.bar(hours, full["transactions"].to_numpy(), width=0.8, color="#cbd5e1", label="transactions")
        ax.bar(hours, full["alerts"].to_numpy(), width=0.8, color=ALERT, label="alerts")
        ax.set_xlim(-0.6, 23.6)
        ax.set_xticks([0, 3, 6, 9, 12, 15, 18, 21])
        ax.set_xlabel("hour (IST)")
        ax.set_title("Transactions and alerts per hour")
        ax.legend(frameon=False, fontsize=7.5, loc="upper left")
        fig.tight_layout()
        return _svg(fig, salt)
