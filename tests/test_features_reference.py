"""The batch features against a brute-force reference: DuckDB self-joins that look at every earlier
event of the same entity, on a generated dataset with labels."""
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from bench.feature_data import write_processed
from features.inputs import prepare_events
from features.transactions import transaction_features
from finrisk.io import DataLayout, scan_partitioned
from finrisk.synthetic import generate

DELAY_DAYS = 3
DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("features-reference")
    generate(root / "raw", customers=200, days=30, seed=3)
    layout = DataLayout(write_processed(root / "raw", root / "data"))
    tx = scan_partitioned(layout.transactions)
    labels = pl.read_parquet(layout.labels)
    features = transaction_features(tx, labels, DELAY_DAYS).sort("txn_id")
    events = prepare_events(tx).select(
        "txn_id", "customer_id", "counterparty", "device_id", "city", "ts", "_ms", "amount_paise"
    )
    return features, events, labels


def _reference(events: pl.DataFrame, labels: pl.DataFrame) -> pl.DataFrame:
    con = duckdb.connect()
    # histogram bands: fifth-of-a-decade steps of the rupee amount, edges in whole paise
    edges = np.round(100 * 10 ** (np.arange(1, 40) / 5)).astype(np.int64)
    events = events.with_columns(bucket=np.searchsorted(edges, events.get_column("amount_paise").to_numpy(), "right"))
    con.register("ev", events.rename({"_ms": "ms"}).to_arrow())
    con.register("lab", labels.to_arrow())
    windows = {"10m": 600_000, "1h": 3_600_000, "24h": DAY_MS, "7d": 7 * DAY_MS, "30d": 30 * DAY_MS}
    velocity = ",\n".join(
        f"count(b.txn_id) FILTER (WHERE b.ms >= a.ms - {w}) AS txn_count_{name},"
        f" coalesce(sum(b.amount_paise) FILTER (WHERE b.ms >= a.ms - {w}), 0) / 100.0 AS amount_sum_{name}_rupees"
        for name, w in windows.items()
    )
    bucket = "{a}.bucket"
    position = "least(greatest(log10(greatest(a.amount_paise / 100.0, 0.01)) * 5 - a.bucket, 0), 1)"
    hour = "(((({a}.ms + 19800000) // 3600000) % 24))"
    query = f"""
    WITH customer AS (
      SELECT a.txn_id, {velocity},
        (a.ms - max(b.ms)) / 1000.0 AS seconds_since_prev,
        count(b.txn_id) FILTER (WHERE b.counterparty = a.counterparty) AS pair_txn_count,
        count(DISTINCT b.device_id) AS devices_per_customer,
        CASE WHEN count(b.txn_id) > 0 THEN
          (count(b.txn_id) FILTER (WHERE {bucket.format(a='b')} < {bucket.format(a='a')})
           + {position} * count(b.txn_id) FILTER (WHERE {bucket.format(a='b')} = {bucket.format(a='a')}))
          / count(b.txn_id) END AS amount_percentile,
        CASE WHEN count(b.txn_id) > 0 THEN
          count(b.txn_id) FILTER (WHERE {hour.format(a='b')} = {hour.format(a='a')}) / count(b.txn_id) END
          AS hour_profile_share,
        arg_max(b.city, (b.ms, b.ts, b.txn_id)) FILTER (WHERE b.city IS NOT NULL) AS previous_city,
        any_value(a.city) AS city
      FROM ev a LEFT JOIN ev b ON b.customer_id = a.customer_id AND b.ms < a.ms
      GROUP BY a.txn_id, a.ms, a.amount_paise, a.counterparty, a.bucket
    ),
    known AS (
      SELECT e.counterparty, e.ms AS txn_ms,
             epoch_ms(coalesce(l.reported_at, e.ts) + INTERVAL {DELAY_DAYS} DAY) AS available_ms
      FROM lab l JOIN ev e USING (txn_id) WHERE l.label = 1
    ),
    merchant AS (
      SELECT a.txn_id,
        count(DISTINCT b.customer_id) AS merchant_fan_in,
        count(b.txn_id) FILTER (WHERE b.ms >= a.ms - {DELAY_DAYS * DAY_MS} - {7 * DAY_MS}
                                  AND b.ms < a.ms - {DELAY_DAYS * DAY_MS}) AS exposed_7d
      FROM ev a LEFT JOIN ev b ON b.counterparty = a.counterparty AND b.ms < a.ms
      GROUP BY a.txn_id
    ),
    labelled AS (
      SELECT a.txn_id,
        count(k.available_ms) AS merchant_fraud_count_known,
        count(k.available_ms) FILTER (WHERE k.available_ms >= a.ms - {7 * DAY_MS}) AS usable_7d
      FROM ev a LEFT JOIN known k ON k.counterparty = a.counterparty AND k.available_ms < a.ms
      GROUP BY a.txn_id
    ),
    device AS (
      SELECT a.txn_id, count(DISTINCT b.customer_id) AS customers_per_device
      FROM ev a LEFT JOIN ev b ON b.device_id = a.device_id AND b.ms < a.ms
      WHERE a.device_id IS NOT NULL GROUP BY a.txn_id
    )
    SELECT c.*, m.merchant_fan_in, l.merchant_fraud_count_known,
      CASE WHEN m.exposed_7d > 0 THEN l.usable_7d / m.exposed_7d END AS merchant_fraud_rate_7d,
      d.customers_per_device,
      CASE WHEN c.city IS NOT NULL AND c.previous_city IS NOT NULL THEN (c.city <> c.previous_city)::INT END
        AS city_changed
    FROM customer c JOIN merchant m USING (txn_id) JOIN labelled l USING (txn_id)
    LEFT JOIN device d USING (txn_id)
    ORDER BY txn_id
    """
    return pl.from_arrow(con.sql(query).to_arrow_table())


def test_batch_features_equal_a_brute_force_reference(dataset):
    features, events, labels = dataset
    reference = _reference(events, labels)
    assert reference.get_column("txn_id").equals(features.get_column("txn_id"))
    assert features.get_column("merchant_fraud_count_known").max() > 0  # the labels do reach the features
    checked = [c for c in reference.columns if c not in ("txn_id", "previous_city", "city")]
    for name in checked:
        ours = features.get_column(name).cast(pl.Float64).to_numpy()
        theirs = reference.get_column(name).cast(pl.Float64).to_numpy()
        if name == "pair_txn_count":  # rows without a counterparty have no pair history
            theirs = np.where(np.isnan(ours), np.nan, theirs)
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6, equal_nan=True, err_msg=name)
