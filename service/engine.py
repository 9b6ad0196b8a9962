"""The service's scoring state: the twin of the day being served, the day's transactions so far, and
the journal that makes them survive a restart.

Velocity state is the online feature state (features.online_state): the twin (everything before the
day, with its running totals) plus every transaction scored today; each scored transaction is added
to it, so the next one of the same customer, counterparty or device sees it. One lock serialises
updates (one uvicorn worker).
"""
from __future__ import annotations

import gc
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from features.online_state import OnlineState
from features.twin import Twin, TwinNotFoundError, read_twin
from finrisk.schema import BUSINESS_TZ
from service.champion import ChampionSource
from service.consent_gate import ERASURE, ConsentGate
from service.fast_scorer import PARALLEL_ROWS, FastScorer
from service.journal import Journal
from service.scoring import NOT_PROCESSED, RESULT_SCHEMA, TRANSACTION_FIELDS, extra_labels
from service.twin_slice import TwinIndex

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MICROSECOND = timedelta(microseconds=1)
ZONE = ZoneInfo(BUSINESS_TZ)
RESULT_FIELDS = tuple(RESULT_SCHEMA)
SETTLE_EVERY = 1000  # scored transactions between two settle_memory() calls


class DayNotServed(ValueError):
    """The transactions' business date is not the day the loaded twin serves."""


class NotReady(RuntimeError):
    """No twin or no champion loaded yet."""


class CustomerNotProcessed(LookupError):
    """The customer's data may not be processed for fraud detection (finrisk.consent)."""


def settle_memory(young_only: bool = False) -> None:
    """Collect garbage, then keep every object alive now out of the collector's later passes. The
    loaded day is hundreds of thousands of long-lived objects, and the day's transactions add more:
    a full pass over them stalls a request for a tenth of a second or more."""
    gc.collect(1 if young_only else 2)
    gc.freeze()


def epoch_us(ts: datetime) -> int:
    return (ts - EPOCH) // MICROSECOND


def columns_of(records: list[dict]) -> dict[str, list]:
    """Records as the online state takes them: a list per field, `ts` as epoch microseconds."""
    columns = {name: [r.get(name) for r in records] for name in TRANSACTION_FIELDS if name != "ts"}
    columns["ts_us"] = [r["ts_us"] for r in records]
    return columns


def not_processed(txn_id: str) -> dict:
    """The answer for a transaction the service may not process: no score, no reasons, no model."""
    return {"txn_id": txn_id, "score": None, "anomaly_score": None, "decision": NOT_PROCESSED, "reasons": [],
            "model_version": None, "duplicate": False}


@dataclass
class DayBook:
    twin: Twin
    index: TwinIndex  # the twin by customer, for the customer view
    journal: Journal
    pristine: OnlineState  # the twin alone, to start the day's state again from
    state: OnlineState  # the twin plus the day's transactions that count
    records: list[dict] = field(default_factory=list)  # the day's scored transactions (TRANSACTION_FIELDS, ts_us)
    results: dict[str, dict] = field(default_factory=dict)  # txn_id -> RESULT_SCHEMA values, for answering retries
    hidden: set[str] = field(default_factory=set)  # customers of `records` not processed now (consent withdrawn)

    @property
    def day(self) -> date:
        return self.twin.as_of


def records_of(frame: pl.DataFrame) -> list[dict]:
    """Canonical rows (ts timezone-aware) as request records."""
    present = [c for c in TRANSACTION_FIELDS if c in frame.columns]
    records = frame.select(present).to_dicts()
    for r in records:
        r["ts_us"] = epoch_us(r["ts"])
    return records


class ScoringEngine:
    def __init__(
        self, data_dir: Path, champion: ChampionSource, review_threshold: float, block_threshold: float,
        labels: pl.DataFrame | None = None, fsync: bool = False, gate: ConsentGate | None = None,
    ):
        self.data_dir = Path(data_dir)
        self.champion = champion
        self.review_threshold = review_threshold
        self.block_threshold = block_threshold
        self.labels = labels
        self.fsync = fsync
        self.gate = gate or ConsentGate(data_dir)
        self.book: DayBook | None = None
        self._lock = threading.Lock()
        self._scorers: dict[int, FastScorer] = {}
        self._since_settled = 0

    # ---- the day served ------------------------------------------------------------------------

    def open_day(self, day: date | None = None) -> DayBook:
        """Load the twin as of `day` (the latest one when None) and replay that day's journal."""
        self.gate.refresh()  # before reading: what the files say from here on is what this day starts with
        twin = read_twin(self.data_dir, day)
        journal = Journal(self.data_dir, twin.as_of, self.fsync)
        journal.ensure_key()
        replayed = journal.replay().unique("txn_id", keep="first", maintain_order=True)
        pristine = OnlineState(twin, extra_labels(twin, self.labels))
        book = DayBook(twin, TwinIndex(twin), journal, pristine, pristine)
        if replayed.height:
            book.records = records_of(replayed)
            results = replayed.select("txn_id", *RESULT_FIELDS).iter_rows()
            book.results = {row[0]: dict(zip(RESULT_FIELDS, row[1:])) for row in results}
        self.gate.prime(twin.profiles.get_column("customer_id"))
        book.hidden = self.gate.excluded({r["customer_id"] for r in book.records})
        book.state = self._day_state(book)
        if self.book is not None:
            self.book.journal.close()
        self.book = book
        settle_memory()
        return book

    def _day_state(self, book: DayBook) -> OnlineState:
        """The twin plus the day's transactions of customers processed now, in one vectorised pass."""
        state = book.pristine.fork()
        counted = [r for r in book.records if r["customer_id"] not in book.hidden]
        if counted:
            state.stage(columns_of(counted))
            state.commit()
        return state

    def _follow_consent(self) -> None:
        """Apply consent and erasure recorded since the last request. An erasure rewrote the twin and
        the journal without the customer: the day is loaded again from them, so nothing of the
        customer stays in memory. A consent change changes which of today's rows count: the day's
        state is built again without the rows of customers not processed now."""
        changed = self.gate.refresh()
        if self.book is None or not changed:
            return
        if ERASURE in changed:
            old, self.book = self.book, None  # if loading fails, nothing of the old state is served
            old.journal.close()
            self.open_day(old.day)
            return
        hidden = self.gate.excluded({r["customer_id"] for r in self.book.records})
        if hidden != self.book.hidden:
            self.book.hidden = hidden
            self.book.state = self._day_state(self.book)

    def _book_for(self, records: list[dict]) -> DayBook:
        if self.book is None:
            raise NotReady("no twin loaded")
        days = sorted({(EPOCH + r["ts_us"] * MICROSECOND).astimezone(ZONE).date() for r in records})
        if len(days) > 1:
            raise DayNotServed(
                f"one request holds transactions of one business day (Asia/Kolkata); got {', '.join(map(str, days))}"
            )
        day, served = days[0], self.book.day
        if day < served:
            raise DayNotServed(f"transaction of {day} is older than the day served ({served})")
        if day > served:
            try:
                self.open_day(day)
            except TwinNotFoundError:
                raise DayNotServed(
                    f"no twin as of {day} yet (the nightly run builds it); serving transactions of {served}"
                ) from None
        return self.book

    def _scorer(self, champion: tuple) -> tuple[FastScorer, int]:
        scorer, version = champion
        if version not in self._scorers:
            fast = FastScorer(scorer)
            for rows in (1, PARALLEL_ROWS):  # first uses compile (HBOS: numba) and start threads: not in a request
                fast.score(np.zeros((rows, len(fast.columns))))
            self._scorers = {version: fast}  # the previous version is no longer served
        return self._scorers[version], version

    def warm(self) -> None:
        """Prepare the champion and the feature state for scoring now rather than on the first request
        (the state's compiled loops load or compile on their first call)."""
        champion = self.champion.current()
        if champion is not None:
            self._scorer(champion)
        book = self.book
        if book is not None and book.twin.profiles.height:
            sample = {name: None for name in TRANSACTION_FIELDS if name != "ts"}
            sample.update(txn_id="warm-up", customer_id=book.twin.profiles.item(0, "customer_id"), amount_paise=100,
                          ts_us=book.twin.since_ms * 1000)
            book.pristine.fork().stage(columns_of([sample]))  # on a copy: the day's state is left as it was
        settle_memory()

    # ---- scoring --------------------------------------------------------------------------------

    def score_records(self, records: list[dict], with_features: bool = False) -> tuple[list[dict], pl.DataFrame | None]:
        """Score transactions (request records: TRANSACTION_FIELDS with `ts_us`, distinct txn_ids);
        returns their results in input order (txn_id, RESULT_SCHEMA, duplicate) and, with_features,
        the features of the newly scored ones. A txn_id scored before is answered from its first
        result and not counted again; a customer not to be processed (ConsentGate) gets
        `not_processed` and leaves no trace in the state or the journal."""
        champion = self.champion.current()  # held for the whole request: an alias swap cannot split it
        if champion is None:
            raise NotReady("no champion model loaded")
        scorer, version = self._scorer(champion)
        with self._lock:
            self._follow_consent()
            book = self._book_for(records)
            refused = self.gate.excluded({r["customer_id"] for r in records})
            answers: list[dict | None] = [None] * len(records)
            new = []
            for i, r in enumerate(records):  # the request's own rows: which need scoring
                txn_id = r["txn_id"]
                if r["customer_id"] in refused:
                    answers[i] = not_processed(txn_id)
                elif txn_id in book.results:
                    answers[i] = {"txn_id": txn_id, **book.results[txn_id], "duplicate": True}
                else:
                    new.append(i)
            features = None
            if new:
                scored, features = self._score_new(book, [records[i] for i in new], scorer, version, with_features)
                for i, result in zip(new, scored):
                    answers[i] = result
        return answers, features

    def score(self, tx: pl.DataFrame, with_features: bool = False) -> pl.DataFrame:
        """score_records for canonical rows, as a frame (and every feature of the new ones, with_features)."""
        answers, features = self.score_records(records_of(tx), with_features)
        frame = pl.DataFrame(answers, schema={"txn_id": pl.String, **RESULT_SCHEMA, "duplicate": pl.Boolean})
        if features is not None:
            frame = frame.join(features, on="txn_id", how="left", maintain_order="left")
        return frame

    def _score_new(self, book: DayBook, records: list[dict], scorer: FastScorer, version: int,
                   with_features: bool) -> tuple[list[dict], pl.DataFrame | None]:
        columns = columns_of(records)
        batch, undo = book.state.stage(columns)
        try:
            x = batch.matrix(scorer.columns)
            anomaly = scorer.anomaly(x)
            score = scorer.probability(x, anomaly)
            decision = np.where(score >= self.block_threshold, "block",
                                np.where(score >= self.review_threshold, "review", "allow"))
            reasons = scorer.reasons(x, anomaly, decision != "allow")
            outcome = {"score": score.tolist(), "anomaly_score": anomaly.tolist(), "decision": decision.tolist(),
                       "reasons": reasons, "model_version": [version] * len(records)}
            # Journal first: a transaction counts in the velocity state only once it is durable.
            book.journal.append_columns(columns, outcome)
            results = [
                {"score": s, "anomaly_score": a, "decision": d, "reasons": why, "model_version": version}
                for s, a, d, why in zip(outcome["score"], outcome["anomaly_score"], outcome["decision"], reasons)
            ]
        except BaseException:
            book.state.rollback(undo)
            raise
        book.state.commit()
        book.records.extend(records)
        for r, result in zip(records, results):
            book.results[r["txn_id"]] = result
        self._since_settled += len(records)
        if self._since_settled >= SETTLE_EVERY:
            self._since_settled = 0
            settle_memory(young_only=True)
        answers = [{"txn_id": r["txn_id"], **result, "duplicate": False} for r, result in zip(records, results)]
        return answers, batch.frame() if with_features else None

    # ---- reading the state ----------------------------------------------------------------------

    def scored_today(self) -> int:
        return 0 if self.book is None else len(self.book.results)

    def customer_view(self, customer_id: str) -> dict | None:
        """The customer's twin profile and what the day added so far; None for an unknown customer.
        Raises CustomerNotProcessed for a customer the gate excludes (withdrawn or erased)."""
        with self._lock:
            self._follow_consent()
            book = self.book
            if book is None:
                raise NotReady("no twin loaded")
            if self.gate.excluded([customer_id]):
                raise CustomerNotProcessed(
                    f"customer {customer_id!r} is not processed for fraud detection (consent withdrawn, or erased)"
                )
            today = [r for r in book.records if r["customer_id"] == customer_id]
        keys = {"customer_id": pl.String, "counterparty": pl.String, "device_id": pl.String}
        profile = book.index.slice(pl.DataFrame({"customer_id": [customer_id], "counterparty": [None], "device_id": [None]},
                                                schema=keys))
        if profile.profiles.height == 0 and not today:
            return None
        last = max((r["ts_us"] for r in today), default=None)
        return {
            "customer_id": customer_id,
            "as_of": book.day.isoformat(),
            "profile": profile.profiles.row(0, named=True) if profile.profiles.height else None,
            "counterparties": profile.counterparties.filter(pl.col("customer_id") == customer_id).head(10).to_dicts(),
            "devices": profile.devices.filter(pl.col("customer_id") == customer_id).head(10).to_dicts(),
            "today": {
                "txn_count": len(today),
                "amount_sum_paise": sum(r["amount_paise"] for r in today),
                "last_ts": None if last is None else (EPOCH + last * MICROSECOND).isoformat(),
            },
        }

    def close(self) -> None:
        if self.book is not None:
            self.book.journal.close()
        gc.unfreeze()  # what was kept out of collection can be freed again
