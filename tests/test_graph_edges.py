"""The graph's node and relationship tables (Polars), the import files and the Cypher they feed."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from finrisk.schema import TRANSACTION_SCHEMA
from graph_loaders import cypher
from graph_loaders.around import browser_query, cypher_string
from graph_loaders.bulk_import import import_arguments, importer_seconds, write_import_files
from graph_loaders.edges import GraphInputError, graph_frames
from graph_loaders.incremental import day_frames, split_by_start
from graph_loaders.model import RELATIONSHIPS, end_key, start_key

T0 = datetime(2026, 3, 1, 4, 30, tzinfo=timezone.utc)  # 10:00 IST


def tx(rows: list[dict]) -> pl.LazyFrame:
    """Canonical transactions from a few fields per row; the rest null, date from the IST clock."""
    defaults = {"status": "SUCCESS", "direction": "DEBIT", "amount_paise": 100_00}
    frame = pl.DataFrame([{**defaults, **r} for r in rows], infer_schema_length=None)
    for name, dtype in TRANSACTION_SCHEMA.items():
        frame = frame.with_columns(
            (pl.col(name) if name in frame.columns else pl.lit(None)).cast(dtype).alias(name)
        )
    return frame.select(list(TRANSACTION_SCHEMA)).with_columns(
        pl.col("ts").dt.convert_time_zone("Asia/Kolkata").dt.date().cast(pl.String).alias("date")
    ).lazy()


def rows(frame: pl.DataFrame) -> list[dict]:
    return frame.to_dicts()


def test_payments_are_aggregated_with_failed_attempts_counted_but_not_their_money():
    g = graph_frames(tx([
        {"txn_id": "a", "customer_id": "C1", "counterparty": "M1", "counterparty_type": "MERCHANT", "mcc": "5411",
         "ts": T0, "amount_paise": 250_00},
        {"txn_id": "b", "customer_id": "C1", "counterparty": "M1", "counterparty_type": "MERCHANT", "mcc": "5411",
         "ts": T0 + timedelta(days=2), "amount_paise": 999_00, "status": "FAILED"},
        {"txn_id": "c", "customer_id": "C1", "counterparty": "M1", "counterparty_type": "MERCHANT", "mcc": "5411",
         "ts": T0 + timedelta(days=1), "amount_paise": 100_01},
        {"txn_id": "d", "customer_id": "C2", "counterparty": "M1", "counterparty_type": "MERCHANT", "mcc": "5411",
         "ts": T0, "amount_paise": 5_00},
    ]))
    assert rows(g.rels["paid"]) == [
        {"customer_id": "C1", "merchant_id": "M1", "count": 3, "failed_count": 1, "total_paise": 350_01,
         "first": T0, "last": T0 + timedelta(days=2)},
        {"customer_id": "C2", "merchant_id": "M1", "count": 1, "failed_count": 0, "total_paise": 5_00,
         "first": T0, "last": T0},
    ]
    assert rows(g.nodes["Merchant"]) == [{"merchant_id": "M1", "mcc": "5411"}]
    assert g.nodes["Customer"].get_column("customer_id").to_list() == ["C1", "C2"]


def test_transfers_go_through_vpas_and_a_credit_mirroring_our_own_debit_is_not_counted_twice():
    g = graph_frames(tx([
        # C1 (VPA v1) pays v2, which C2 owns; C2's bank row is the CREDIT mirror of the same money.
        {"txn_id": "a", "customer_id": "C1", "payer_vpa": "v1", "counterparty": "v2", "counterparty_type": "P2P",
         "ts": T0, "amount_paise": 700_00, "channel": "UPI"},
        {"txn_id": "a2", "customer_id": "C2", "payer_vpa": "v1", "counterparty": "v1", "counterparty_type": "P2P",
         "direction": "CREDIT", "ts": T0, "amount_paise": 700_00},
        # C2 spends through its own VPA v2: that is how we learn v2 is C2's.
        {"txn_id": "b", "customer_id": "C2", "payer_vpa": "v2", "counterparty": "M1", "counterparty_type": "MERCHANT",
         "ts": T0 - timedelta(days=1)},
        # Money in from an outside VPA, and from a VPA that only became a customer's later on.
        {"txn_id": "c", "customer_id": "C1", "payer_vpa": "x9", "counterparty": "x9", "counterparty_type": "P2P",
         "direction": "CREDIT", "ts": T0, "amount_paise": 40_00},
        {"txn_id": "d", "customer_id": "C1", "payer_vpa": "v3", "counterparty": "v3", "counterparty_type": "P2P",
         "direction": "CREDIT", "ts": T0, "amount_paise": 60_00},
        {"txn_id": "e", "customer_id": "C3", "payer_vpa": "v3", "counterparty": "M1", "counterparty_type": "MERCHANT",
         "ts": T0 + timedelta(days=3)},
    ]))
    out = g.rels["transferred_to_vpa"].select("customer_id", "vpa", "count", "total_paise")
    assert rows(out) == [{"customer_id": "C1", "vpa": "v2", "count": 1, "total_paise": 700_00}]
    incoming = g.rels["transferred_from_vpa"].select("vpa", "customer_id", "total_paise")
    assert rows(incoming) == [
        {"vpa": "v3", "customer_id": "C1", "total_paise": 60_00},
        {"vpa": "x9", "customer_id": "C1", "total_paise": 40_00},
    ]
    owned = g.rels["owns_vpa"].select("customer_id", "vpa")
    assert rows(owned) == [{"customer_id": "C1", "vpa": "v1"}, {"customer_id": "C2", "vpa": "v2"},
                           {"customer_id": "C3", "vpa": "v3"}]
    assert sorted(g.nodes["VPA"].get_column("vpa")) == ["v1", "v2", "v3", "x9"]


def test_home_city_is_the_most_frequent_and_merchants_need_a_strict_majority():
    def pay(i, customer, merchant, city, state="S"):
        return {"txn_id": f"t{i}", "customer_id": customer, "counterparty": merchant,
                "counterparty_type": "MERCHANT", "ts": T0 + timedelta(hours=i), "city": city, "state": state}

    g = graph_frames(tx([
        pay(1, "C1", "SHOP", "Pune"), pay(2, "C1", "SHOP", "Pune"), pay(3, "C1", "ONLINE", "Delhi"),
        pay(4, "C2", "ONLINE", "Agra"), pay(5, "C2", "SHOP", "Pune"),  # a tie: the smaller city_id wins
        pay(6, "C3", "ONLINE", "Mumbai"),
    ]))
    assert rows(g.rels["customer_city"]) == [
        {"customer_id": "C1", "city_id": "Pune, S", "txn_count": 2},
        {"customer_id": "C2", "city_id": "Agra, S", "txn_count": 1},
        {"customer_id": "C3", "city_id": "Mumbai, S", "txn_count": 1},
    ]
    # SHOP: 3 of 3 payments in Pune. ONLINE: 1 of 3 in each city, no majority, so no city.
    assert rows(g.rels["merchant_city"]) == [{"merchant_id": "SHOP", "city_id": "Pune, S", "txn_count": 3}]
    assert {"city_id": "Pune, S", "name": "Pune", "state": "S"} in rows(g.nodes["City"])


def test_devices_accounts_and_missing_columns():
    g = graph_frames(tx([
        {"txn_id": "a", "customer_id": "C1", "device_id": "D1", "account_id": "A1", "ifsc": "SBIN0000001", "ts": T0},
        {"txn_id": "b", "customer_id": "C1", "device_id": "D1", "account_id": "A1", "ts": T0 + timedelta(hours=5)},
        {"txn_id": "c", "customer_id": "C2", "device_id": "D1", "ts": T0},
    ]))
    assert rows(g.rels["uses"].select("customer_id", "device_id", "count")) == [
        {"customer_id": "C1", "device_id": "D1", "count": 2}, {"customer_id": "C2", "device_id": "D1", "count": 1},
    ]
    assert rows(g.nodes["Account"]) == [{"account_id": "A1", "ifsc": "SBIN0000001"}]
    assert rows(g.rels["owns_account"]) == [
        {"customer_id": "C1", "account_id": "A1", "first_seen": T0, "last_seen": T0 + timedelta(hours=5)}
    ]
    with pytest.raises(GraphInputError, match="payer_vpa"):
        graph_frames(tx([{"txn_id": "a", "customer_id": "C1", "ts": T0}]).drop("payer_vpa"))


def test_a_day_upserts_exactly_the_full_aggregates_of_the_relationships_it_touches():
    history = tx([
        {"txn_id": f"t{i}", "customer_id": f"C{i % 3}", "counterparty": f"M{i % 4}", "counterparty_type": "MERCHANT",
         "device_id": f"D{i % 2}", "payer_vpa": f"v{i % 3}", "ts": T0 + timedelta(hours=7 * i), "city": "Pune",
         "state": "MH", "amount_paise": 1000 + i}
        for i in range(30)
    ])
    full = graph_frames(history)
    last_day = history.select(pl.col("date").max()).collect().item()
    touched = day_frames(history, [last_day]).graph
    on_day = history.filter(pl.col("date") == last_day).collect()
    for spec in RELATIONSHIPS:
        keys = [start_key(spec), end_key(spec)]
        got = touched.rels[spec.name]
        # Same aggregates as a full rebuild, row for row.
        assert got.join(full.rels[spec.name], on=got.columns, how="anti").height == 0, spec.name
        if spec.name == "paid":
            assert sorted(got.select(keys).rows()) == sorted(
                on_day.select("customer_id", "counterparty").unique().rows()
            )
    assert touched.rels["paid"].height < full.rels["paid"].height


def test_split_by_start_never_cuts_through_one_start_node():
    frame = pl.DataFrame({"start": ["a"] * 5 + ["b"] * 1 + ["c"] * 4, "v": range(10)})
    pieces = split_by_start(frame, 3)
    assert sum(p.height for p in pieces) == 10
    starts = [set(p.get_column("start")) for p in pieces]
    assert all(a.isdisjoint(b) for i, a in enumerate(starts) for b in starts[i + 1:])
    assert split_by_start(frame, 1) == [frame]


def test_cypher_parameters_are_columns_with_epoch_microseconds():
    frame = pl.DataFrame({"customer_id": ["C1"], "merchant_id": ["M1"], "first": [T0]})
    params = cypher.to_parameters(frame, {"customer_id": "start", "merchant_id": "end"})
    assert params == {"start": ["C1"], "end": ["M1"], "first": [int(T0.timestamp() * 1_000_000)]}
    query = cypher.merge_relationships(RELATIONSHIPS[0])
    assert "MERGE (a)-[r:PAID]->(b)" in query and "$start[i]" in query and "datetime.fromepoch($first[i]" in query
    update = cypher.update_relationships(RELATIONSHIPS[0])
    assert "MERGE" not in update and "OPTIONAL MATCH (a)-[r:PAID]->(b)" in update and "collect(i) AS missing" in update


def test_import_files_are_parquet_with_store_ids_and_utc_instants(tmp_path):
    g = graph_frames(tx([
        {"txn_id": "a", "customer_id": "C1", "counterparty": "M1", "counterparty_type": "MERCHANT", "mcc": "5411",
         "ts": T0 + timedelta(microseconds=123456), "city": "Pune", "state": "MH"},
        {"txn_id": "b", "customer_id": "C2", "counterparty": "M1", "counterparty_type": "MERCHANT", "mcc": "5411",
         "ts": T0, "city": "Pune", "state": "MH"},
    ]))
    files = write_import_files(g, tmp_path / "import", {"2026-03-01": 2})
    nodes = {label: pl.read_parquet(path) for label, path in files.nodes}
    # Store ids: one range per label, together 0..n-1, so no two nodes share one.
    all_ids = sorted(i for frame in nodes.values() for i in frame.get_column(":ID").to_list())
    assert all_ids == list(range(files.node_rows))
    assert nodes["Customer"].columns == [":ID", "customer_id"]
    assert nodes["City"].select("city_id", "name", "state").rows() == [("Pune, MH", "Pune", "MH")]
    assert nodes["LoadedDay"].select("date", "rows").rows() == [("2026-03-01", 2)]
    paid = pl.read_parquet(tmp_path / "import" / "paid.parquet")
    assert paid.columns == [":START_ID", ":END_ID", "count", "failed_count", "total_paise", "first", "last"]
    assert paid.schema["first"] == pl.Datetime("us", "UTC") and paid.schema["count"] == pl.Int64
    ids = {label: dict(frame.select(frame.columns[1], ":ID").rows()) for label, frame in nodes.items()}
    assert paid.sort(":START_ID").rows() == [
        (ids["Customer"]["C1"], ids["Merchant"]["M1"], 1, 0, 10000, T0 + timedelta(microseconds=123456),
         T0 + timedelta(microseconds=123456)),
        (ids["Customer"]["C2"], ids["Merchant"]["M1"], 1, 0, 10000, T0, T0),
    ]
    assert files.relationship_rows == g.rel_count()
    args = import_arguments(files, "neo4j-staging")
    assert args[:4] == ["database", "import", "full", "neo4j-staging"]  # the name before the repeatable options
    assert {"--input-type=parquet", "--id-type=actual"} <= set(args)
    assert f"--relationships=PAID={tmp_path / 'import' / 'paid.parquet'}" in args


def test_importer_time_and_browser_query_quoting():
    assert importer_seconds("...\nIMPORT DONE in 1m 2s 5ms. \nImported:") == pytest.approx(62.005)
    assert importer_seconds("no summary") is None
    assert cypher_string("it's \\ odd") == "'it\\'s \\\\ odd'"
    query = browser_query("C'1", {"counterparty_type": "MERCHANT", "counterparty": "M9"})
    assert query.startswith("MATCH (c:Customer {customer_id: 'C\\'1'})")
    assert "(:Merchant {merchant_id: 'M9'})" in query
