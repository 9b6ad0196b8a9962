"""Prefect tasks: the point-in-time feature table and the daily Customer Financial Twin."""
from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path

import polars as pl
from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact

from features.inputs import FEATURE_FIELDS
from features.online import features_for_day
from features.store import all_null_features, feature_table, write_feature_table
from features.transactions import transaction_features
from features.twin import behaviour_vectors, build_twin, read_twin, twin_path, write_twin
from finrisk.config import get_settings
from finrisk.consent import consent_inputs
from finrisk.io import DataLayout, has_parquet, scan_partitioned, write_parquet_atomic
from finrisk.schema import SENSITIVE_FIELDS
from finrisk.sensitive import sensitive_root, with_sensitive
from models.clustering import cluster_customers
from tasks.caching import CACHE_EXPIRATION, cache_on_files


def feature_inputs(layout: DataLayout) -> pl.LazyFrame:
    """The processed transactions, only the columns features read (not the pseudonymised PII),
    the coordinates decrypted from the side table."""
    if not has_parquet(layout.transactions):
        raise FileNotFoundError(f"no processed transactions under {layout.transactions}; run ingest first")
    tx = scan_partitioned(layout.transactions)
    present = tx.collect_schema().names()
    return with_sensitive(tx.select(c for c in (*FEATURE_FIELDS, "date") if c in present), layout,
                          fields=tuple(c for c in SENSITIVE_FIELDS if c in FEATURE_FIELDS))


def _processed(layout: DataLayout) -> pl.LazyFrame:
    return _consented(feature_inputs(layout), layout, "fraud_detection")


def _consented(frame, layout: DataLayout, purpose: str):
    """Without the customers who withdrew consent for the purpose, or were erased (finrisk.consent)."""
    from finrisk.consent import honour_consent

    settings = get_settings()
    key = settings.pseudonym_key.get_secret_value().encode() if settings.pseudonym_key else None
    return honour_consent(frame, layout, purpose, settings.consent_required, key)


def _labels(layout: DataLayout) -> pl.DataFrame | None:
    return pl.read_parquet(layout.labels) if layout.labels.exists() else None


def _delay(label_delay_days: float | None) -> float:
    return get_settings().label_delay_days if label_delay_days is None else label_delay_days


def peer_groups_path(data_dir: Path) -> Path:
    return Path(data_dir) / "processed" / "peer_groups" / "peer_groups.parquet"


def _peer_groups(layout: DataLayout) -> pl.DataFrame | None:
    """The customers' peer groups from the last features run's clustering (none on the first run)."""
    path = peer_groups_path(layout.root)
    return pl.read_parquet(path) if path.exists() else None


def _twin_inputs(parameters: dict) -> list[Path]:
    layout = DataLayout(Path(parameters["data_dir"]))
    return [layout.transactions, sensitive_root(layout), layout.labels, *consent_inputs(layout)]


def _inputs(parameters: dict) -> list[Path]:
    return [*_twin_inputs(parameters), peer_groups_path(parameters["data_dir"])]


def _inputs_up_to_day(parameters: dict) -> list[Path]:
    """A day's features read the partitions up to that day and the labels, not the later days."""
    layout = DataLayout(Path(parameters["data_dir"]))
    days = sorted(layout.transactions.glob("date=*")) if layout.transactions.is_dir() else []
    return [p for p in days if p.name.removeprefix("date=") <= parameters["day"]] + [
        layout.labels, peer_groups_path(layout.root), *consent_inputs(layout)]


CACHED = dict(persist_result=True, cache_expiration=CACHE_EXPIRATION)


@task(name="build-features", cache_key_fn=cache_on_files(_inputs, "features", settings=("label_delay_days", "consent_required")), **CACHED)
def build_features(data_dir: Path, label_delay_days: float | None = None) -> dict:
    """Recompute every feature for every processed transaction; one Parquet file per business date."""
    logger = get_run_logger()
    layout = DataLayout(Path(data_dir))
    delay = _delay(label_delay_days)
    table = feature_table(transaction_features(_processed(layout), _labels(layout), delay, _peer_groups(layout)))
    dates = write_feature_table(table, layout.features)
    missing = all_null_features(table)
    logger.info("features for %d transactions over %d days (label delay %s d)", table.height, len(dates), delay)
    if missing:
        logger.info("no data for %d feature(s), left null: %s", len(missing), ", ".join(missing))
    return {
        "rows": table.height, "first_date": dates[0] if dates else None, "last_date": dates[-1] if dates else None,
        "features": len(table.columns), "null_features": missing, "label_delay_days": delay,
    }


@task(name="build-day-features", retries=1, retry_delay_seconds=5,
      cache_key_fn=cache_on_files(_inputs_up_to_day, "features", settings=("label_delay_days", "consent_required")), **CACHED)
def build_day_features(data_dir: Path, day: str, label_delay_days: float | None = None) -> dict:
    """One business day's features from the history before it (twin + online path), written as that
    day's partition: the unit of work the Dask task runner spreads over its workers."""
    layout = DataLayout(Path(data_dir))
    delay = _delay(label_delay_days)
    table = feature_table(
        features_for_day(_processed(layout), date.fromisoformat(day), _labels(layout), delay, _peer_groups(layout))
    )
    write_feature_table(table, layout.features)
    get_run_logger().info("features for %s: %d transactions", day, table.height)
    return {"date": day, "rows": table.height, "pid": os.getpid()}


def _dates(base: Path) -> set[str]:
    """The dates that have a partition file under base."""
    return {p.parent.name.removeprefix("date=") for p in base.glob("date=*/*.parquet")} if base.is_dir() else set()


def features_written(data_dir: Path, days: list[str] | None = None) -> bool:
    """Whether the feature table has a partition for each of `days` (default: every processed date)."""
    layout = DataLayout(Path(data_dir))
    return set(days or _dates(layout.transactions)) <= _dates(layout.features)


def twin_written(data_dir: Path) -> bool:
    """Whether the twin as of the day after the last processed date is stored."""
    processed = _dates(DataLayout(Path(data_dir)).transactions)
    if not processed:
        return False
    return twin_path(Path(data_dir), date.fromisoformat(max(processed)) + timedelta(days=1)).exists()


def processed_days(data_dir: Path) -> list[str]:
    layout = DataLayout(Path(data_dir))
    days = _processed(layout).select(pl.col("date").cast(pl.String).unique()).collect().get_column("date")
    return sorted(days.to_list())


@task(name="build-twin", cache_key_fn=cache_on_files(_twin_inputs, "features", settings=("label_delay_days", "consent_required")), **CACHED)
def build_customer_twin(data_dir: Path, as_of: date | None = None, label_delay_days: float | None = None) -> dict:
    """The twin as of `as_of` (default: the day after the last processed date), written as a snapshot."""
    logger = get_run_logger()
    layout = DataLayout(Path(data_dir))
    tx = _processed(layout)
    if as_of is None:
        last = tx.select(pl.col("date").max()).collect().item()
        as_of = date.fromisoformat(str(last)) + timedelta(days=1)
    twin = build_twin(tx, as_of, _labels(layout), _delay(label_delay_days))
    path = write_twin(twin, Path(data_dir))
    logger.info("twin as of %s: %d customers from %d transactions -> %s", as_of, twin.profiles.height,
                twin.meta["history_rows"], path)
    return {"as_of": as_of.isoformat(), "customers": twin.profiles.height, "path": str(path)}


def _twin_files(parameters: dict) -> list[Path]:
    return [twin_path(Path(parameters["data_dir"]), date.fromisoformat(parameters["as_of"]))]


@task(name="build-peer-groups", cache_key_fn=cache_on_files(_twin_files, "models"), **CACHED)
def build_peer_groups(data_dir: Path, as_of: str) -> dict:
    """Cluster customers on their twin's behaviour vectors (the twin as of `as_of`); the next
    features run gives each transaction its peer-group deviation from these groups."""
    twin = read_twin(Path(data_dir), date.fromisoformat(as_of))
    clustering = cluster_customers(behaviour_vectors(twin))
    path = peer_groups_path(data_dir)
    write_parquet_atomic(clustering.assignments, path)
    write_parquet_atomic(clustering.diagnostics.with_columns(pl.lit(as_of).alias("as_of")), path.with_name("diagnostics.parquet"))
    best = clustering.diagnostics.filter(pl.col("k") == clustering.k).row(0, named=True)
    get_run_logger().info("peer groups: k=%d (silhouette %.3f, sizes %d..%d) for %d customers", clustering.k,
                          best["silhouette"], best["smallest"], best["largest"], clustering.assignments.height)
    create_table_artifact(key="peer-groups", table=clustering.diagnostics.to_dicts(),
                          description=f"Customer clusters by k (as of {as_of}); chosen k={clustering.k} by silhouette")
    return {"k": clustering.k, "customers": clustering.assignments.height, "silhouette": best["silhouette"]}


def read_features(data_dir: Path) -> pl.DataFrame:
    layout = DataLayout(Path(data_dir))
    return _consented(scan_partitioned(layout.features), layout, "model_training").collect()
