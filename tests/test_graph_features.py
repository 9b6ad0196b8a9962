"""Graph features per customer as of a day: shared devices, mule signals, components, fraud distance."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from finrisk.io import DataLayout, write_parquet_atomic
from graph_loaders.graph_features import (
    FEATURE_SCHEMA, GraphFeatureError, compute_graph_features, connected_components, graph_features_as_of,
    hop_distances, write_graph_features,
)
from test_graph_edges import tx

DAY0 = datetime(2026, 3, 1, 4, 30, tzinfo=timezone.utc)  # 1 March, 10:00 IST
AS_OF = "2026-03-05"
NO_LABELS = pl.DataFrame(schema={"txn_id": pl.String, "label": pl.Int8, "reported_at": pl.Datetime("us", "UTC")})


def p2p(txn_id, payer, payer_vpa, payee, payee_vpa, at, paise, owner_side=True):
    """A transfer between two of our customers: the payer's DEBIT row and the payee's CREDIT row."""
    rows = [{"txn_id": txn_id, "customer_id": payer, "payer_vpa": payer_vpa, "counterparty": payee_vpa,
             "counterparty_type": "P2P", "ts": at, "amount_paise": paise}]
    if owner_side:
        rows.append({"txn_id": txn_id + "c", "customer_id": payee, "payer_vpa": payer_vpa, "counterparty": payer_vpa,
                     "counterparty_type": "P2P", "direction": "CREDIT", "ts": at, "amount_paise": paise})
    return rows


def spend(txn_id, customer, vpa, at, device=None):
    return {"txn_id": txn_id, "customer_id": customer, "payer_vpa": vpa, "counterparty": "M1",
            "counterparty_type": "MERCHANT", "ts": at, "device_id": device}


@pytest.fixture()
def mule_chain() -> pl.LazyFrame:
    """V1 and V2 pay mule A; A forwards to B within minutes, B cashes out at an ATM; A and B share the
    herder's phone. N is an ordinary customer. Later activity (on and after AS_OF) must not count."""
    t = DAY0 + timedelta(days=1)
    rows = [
        spend("s1", "V1", "v1", DAY0, device="Dv1"), spend("s2", "V2", "v2", DAY0, device="Dv2"),
        spend("s3", "A", "va", DAY0, device="Da"), spend("s4", "B", "vb", DAY0, device="Db"),
        spend("s5", "N", "vn", DAY0, device="Dn"),
        *p2p("f1", "V1", "v1", "A", "va", t, 30_000_00),
        *p2p("f2", "V2", "v2", "A", "va", t + timedelta(minutes=10), 20_000_00),
        {**p2p("f3", "A", "va", "B", "vb", t + timedelta(minutes=25), 48_000_00)[0], "device_id": "HERDER"},
        p2p("f3", "A", "va", "B", "vb", t + timedelta(minutes=25), 48_000_00)[1],
        {"txn_id": "f4", "customer_id": "B", "counterparty": "ATM7", "counterparty_type": "ATM",
         "ts": t + timedelta(minutes=55), "amount_paise": 47_000_00, "device_id": None},
        {**spend("f5", "B", "vb", t + timedelta(minutes=50)), "device_id": "HERDER"},
        *p2p("n1", "N", "vn", "V1", "v1", t + timedelta(hours=3), 500_00),  # V1 does not pass it on
        # On the as-of day: invisible to features as of that day.
        *p2p("late", "N", "vn", "A", "va", datetime(2026, 3, 5, 0, 30, tzinfo=timezone.utc), 1_00),
        spend("late2", "NEW", "vnew", datetime(2026, 3, 6, 5, 0, tzinfo=timezone.utc), device="HERDER"),
    ]
    return tx(rows)


def by_customer(frame: pl.DataFrame) -> dict[str, dict]:
    return {r["customer_id"]: r for r in frame.iter_rows(named=True)}


def test_mule_chain_signals(mule_chain):
    f = by_customer(compute_graph_features(mule_chain, NO_LABELS, AS_OF))
    assert set(f) == {"V1", "V2", "A", "B", "N"}  # NEW first appears after the date
    a, b, n = f["A"], f["B"], f["N"]
    assert (a["fan_in_window"], a["fan_out_window"], a["payer_degree"]) == (2, 1, 2)  # the late credit is unseen
    assert a["pass_through_ratio"] == pytest.approx(48_000 / 50_000)
    assert a["min_credit_to_debit_minutes"] == pytest.approx(15.0)  # credit at +10 min, forwarded at +25
    assert a["credits_forwarded_fast"] == 2 and a["is_pass_through"] == 1
    assert b["min_credit_to_debit_minutes"] == pytest.approx(30.0) and b["is_pass_through"] == 1
    # A feeds B: one pass-through account upstream of B, one downstream of A.
    assert (a["pass_through_upstream"], a["pass_through_downstream"]) == (0, 1)
    assert (b["pass_through_upstream"], b["pass_through_downstream"]) == (1, 0)
    assert n["is_pass_through"] == 0 and n["pass_through_ratio"] is None  # N never received money
    # The herder's phone links A and B; fast-forwarded money links the victims to them.
    assert (a["max_customers_per_device"], a["device_cluster_size"]) == (2, 2)
    assert (n["max_customers_per_device"], n["device_cluster_size"]) == (1, 1)
    assert a["mule_network_size"] == b["mule_network_size"] == f["V1"]["mule_network_size"] == 4
    assert n["mule_network_size"] == 1
    assert all(r["fraud_distance"] is None for r in f.values())  # no label known


def test_fraud_distance_uses_only_labels_reported_before_the_day(mule_chain):
    labels = pl.DataFrame({
        "txn_id": ["f4", "n1"], "label": [1, 1],
        "reported_at": [datetime(2026, 3, 4, 9, 0, tzinfo=timezone.utc), datetime(2026, 3, 5, 9, 0, tzinfo=timezone.utc)],
    }).cast({"label": pl.Int8, "reported_at": pl.Datetime("us", "UTC")})
    f = by_customer(compute_graph_features(mule_chain, labels, AS_OF))
    # B's ATM cash-out was reported in time: B is 0 hops away. B received from A's VPA va, which A
    # owns and V1 and V2 paid (2 hops each: C-V-C); N paid V1's VPA v1 (N-v1-V1-va-B: 4).
    assert [f[c]["fraud_distance"] for c in ("B", "A", "V1", "V2", "N")] == [0, 2, 2, 2, 4]
    # N's own transfer was reported only after the day began: it does not make N a fraud node yet.
    later = by_customer(compute_graph_features(mule_chain, labels, "2026-03-06"))
    assert later["N"]["fraud_distance"] == 0


def test_components_and_hops_on_a_small_graph():
    edges = pl.DataFrame({"src": [0, 1, 3, 1, 2, 4], "dst": [1, 2, 4, 0, 1, 3]}, schema={"src": pl.UInt32, "dst": pl.UInt32})
    labels = connected_components(edges, pl.Series("id", [0, 1, 2, 3, 4, 5], pl.UInt32)).sort("id")
    assert labels.get_column("label").to_list() == [0, 0, 0, 3, 3, 5]
    hops = hop_distances(edges, pl.Series([2], dtype=pl.UInt32), max_hops=6).sort("id")
    assert hops.rows() == [(0, 2), (1, 1), (2, 0)]
    assert hop_distances(edges, pl.Series([2], dtype=pl.UInt32), max_hops=1).height == 2


def test_written_table_and_bad_requests(tmp_path, mule_chain):
    layout = DataLayout(tmp_path)
    frame = mule_chain.collect()
    for (day,), part in frame.partition_by("date", as_dict=True, include_key=False).items():
        write_parquet_atomic(part, layout.partition(layout.transactions, day))
    path = write_graph_features(tmp_path, AS_OF)
    assert path == tmp_path / "features" / "graph" / f"date={AS_OF}" / "part-0.parquet"
    written = pl.read_parquet(path)
    assert dict(written.schema) == FEATURE_SCHEMA
    assert written.get_column("date").unique().to_list() == [AS_OF]
    assert written.equals(graph_features_as_of(tmp_path, AS_OF))
    assert graph_features_as_of(tmp_path, "2026-03-01").height == 0  # nothing happened before the first day
    with pytest.raises(GraphFeatureError, match="not a date"):
        graph_features_as_of(tmp_path, "5 March")
    with pytest.raises(GraphFeatureError, match="no processed transactions"):
        graph_features_as_of(tmp_path / "empty", AS_OF)
