"""The scoring service, started in-process on real Parquet, a real twin and a real champion in MLflow."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient

from scoring_support import API_KEY, BLOCK, DAY, REVIEW, MODEL_NAME, batch_scores, request_bodies, scoring_dataset, settings, working_copy  # noqa: F401
from service.app import create_app
from service.journal import Journal
from service.scoring import decision_band
from test_online_parity import assert_same_features

KEY = {"X-API-Key": API_KEY}


@pytest.fixture()
def data_dir(scoring_dataset, tmp_path):
    return working_copy(scoring_dataset, tmp_path / "data")


def client_for(data_dir, watch: bool = False, **overrides) -> TestClient:
    return TestClient(create_app(settings(**overrides), data_dir, watch=watch))


def test_scoring_needs_a_valid_key(data_dir, scoring_dataset):
    body = request_bodies(scoring_dataset.day_rows.head(1))[0]
    with client_for(data_dir) as client:
        assert client.post("/v1/score", json=body).status_code == 401
        assert client.post("/v1/score", json=body, headers={"X-API-Key": API_KEY + "x"}).status_code == 401
        assert client.post("/v1/score", json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert client.get("/v1/customers/C1/twin").status_code == 401
        ok = client.post("/v1/score", json=body, headers={"Authorization": f"Bearer {API_KEY}"})
        assert ok.status_code == 200, ok.text
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/openapi.json").json()["paths"]["/v1/score"]["post"]


def test_the_service_refuses_to_start_without_keys(data_dir):
    from finrisk.config import ConfigError

    with pytest.raises(ConfigError, match="FINRISK_API_KEYS"):
        create_app(settings(api_keys=" , "), data_dir)


def test_scores_equal_the_batch_pipeline_also_across_a_restart(data_dir, scoring_dataset):
    """Singles then batches through one process, a restart in between, then the rest: every score
    equals the batch pipeline's (same features from the twin + the replayed journal)."""
    rows = scoring_dataset.day_rows
    bodies = request_bodies(rows)
    first, second = 40, rows.height // 2
    got = []
    with client_for(data_dir) as client:
        assert client.get("/readyz").json()["day"] == DAY.isoformat()
        for body in bodies[:first]:
            response = client.post("/v1/score", json=body, headers=KEY)
            assert response.status_code == 200, response.text
            got.append(response.json())
        for start in range(first, second, 250):
            response = client.post("/v1/score/batch", json={"transactions": bodies[start:min(start + 250, second)]}, headers=KEY)
            assert response.status_code == 200, response.text
            got.extend(response.json()["results"])
    with client_for(data_dir) as client:  # a new process state: velocity comes back from the journal
        assert client.get("/readyz").json()["scored_today"] == second
        for body in bodies[second:second + 30]:
            got.append(client.post("/v1/score", json=body, headers=KEY).json())
        response = client.post("/v1/score/batch", json={"transactions": bodies[second + 30:]}, headers=KEY)
        got.extend(response.json()["results"])
    served = pl.DataFrame(got)
    assert served.height == rows.height and not served.get_column("duplicate").any()
    expected = batch_scores(scoring_dataset, rows.get_column("txn_id").to_list())
    both = expected.join(served, on="txn_id", suffix="_served")
    assert both.height == rows.height
    np.testing.assert_allclose(both.get_column("score_served"), both.get_column("score"), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(both.get_column("anomaly_score_served"), both.get_column("anomaly_score"), rtol=1e-9)
    assert (both.get_column("model_version_served") == scoring_dataset.version).all()
    bands = both.select(decision_band(pl.col("score"), REVIEW, BLOCK)).to_series()
    assert both.get_column("decision").to_list() == bands.to_list()
    assert bands.n_unique() >= 2 and (bands == "allow").any()  # the thresholds split the day
    # Reason codes for the transactions someone acts on (review, block), as the batch gives them.
    flagged = both.filter(pl.col("decision") != "allow")
    assert flagged.get_column("reasons_served").to_list() == flagged.get_column("reasons").to_list()
    assert flagged.get_column("reasons_served").list.len().min() > 0
    assert both.filter(pl.col("decision") == "allow").get_column("reasons_served").list.len().max() == 0


def test_service_features_equal_the_batch_features(data_dir, scoring_dataset):
    app = create_app(settings(), data_dir, watch=False)
    with TestClient(app):
        engine = app.state.engine
        rows = scoring_dataset.day_rows
        singles = pl.concat([engine.score(rows.slice(i, 1), with_features=True) for i in range(25)])
        rest = engine.score(rows.slice(25), with_features=True)
    online = pl.concat([singles, rest], how="diagonal_relaxed")
    assert online.height == rows.height and not online.get_column("duplicate").any()
    assert_same_features(scoring_dataset.batch.filter(pl.col("date") == DAY), online)


def test_a_retry_is_answered_once_and_counted_once(data_dir, scoring_dataset):
    rows = scoring_dataset.day_rows
    bodies = request_bodies(rows.head(3))
    with client_for(data_dir) as client:
        first = client.post("/v1/score", json=bodies[0], headers=KEY).json()
        again = client.post("/v1/score", json=bodies[0], headers=KEY).json()
        assert again["duplicate"] and not first["duplicate"]
        assert {k: v for k, v in again.items() if k != "duplicate"} == {k: v for k, v in first.items() if k != "duplicate"}
        mixed = client.post("/v1/score/batch", json={"transactions": bodies}, headers=KEY).json()["results"]
        assert [r["duplicate"] for r in mixed] == [True, False, False]
        assert client.get("/readyz").json()["scored_today"] == 3
        repeated = client.post("/v1/score/batch", json={"transactions": [bodies[1], bodies[1]]}, headers=KEY)
        assert repeated.status_code == 422 and "repeat" in repeated.json()["detail"]
    assert Journal(data_dir, DAY).replay().height == 3


def test_bad_input_gets_field_errors(data_dir, scoring_dataset):
    good = request_bodies(scoring_dataset.day_rows.head(1))[0]
    cases = {
        "ts": {**good, "ts": "2026-02-05T10:00:00"},  # no timezone
        "amount_paise": {**good, "amount_paise": -5},
        "channel": {**good, "channel": "TELEGRAPH"},
        "pan": {**good, "pan": "ABCDE1234F"},  # direct identifiers are refused
        "customer_id": {k: v for k, v in good.items() if k != "customer_id"},
    }
    with client_for(data_dir) as client:
        for field, body in cases.items():
            response = client.post("/v1/score", json=body, headers=KEY)
            assert response.status_code == 422, field
            assert any(field in error["loc"] for error in response.json()["detail"]), (field, response.json())
        other_day = client.post("/v1/score", json={**good, "ts": "2026-03-01T10:00:00+05:30"}, headers=KEY)
        assert other_day.status_code == 422 and "no twin as of 2026-03-01" in other_day.json()["detail"]
        older = client.post("/v1/score", json={**good, "ts": "2026-01-03T10:00:00+05:30"}, headers=KEY)
        assert older.status_code == 422 and "older than the day served" in older.json()["detail"]
        assert client.get("/readyz").json()["scored_today"] == 0


def test_body_and_batch_limits(data_dir, scoring_dataset):
    bodies = request_bodies(scoring_dataset.day_rows.head(6))
    with client_for(data_dir, serve_max_batch=5, serve_max_body_bytes=4000) as client:
        too_many = client.post("/v1/score/batch", json={"transactions": bodies}, headers=KEY)
        assert too_many.status_code == 422 and too_many.json()["detail"][0]["type"] == "too_long"
        empty = client.post("/v1/score/batch", json={"transactions": []}, headers=KEY)
        assert empty.status_code == 422
        huge = client.post("/v1/score", json={**bodies[0], "city": "x" * 5000}, headers=KEY)
        assert huge.status_code == 413
        assert client.post("/v1/score/batch", json={"transactions": bodies[:5]}, headers=KEY).status_code == 200


def test_customer_twin_shows_the_profile_and_the_day_so_far(data_dir, scoring_dataset):
    rows = scoring_dataset.day_rows
    customer = rows.get_column("customer_id")[0]
    mine = rows.filter(pl.col("customer_id") == customer)
    with client_for(data_dir) as client:
        client.post("/v1/score/batch", json={"transactions": request_bodies(mine)}, headers=KEY)
        view = client.get(f"/v1/customers/{customer}/twin", headers=KEY)
        assert view.status_code == 200, view.text
        body = view.json()
        assert body["as_of"] == DAY.isoformat()
        assert body["profile"]["txn_count"] == scoring_dataset.batch.filter(
            (pl.col("customer_id") == customer) & (pl.col("date") < DAY)
        ).height
        assert body["today"] == {
            "txn_count": mine.height, "amount_sum_paise": mine.get_column("amount_paise").sum(),
            "last_ts": mine.get_column("ts").max().isoformat(),
        }
        assert client.get("/v1/customers/NOBODY/twin", headers=KEY).status_code == 404


def test_not_ready_without_a_twin(tmp_path, scoring_dataset):
    with client_for(tmp_path) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "no twin snapshots" in ready.json()["detail"]
        body = request_bodies(scoring_dataset.day_rows.head(1))[0]
        assert client.post("/v1/score", json=body, headers=KEY).status_code == 503
