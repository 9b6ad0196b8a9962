"""The pandas reference's nine features (bench/pandas_reference.py) written the idiomatic Polars way:
time-based rolling sums over each customer's and each counterparty's rows (`rolling_sum_by` with
`over`), windows closed on the left. It shows what the field's fast dataframe library gives on the
reference's own small feature set, next to pandas and to our full catalogue.
"""
from __future__ import annotations

import polars as pl

WINDOWS_DAYS = (1, 7, 30)


def _before(column: str, key: str, hours: int) -> pl.Expr:
    """Sum of `column` over the key's rows in [t - hours, t)."""
    return pl.col(column).rolling_sum_by("ts", f"{hours}h", closed="left").over(key)


def polars_features(tx: pl.DataFrame, labels: pl.DataFrame, delay_days: int = 7) -> pl.DataFrame:
    """txn_id plus the reference features, in the input's row order (same names and values as
    bench.pandas_reference.pandas_features)."""
    frauds = labels.filter(pl.col("label") == 1).get_column("txn_id").implode()
    df = tx.select("txn_id", "customer_id", "counterparty", "ts", "amount_paise").with_row_index("_row").with_columns(
        (pl.col("amount_paise") / 100).alias("amount"), pl.col("txn_id").is_in(frauds).cast(pl.Float64).alias("fraud"),
        pl.lit(1, pl.Int32).alias("one"),
    )
    customer = df.sort("customer_id", "ts").with_columns(
        expr for days in WINDOWS_DAYS for expr in (
            _before("one", "customer_id", 24 * days).alias(f"customer_count_{days}d"),
            _before("amount", "customer_id", 24 * days).alias(f"_sum_{days}d"),
        )
    ).select(
        "_row",
        *(expr for days in WINDOWS_DAYS for expr in (
            pl.col(f"customer_count_{days}d").cast(pl.Float64),
            (pl.col(f"_sum_{days}d") / pl.when(pl.col(f"customer_count_{days}d") > 0)
             .then(pl.col(f"customer_count_{days}d"))).alias(f"customer_mean_amount_{days}d"),
        )),
    )
    delay_h = 24 * delay_days
    rates = df.filter(pl.col("counterparty").is_not_null()).sort("counterparty", "ts").with_columns(
        expr for days in WINDOWS_DAYS for expr in (
            (_before("fraud", "counterparty", delay_h + 24 * days) - _before("fraud", "counterparty", delay_h))
            .alias(f"_frauds_{days}d"),
            (_before("one", "counterparty", delay_h + 24 * days) - _before("one", "counterparty", delay_h))
            .alias(f"_count_{days}d"),
        )
    ).select(
        "_row",
        *((pl.col(f"_frauds_{days}d") / pl.when(pl.col(f"_count_{days}d") > 0).then(pl.col(f"_count_{days}d")))
          .alias(f"merchant_fraud_rate_{days}d") for days in WINDOWS_DAYS),
    )
    return (
        df.select("_row", "txn_id").join(customer, on="_row", how="left").join(rates, on="_row", how="left")
        .sort("_row").drop("_row")
    )
