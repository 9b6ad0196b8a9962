"""MLflow tracking and the model registry: challenger / champion aliases."""
from __future__ import annotations

import math
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

EXPERIMENT = "finrisk-fraud"
PRIMARY_METRIC = "average_precision"


def configure(tracking_uri: str, artifact_root: Path | None = None) -> None:
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        location = artifact_root.as_uri() if artifact_root is not None else None
        mlflow.create_experiment(EXPERIMENT, artifact_location=location)
    mlflow.set_experiment(EXPERIMENT)


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


def _better(challenger: float, champion: float | None) -> bool:
    if champion is None or math.isnan(champion):
        return True
    return not math.isnan(challenger) and challenger > champion


def log_and_register(result: TrainResult, model_name: str) -> Registration:
    """Log the run, register the model as `challenger`, and promote it to `champion` if it wins
    on the same held-out window the champion is re-scored on."""
    champion = load_alias(model_name, "champion")
    champion_metric = None
    if champion is not None:
        test = result.test_scored.drop("score", "anomaly_score")
        rescored = pl.concat([test, champion[0].score(test)], how="horizontal")
        champion_metric = binary_metrics(rescored)[PRIMARY_METRIC]
    challenger_metric = result.metrics[PRIMARY_METRIC]
    promote = _better(challenger_metric, champion_metric)

    # Floats throughout: any feature may be null at inference time.
    example = result.test_scored.select(pl.col(c).cast(pl.Float64) for c in result.scorer.columns).head(5).to_pandas()
    with mlflow.start_run(run_name="nightly-train") as run:
        mlflow.log_params(result.params)
        mlflow.log_metrics({k: v for k, v in result.metrics.items() if not math.isnan(v)})
        if champion_metric is not None and not math.isnan(champion_metric):
            mlflow.log_metric(f"champion_{PRIMARY_METRIC}", champion_metric)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=result.scorer,
            signature=infer_signature(example, result.scorer.predict(None, example)),
            input_example=example,
            registered_model_name=model_name,
        )
        version = int(info.registered_model_version)
        mlflow.set_tags({"promoted": str(promote), "model_version": str(version)})
    client = MlflowClient()
    client.set_registered_model_alias(model_name, "challenger", version)
    if promote:
        client.set_registered_model_alias(model_name, "champion", version)
    return Registration(
        run.info.run_id, version, promote, challenger_metric, champion_metric,
        champion[1] if champion else None,
    )
