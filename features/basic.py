"""The transaction itself: amount, channel, direction, merchant category."""
from __future__ import annotations

import numpy as np
import polars as pl

from features.context import FeatureContext
from features.spec import Feature, family
from finrisk.schema import CHANNELS

# Merchant category groups from ISO 18245 ranges; the twin profiles amounts per group.
MCC_GROUPS: tuple[tuple[str, int, int], ...] = (
    ("travel", 3000, 3999), ("transport", 4000, 4799), ("utilities", 4800, 4999),
    ("groceries", 5400, 5499), ("fuel", 5500, 5599), ("dining", 5800, 5814),
    ("retail", 5000, 5999), ("cash", 6010, 6011), ("financial", 6012, 6999),
    ("services", 7000, 7999), ("education_health", 8000, 8999), ("government", 9000, 9999),
)
MCC_GROUP_NAMES: tuple[str, ...] = tuple(dict.fromkeys(g for g, _, _ in MCC_GROUPS))

TIMELINES = ()  # entity timelines this family reads
CACHED = ()  # shared values it reads

FEATURES = family(
    "basic",
    Feature("amount_rupees_log", "transaction", None, "log10 of the amount in rupees", ("amount_paise",)),
    Feature("channel_code", "transaction", None, "payment channel as a category code", ("channel",), dtype=pl.Int8),
    Feature("is_debit", "transaction", None, "money leaves the customer's account", ("direction",), dtype=pl.Int8),
    Feature(
        "mcc_group_code", "transaction", None, "merchant category group (ISO 18245 ranges) as a code", ("mcc",),
        dtype=pl.Int8,
    ),
)


def amount_log10_rupees() -> pl.Expr:
    return (pl.col("amount_paise") / 100).clip(lower_bound=0.01).log10()


def _group_of(mcc: str | None) -> str | None:
    if mcc is None:
        return None
    try:
        code = int(mcc)
    except ValueError:
        return "other"
    # first matching range wins: the specific groups come before the broad ones
    return next((name for name, low, high in MCC_GROUPS if low <= code <= high), "other")


def mcc_group(mccs: pl.Series) -> pl.Expr:
    """Group name of the MCC ('other' outside the ranges, null without an MCC); the ranges are
    looked up once per distinct code in `mccs`, then mapped columnar."""
    distinct = mccs.drop_nulls().unique().to_list()
    return pl.col("mcc").replace_strict(
        distinct, [_group_of(m) for m in distinct], default=None, return_dtype=pl.String
    )


def compute(ctx: FeatureContext) -> dict[str, np.ndarray | pl.Series]:
    out = ctx.events.select(
        amount_log10_rupees().alias("amount_rupees_log"),
        pl.col("channel").replace_strict(
            list(CHANNELS), list(range(len(CHANNELS))), default=-1, return_dtype=pl.Int8
        ).alias("channel_code"),
        pl.when(pl.col("direction").is_not_null()).then((pl.col("direction") == "DEBIT").cast(pl.Int8)).alias("is_debit"),
        mcc_group(ctx.events.get_column("mcc")).replace_strict(
            [*MCC_GROUP_NAMES, "other"], list(range(len(MCC_GROUP_NAMES) + 1)), default=None, return_dtype=pl.Int8
        ).alias("mcc_group_code"),
    )
    return {name: out.get_column(name) for name in out.columns}
