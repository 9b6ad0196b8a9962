"""Shared fixtures: a real Neo4j server (a separate test instance), a real MLflow store and real
Prefect flow runs, all under temporary or test-only folders."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from finrisk.config import PROJECT_ROOT, reset_settings

TEST_NEO4J = {
    "FINRISK_NEO4J_HOME": str(PROJECT_ROOT / ".services" / "neo4j-test"),
    "FINRISK_NEO4J_BOLT_PORT": "7688",
    "FINRISK_NEO4J_HTTP_PORT": "7475",
    "FINRISK_NEO4J_URI": "bolt://127.0.0.1:7688",
    "FINRISK_NEO4J_HEAP": "512m",
    "FINRISK_NEO4J_PAGECACHE": "256m",
    # A local, loopback-only test instance: its password is fixed so it survives a new .env.
    "FINRISK_NEO4J_PASSWORD": "finrisk-test-password",
}


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment(tmp_path_factory):
    base = tmp_path_factory.mktemp("finrisk")
    os.environ.update(TEST_NEO4J)
    os.environ["FINRISK_MLRUNS_DIR"] = str(base / "mlruns")
    os.environ["FINRISK_DATA_DIR"] = str(base / "data")
    os.environ["FINRISK_AUDIT_LOG"] = str(base / "audit" / "audit.log")
    os.environ.pop("FINRISK_MLFLOW_TRACKING_URI", None)
    os.environ.setdefault("FINRISK_PSEUDONYM_KEY", "test-only-key-0123456789abcdef")
    os.environ.setdefault("FINRISK_ENCRYPTION_KEYS", "test-only " + "5a" * 32)
    os.environ.pop("PREFECT_API_URL", None)
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    reset_settings()
    yield
    reset_settings()


@pytest.fixture(scope="session")
def prefect_harness(_isolated_environment):
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def neo4j_server(_isolated_environment):
    """The real Neo4j Community server, test instance on 7688; stopped again if we started it."""
    from finrisk.config import get_settings
    from finrisk.services import neo4j_down, neo4j_status, neo4j_up

    settings = get_settings()
    started = not neo4j_status(settings).up
    neo4j_up(settings)
    yield settings
    if started:
        neo4j_down(settings)


@pytest.fixture()
def neo4j_driver(neo4j_server):
    from graph_loaders.neo4j_load import connect

    driver = connect(neo4j_server.neo4j_uri, neo4j_server.neo4j_user, neo4j_server.require_neo4j_password())
    driver.execute_query("MATCH (n) DETACH DELETE n", database_=neo4j_server.neo4j_database)
    yield driver
    driver.close()


@pytest.fixture(scope="session")
def small_raw(tmp_path_factory) -> Path:
    """A small generated dataset (raw bank exports), made once per session."""
    from finrisk.synthetic import generate

    out = tmp_path_factory.mktemp("raw")
    generate(out, customers=400, days=40, seed=11)
    return out
