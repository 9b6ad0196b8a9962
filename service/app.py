"""The scoring service: FastAPI app, one worker, state in memory (see service.engine).

No `from __future__ import annotations` here: FastAPI reads the endpoint annotations at runtime,
and the batch body model is built per app (its size limit comes from configuration).
"""

import asyncio
import logging
import math
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

import polars as pl
from fastapi import Depends, FastAPI, HTTPException, Path as PathParam, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from features.inputs import FeatureInputError
from features.twin import TwinNotFoundError
from finrisk.config import Settings
from service.auth import BodyLimit, require_key
from service.champion import ChampionSource
from service.engine import DayNotServed, NotReady, ScoringEngine
from service.schemas import BatchResult, CustomerTwin, Problem, ScoreResult, Transaction, batch_request
from service.scoring import RESULT_SCHEMA, TRANSACTION_FIELDS, check_thresholds

log = logging.getLogger("finrisk.service")
RESPONSE_COLUMNS = ("txn_id", *RESULT_SCHEMA, "duplicate")


def transactions_frame(transactions: list[Transaction]) -> pl.DataFrame:
    """Validated request bodies as canonical columns (ts converted to UTC)."""
    return pl.DataFrame([t.model_dump() for t in transactions], schema=TRANSACTION_FIELDS)


class Coalescer:
    """Requests that arrive while a scoring call runs are scored together in the next call: the
    feature path costs about the same for one transaction or a few dozen, so under load this
    keeps throughput up. Each transaction still sees exactly the transactions before it in time."""

    def __init__(self, engine: ScoringEngine):
        self.engine = engine
        self.pending: list[tuple[pl.DataFrame, asyncio.Future]] = []
        self.draining = False

    async def score(self, frame: pl.DataFrame) -> pl.DataFrame:
        future = asyncio.get_running_loop().create_future()
        self.pending.append((frame, future))
        if not self.draining:
            self.draining = True
            asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self.pending:
                taken, self.pending = self.pending, []
                for group in _disjoint_groups(taken):
                    await self._score_group(group)
        finally:
            self.draining = False

    async def _score_group(self, group: list[tuple[pl.DataFrame, asyncio.Future]]) -> None:
        if len(group) > 1:
            combined = pl.concat([f.with_columns(pl.lit(i, pl.Int32).alias("_request")) for i, (f, _) in enumerate(group)])
            try:
                result = await run_in_threadpool(self.engine.score, combined.drop("_request"))
            except Exception:  # one bad request (e.g. another day) must fail alone: score each by itself
                for item in group:
                    await self._score_group([item])
                return
            parts = result.with_columns(combined.get_column("_request")).partition_by("_request", as_dict=True)
            for i, (_, future) in enumerate(group):
                if not future.done():
                    future.set_result(parts[(i,)].drop("_request"))
            return
        frame, future = group[0]
        try:
            result = await run_in_threadpool(self.engine.score, frame)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(result)


def _disjoint_groups(items):
    """Consecutive groups with no txn_id in two requests (a retry of a request in the same group
    is scored after it, and answered as a duplicate)."""
    groups, seen = [], set()
    for item in items:  # requests, not rows
        ids = set(item[0].get_column("txn_id").to_list())
        if not groups or ids & seen:
            groups.append([])
            seen = set()
        groups[-1].append(item)
        seen |= ids
    return groups


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _results_json(result: pl.DataFrame, wrap: bool) -> Response:
    body = result.select(RESPONSE_COLUMNS).write_json()
    if not wrap:
        body = body[1:-1]  # the single object of a one-row array
    else:
        body = '{"results":' + body + "}"
    return Response(content=body, media_type="application/json")


ERRORS = {
    400: {"model": Problem, "description": "The body is not valid JSON."},
    401: {"model": Problem, "description": "Missing or invalid API key."},
    413: {"model": Problem, "description": "Request body too large."},
    422: {"description": "Invalid transaction (field errors), or a business day the service does not serve."},
    503: {"model": Problem, "description": "No twin or no champion model loaded yet."},
}


def create_app(settings: Settings, data_dir: Path | None = None, watch: bool = True) -> FastAPI:
    """The app for one data directory; refuses to start without API keys."""
    keys = settings.require_api_keys()
    check_thresholds(settings.review_threshold, settings.block_threshold)
    root = Path(data_dir or settings.data_dir)
    champion = ChampionSource(
        settings.mlflow_model_name, settings.champion_alias, settings.tracking_uri, settings.artifact_root
    )
    labels_path = root / "processed" / "labels" / "labels.parquet"
    engine = ScoringEngine(
        root, champion, settings.review_threshold, settings.block_threshold,
        labels=pl.read_parquet(labels_path) if labels_path.exists() else None,
    )
    coalescer = Coalescer(engine)
    state = {"startup_error": None}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        try:
            champion.refresh()
            engine.open_day()
        except (TwinNotFoundError, OSError, ValueError) as exc:
            state["startup_error"] = str(exc)
            log.error("not ready: %s", exc)
        except Exception as exc:  # the registry unreachable: serve readyz=503 and keep retrying
            state["startup_error"] = f"{type(exc).__name__}: {exc}"
            log.error("not ready: %s", state["startup_error"])
        if watch:
            champion.watch(settings.champion_poll_seconds)
        yield
        champion.stop()
        engine.close()

    app = FastAPI(
        title="finrisk scoring service",
        version="1",
        description="Scores transactions with the champion fraud model on the online feature path.",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, max_bytes=settings.serve_max_body_bytes)
    app.state.engine, app.state.champion = engine, champion
    auth = [Depends(require_key(keys))]

    @app.exception_handler(DayNotServed)
    @app.exception_handler(FeatureInputError)
    async def _unprocessable(request: Request, exc: Exception):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(NotReady)
    async def _not_ready(request: Request, exc: Exception):
        return JSONResponse({"detail": f"not ready: {exc}"}, status_code=503)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"model": Problem}})
    async def readyz():
        """Ready to score: a twin and a champion model are loaded."""
        book, version = engine.book, champion.version
        if book is None or version is None:
            reason = state["startup_error"] or ("no champion model" if version is None else "no twin")
            return JSONResponse({"detail": f"not ready: {reason}"}, status_code=503)
        return {"status": "ready", "day": book.day.isoformat(), "model_version": version,
                "scored_today": book.results.frame().height}

    @app.post("/v1/score", response_model=ScoreResult, dependencies=auth, responses=ERRORS, tags=["scoring"])
    async def score(transaction: Transaction):
        """Score one transaction: fraud score, anomaly score, decision band, reason codes, model version."""
        return _results_json(await coalescer.score(transactions_frame([transaction])), wrap=False)

    Batch = batch_request(settings.serve_max_batch)

    @app.post("/v1/score/batch", response_model=BatchResult, dependencies=auth, responses=ERRORS, tags=["scoring"])
    async def score_batch(batch: Batch):  # type: ignore[valid-type]
        """Score up to FINRISK_SERVE_MAX_BATCH transactions of one business day, in one call."""
        frame = transactions_frame(batch.transactions)
        if frame.get_column("txn_id").n_unique() < frame.height:
            raise HTTPException(422, detail="txn_id values repeat within the batch")
        return _results_json(await coalescer.score(frame), wrap=True)

    @app.get("/v1/customers/{customer_id}/twin", response_model=CustomerTwin, dependencies=auth,
             responses={**ERRORS, 404: {"model": Problem}}, tags=["customers"])
    async def customer_twin(customer_id: Annotated[str, PathParam(min_length=1, max_length=128)]):
        """The customer's behavioural profile (the twin) and what today added so far."""
        view = await run_in_threadpool(engine.customer_view, customer_id)
        if view is None:
            raise HTTPException(404, detail=f"no customer {customer_id!r} in the twin or today's transactions")
        return JSONResponse(_json_safe(view))

    return app
