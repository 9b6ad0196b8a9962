"""Deployments: the nightly run on a cron schedule in Asia/Kolkata, micro-batch scoring every minute,
and every sub-flow as an ad-hoc deployment. Each deployment runs a thin entry flow that takes one
typed parameter model (so the Prefect UI shows a form) and calls the sub-flow, whose own signature
stays as the CLI and tests use it.

Entry flows import their sub-flow when they run: a run's process then loads only the libraries that
sub-flow needs (an ad-hoc features run starts in seconds instead of first loading GX, MLflow and
LightGBM)."""
from __future__ import annotations

from pathlib import Path
from typing import get_type_hints

from prefect import flow, get_run_logger
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.schedules import Cron
from pydantic import Field

from finrisk.schema import BUSINESS_TZ
from flows.params import (
    DataParams,
    EvaluateParams,
    FeaturesParams,
    GraphParams,
    IngestParams,
    NightlyParams,
    ScoreParams,
    ScoreRangeParams,
    TrainParams,
    TrainWindowParams,
)

NIGHTLY_CRON = "0 2 * * *"
SCHEDULED = "nightly-0200-ist"
SCORE_RECENT_CRON = "* * * * *"
SCORE_RECENT = "score-recent-every-minute"
TAGS = ["finrisk"]


class ScoreRecentParams(DataParams):
    """Score the transactions that reached processed/ since the last run, with the champion."""

    model_name: str | None = Field(
        None, min_length=1, max_length=256,
        description="Registered model whose champion scores; empty means FINRISK_MLFLOW_MODEL_NAME.",
    )


@flow(name="finrisk-nightly")
def nightly_deployment(params: NightlyParams) -> dict:
    """Nightly: ingest (validated) -> features -> train -> graph -> score, then the analysts' report."""
    from flows.nightly import nightly
    from tasks.report import publish_data_quality, write_daily_report

    logger = get_run_logger()
    result = nightly(source=params.source, data_dir=params.data_dir, mapping=params.mapping, seed=params.seed)
    publish_data_quality(params.data_dir, result["ingest"])
    if params.report:
        result["report"] = write_daily_report(params.data_dir, result["day"])
    logger.info("nightly run for %s finished", result["day"])
    return result


@flow(name="finrisk-ingest")
def ingest_deployment(params: IngestParams) -> dict:
    """Ingest raw files: map, pseudonymise, validate; bad rows to quarantine."""
    from flows.ingest import ingest_flow
    from tasks.report import publish_data_quality

    result = ingest_flow(source=params.source, data_dir=params.data_dir, mapping=params.mapping)
    publish_data_quality(params.data_dir, result)
    return result


@flow(name="finrisk-features")
def features_deployment(params: FeaturesParams) -> dict:
    """Recompute the point-in-time feature table (and the twin), in this process or one day per Dask task."""
    from flows.features import features_by_day_flow, features_flow

    if params.dask:
        from flows.dask import run_on_dask

        return run_on_dask(features_by_day_flow, params.data_dir, twin=True, workers=params.workers)
    return features_flow(data_dir=params.data_dir)


@flow(name="finrisk-train")
def train_deployment(params: TrainParams) -> dict:
    """Train before a score day, register as challenger, promote if better."""
    from flows.score import latest_day
    from flows.train import train_flow

    day = params.score_day.isoformat() if params.score_day else latest_day(params.data_dir)
    get_run_logger().info("training for score day %s", day)
    return train_flow(data_dir=params.data_dir, score_day=day, test_days=params.test_days, seed=params.seed)


@flow(name="finrisk-train-window")
def train_window_deployment(params: TrainWindowParams) -> dict:
    """Train on explicit business dates."""
    from flows.train import train_window_flow

    return train_window_flow(
        data_dir=params.data_dir, train_from=params.train_from, train_to=params.train_to,
        label_delay_days=params.label_delay_days, test_days=params.test_days, seed=params.seed, dask=params.dask,
    )


@flow(name="finrisk-evaluate")
def evaluate_deployment(params: EvaluateParams) -> dict:
    """Prequential evaluation over consecutive windows."""
    from flows.train import evaluate_flow

    return evaluate_flow(
        data_dir=params.data_dir, windows=params.windows, train_days=params.train_days,
        test_days=params.test_days, label_delay_days=params.label_delay_days, seed=params.seed,
    )


@flow(name="finrisk-graph")
def graph_deployment(params: GraphParams) -> dict:
    """Load the customer graph into Neo4j and write its features."""
    from flows.graph import graph_flow

    return graph_flow(data_dir=params.data_dir, full=params.full, day=params.day.isoformat() if params.day else None)


@flow(name="finrisk-score")
def score_deployment(params: ScoreParams) -> dict:
    """The champion scores one business day."""
    from flows.score import latest_day, score_flow

    day = params.day.isoformat() if params.day else latest_day(params.data_dir)
    get_run_logger().info("scoring %s", day)
    return score_flow(data_dir=params.data_dir, day=day)


@flow(name="finrisk-score-range")
def score_range_deployment(params: ScoreRangeParams) -> dict:
    """The champion scores a date range into one Parquet file."""
    from flows.score import score_range_flow

    return score_range_flow(
        data_dir=params.data_dir, date_from=params.date_from, date_to=params.date_to, out=params.out
    )


@flow(name="finrisk-score-recent")
def score_recent_deployment(params: ScoreRecentParams) -> dict:
    """Micro-batch scoring: what arrived since the last run (watermark + ledger: safe every minute)."""
    from flows.score_recent import score_recent_flow

    return score_recent_flow(data_dir=params.data_dir, model_name=params.model_name)


AD_HOC_FLOWS = (
    ingest_deployment, features_deployment, train_deployment, train_window_deployment,
    evaluate_deployment, graph_deployment, score_deployment, score_range_deployment,
)



def ad_hoc_name(entry) -> str:
    """finrisk-train-window -> train-window-ad-hoc: each deployment reads apart in the UI's list."""
    return f"{entry.name.removeprefix('finrisk-')}-ad-hoc"


# The parameter model behind each deployment's form, by flow name.
FORMS = {
    entry.name: get_type_hints(entry.fn)["params"]
    for entry in (nightly_deployment, score_recent_deployment, *AD_HOC_FLOWS)
}


def _to_deployment(entry, name: str, defaults: dict, **options) -> RunnerDeployment:
    return entry.to_deployment(
        name=name,
        parameters={"params": {k: str(v) if isinstance(v, Path) else v for k, v in defaults.items()}},
        description=entry.description,
        tags=TAGS,
        # A module path, not a file path: runs start from any working directory.
        entrypoint_type=EntrypointType.MODULE_PATH,
        **options,
    )


def build_deployments(
    data_dir: Path, source: Path | None = None, mapping: Path | None = None
) -> list[RunnerDeployment]:
    """The nightly deployment, score-recent every minute, and one ad-hoc deployment per sub-flow, with
    form defaults for this data dir."""
    data_dir = Path(data_dir).resolve()
    source = Path(source).resolve() if source else data_dir / "raw"
    with_source = {"data_dir": data_dir, "source": source, "mapping": Path(mapping).resolve() if mapping else None}
    nightly_run = _to_deployment(
        nightly_deployment, SCHEDULED, with_source,
        schedules=[Cron(NIGHTLY_CRON, timezone=BUSINESS_TZ)],
        concurrency_limit=1,  # a slow night must not overlap the next one on the same data dir
    )
    every_minute = _to_deployment(
        score_recent_deployment, SCORE_RECENT, {"data_dir": data_dir, "model_name": None},
        schedules=[Cron(SCORE_RECENT_CRON, timezone=BUSINESS_TZ)],
        # A run still going when the next minute starts: the new one is cancelled, not queued (the
        # flow's own lock would only make it step aside later; a queue of them would run back to back).
        concurrency_limit=ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW),
    )
    ad_hoc = [
        _to_deployment(entry, ad_hoc_name(entry), with_source if entry is ingest_deployment else {"data_dir": data_dir})
        for entry in AD_HOC_FLOWS
    ]
    return [nightly_run, every_minute, *ad_hoc]
