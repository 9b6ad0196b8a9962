"""Configuration from the environment (prefix FINRISK_) and a git-ignored .env file."""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import PrivateAttr, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FINRISK_", env_file=PROJECT_ROOT / ".env", env_file_encoding="utf-8", extra="ignore"
    )

    data_dir: Path = PROJECT_ROOT / "data"
    # One append-only audit log for every dataset on this installation.
    audit_log: Path = PROJECT_ROOT / "data" / "audit" / "audit.log"
    mlruns_dir: Path = PROJECT_ROOT / "mlruns"
    # Empty means the embedded default: SQLite backend and artifacts under mlruns/.
    mlflow_tracking_uri: str = ""
    mlflow_model_name: str = "finrisk-fraud"

    neo4j_uri: str = "bolt://127.0.0.1:7687"
    neo4j_user: str = "neo4j"
    neo4j_password: SecretStr | None = None
    neo4j_database: str = "neo4j"
    # Where `finrisk services up` installs and runs the local Neo4j server.
    neo4j_home: Path = PROJECT_ROOT / ".services" / "neo4j"
    neo4j_bolt_port: int = 7687
    neo4j_http_port: int = 7474
    neo4j_heap: str = "1g"
    neo4j_pagecache: str = "1g"

    mlflow_port: int = 5000
    prefect_port: int = 4200

    # Key for HMAC-SHA256 pseudonymisation of direct identifiers (DPDP Act): one key, or a chain of
    # keys separated by commas, oldest first, after a rotation (finrisk.privacy).
    pseudonym_key: SecretStr | None = None
    # Or a file (outside the repository, mode 0600) with the chain one key per line, oldest first;
    # when set, it is the chain and `finrisk keys rotate` appends to it.
    pseudonym_key_file: Path | None = None
    _key_file_problem: str | None = PrivateAttr(default=None)
    # Parquet encryption of the sensitive columns (finrisk.encryption): master keys inline
    # ("id hex, id hex", first is current) or in a key file outside the repository; the KMS client.
    encryption_keys: SecretStr | None = None
    encryption_key_file: Path = Path.home() / ".config" / "finrisk" / "encryption-keys"
    kms_client: str = "finrisk.encryption:local_kms"
    kms_key_id: str = ""  # the master key id new files use when the KMS is not the local keyring

    quarantine_threshold: float = 0.05  # fail the run when more than this share of rows is bad
    # Data protection: process only customers with a recorded grant (else: all but withdrawals),
    # and how long raw exports are kept once ingested.
    consent_required: bool = False
    raw_retention_days: int = 90
    label_delay_days: int = 7
    # Partition-parallel flows: an existing Dask scheduler (tcp://host:8786), or a local cluster.
    dask_address: str = ""
    dask_workers: int = 2
    alerts_per_day: int = 100

    # Near-real-time scoring (`finrisk serve`, `finrisk score-recent`).
    # Comma-separated API keys; a client sends one as `X-API-Key` or `Authorization: Bearer`.
    api_keys: SecretStr | None = None
    serve_host: str = "127.0.0.1"
    serve_port: int = 8000
    serve_max_body_bytes: int = 1_048_576
    serve_max_batch: int = 1000
    # uvicorn's line per request: a share of a single request's cost; each scored transaction is in the journal anyway.
    serve_access_log: bool = False
    champion_alias: str = "champion"
    champion_poll_seconds: float = 30.0  # how often the service checks whether the alias moved
    # Decision bands on the fraud score: below review -> allow, [review, block) -> review, else block.
    review_threshold: float = 0.5
    block_threshold: float = 0.9

    @model_validator(mode="after")
    def _chain_from_key_file(self) -> "Settings":
        if self.pseudonym_key_file is not None:
            try:
                self.pseudonym_key = SecretStr(read_key_file(self.pseudonym_key_file))
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                self.pseudonym_key = None  # every reader sees "no key", require_pseudonym_key says why
                self._key_file_problem = f"FINRISK_PSEUDONYM_KEY_FILE {self.pseudonym_key_file}: {exc}"
        return self

    @property
    def tracking_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{(self.mlruns_dir / 'mlflow.db').resolve()}"

    @property
    def artifact_root(self) -> Path:
        return (self.mlruns_dir / "artifacts").resolve()

    def require_neo4j_password(self) -> str:
        if self.neo4j_password is None or not self.neo4j_password.get_secret_value():
            raise ConfigError(
                "FINRISK_NEO4J_PASSWORD is not set. Run `finrisk setup` to create a local .env, "
                "or export FINRISK_NEO4J_PASSWORD for your Neo4j server."
            )
        return self.neo4j_password.get_secret_value()

    def require_pseudonym_key(self) -> bytes:
        if self._key_file_problem:
            raise ConfigError(self._key_file_problem)
        if self.pseudonym_key is None or not self.pseudonym_key.get_secret_value():
            raise ConfigError(
                "FINRISK_PSEUDONYM_KEY is not set: direct identifiers cannot be pseudonymised. "
                "Run `finrisk setup` to create a local .env with a fresh key, or export the key "
                "from your secret store."
            )
        return self.pseudonym_key.get_secret_value().encode()

    def require_api_keys(self) -> tuple[str, ...]:
        keys = tuple(k.strip() for k in (self.api_keys.get_secret_value() if self.api_keys else "").split(","))
        keys = tuple(k for k in keys if k)
        if not keys:
            raise ConfigError(
                "FINRISK_API_KEYS is not set: the scoring service refuses to run without authentication. "
                "Set one or more comma-separated keys (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)."
            )
        return keys


class ConfigError(RuntimeError):
    """A setting is missing or wrong; the message says how to fix it."""


def read_key_file(path: Path) -> str:
    """The chain in a key file (one key per line, oldest first; blank lines and # comments
    ignored) in its configured form: keys joined by commas."""
    keys = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    keys = [k for k in keys if k and not k.startswith("#")]
    if not keys:
        raise ValueError("the file holds no key")
    if any("," in k for k in keys):
        raise ValueError("a key holds a comma; put one key per line")
    return ",".join(keys)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    get_settings.cache_clear()


def prefect_home() -> Path:
    return PROJECT_ROOT / ".prefect"


def use_local_prefect_home() -> None:
    """Keep Prefect's state inside the project unless the user points it elsewhere."""
    os.environ.setdefault("PREFECT_HOME", str(prefect_home()))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no telemetry from a bank's network
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "finrisk")  # library progress lines in the run logs
