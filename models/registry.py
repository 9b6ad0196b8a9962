"""MLflow tracking and the model registry: challenger / champion aliases."""
from __future__ import annotations

import functools

import math
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import mlflow.pyfunc
import polars as pl
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from models.evaluation import binary_metrics
from models.fraud_model import FraudScorer, TrainResult
from models.plots import model_plots

EXPERIMENT = "finrisk-fraud"
PRIMARY_METRIC = "average_precision"


def configure(tracking_uri: str, artifact_root: Path | None = None, experiment: str = EXPERIMENT) -> None:
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        location = artifact_root.as_uri() if artifact_root is not None else None
        mlflow.create_experiment(experiment, artifact_location=location)
    mlflow.set_experiment(experiment)


@dataclass
class Registration:
    run_id: str
    version: int
    promoted: bool
    challenger_metric: float
    champion_metric: float | None
    champion_version: int | None


def load_alias(model_name: str, alias: str) -> tuple[FraudScorer, int] | None:
    client = MlflowClient()
    try:
        mv = client.get_model_version_by_alias(model_name, alias)
    except MlflowException:
        return None
    model = mlflow.pyfunc.load_model(f"models:/{model_name}@{alias}")
    return model.unwrap_python_model(), int(mv.version)


def alias_version(model_name: str, alias: str) -> int | None:
    """The version an alias points at now (None: no such alias)."""
    try:
        return int(MlflowClient().get_model_version_by_alias(model_name, alias).version)
    except MlflowException:
        return None


def load_version(model_name: str, version: int) -> FraudScorer:
    """One registered version, loaded once per process and store (scoring tasks on a worker share it)."""
    return _load_version(mlflow.get_registry_uri(), model_name, version)


@functools.lru_cache(maxsize=4)
def _load_version(registry_uri: str, model_name: str, version: int) -> FraudScorer:
    return mlflow.pyfunc.load_model(f"models:/{model_name}/{version}").unwrap_python_model()


def _better(challenger: float, champion: float | None) -> bool:
    if champion is None or math.isnan(champion):
        return True
    return not math.isnan(challenger) and challenger > champion


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if not math.isnan(v)}


# What a model logged by an older, incompatible release raises when it is loaded or used.
INCOMPATIBLE = (AttributeError, ImportError, TypeError, ValueError, KeyError, pickle.UnpicklingError, pl.exceptions.PolarsError)


def _load_champion(model_name: str) -> tuple[tuple[FraudScorer, int] | None, str | None]:
    """The champion, or why it cannot be used (a model logged by an older, incompatible release)."""
    try:
        return load_alias(model_name, "champion"), None
    except INCOMPATIBLE as exc:  # connection errors are not caught: the task retries them
        return None, f"champion cannot be loaded: {type(exc).__name__}: {exc}"


def log_and_register(result: TrainResult, model_name: str, run_name: str = "train") -> Registration:
    """Log the run, register the model as `challenger`, and promote it to `champion` if it beats the
    champion re-scored on the same held-out window."""
    champion, unusable = _load_champion(model_name)
    champion_metric = None
    if champion is not None:
        test = result.test_scored.drop("score", "anomaly_score")
        try:
            rescored = pl.concat([test, champion[0].score(test)], how="horizontal")
            champion_metric = binary_metrics(rescored)[PRIMARY_METRIC]
        except INCOMPATIBLE as exc:  # a champion built for other features or code cannot be compared
            unusable = f"champion v{champion[1]} cannot score the current features: {type(exc).__name__}: {exc}"
    challenger_metric = result.metrics[PRIMARY_METRIC]
    promote = _better(challenger_metric, champion_metric)

    # Floats throughout: any feature may be null at inference time.
    example = result.test_scored.select(pl.col(c).cast(pl.Float64) for c in result.scorer.columns).head(5).to_pandas()
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.log_params(result.params)
        mlflow.log_metrics(_finite(result.metrics))
        if champion_metric is not None and not math.isnan(champion_metric):
            mlflow.log_metric(f"champion_{PRIMARY_METRIC}", champion_metric)
        mlflow.log_table(result.per_typology.to_pandas(), "evaluation/recall_per_typology.json")
        mlflow.log_table(
            pl.DataFrame({"metric": list(result.metrics), "value": list(result.metrics.values())}).to_pandas(),
            "evaluation/metrics.json",
        )
        mlflow.log_table(result.feature_importance.to_pandas(), "evaluation/feature_importance.json")
        with tempfile.TemporaryDirectory() as tmp:
            for path in model_plots(result.test_scored, result.feature_importance, result.per_typology, Path(tmp)):
                mlflow.log_artifact(str(path), "plots")
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=result.scorer,
            signature=infer_signature(example, result.scorer.predict(None, example)),
            input_example=example,
            registered_model_name=model_name,
        )
        version = int(info.registered_model_version)
        decision = "promoted to champion" if promote else "kept the current champion"
        mlflow.set_tags(
            {
                "promoted": str(promote), "model_version": str(version), "decision": decision,
                "champion_version_before": str(champion[1]) if champion else "none",
                **({"champion_unusable": unusable[:500]} if unusable else {}),
            }
        )
    client = MlflowClient()
    client.set_registered_model_alias(model_name, "challenger", version)
    if promote:
        client.set_registered_model_alias(model_name, "champion", version)
    return Registration(
        run.info.run_id, version, promote, challenger_metric, champion_metric, champion[1] if champion else None
    )


def list_versions(model_name: str) -> pl.DataFrame:
    """Every registered version with its aliases and its run's headline metrics."""
    client = MlflowClient()
    try:
        versions = client.search_model_versions(f"name = '{model_name}'")
    except MlflowException:
        return pl.DataFrame()
    rows = []
    for found in versions:
        mv = client.get_model_version(model_name, found.version)  # search results leave aliases out
        metrics = client.get_run(mv.run_id).data.metrics if mv.run_id else {}
        rows.append(
            {
                "version": int(mv.version),
                "aliases": ",".join(sorted(mv.aliases)),
                "created": mv.creation_timestamp,
                "auc": metrics.get("auc"),
                "average_precision": metrics.get("average_precision"),
                "card_precision_at_100": metrics.get("card_precision_at_100"),
                "run_id": mv.run_id,
            }
        )
    return pl.DataFrame(rows).sort("version", descending=True) if rows else pl.DataFrame()
