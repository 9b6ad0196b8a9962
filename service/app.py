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

import orjson
import polars as pl
from fastapi import Depends, FastAPI, HTTPException, Path as PathParam, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from features.inputs import FeatureInputError
from features.twin import TwinNotFoundError
from finrisk.config import Settings
from service.auth import BodyLimit, require_key
from service.champion import ChampionSource
from service.consent_gate import ConsentError, ConsentGate
from service.engine import CustomerNotProcessed, DayNotServed, NotReady, ScoringEngine, epoch_us
from service.schemas import BatchResult, CustomerTwin, Problem, ScoreResult, Transaction, batch_request
from service.scoring import RESULT_SCHEMA, check_thresholds

log = logging.getLogger("finrisk.service")
RESPONSE_COLUMNS = ("txn_id", *RESULT_SCHEMA, "duplicate")
INLINE_ROWS = 64  # scoring calls up to this many transactions run on the event loop, larger ones in a thread
BATCH_WAIT_S = 0.001  # when requests overlap, how long a call waits for more requests to score with


def request_records(transactions: list[Transaction]) -> list[dict]:
    """Validated request bodies as records (TRANSACTION_FIELDS, plus `ts_us`: the instant in epoch microseconds)."""
    records = []
    for t in transactions:  # the request's transactions
        record = dict(t.__dict__)  # the validated fields as they are (model_dump would convert each again)
        record["ts_us"] = epoch_us(record["ts"])
        records.append(record)
    return records


class Coalescer:
    """Requests that arrive while a scoring call runs are scored together in the next call: a call
    costs about the same for one transaction or a few dozen, so under load this keeps throughput up.
    Each transaction still sees exactly the transactions before it in time.

    When requests overlap (others came while a call ran), the next call first waits BATCH_WAIT_S for
    more: the cost of a call is spread over more requests, which keeps the service clear of
    saturation. A request that finds the service idle is scored at once."""

    def __init__(self, engine: ScoringEngine, batch_wait_s: float = BATCH_WAIT_S):
        self.engine = engine
        self.batch_wait_s = batch_wait_s
        self.pending: list[tuple[list[dict], asyncio.Future]] = []
        self.draining = False

    async def score(self, records: list[dict]) -> list[dict]:
        future = asyncio.get_running_loop().create_future()
        self.pending.append((records, future))
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
                for _ in range(2):  # read the requests that came meanwhile, then let them reach the queue
                    await asyncio.sleep(0)
                if self.pending and self.batch_wait_s > 0:  # requests overlap: let a few more join the next call
                    await asyncio.sleep(self.batch_wait_s)
        finally:
            self.draining = False

    async def _score_group(self, group: list[tuple[list[dict], asyncio.Future]]) -> None:
        combined = [r for records, _ in group for r in records]
        try:
            results, _ = await self._run(combined)
        except Exception as exc:
            if len(group) > 1:  # one bad request (e.g. another day) must fail alone: score each by itself
                for item in group:
                    await self._score_group([item])
                return
            if not group[0][1].done():
                group[0][1].set_exception(exc)
            return
        start = 0
        for records, future in group:
            if not future.done():
                future.set_result(results[start:start + len(records)])
            start += len(records)

    async def _run(self, records: list[dict]):
        if len(records) <= INLINE_ROWS:  # shorter than a thread hop: the loop waits on the GIL either way
            return self.engine.score_records(records)
        return await run_in_threadpool(self.engine.score_records, records)


def _disjoint_groups(items):
    """Consecutive groups with no txn_id in two requests (a retry of a request in the same group
    is scored after it, and answered as a duplicate)."""
    groups, seen = [], set()
    for item in items:  # requests, not rows
        ids = {r["txn_id"] for r in item[0]}
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


def _results_json(results: list[dict], wrap: bool) -> Response:
    rows = [{name: r[name] for name in RESPONSE_COLUMNS} for r in results]
    # orjson: a batch's answer in a tenth of the time of the json module (non-finite numbers as null).
    return Response(content=orjson.dumps({"results": rows} if wrap else rows[0]), media_type="application/json")


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
    key = settings.pseudonym_key.get_secret_value().encode() if settings.pseudonym_key else None
    engine = ScoringEngine(
        root, champion, settings.review_threshold, settings.block_threshold,
        labels=pl.read_parquet(labels_path) if labels_path.exists() else None,
        gate=ConsentGate(root, settings.consent_required, key),
    )
    coalescer = Coalescer(engine)
    state = {"startup_error": None}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        try:
            champion.refresh()
            engine.open_day()
            engine.warm()
        except (TwinNotFoundError, OSError, ValueError, ConsentError) as exc:
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
    @app.exception_handler(ConsentError)  # the erasure register cannot be honoured: process nothing
    async def _not_ready(request: Request, exc: Exception):
        return JSONResponse({"detail": f"not ready: {exc}"}, status_code=503)

    @app.exception_handler(CustomerNotProcessed)
    async def _not_processed(request: Request, exc: Exception):
        return JSONResponse({"detail": str(exc)}, status_code=404)

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
                "scored_today": engine.scored_today()}

    @app.post("/v1/score", response_model=ScoreResult, dependencies=auth, responses=ERRORS, tags=["scoring"])
    async def score(transaction: Transaction):
        """Score one transaction: fraud score, anomaly score, decision band, reason codes, model version."""
        return _results_json(await coalescer.score(request_records([transaction])), wrap=False)

    Batch = batch_request(settings.serve_max_batch)

    @app.post("/v1/score/batch", response_model=BatchResult, dependencies=auth, responses=ERRORS, tags=["scoring"])
    async def score_batch(batch: Batch):  # type: ignore[valid-type]
        """Score up to FINRISK_SERVE_MAX_BATCH transactions of one business day, in one call."""
        records = request_records(batch.transactions)
        if len({r["txn_id"] for r in records}) < len(records):
            raise HTTPException(422, detail="txn_id values repeat within the batch")
        return _results_json(await coalescer.score(records), wrap=True)

    @app.get("/v1/customers/{customer_id}/twin", response_model=CustomerTwin, dependencies=auth,
             responses={**ERRORS, 404: {"model": Problem}}, tags=["customers"])
    async def customer_twin(customer_id: Annotated[str, PathParam(min_length=1, max_length=128)]):
        """The customer's behavioural profile (the twin) and what today added so far; 404 for a customer
        who is unknown, erased, or withdrew consent for fraud detection."""
        view = await run_in_threadpool(engine.customer_view, customer_id)
        if view is None:
            raise HTTPException(404, detail=f"no customer {customer_id!r} in the twin or today's transactions")
        return JSONResponse(_json_safe(view))

    return app
