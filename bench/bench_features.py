"""Feature benchmark: the full catalogue on ~10 million transactions over 90 days, and on a ~2 million
row table side by side with the pandas reference (bench/pandas_reference.py) and the same nine
features in idiomatic Polars (bench/polars_reference.py).

Each workload runs in its own process; it reports its wall time (from reading the Parquet input to
the finished feature frame in memory) and its peak resident memory. The input is the generator's
output converted to the canonical table once and cached under bench/out/feature-data/.
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
CUSTOMERS, DAYS = 90_000, 90
SMALL_CUSTOMERS = 18_000  # the first 18,000 customers of the same data: about 2 million rows
LABEL_DELAY_DAYS = 7
COMPARED = {  # pandas reference column -> our feature (with our amount mean = sum / count)
    "customer_count_1d": "txn_count_24h",
    "customer_count_7d": "txn_count_7d",
    "customer_count_30d": "txn_count_30d",
    "merchant_fraud_rate_1d": "merchant_fraud_rate_1d",
    "merchant_fraud_rate_7d": "merchant_fraud_rate_7d",
    "merchant_fraud_rate_30d": "merchant_fraud_rate_30d",
}


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def _child_full(data_dir: str) -> dict:
    """All features for every transaction of a processed data dir, in memory."""
    import polars as pl

    from features.transactions import transaction_features
    from finrisk.io import DataLayout
    from tasks.features import feature_inputs

    layout = DataLayout(Path(data_dir))
    start = time.perf_counter()
    features = transaction_features(feature_inputs(layout), pl.read_parquet(layout.labels), LABEL_DELAY_DAYS)
    seconds = time.perf_counter() - start
    return {"rows": features.height, "columns": features.width, "seconds": round(seconds, 2),
            "peak_rss_gib": round(_peak_rss_gib(), 2)}


def _child_ours(table: str, labels: str, out: str) -> dict:
    import polars as pl

    from features.catalogue import CATALOGUE
    from features.transactions import transaction_features

    start = time.perf_counter()
    features = transaction_features(pl.scan_parquet(table), pl.read_parquet(labels), LABEL_DELAY_DAYS)
    seconds = time.perf_counter() - start
    features.select("txn_id", "amount_sum_24h_rupees", "amount_sum_7d_rupees", "amount_sum_30d_rupees",
                    *sorted(set(COMPARED.values()))).write_parquet(out)
    return {"rows": features.height, "features": len(CATALOGUE), "seconds": round(seconds, 2),
            "peak_rss_gib": round(_peak_rss_gib(), 2)}


def _child_reference(library: str, table: str, labels: str, out: str) -> dict:
    """The nine reference features with pandas or Polars, timed from frames in memory."""
    if library == "pandas":
        import pandas as frames

        from bench.pandas_reference import pandas_features as compute
    else:
        import polars as frames

        from bench.polars_reference import polars_features as compute
    tx = frames.read_parquet(table, columns=["txn_id", "customer_id", "counterparty", "ts", "amount_paise"])
    known = frames.read_parquet(labels, columns=["txn_id", "label"])
    start = time.perf_counter()
    result = compute(tx, known, LABEL_DELAY_DAYS)
    seconds = time.perf_counter() - start
    if library == "pandas":
        result.to_parquet(out)
    else:
        result.write_parquet(out)
    return {"rows": len(result), "features": result.shape[1] - 1, "seconds": round(seconds, 2),
            "peak_rss_gib": round(_peak_rss_gib(), 2)}


def _run(*args: str) -> dict:
    """One workload in a fresh process; its figures plus the process's own wall time."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bench.bench_features", *args], capture_output=True, text=True,
                          cwd=HERE.parent)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark step {args[0]} failed:\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["process_seconds"] = round(time.perf_counter() - start, 2)
    return figures


def _small_table(data_dir: Path, cache: Path) -> tuple[Path, Path]:
    """The first SMALL_CUSTOMERS customers' transactions in one file, and labels without report
    times (the pandas recipe assumes a label is known `delay` days after its transaction)."""
    import polars as pl

    from finrisk.io import DataLayout, scan_partitioned

    table, labels = cache / "table-2m.parquet", cache / "labels-2m.parquet"
    if not table.exists():
        layout = DataLayout(data_dir)
        scan_partitioned(layout.transactions).filter(
            pl.col("customer_id") <= f"C{SMALL_CUSTOMERS:07d}"
        ).drop("date").sink_parquet(table)
        unreported = pl.lit(None, pl.Datetime("us", "UTC")).alias("reported_at")
        pl.read_parquet(layout.labels).with_columns(unreported).write_parquet(labels)
    return table, labels


def _agreement(ours: Path, theirs: Path) -> dict:
    """Largest absolute difference between the pandas reference and the same features of ours."""
    import numpy as np
    import polars as pl

    joined = pl.read_parquet(theirs).join(pl.read_parquet(ours), on="txn_id", how="inner")
    worst = {}
    for reference, feature in COMPARED.items():
        a = joined.get_column(reference).cast(pl.Float64).to_numpy()
        b = joined.get_column(feature).cast(pl.Float64).to_numpy()
        worst[reference] = float(np.nanmax(np.abs(a - b))) if np.isfinite(a).any() else 0.0
        worst[f"{reference}_null_mismatches"] = int((np.isnan(a) != np.isnan(b)).sum())
    for days, window in ((1, "24h"), (7, "7d"), (30, "30d")):
        mean = joined.get_column(f"amount_sum_{window}_rupees") / joined.get_column(f"txn_count_{window}")
        a = joined.get_column(f"customer_mean_amount_{days}d").to_numpy()
        b = mean.cast(pl.Float64).fill_nan(None).to_numpy()
        worst[f"customer_mean_amount_{days}d"] = float(np.nanmax(np.abs(a - b.astype(float))))
    return worst


def _same_columns(one: Path, other: Path) -> dict:
    """Largest absolute difference (and null mismatches) between two reference outputs, per column."""
    import numpy as np
    import polars as pl

    a, b = pl.read_parquet(one), pl.read_parquet(other)
    if a.get_column("txn_id").to_list() != b.get_column("txn_id").to_list():
        raise RuntimeError(f"{one.name} and {other.name} differ in their rows")
    worst = {}
    for name in a.columns[1:]:
        x, y = (f.get_column(name).cast(pl.Float64).fill_null(np.nan).to_numpy() for f in (a, b))
        worst[name] = float(np.nanmax(np.abs(x - y))) if np.isfinite(x).any() else 0.0
        worst[f"{name}_null_mismatches"] = int((np.isnan(x) != np.isnan(y)).sum())
    return worst


def main(out_dir: Path) -> dict:
    from bench.feature_data import processed_table

    out_dir.mkdir(parents=True, exist_ok=True)
    cache = HERE / "out" / "feature-data"
    cache.mkdir(parents=True, exist_ok=True)
    data_dir = processed_table(cache, CUSTOMERS, DAYS)
    table, labels = _small_table(data_dir, cache)
    load = {"load_average_before": list(__import__("os").getloadavg())}
    full = _run("full", str(data_dir))
    ours = _run("ours", str(table), str(labels), str(out_dir / "ours-2m.parquet"))
    pandas = _run("reference", "pandas", str(table), str(labels), str(out_dir / "pandas-2m.parquet"))
    polars = _run("reference", "polars", str(table), str(labels), str(out_dir / "polars-2m.parquet"))
    return {
        **load,
        "full_10m": {**full, "target_seconds": 20, "target_peak_gib": 8},
        "side_by_side_2m": {
            "ours": ours, "pandas": pandas,
            "speedup": round(pandas["seconds"] / ours["seconds"], 1), "target_speedup": 40,
            "max_abs_difference": _agreement(out_dir / "ours-2m.parquet", out_dir / "pandas-2m.parquet"),
            "polars_reference": {
                **polars, "speedup_over_pandas": round(pandas["seconds"] / polars["seconds"], 1),
                "max_abs_difference_from_pandas": _same_columns(out_dir / "polars-2m.parquet", out_dir / "pandas-2m.parquet"),
            },
        },
        "load_average_after": list(__import__("os").getloadavg()),
    }


if __name__ == "__main__":
    step, *rest = sys.argv[1:]
    result = {"full": _child_full, "ours": _child_ours, "reference": _child_reference}[step](*rest)
    print(json.dumps(result))
