"""Scoring on the online feature path: what the service and the `score_recent` flow share.

`score_recent` scores a day's new transactions with `features.online.online_features` (the twin
plus the day's transactions, every family run once over them); the service keeps the same features
incrementally (`features.online_state`, through service.engine). Both give the batch pipeline's
numbers; the champion turns them into a fraud score, an anomaly score and reason codes, and the
thresholds into a decision band.
"""
from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from features.inputs import FEATURE_FIELDS
from features.online import online_features
from features.twin import Twin
from finrisk.schema import TRANSACTION_SCHEMA

# What a caller sends: the canonical fields features read plus a few descriptive ones; direct
# identifiers (names, phone numbers, PAN, Aadhaar, VPAs) are not accepted: scoring needs none.
TRANSACTION_FIELDS: dict[str, pl.DataType] = {
    c: TRANSACTION_SCHEMA[c] for c in (*FEATURE_FIELDS, "currency", "ip", "pincode", "ifsc")
}
RESULT_SCHEMA: dict[str, pl.DataType] = {
    "score": pl.Float64,
    "anomaly_score": pl.Float64,
    "decision": pl.String,
    "reasons": pl.List(pl.String),
    "model_version": pl.Int64,
}
DECISIONS = ("allow", "review", "block")
# The answer for a customer whose data may not be processed for fraud detection (consent withdrawn,
# or erased): `honour_consent` drops such rows rather than failing, so the service answers each one
# on its own, with no score, and a batch with one such customer still gets every other result.
NOT_PROCESSED = "not_processed"


def decision_band(score: pl.Expr, review_threshold: float, block_threshold: float) -> pl.Expr:
    """allow below the review threshold, block from the block threshold on, review in between."""
    return (
        pl.when(score >= block_threshold).then(pl.lit("block"))
        .when(score >= review_threshold).then(pl.lit("review"))
        .otherwise(pl.lit("allow"))
        .alias("decision")
    )


def check_thresholds(review_threshold: float, block_threshold: float) -> None:
    if not 0 <= review_threshold <= block_threshold <= 1:
        raise ValueError(
            f"decision thresholds must satisfy 0 <= review ({review_threshold}) <= block ({block_threshold}) <= 1; "
            "set FINRISK_REVIEW_THRESHOLD and FINRISK_BLOCK_THRESHOLD"
        )


def extra_labels(twin: Twin, labels: pl.DataFrame | None) -> pl.DataFrame | None:
    """Labels beyond the twin's: with a label delay of a day or more, a label reported during the
    twin's day becomes usable only after it, so the twin's own labels are all the day can use."""
    return labels if labels is not None and twin.label_delay_days < 1 else None


def online_scores(
    twin: Twin,
    day_rows: pl.DataFrame,
    txn_ids: Iterable[str],
    champion: tuple,
    review_threshold: float,
    block_threshold: float,
    labels: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The transactions `txn_ids` of `day_rows` (the day so far, including them) with every feature,
    score, anomaly_score, decision, reasons and model_version, in the order of `day_rows`."""
    scorer, version = champion
    features = online_features(twin, day_rows, list(txn_ids), extra_labels(twin, labels))
    scored = scorer.score_with_reasons(features)
    return pl.concat([features, scored], how="horizontal").with_columns(
        decision_band(pl.col("score"), review_threshold, block_threshold),
        pl.lit(version, pl.Int64).alias("model_version"),
    )

