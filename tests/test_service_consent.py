"""Consent and erasure in the scoring service: the real app on real files; consent recorded and a
customer erased by the real privacy code while the service runs, as another process would."""
from __future__ import annotations

import os
import shutil
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest
from fastapi.testclient import TestClient

from finrisk.consent import record_consent
from finrisk.io import DataLayout
from scoring_support import API_KEY, DAY, request_bodies, scoring_dataset, settings  # noqa: F401
from service.app import create_app
from service.journal import Journal

KEY = {"X-API-Key": API_KEY}
PURPOSE = "fraud_detection"


@pytest.fixture()
def consent_data(scoring_dataset, tmp_path):
    """A data dir sharing the dataset's transactions, labels and twins, with its own consent table."""
    data = tmp_path / "data"
    (data / "processed").mkdir(parents=True)
    for name in ("transactions", "labels", "twins"):
        os.symlink(scoring_dataset.data / "processed" / name, data / "processed" / name)
    return data


def _busy_customers(rows: pl.DataFrame, n: int) -> list[str]:
    counts = rows.group_by("customer_id").len().filter(pl.col("len") >= 3).sort("len", "customer_id", descending=[True, False])
    return counts.get_column("customer_id").head(n).to_list()


def _record(data, customer: str, action: str) -> None:
    record_consent(DataLayout(data), customer, PURPOSE, action, datetime.now(timezone.utc) - timedelta(seconds=1), "test")


def _assert_not_processed(result: dict) -> None:
    assert result["decision"] == "not_processed"
    assert result["score"] is None and result["anomaly_score"] is None and result["model_version"] is None
    assert result["reasons"] == [] and result["duplicate"] is False


def test_a_withdrawn_customer_is_not_processed_until_consent_is_given_again(consent_data, scoring_dataset):
    rows = scoring_dataset.day_rows
    withdrawn, other = _busy_customers(rows, 2)
    mine = request_bodies(rows.filter(pl.col("customer_id") == withdrawn))
    theirs = request_bodies(rows.filter(pl.col("customer_id") == other))
    app = create_app(settings(), consent_data, watch=False)
    with TestClient(app) as client:
        first = client.post("/v1/score", json=mine[0], headers=KEY).json()
        assert first["decision"] in ("allow", "review", "block")
        assert client.post("/v1/score", json=theirs[0], headers=KEY).json()["decision"] != "not_processed"
        assert client.get(f"/v1/customers/{withdrawn}/twin", headers=KEY).status_code == 200

        _record(consent_data, withdrawn, "withdraw")  # as `finrisk consent withdraw` in another process
        _assert_not_processed(client.post("/v1/score", json=mine[1], headers=KEY).json())
        _assert_not_processed(client.post("/v1/score", json=mine[0], headers=KEY).json())  # not its earlier result
        mixed = client.post("/v1/score/batch", json={"transactions": [mine[2], theirs[1]]}, headers=KEY)
        assert mixed.status_code == 200, mixed.text
        refused, scored = mixed.json()["results"]
        _assert_not_processed(refused)
        assert scored["txn_id"] == theirs[1]["txn_id"] and scored["decision"] != "not_processed"
        assert scored["score"] is not None and scored["model_version"] == scoring_dataset.version
        twin = client.get(f"/v1/customers/{withdrawn}/twin", headers=KEY)
        assert twin.status_code == 404 and "not processed" in twin.json()["detail"]
        assert "profile" not in twin.json()
        # Nothing of the refused transactions is kept, and the earlier one no longer counts for anyone.
        journal = Journal(consent_data, DAY).replay()
        assert set(journal.get_column("txn_id")) == {mine[0]["txn_id"], theirs[0]["txn_id"], theirs[1]["txn_id"]}
        assert client.get("/readyz").json()["scored_today"] == 3
        assert app.state.engine.book.hidden == {withdrawn}

        _record(consent_data, withdrawn, "grant")
        again = client.post("/v1/score", json=mine[1], headers=KEY).json()
        assert again["decision"] in ("allow", "review", "block") and again["score"] is not None
        assert app.state.engine.book.hidden == set()
        assert client.get(f"/v1/customers/{withdrawn}/twin", headers=KEY).status_code == 200


def test_with_consent_required_only_granted_customers_are_scored(consent_data, scoring_dataset):
    rows = scoring_dataset.day_rows
    granted, silent = _busy_customers(rows, 2)
    bodies = request_bodies(rows.filter(pl.col("customer_id").is_in([granted, silent])).head(6))
    with TestClient(create_app(settings(consent_required=True), consent_data, watch=False)) as client:
        before = client.post("/v1/score/batch", json={"transactions": bodies}, headers=KEY).json()["results"]
        assert {r["decision"] for r in before} == {"not_processed"}
        _record(consent_data, granted, "grant")
        after = client.post("/v1/score/batch", json={"transactions": bodies}, headers=KEY).json()["results"]
    owners = {b["txn_id"]: b["customer_id"] for b in bodies}
    for result in after:
        if owners[result["txn_id"]] == granted:
            assert result["decision"] != "not_processed" and result["score"] is not None
        else:
            _assert_not_processed(result)


@pytest.fixture()
def own_data(scoring_dataset, tmp_path):
    """A private copy of the processed data and the twin: the erasure rewrites them."""
    data = tmp_path / "data"
    for name in ("transactions", "labels", "twins"):
        shutil.copytree(scoring_dataset.data / "processed" / name, data / "processed" / name)
    return data


def test_an_erased_customer_is_dropped_from_the_running_service(own_data, scoring_dataset):
    from finrisk.erasure import erase_customer

    rows = scoring_dataset.day_rows
    erased = _busy_customers(rows, 1)[0]
    mine = rows.filter(pl.col("customer_id") == erased)
    others = rows.filter(pl.col("customer_id") != erased).head(40)
    app = create_app(settings(), own_data, watch=False)
    engine = app.state.engine
    with TestClient(app) as client:
        sent = request_bodies(pl.concat([others, mine.head(2)]).sort("ts", "txn_id"))
        assert client.post("/v1/score/batch", json={"transactions": sent}, headers=KEY).status_code == 200
        assert client.get(f"/v1/customers/{erased}/twin", headers=KEY).status_code == 200
        assert engine.book.twin.profiles.filter(pl.col("customer_id") == erased).height == 1

        key = settings().require_pseudonym_key()
        certificate = erase_customer(own_data, erased, key, raw_dirs=[], driver=None)  # scrubs the journal too
        assert certificate.complete, certificate.residual
        assert erased.encode() not in Journal(own_data, DAY).path.read_bytes()

        _assert_not_processed(client.post("/v1/score", json=request_bodies(mine.slice(2, 1))[0], headers=KEY).json())
        twin = client.get(f"/v1/customers/{erased}/twin", headers=KEY)
        assert twin.status_code == 404 and "profile" not in twin.json()
        # The in-memory state was loaded again from the rewritten twin and journal: nothing of theirs.
        book = engine.book
        for table in (book.twin.profiles, book.twin.recent, book.twin.counterparties, book.twin.devices):
            assert table.filter(pl.col("customer_id") == erased).height == 0
        assert erased not in {r["customer_id"] for r in book.records} and erased not in book.state.codes.customers.index
        assert len(book.results) == others.height
        assert client.get("/readyz").json()["scored_today"] == others.height
        retry = client.post("/v1/score", json=request_bodies(others.head(1))[0], headers=KEY).json()
        assert retry["duplicate"] is True  # the other customers' day survived the reload
        fresh = client.post("/v1/score", json=request_bodies(rows.filter(pl.col("customer_id") != erased).slice(40, 1))[0],
                            headers=KEY).json()
        assert fresh["decision"] != "not_processed" and fresh["duplicate"] is False
    assert erased.encode() not in Journal(own_data, DAY).path.read_bytes()  # appended after the erasure: not theirs


def test_an_erasure_register_without_the_key_stops_scoring(own_data, scoring_dataset, monkeypatch):
    from finrisk.erasure import REGISTER_SCHEMA, register_path
    from finrisk.io import write_parquet_atomic

    body = request_bodies(scoring_dataset.day_rows.head(1))[0]
    with TestClient(create_app(settings(pseudonym_key=None), own_data, watch=False)) as client:
        assert client.post("/v1/score", json=body, headers=KEY).status_code == 200
        register = pl.DataFrame({"subject_ref": ["subj_" + "0" * 32], "erased_at": [datetime.now(timezone.utc)],
                                 "certificate_id": ["c1"]}, schema=REGISTER_SCHEMA)
        write_parquet_atomic(register, register_path(DataLayout(own_data)))
        refused = client.post("/v1/score", json={**body, "txn_id": "T-after-register"}, headers=KEY)
        assert refused.status_code == 503 and "FINRISK_PSEUDONYM_KEY" in refused.json()["detail"]


def test_the_journal_follows_a_file_rewritten_under_it(tmp_path, scoring_dataset):
    from service.scoring import RESULT_SCHEMA, TRANSACTION_FIELDS

    day = scoring_dataset.day_rows.head(3)
    rows = day.select(
        pl.col(c) if c in day.columns else pl.lit(None, t).alias(c) for c, t in TRANSACTION_FIELDS.items()
    ).with_columns(
        pl.lit(0.5).alias("score"), pl.lit(0.5).alias("anomaly_score"), pl.lit("review").alias("decision"),
        pl.lit(["r"]).alias("reasons"), pl.lit(1, pl.Int64).alias("model_version"),
    ).select(*TRANSACTION_FIELDS, *RESULT_SCHEMA)
    journal = Journal(tmp_path, DAY)
    journal.append(rows.head(2))
    rewritten = journal.path.with_name("rewritten.tmp")
    rewritten.write_bytes(journal.path.read_bytes().split(b"\n", 1)[1])  # as an erasure does: a new file, renamed in
    os.replace(rewritten, journal.path)
    journal.append(rows.slice(2, 1))
    journal.close()
    assert Journal(tmp_path, DAY).replay().get_column("txn_id").to_list() == rows.get_column("txn_id").slice(1).to_list()


def test_a_withdrawn_customers_rows_no_longer_count_for_anyone(consent_data, scoring_dataset):
    """After a withdrawal, the next transactions' features are the families' own over the day
    without the withdrawn customer's rows (as the batch path would compute them)."""
    from features.online import online_features
    from features.twin import read_twin
    from test_online_parity import assert_same_features

    rows = scoring_dataset.day_rows
    first, after = rows.head(200), rows.slice(200, 100)
    shared = first.join(after, on="counterparty", suffix="_later").filter(pl.col("customer_id") != pl.col("customer_id_later"))
    withdrawn = shared.sort("customer_id").get_column("customer_id")[0]  # paid a counterparty others pay later
    app = create_app(settings(), consent_data, watch=False)
    with TestClient(app):
        engine = app.state.engine
        engine.score(first)
        _record(consent_data, withdrawn, "withdraw")
        kept = after.filter(pl.col("customer_id") != withdrawn)
        served = engine.score(kept, with_features=True)
    twin = read_twin(consent_data, DAY)
    day_without = pl.concat([first, kept]).filter(pl.col("customer_id") != withdrawn)
    expected = online_features(twin, day_without, kept.get_column("txn_id").to_list())
    assert_same_features(expected, served.drop(list(served.columns[1:7])))
    with_them = online_features(twin, pl.concat([first, kept]), kept.get_column("txn_id").to_list())
    assert not with_them.equals(expected)  # the withdrawn customer's rows did matter to someone
