"""A labelled card-transaction simulator with only customer id, terminal id, timestamp and amount.

It follows the published design of the fraud-detection handbook's simulator (customers and
terminals on a 100x100 grid, each customer using terminals within radius 5, Poisson daily counts,
normal amounts and daytime-centred times) with its three fraud scenarios:
1. any amount above 220 is fraud;
2. every day two terminals are compromised: all their transactions in the next 28 days are fraud;
3. every day three customers are compromised: a third of their transactions in the next 14 days
   have five times the amount and are fraud.
Used to check the product's ingest -> features -> train -> score path against the figures
published for that kind of data (7-day train / 7-day delay / 7-day test).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

START = datetime(2018, 4, 1)
TERMINAL_COMPROMISE_DAYS = 28  # scenario 2: how long a compromised terminal stays compromised


def simulate(
    n_customers: int = 5000, n_terminals: int = 10000, days: int = 183, seed: int = 0, radius: float = 5.0
) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    cx, cy = rng.uniform(0, 100, n_customers), rng.uniform(0, 100, n_customers)
    mean_amount = rng.uniform(5, 100, n_customers)
    std_amount = mean_amount / 2
    rate = rng.uniform(0, 4, n_customers)
    tx_, ty_ = rng.uniform(0, 100, n_terminals), rng.uniform(0, 100, n_terminals)

    # Terminals within the radius of each customer, as a CSR-like (customer -> terminal list).
    grid = pl.DataFrame({"t": np.arange(n_terminals), "gx": (tx_ // radius).astype(np.int32), "gy": (ty_ // radius).astype(np.int32)})
    cust = pl.DataFrame({"c": np.arange(n_customers), "gx": (cx // radius).astype(np.int32), "gy": (cy // radius).astype(np.int32)})
    near = pl.concat(
        [cust.with_columns(pl.col("gx") + dx, pl.col("gy") + dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
    ).join(grid, on=["gx", "gy"]).select("c", "t")
    c_idx, t_idx = near["c"].to_numpy(), near["t"].to_numpy()
    close = (cx[c_idx] - tx_[t_idx]) ** 2 + (cy[c_idx] - ty_[t_idx]) ** 2 < radius**2
    pairs = pl.DataFrame({"c": c_idx[close], "t": t_idx[close]}).sort("c", "t")
    counts = np.bincount(pairs["c"].to_numpy(), minlength=n_customers)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    terminals_of = pairs["t"].to_numpy()

    # Transactions: Poisson count per customer-day; customers with no terminal nearby never transact.
    per_day = rng.poisson(np.tile(rate, days)).reshape(days, n_customers)
    per_day[:, counts == 0] = 0
    day_idx, cust_idx = np.nonzero(per_day)
    reps = per_day[day_idx, cust_idx]
    day = np.repeat(day_idx, reps)
    customer = np.repeat(cust_idx, reps)
    n = len(day)
    seconds = rng.normal(86400 / 2, 20000, n)
    keep = (seconds > 0) & (seconds < 86400)
    day, customer, seconds = day[keep], customer[keep], seconds[keep].astype(np.int64)
    n = len(day)
    amount = rng.normal(mean_amount[customer], std_amount[customer])
    negative = amount < 0
    amount[negative] = rng.uniform(0, mean_amount[customer[negative]] * 2)
    amount = np.round(amount, 2)
    terminal = terminals_of[offsets[customer] + (rng.random(n) * counts[customer]).astype(np.int64)]

    scenario = np.zeros(n, dtype=np.int8)
    scenario[amount > 220] = 1
    # Scenario 2: compromised terminals.
    comp_terminals = rng.integers(0, n_terminals, size=(days, 2))
    comp_t = pl.DataFrame({"terminal": comp_terminals.ravel(), "from_day": np.repeat(np.arange(days), 2)})
    tx = pl.DataFrame({"i": np.arange(n), "terminal": terminal, "day": day, "customer": customer})
    hit_t = tx.join(comp_t, on="terminal").filter(
        (pl.col("day") >= pl.col("from_day")) & (pl.col("day") < pl.col("from_day") + TERMINAL_COMPROMISE_DAYS)
    )["i"].unique().to_numpy()
    scenario[hit_t] = 2
    # Scenario 3: compromised customers; a third of their next-14-day transactions, amount x5.
    comp_customers = rng.integers(0, n_customers, size=(days, 3))
    comp_c = pl.DataFrame({"customer": comp_customers.ravel(), "from_day": np.repeat(np.arange(days), 3)})
    window = tx.join(comp_c, on="customer").filter(
        (pl.col("day") >= pl.col("from_day")) & (pl.col("day") < pl.col("from_day") + 14)
    )["i"].unique().sort().to_numpy()
    chosen = window[rng.random(len(window)) < 1 / 3]
    amount[chosen] = np.round(amount[chosen] * 5, 2)
    scenario[chosen] = 3

    ts = np.datetime64(START) + (day.astype("timedelta64[D]") + seconds.astype("timedelta64[s]"))
    frame = pl.DataFrame(
        {
            "TX_DATETIME": ts.astype("datetime64[us]"),
            "CUSTOMER_ID": customer,
            "TERMINAL_ID": terminal,
            "TX_AMOUNT": amount,
            "TX_FRAUD": (scenario > 0).astype(np.int8),
            "TX_FRAUD_SCENARIO": scenario,
        }
    ).sort("TX_DATETIME", "CUSTOMER_ID")
    return frame.with_row_index("TRANSACTION_ID").with_columns(pl.col("TRANSACTION_ID").cast(pl.Int64))


def write_csv(frame: pl.DataFrame, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "transactions.csv"
    frame.with_columns(
        pl.col("TX_DATETIME").dt.strftime("%Y-%m-%d %H:%M:%S"), pl.col("TX_AMOUNT").map_batches(
            lambda s: s.round(2).cast(pl.String), return_dtype=pl.String
        )
    ).write_csv(path)
    return path


def window_dates(train_start: datetime = datetime(2018, 7, 25), days: int = 7, delay: int = 7) -> dict[str, str]:
    """The handbook's split: 7 training days from 2018-07-25, 7 delay days, 7 test days."""
    fmt = "%Y-%m-%d"
    return {
        "train_from": train_start.strftime(fmt),
        "train_to": (train_start + timedelta(days=days - 1)).strftime(fmt),
        "test_from": (train_start + timedelta(days=days + delay)).strftime(fmt),
        "test_to": (train_start + timedelta(days=2 * days + delay - 1)).strftime(fmt),
    }
