"""Quality on outside card data: the handbook-style card simulator through the product's own path.

Simulate card transactions (customer id, terminal id, timestamp, amount, fraud label), write them as
CSV, then: ingest with examples/card/mapping.yaml -> the point-in-time feature table -> train on a
7-day window, and separately on all history known before the test window, with a 7-day label delay
-> score the 7-day test window -> AUC, AP and Card Precision@100, over consecutive test windows.

CP@100 is given three ways:
* `cp100_known_removed` (the issue's): each day the 100 customers with the highest max score,
  leaving out customers whose fraud was already known before the test window and those detected on
  earlier test days (models.evaluation, as `finrisk train` reports it);
* `cp100_detected_removed`: leaving out only those detected on earlier test days;
* `ceiling_cp100_known_removed`: the issue's CP@100 for a scorer that knew every label;
* `handbook_*`: the published protocol: the test days lose every transaction of customers known
  compromised from the training window's frauds and the delay days' (a 7-day memory of known
  compromise), then AUC, AP and CP@100 with detected customers removed;
* `ceiling_*`: the same protocol for a scorer that knows every label that could be known: frauds
  ranked first, except a compromised terminal's frauds while no fraud label of that compromise is
  usable yet (they look like any other transaction and are ranked at random among the genuine).

Run: `uv run python -m bench card_quality`. Sizes: FINRISK_CARD_CUSTOMERS / _TERMINALS / _DAYS
(default 5,000 / 10,000 / 183, the handbook's).
"""
from __future__ import annotations

import json
import math
import os
import resource
import secrets
import subprocess
import sys
import time as timer
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl

from bench import card_simulator

MAPPING = Path(__file__).resolve().parents[1] / "examples" / "card" / "mapping.yaml"
DELAY_DAYS = 7
TEST_DAYS = 7
TRAIN_DAYS = 7
HANDBOOK_TRAIN_START = date(2018, 7, 25)  # the published split: train 07-25..07-31, test 08-08..08-14
WINDOWS = 4  # consecutive test windows from the published one on
K = 100


def _day_start(day: date) -> datetime:
    """00:00 of the business date, in UTC."""
    from finrisk.schema import BUSINESS_TZ

    return datetime.combine(day, time(0), ZoneInfo(BUSINESS_TZ)).astimezone(ZoneInfo("UTC"))


def run_path(root: Path, customers: int, terminals: int, days: int, windows: int = WINDOWS, seed: int = 0,
             train_start: date = HANDBOOK_TRAIN_START) -> dict:
    """Simulate -> CSV -> ingest -> features -> train -> score -> metrics, under root. Returns figures."""
    from features.store import feature_table, write_feature_table
    from features.transactions import transaction_features
    from finrisk.config import get_settings
    from finrisk.ingest import ingest
    from finrisk.io import DataLayout, scan_partitioned
    from tasks.features import feature_inputs
    from finrisk.mapping import load_mapping

    figures: dict = {"customers": customers, "terminals": terminals, "days": days, "label_delay_days": DELAY_DAYS}
    seconds: dict = {}
    start = timer.perf_counter()
    frame = card_simulator.simulate(customers, terminals, days, seed=seed)
    card_simulator.write_csv(frame, root / "raw")
    figures["transactions"] = frame.height
    figures["frauds"] = int(frame.get_column("TX_FRAUD").sum())
    seconds["simulate"] = timer.perf_counter() - start

    start = timer.perf_counter()
    layout = DataLayout(root / "data")
    configured = get_settings().pseudonym_key
    key = configured.get_secret_value().encode() if configured else secrets.token_hex(16).encode()  # throwaway
    report = ingest([root / "raw"], load_mapping(MAPPING), layout, key, threshold=0.01)
    figures["ingest"] = {"in": report.rows_in, "loaded": report.loaded, "quarantined": report.quarantined,
                         "quarantine_reasons": report.quarantine_reasons, "labels_loaded": report.labels_loaded}
    seconds["ingest"] = timer.perf_counter() - start

    start = timer.perf_counter()
    labels = pl.read_parquet(layout.labels)
    table = feature_table(transaction_features(feature_inputs(layout), labels, DELAY_DAYS))
    write_feature_table(table, layout.features)
    del table
    seconds["features"] = timer.perf_counter() - start

    features = scan_partitioned(layout.features).collect()
    results = []
    for test_start in test_starts(train_start, windows, days):
        for mode, first_day in (("7d", test_start - timedelta(days=DELAY_DAYS + TRAIN_DAYS)),
                                ("all", card_simulator.START.date())):
            start = timer.perf_counter()
            row = evaluate_window(features, labels, first_day, test_start, layout)
            seconds[f"train_score_{mode}_{test_start}"] = timer.perf_counter() - start
            results.append({"train": mode, "test_from": test_start.isoformat(), **row})
    figures["windows"] = results
    figures["summary"] = summarise(results)
    figures["seconds"] = {k: round(v, 1) for k, v in seconds.items()}
    return figures


def test_starts(train_start: date, windows: int, days: int) -> list[date]:
    """The first days of consecutive test windows after train_start's, as far as `days` of data reach."""
    starts = [train_start + timedelta(days=TRAIN_DAYS + DELAY_DAYS + i * TEST_DAYS) for i in range(windows)]
    return [s for s in starts if (s + timedelta(days=TEST_DAYS) - card_simulator.START.date()).days <= days]


def evaluate_window(features: pl.DataFrame, labels: pl.DataFrame, first_day: date, test_start: date, layout) -> dict:
    """Train on [first_day, test_start - delay), score the test window from the feature table, measure."""
    from finrisk.io import scan_partitioned
    from models.evaluation import binary_metrics, card_precision_at_k
    from models.fraud_model import TrainWindows, known_compromised, label_availability, train_fraud_model

    windows = TrainWindows(
        _day_start(first_day), _day_start(test_start - timedelta(days=DELAY_DAYS)),
        _day_start(test_start), _day_start(test_start + timedelta(days=TEST_DAYS)),
    )
    result = train_fraud_model(features, labels, windows, DELAY_DAYS, k=K)
    # Score: the test window's rows as stored in the feature table, with the trained scorer.
    last = (test_start + timedelta(days=TEST_DAYS - 1)).isoformat()
    test = scan_partitioned(layout.features).filter(pl.col("date").is_between(pl.lit(test_start.isoformat()), pl.lit(last))).collect()
    scored = pl.concat([test.select("txn_id", "customer_id", "date"), result.scorer.score(test)], how="horizontal")
    scored = scored.join(labels.select("txn_id", "label", "fraud_type"), on="txn_id", how="left").with_columns(
        pl.col("label").fill_null(0)
    )
    if scored.height != result.test_scored.height:
        raise RuntimeError("the scored test window differs from the training run's test window")
    availability = label_availability(features, labels, DELAY_DAYS)
    known_before = known_compromised(availability.filter(pl.col("available_at") < windows.test_start))
    metrics = binary_metrics(scored, k=K, budget=K, known_compromised=known_before)  # as `finrisk train` reports
    where = features.select("txn_id", "ts", "counterparty")
    events = availability.join(where, on="txn_id")
    remaining = handbook_test_set(scored, events, test_start)
    handbook = binary_metrics(remaining, k=K, budget=K)
    ceiling = ceiling_metrics(remaining.join(where, on="txn_id"), events)
    return {
        "train_rows": int(result.metrics["train_rows"]), "train_frauds": int(result.metrics["train_frauds"]),
        "test_rows": scored.height, "test_frauds": int(scored.get_column("label").sum()),
        "auc": metrics["auc"], "ap": metrics["average_precision"],
        "cp100_known_removed": metrics[f"card_precision_at_{K}"],
        "cp100_detected_removed": card_precision_at_k(scored, K),
        "ceiling_cp100_known_removed": card_precision_at_k(  # a scorer that knew every label
            scored.with_columns(pl.col("label").cast(pl.Float64).alias("score")), K, known_before),
        "known_compromised_customers": known_before.get_column("customer_id").n_unique(),
        "handbook_auc": handbook["auc"], "handbook_ap": handbook["average_precision"],
        "handbook_cp100": handbook[f"card_precision_at_{K}"], "handbook_test_rows": remaining.height,
        **ceiling,
        "recall_by_scenario": {r["fraud_type"]: round(r["recall"], 3) for r in result.per_typology.to_dicts()},
        "best_iteration": int(result.metrics["best_iteration"]),
    }


def handbook_test_set(test: pl.DataFrame, events: pl.DataFrame, test_start: date) -> pl.DataFrame:
    """The published protocol's test set: test (customer_id, date) without the rows of customers
    known compromised by then, from frauds (events: customer_id, ts, label, available_at) since the
    start of a 7-day training window."""
    since = _day_start(test_start - timedelta(days=DELAY_DAYS + TRAIN_DAYS))
    known = _known_from(events.filter(pl.col("ts") >= since))
    return test.join(known, on="customer_id", how="left").filter(
        pl.col("known_from").is_null() | (pl.col("known_from") > pl.col("date"))
    ).drop("known_from")


def ceiling_metrics(test: pl.DataFrame, availability: pl.DataFrame, draws: int = 20) -> dict:
    """AUC, AP and CP@100 of a scorer that knows every label that could be known, on test (txn_id,
    customer_id, date, ts, counterparty, label, fraud_type). A terminal-compromise fraud (scenario
    2) counts as knowable only if a fraud at the same terminal from the last TERMINAL_COMPROMISE_DAYS
    is usable by then; the others are ranked at random among the genuine (AP: mean over `draws`)."""
    import numpy as np
    from sklearn.metrics import average_precision_score, roc_auc_score

    from models.evaluation import card_precision_at_k

    frauds = availability.filter(pl.col("label") == 1).select(
        "counterparty", "available_at", pl.col("ts").alias("fraud_ts")).sort("available_at")
    window = timedelta(days=card_simulator.TERMINAL_COMPROMISE_DAYS)
    test = test.sort("ts").join_asof(frauds, left_on="ts", right_on="available_at", by="counterparty",
                                     strategy="backward", check_sortedness=False)
    seen = pl.col("fraud_ts").is_not_null() & (pl.col("fraud_ts") > pl.col("ts") - window)
    knowable = test.select((pl.col("label") == 1) & ((pl.col("fraud_type") != "2") | seen)).to_series().to_numpy()
    y = test.get_column("label").to_numpy()
    rng = np.random.default_rng(0)
    aps = [average_precision_score(y, np.where(knowable, 2.0, rng.random(len(y)))) for _ in range(draws)]
    oracle = test.select("customer_id", "date", "label", pl.col("label").cast(pl.Float64).alias("score"))
    # AUC counts a tie as half a win, which is exactly the mean over random orders of the ties.
    return {"ceiling_auc": float(roc_auc_score(y, knowable)), "ceiling_ap": float(np.mean(aps)),
            "ceiling_cp100": card_precision_at_k(oracle, K),
            "unknowable_frauds": int(y.sum() - knowable.sum()), "handbook_frauds": int(y.sum())}


def _known_from(availability: pl.DataFrame) -> pl.DataFrame:
    """customer_id, known_from: the first business date that starts after the customer's fraud label
    became usable (the label is known from that day on)."""
    from finrisk.schema import BUSINESS_TZ

    local_day = pl.col("available_at").dt.convert_time_zone(BUSINESS_TZ).dt.date()
    return availability.filter(pl.col("label") == 1).group_by("customer_id").agg(
        (local_day.min() + pl.duration(days=1)).cast(pl.String).alias("known_from")
    )


METRICS = ("auc", "ap", "cp100_known_removed", "cp100_detected_removed", "handbook_auc", "handbook_ap", "handbook_cp100",
           "ceiling_auc", "ceiling_ap", "ceiling_cp100", "ceiling_cp100_known_removed")


def summarise(rows: list[dict]) -> dict:
    """Mean of each metric over the test windows, per training mode."""
    out = {}
    for mode in sorted({r["train"] for r in rows}):
        chosen = [r for r in rows if r["train"] == mode]
        out[mode] = {m: round(sum(r[m] for r in chosen) / len(chosen), 4) for m in METRICS
                     if all(not math.isnan(r[m]) for r in chosen)}
        out[mode]["windows"] = len(chosen)
    return out


def ceiling_sweep(seeds: int, customers: int, terminals: int, days: int) -> list[dict]:
    """The published protocol's ceiling (ceiling_metrics) straight from simulated data, one seed after
    another: how much the figures of a perfect scorer vary from one dataset of this design to the next."""
    from finrisk.schema import BUSINESS_TZ

    rows = []
    for seed in range(seeds):
        raw = card_simulator.simulate(customers, terminals, days, seed=seed)
        ts = pl.col("TX_DATETIME").dt.replace_time_zone(BUSINESS_TZ).dt.convert_time_zone("UTC")
        events = raw.select(
            pl.col("TRANSACTION_ID").cast(pl.String).alias("txn_id"), pl.col("CUSTOMER_ID").cast(pl.String).alias("customer_id"),
            pl.col("TERMINAL_ID").cast(pl.String).alias("counterparty"), ts.alias("ts"),
            (ts + timedelta(days=DELAY_DAYS)).alias("available_at"),
            pl.col("TX_DATETIME").dt.date().cast(pl.String).alias("date"),
            pl.col("TX_FRAUD").alias("label"), pl.col("TX_FRAUD_SCENARIO").cast(pl.String).alias("fraud_type"),
        )
        for start in test_starts(HANDBOOK_TRAIN_START, WINDOWS, days):
            test = events.filter(pl.col("date").is_between(pl.lit(start.isoformat()),
                                                           pl.lit((start + timedelta(days=TEST_DAYS - 1)).isoformat())))
            rows.append({"seed": seed, "test_from": start.isoformat(),
                         **ceiling_metrics(handbook_test_set(test, events, start), events)})
    return rows


def _child(out_dir: Path) -> None:
    customers = int(os.environ.get("FINRISK_CARD_CUSTOMERS", 5000))
    terminals = int(os.environ.get("FINRISK_CARD_TERMINALS", 10000))
    days = int(os.environ.get("FINRISK_CARD_DAYS", 183))
    figures = run_path(out_dir / "run", customers, terminals, days)
    (out_dir / "figures.json").write_text(json.dumps(figures, indent=2, default=str))


def main(out_dir: Path) -> dict:
    """The whole path in a child process (fresh data dir), so its wall time and peak memory are its own."""
    import shutil

    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out_dir / "run", ignore_errors=True)
    load = os.getloadavg()[0]
    start = timer.perf_counter()
    subprocess.run([sys.executable, "-m", "bench.bench_card_quality", str(out_dir)], check=True,
                   cwd=Path(__file__).resolve().parents[1])
    wall = timer.perf_counter() - start
    figures = json.loads((out_dir / "figures.json").read_text())
    figures["wall_s"] = round(wall, 1)
    figures["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20, 2)
    figures["load_before"] = round(load, 2)
    return figures


if __name__ == "__main__":
    if sys.argv[1] == "ceiling":  # python -m bench.bench_card_quality ceiling SEEDS
        sweep = ceiling_sweep(int(sys.argv[2]), 5000, 10000, 183)
        for row in sweep:
            print(json.dumps(row))
        for m in ("ceiling_auc", "ceiling_ap", "ceiling_cp100"):
            values = [r[m] for r in sweep]
            print(f"{m}: mean {sum(values) / len(values):.3f}, min {min(values):.3f}, max {max(values):.3f}")
    else:
        _child(Path(sys.argv[1]))
