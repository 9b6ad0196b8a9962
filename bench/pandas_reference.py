"""The pandas baseline the feature benchmark compares against: the classic groupby + time-based
rolling recipe for card-fraud features.

Per transaction, windows closed on the left (only earlier transactions):
* customer: number of transactions and mean amount over the last 1, 7 and 30 days;
* merchant (counterparty): fraud rate over 1, 7 and 30 days, behind a label delay: among the
  counterparty's transactions in [t - delay - w, t - delay), the share labelled fraud (a label is
  assumed known `delay` days after its transaction).

`python -m bench.pandas_reference TABLE.parquet LABELS.parquet OUT.parquet` runs it on Parquet files.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd

WINDOWS_DAYS = (1, 7, 30)


def _rolling(frame: pd.DataFrame, key: str, column: str, days: int, how: str) -> pd.Series:
    """`how` of `column` over each row's key-group in [t - days, t), aligned to frame's rows."""
    rolled = frame.groupby(key, sort=False)[column].rolling(f"{days}D", closed="left")
    values = getattr(rolled, how)()
    return pd.Series(values.to_numpy(), index=frame["_row"].to_numpy()) if len(frame) else pd.Series(dtype=float)


def pandas_features(tx: pd.DataFrame, labels: pd.DataFrame, delay_days: int = 7) -> pd.DataFrame:
    """txn_id plus the reference features, in the input's row order."""
    df = tx[["txn_id", "customer_id", "counterparty", "ts", "amount_paise"]].copy()
    df["_row"] = range(len(df))
    df["amount"] = df["amount_paise"] / 100
    fraud_ids = set(labels.loc[labels["label"] == 1, "txn_id"])
    df["fraud"] = df["txn_id"].isin(fraud_ids).astype(float)
    out = pd.DataFrame({"txn_id": df["txn_id"].to_numpy()})

    by_customer = df.sort_values(["customer_id", "ts"], kind="stable").set_index("ts")
    for days in WINDOWS_DAYS:
        count = _rolling(by_customer, "customer_id", "amount", days, "count").fillna(0)
        total = _rolling(by_customer, "customer_id", "amount", days, "sum").fillna(0)
        out[f"customer_count_{days}d"] = count.sort_index().to_numpy()
        mean = (total / count.where(count > 0)).sort_index()
        out[f"customer_mean_amount_{days}d"] = mean.to_numpy()

    by_merchant = df.dropna(subset=["counterparty"]).sort_values(["counterparty", "ts"], kind="stable").set_index("ts")
    delay_frauds = _rolling(by_merchant, "counterparty", "fraud", delay_days, "sum").fillna(0)
    delay_count = _rolling(by_merchant, "counterparty", "fraud", delay_days, "count").fillna(0)
    for days in WINDOWS_DAYS:
        frauds = _rolling(by_merchant, "counterparty", "fraud", delay_days + days, "sum").fillna(0) - delay_frauds
        count = _rolling(by_merchant, "counterparty", "fraud", delay_days + days, "count").fillna(0) - delay_count
        rate = (frauds / count.where(count > 0)).reindex(range(len(df)))
        out[f"merchant_fraud_rate_{days}d"] = rate.to_numpy()
    return out


def main(argv: list[str]) -> int:
    table, labels, target = (Path(a) for a in argv)
    start = time.perf_counter()
    tx = pd.read_parquet(table, columns=["txn_id", "customer_id", "counterparty", "ts", "amount_paise"])
    result = pandas_features(tx, pd.read_parquet(labels, columns=["txn_id", "label"]))
    result.to_parquet(target)
    print(f"{len(result)} rows in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
