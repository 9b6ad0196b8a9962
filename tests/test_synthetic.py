"""Tests for finrisk.synthetic: real files in tmp_path, read back with Polars."""
from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from finrisk.synthetic import (
    CUSTOMER_COLUMNS,
    FRAUD_TYPES,
    LABEL_COLUMNS,
    MERCHANT_COLUMNS,
    TRANSACTION_COLUMNS,
    GenerateSummary,
    generate,
)

SMALL = dict(customers=300, days=20, seed=11, start=date(2026, 1, 1))

CHANNELS = {"UPI", "IMPS", "NEFT", "RTGS", "CARD_POS", "CARD_ECOM", "ATM", "NETBANKING", "WALLET"}
CP_TYPES = {"MERCHANT", "P2P", "ATM", "SALARY"}
VPA = r"^[a-z0-9][a-z0-9.\-]*@[a-z]+$"


def _read(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False)


def _txns(out: Path) -> pl.DataFrame:
    return pl.read_csv(out / "transactions" / "*.csv", infer_schema=False)


def _digest(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*.csv"))}


def _all_match(s: pl.Series, pattern: str) -> bool:
    return bool(s.str.contains(pattern).all()) and s.null_count() == 0


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, GenerateSummary]:
    out = tmp_path_factory.mktemp("small")
    return out, generate(out, **SMALL)


@pytest.fixture(scope="module")
def default(tmp_path_factory) -> tuple[Path, GenerateSummary]:
    out = tmp_path_factory.mktemp("default")
    return out, generate(out)


def test_same_seed_gives_identical_bytes_and_other_seed_differs(small, tmp_path):
    out, _ = small
    again = generate(tmp_path / "again", **SMALL)
    assert _digest(tmp_path / "again") == _digest(out)
    assert again.transactions == small[1].transactions
    generate(tmp_path / "other", **{**SMALL, "seed": 12})
    other, first = _digest(tmp_path / "other"), _digest(out)
    assert other["customers.csv"] != first["customers.csv"]
    assert other["labels.csv"] != first["labels.csv"]
    assert other["transactions/txns_2026-01-05.csv"] != first["transactions/txns_2026-01-05.csv"]


def test_layout_and_headers(small):
    out, summary = small
    assert summary.start == date(2026, 1, 1) and summary.end == date(2026, 1, 20)
    assert summary.out_dir == out
    names = sorted(p.name for p in (out / "transactions").iterdir())
    assert names == [f"txns_{date(2026, 1, 1) + timedelta(days=i)}.csv" for i in range(20)]
    assert tuple(_read(out / "customers.csv").columns) == CUSTOMER_COLUMNS
    assert tuple(_read(out / "merchants.csv").columns) == MERCHANT_COLUMNS
    assert tuple(_read(out / "labels.csv").columns) == LABEL_COLUMNS
    for name in names:
        assert tuple(_read(out / "transactions" / name).columns) == TRANSACTION_COLUMNS
    raw = (out / "transactions" / names[3]).read_bytes()
    raw.decode("utf-8")
    assert b'"' not in raw and b"\r" not in raw


def test_customer_formats(small):
    out, summary = small
    cu = _read(out / "customers.csv")
    assert cu.height == summary.customers == 300
    assert _all_match(cu["customer_id"], r"^C\d{7}$") and cu["customer_id"].is_unique().all()
    assert _all_match(cu["full_name"], r"^[A-Z][a-z]+ [A-Z][a-z]+$")
    assert _all_match(cu["mobile"], r"^[6-9]\d{9}$") and cu["mobile"].is_unique().all()
    assert _all_match(cu["email"], r"^[a-z.]+\d+@[a-z.]+\.[a-z]+$") and cu["email"].is_unique().all()
    assert _all_match(cu["pan"], r"^[A-Z]{3}P[A-Z]\d{4}[A-Z]$") and cu["pan"].is_unique().all()
    # PAN's fifth letter is the surname's initial
    assert (cu["pan"].str.slice(4, 1) == cu["full_name"].str.split(" ").list.last().str.slice(0, 1)).all()
    assert _all_match(cu["aadhaar"], r"^[2-9]\d{11}$") and cu["aadhaar"].is_unique().all()
    assert all(_verhoeff_ok(a) for a in cu["aadhaar"].to_list())
    assert _all_match(cu["date_of_birth"], r"^\d{4}-\d{2}-\d{2}$")
    assert set(cu["kyc_level"]) <= {"MIN", "FULL"}
    assert set(cu["segment"]) <= {"salaried", "self_employed", "student", "retired"}
    assert _all_match(cu["home_pincode"], r"^[1-8]\d{5}$")
    assert _all_match(cu["account_number"], r"^[1-9]\d{10,15}$") and cu["account_number"].is_unique().all()
    assert _all_match(cu["ifsc"], r"^[A-Z]{4}0[A-Z0-9]{6}$")
    assert _all_match(cu["vpa"], VPA) and cu["vpa"].is_unique().all()
    dob = cu["date_of_birth"].str.to_date()
    onboarded = cu["onboarded_on"].str.to_date()
    assert (onboarded < date(2026, 1, 1)).all()
    assert ((onboarded - dob).dt.total_days() >= 18 * 365).all()


def _verhoeff_ok(number: str) -> bool:
    d = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 0, 6, 7, 8, 9, 5], [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
         [3, 4, 0, 1, 2, 8, 9, 5, 6, 7], [4, 0, 1, 2, 3, 9, 5, 6, 7, 8], [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
         [6, 5, 9, 8, 7, 1, 0, 4, 3, 2], [7, 6, 5, 9, 8, 2, 1, 0, 4, 3], [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
         [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]]
    p = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 5, 7, 6, 2, 8, 3, 0, 9, 4], [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
         [8, 9, 1, 6, 0, 4, 3, 5, 2, 7], [9, 4, 5, 3, 1, 2, 6, 8, 7, 0], [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
         [2, 7, 9, 3, 8, 0, 6, 4, 1, 5], [7, 0, 4, 6, 9, 1, 3, 2, 5, 8]]
    c = 0
    for i, ch in enumerate(reversed(number)):
        c = d[c][p[i % 8][int(ch)]]
    return c == 0


def test_merchant_formats(small):
    out, summary = small
    me = _read(out / "merchants.csv")
    assert me.height == summary.merchants >= 50
    assert _all_match(me["merchant_id"], r"^M\d{6}$") and me["merchant_id"].is_unique().all()
    assert _all_match(me["mcc"], r"^\d{4}$")
    assert {"5411", "5812", "5541", "6011", "4814", "5732", "5944"} <= set(me["mcc"])
    assert _all_match(me["pincode"], r"^[1-8]\d{5}$")
    assert _all_match(me["terminal_id"], r"^[A-Z]{2}\d{6}$") and me["terminal_id"].is_unique().all()
    atm = me["mcc"] == "6011"
    assert me.filter(atm)["vpa"].null_count() == atm.sum()  # ATMs have no VPA
    vpas = me.filter(~atm)["vpa"]
    assert _all_match(vpas, VPA) and vpas.is_unique().all()


def test_transaction_formats(small):
    out, _ = small
    tx = _txns(out)
    assert _all_match(tx["txn_ref"], r"^T\d{12}$")
    assert tx["txn_ref"].is_unique().all()
    assert _all_match(tx["txn_time"], r"^2026-01-\d{2} \d{2}:\d{2}:\d{2}$")
    assert _all_match(tx["amount_inr"], r"^\d+\.\d{2}$")
    assert (tx["amount_inr"].cast(pl.Float64) > 0).all()
    assert set(tx["channel"]) <= CHANNELS and CHANNELS - {"RTGS"} <= set(tx["channel"])
    assert set(tx["counterparty_type"]) == CP_TYPES
    assert set(tx["direction"]) == {"DEBIT", "CREDIT"}
    assert set(tx["status"]) == {"SUCCESS", "FAILED"}
    failed = (tx["status"] == "FAILED").mean()
    assert 0.005 < failed < 0.04
    assert _all_match(tx["customer_id"], r"^C\d{7}$")
    assert _all_match(tx["mobile"], r"^[6-9]\d{9}$")
    assert _all_match(tx["ifsc"], r"^[A-Z]{4}0[A-Z0-9]{6}$")
    assert _all_match(tx["pincode"], r"^[1-8]\d{5}$")
    assert _all_match(tx["latitude"], r"^\d{1,2}\.\d{4}$") and _all_match(tx["longitude"], r"^\d{2}\.\d{4}$")
    lat, lon = tx["latitude"].cast(pl.Float64), tx["longitude"].cast(pl.Float64)
    assert lat.is_between(6, 37).all() and lon.is_between(68, 98).all()
    assert _all_match(tx["device_id"].drop_nulls(), r"^D[0-9a-f]{12}$")
    assert _all_match(tx["ip_address"].drop_nulls(), r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$")
    octets = tx["ip_address"].drop_nulls().str.split(".").explode().cast(pl.Int32)
    assert octets.is_between(0, 255).all()
    # devices and IPs appear together, only on debits the customer made through a digital channel
    assert (tx["device_id"].is_null() == tx["ip_address"].is_null()).all()
    no_device = tx.filter(pl.col("channel").is_in(["CARD_POS", "ATM"]) | (pl.col("direction") == "CREDIT"))
    assert no_device["device_id"].null_count() == no_device.height
    digital_debits = tx.filter(~pl.col("channel").is_in(["CARD_POS", "ATM"]) & (pl.col("direction") == "DEBIT"))
    assert digital_debits["device_id"].null_count() == 0
    # counterparty and mcc by type
    by = {k: tx.filter(pl.col("counterparty_type") == k) for k in CP_TYPES}
    assert _all_match(by["MERCHANT"]["counterparty_id"], r"^M\d{6}$")
    assert _all_match(by["MERCHANT"]["mcc"], r"^\d{4}$") and "6011" not in set(by["MERCHANT"]["mcc"])
    assert _all_match(by["ATM"]["counterparty_id"], r"^[A-Z]{2}\d{6}$")
    assert set(by["ATM"]["mcc"]) == {"6011"} and set(by["ATM"]["channel"]) == {"ATM"}
    assert _all_match(by["P2P"]["counterparty_id"], VPA) and by["P2P"]["mcc"].null_count() == by["P2P"].height
    assert _all_match(by["SALARY"]["counterparty_id"], r"^E\d{6}$")
    assert set(by["SALARY"]["direction"]) == {"CREDIT"} and set(by["SALARY"]["channel"]) == {"NEFT"}
    assert by["SALARY"]["mcc"].null_count() == by["SALARY"].height
    # ATM cash in multiples of 100, channel limits
    atm_amt = by["ATM"]["amount_inr"].cast(pl.Float64)
    assert (atm_amt % 100 == 0).all()
    amt = tx["amount_inr"].cast(pl.Float64)
    assert (amt.filter(tx["channel"] == "RTGS") >= 200_000).all()
    assert (amt.filter(tx["channel"] == "UPI") <= 100_000).all()
    # payer_vpa: the customer's own VPA on debits, the sender's on P2P credits, empty on salary
    cu = _read(out / "customers.csv").select("customer_id", own_vpa="vpa")
    j = tx.join(cu, on="customer_id", how="left")
    debit = j.filter(pl.col("direction") == "DEBIT")
    assert (debit["payer_vpa"] == debit["own_vpa"]).all()
    p2p_credit = j.filter((pl.col("direction") == "CREDIT") & (pl.col("counterparty_type") == "P2P"))
    assert (p2p_credit["payer_vpa"] == p2p_credit["counterparty_id"]).all()
    assert by["SALARY"]["payer_vpa"].null_count() == by["SALARY"].height
    # customer columns agree with customers.csv
    full = _read(out / "customers.csv")
    j = tx.select("customer_id", "account_number", "customer_name", "mobile", "ifsc").unique().join(
        full.select("customer_id", "account_number", pl.col("full_name").alias("customer_name"), "mobile", "ifsc"),
        on="customer_id", how="left", suffix="_c")
    for col in ("account_number", "customer_name", "mobile", "ifsc"):
        assert (j[col] == j[f"{col}_c"]).all()


def test_every_file_holds_only_its_day_in_time_order(small):
    out, _ = small
    for path in sorted((out / "transactions").glob("txns_*.csv")):
        day = path.stem.removeprefix("txns_")
        t = _read(path)["txn_time"]
        assert t.len() > 0
        assert (t.str.slice(0, 10) == day).all(), path.name
        assert t.is_sorted()


def test_p2p_credits_mirror_debits(small):
    out, _ = small
    tx = _txns(out)
    cu = _read(out / "customers.csv").select("customer_id", "vpa")
    vpas = set(cu["vpa"])
    keys = ["txn_time", "amount_inr", "channel", "payer", "payee"]
    p2p = tx.filter(pl.col("counterparty_type") == "P2P").join(cu, on="customer_id", how="left")
    debits = p2p.filter((pl.col("direction") == "DEBIT") & (pl.col("status") == "SUCCESS")
                        & pl.col("counterparty_id").is_in(list(vpas)))
    debits = debits.select("txn_time", "amount_inr", "channel", payer="vpa", payee="counterparty_id", ref="txn_ref")
    credits = p2p.filter(pl.col("direction") == "CREDIT").select(
        "txn_time", "amount_inr", "channel", payer="counterparty_id", payee="vpa", ref="txn_ref")
    assert credits.height > 100
    assert credits.height == debits.height
    assert set(p2p.filter(pl.col("direction") == "CREDIT")["status"]) == {"SUCCESS"}
    joined = debits.join(credits, on=keys, how="inner", suffix="_credit")
    assert joined.height == debits.height
    assert (joined["ref"] != joined["ref_credit"]).all()
    # failed transfers and payments to outside VPAs have no credit leg
    outside = p2p.filter((pl.col("direction") == "DEBIT") & ~pl.col("counterparty_id").is_in(list(vpas)))
    assert outside.height > 0
    assert not outside["counterparty_id"].is_in(list(credits["payer"])).any()


def test_labels_point_at_transactions_and_are_reported_later(small):
    out, summary = small
    tx = _txns(out).select("txn_ref", "txn_time")
    lab = _read(out / "labels.csv")
    assert lab.height == summary.fraud_transactions > 0
    assert lab["txn_ref"].is_unique().all()
    assert set(lab["label"]) == {"1"}
    assert set(lab["fraud_type"]) <= set(FRAUD_TYPES)
    assert _all_match(lab["reported_at"], r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+05:30$")
    j = lab.join(tx, on="txn_ref", how="left")
    assert j["txn_time"].null_count() == 0
    ist = "+05:30"
    reported = (j["reported_at"].str.to_datetime("%Y-%m-%dT%H:%M:%S%z"))
    happened = (j["txn_time"] + ist).str.to_datetime("%Y-%m-%d %H:%M:%S%z")
    delay = (reported - happened).dt.total_seconds()
    assert (delay > 0).all()
    assert delay.median() > 86_400  # several days, typically
    counts = lab["fraud_type"].value_counts()
    assert dict(zip(counts["fraud_type"], counts["count"])) == {k: v for k, v in summary.fraud_by_type.items() if v}


def test_default_size_volume_and_all_typologies(default):
    out, summary = default
    assert summary.customers == 2000 and summary.merchants == 100
    assert summary.start == date(2026, 1, 1) and summary.end == date(2026, 3, 1)
    assert summary.transactions >= 100_000
    assert set(summary.fraud_by_type) == set(FRAUD_TYPES)
    assert all(v > 0 for v in summary.fraud_by_type.values()), summary.fraud_by_type
    assert sum(summary.fraud_by_type.values()) == summary.fraud_transactions
    assert 0.004 < summary.fraud_transactions / summary.transactions < 0.012
    tx = _txns(out)
    assert tx.height == summary.transactions
    lab = _read(out / "labels.csv")
    assert set(lab["fraud_type"]) == set(FRAUD_TYPES)
    # some frauds are only reported after the last generated day
    last = datetime(2026, 3, 2).isoformat()
    assert (lab["reported_at"] > last).any()
    # average activity: 1.2-1.5 transactions per customer-day, with spread across customers
    per_day = tx.height / (2000 * 60)
    assert 1.1 < per_day < 1.6
    per_cust = tx.group_by("customer_id").len()["len"]
    assert per_cust.quantile(0.9) > 1.8 * per_cust.quantile(0.1)
    assert (tx["channel"] == "UPI").mean() > 0.5


def test_typologies_look_different(default):
    out, _ = default
    tx = _txns(out).join(_read(out / "labels.csv").select("txn_ref", "fraud_type"), on="txn_ref", how="left")
    tx = tx.with_columns(amount=pl.col("amount_inr").cast(pl.Float64),
                         hour=pl.col("txn_time").str.slice(11, 2).cast(pl.Int32))
    normal = tx.filter(pl.col("fraud_type").is_null())
    seen_devices = set(normal["device_id"].drop_nulls())
    f = {k: tx.filter(pl.col("fraud_type") == k) for k in FRAUD_TYPES}
    ato = f["account_takeover"]
    assert (ato["hour"] < 6).all() and set(ato["counterparty_type"]) == {"P2P"}
    assert not ato["device_id"].is_in(list(seen_devices)).any()
    assert ato["amount"].median() > 10 * normal["amount"].median()
    assert not ato["counterparty_id"].is_in(list(normal["counterparty_id"].drop_nulls())).any()
    ct = f["card_testing"]
    assert set(ct["channel"]) == {"CARD_ECOM"}
    assert (ct["amount"] <= 10).mean() > 0.7 and ct["amount"].max() >= 5000
    assert (ct["status"] == "FAILED").mean() > 0.2
    cm = f["compromised_merchant"]
    assert set(cm["channel"]) <= {"CARD_ECOM", "CARD_POS"}
    mule = f["mule_network"]
    assert {"P2P", "ATM"} <= set(mule["counterparty_type"])
    vb = f["velocity_burst"]
    per_hour = vb.with_columns(h=pl.col("txn_time").str.slice(0, 13)).group_by("customer_id", "h").len()
    assert per_hour["len"].max() >= 8
    assert set(vb["channel"]) == {"UPI"}


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        generate(tmp_path, customers=5)
    with pytest.raises(ValueError):
        generate(tmp_path, days=0)
