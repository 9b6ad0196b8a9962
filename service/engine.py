"""The service's scoring state: the twin of the day being served, the day's transactions so far, and
the journal that makes them survive a restart.

Velocity state is the twin (everything before the day, with its running totals) plus every
transaction scored today; each scored transaction is added to it, so the next one of the same
customer, counterparty or device sees it. One lock serialises updates (one uvicorn worker).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import polars as pl

from features.twin import Twin, TwinNotFoundError, read_twin
from finrisk.schema import BUSINESS_TZ
from service.champion import ChampionSource
from service.journal import Journal
from service.scoring import RESULT_SCHEMA, TRANSACTION_FIELDS, online_scores
from service.twin_slice import TwinIndex, related_rows

# Up to this many transactions per call, the twin is sliced to their keys first; larger batches
# touch much of the twin anyway and run on it whole.
SLICE_LIMIT = 64
COMPACT_CHUNKS = 32  # appended chunks merged into one beyond this, so filters scan few chunks


class DayNotServed(ValueError):
    """The transactions' business date is not the day the loaded twin serves."""


class NotReady(RuntimeError):
    """No twin or no champion loaded yet."""


@dataclass
class Chunks:
    """A frame that grows by appends without copying it whole each time."""

    schema: dict
    parts: list[pl.DataFrame] = field(default_factory=list)

    def append(self, frame: pl.DataFrame) -> None:
        self.parts.append(frame)
        if len(self.parts) > COMPACT_CHUNKS:
            self.parts = [pl.concat(self.parts, rechunk=True)]

    def frame(self) -> pl.DataFrame:
        if not self.parts:
            return pl.DataFrame(schema=self.schema)
        return self.parts[0] if len(self.parts) == 1 else pl.concat(self.parts)


@dataclass
class DayBook:
    twin: Twin
    index: TwinIndex
    journal: Journal
    rows: Chunks  # the day's scored transactions (TRANSACTION_FIELDS)
    results: Chunks  # txn_id + RESULT_SCHEMA, for answering retries

    @property
    def day(self) -> date:
        return self.twin.as_of


def business_dates(tx: pl.DataFrame) -> list[date]:
    return tx.select(pl.col("ts").dt.convert_time_zone(BUSINESS_TZ).dt.date().unique().sort()).to_series().to_list()


class ScoringEngine:
    def __init__(
        self, data_dir: Path, champion: ChampionSource, review_threshold: float, block_threshold: float,
        labels: pl.DataFrame | None = None, fsync: bool = False,
    ):
        self.data_dir = Path(data_dir)
        self.champion = champion
        self.review_threshold = review_threshold
        self.block_threshold = block_threshold
        self.labels = labels
        self.fsync = fsync
        self.book: DayBook | None = None
        self._lock = threading.Lock()

    # ---- the day served ------------------------------------------------------------------------

    def open_day(self, day: date | None = None) -> DayBook:
        """Load the twin as of `day` (the latest one when None) and replay that day's journal."""
        twin = read_twin(self.data_dir, day)
        journal = Journal(self.data_dir, twin.as_of, self.fsync)
        replayed = journal.replay()
        book = DayBook(
            twin, TwinIndex(twin), journal, Chunks(TRANSACTION_FIELDS), Chunks({"txn_id": pl.String, **RESULT_SCHEMA})
        )
        if replayed.height:
            replayed = replayed.unique("txn_id", keep="first", maintain_order=True)
            book.rows.append(replayed.select(list(TRANSACTION_FIELDS)))
            book.results.append(replayed.select("txn_id", *RESULT_SCHEMA))
        if self.book is not None:
            self.book.journal.close()
        self.book = book
        return book

    def _book_for(self, tx: pl.DataFrame) -> DayBook:
        if self.book is None:
            raise NotReady("no twin loaded")
        days = business_dates(tx)
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

    # ---- scoring --------------------------------------------------------------------------------

    def score(self, tx: pl.DataFrame, with_features: bool = False) -> pl.DataFrame:
        """Score transactions (TRANSACTION_FIELDS columns, distinct txn_ids); txn_ids scored before
        are answered from their first result and not counted again. Rows come back in input order:
        txn_id, RESULT_SCHEMA, `duplicate` (and every feature with with_features, for new ones)."""
        champion = self.champion.current()  # held for the whole request: an alias swap cannot split it
        if champion is None:
            raise NotReady("no champion model loaded")
        with self._lock:
            book = self._book_for(tx)
            known = book.results.frame()
            seen = tx.get_column("txn_id").is_in(known.get_column("txn_id").implode())
            new = tx.filter(~seen)
            scored = self._score_new(book, new, champion) if new.height else None
            answers = known.join(tx.filter(seen).select("txn_id"), on="txn_id", how="semi").with_columns(
                pl.lit(True).alias("duplicate")
            )
            if scored is not None:
                fresh = scored.select("txn_id", *RESULT_SCHEMA, pl.lit(False).alias("duplicate"))
                answers = pl.concat([answers, scored if with_features else fresh], how="diagonal_relaxed")
        return tx.select("txn_id").join(answers, on="txn_id", how="left", maintain_order="left")

    def _score_new(self, book: DayBook, new: pl.DataFrame, champion: tuple) -> pl.DataFrame:
        new = new.select(list(TRANSACTION_FIELDS))
        so_far = book.rows.frame()
        if new.height <= SLICE_LIMIT:
            twin, context = book.index.slice(new), related_rows(so_far, new)
        else:
            twin, context = book.twin, so_far
        scored = online_scores(
            twin, pl.concat([context, new]), new.get_column("txn_id"), champion,
            self.review_threshold, self.block_threshold, self.labels,
        )
        # Journal first: a transaction counts in the velocity state only once it is durable.
        record = new.join(scored.select("txn_id", *RESULT_SCHEMA), on="txn_id", maintain_order="left")
        book.journal.append(record)
        book.rows.append(new)
        book.results.append(record.select("txn_id", *RESULT_SCHEMA))
        return scored

    # ---- reading the state ----------------------------------------------------------------------

    def customer_view(self, customer_id: str) -> dict | None:
        """The customer's twin profile and what the day added so far; None for an unknown customer."""
        book = self.book
        if book is None:
            raise NotReady("no twin loaded")
        profile = book.index.slice(pl.DataFrame({"customer_id": [customer_id], "counterparty": [None], "device_id": [None]},
                                                schema={"customer_id": pl.String, "counterparty": pl.String, "device_id": pl.String}))
        today = book.rows.frame().filter(pl.col("customer_id") == customer_id)
        if profile.profiles.height == 0 and today.height == 0:
            return None
        return {
            "customer_id": customer_id,
            "as_of": book.day.isoformat(),
            "profile": profile.profiles.row(0, named=True) if profile.profiles.height else None,
            "counterparties": profile.counterparties.filter(pl.col("customer_id") == customer_id).head(10).to_dicts(),
            "devices": profile.devices.filter(pl.col("customer_id") == customer_id).head(10).to_dicts(),
            "today": {
                "txn_count": today.height,
                "amount_sum_paise": int(today.get_column("amount_paise").sum()),
                "last_ts": today.get_column("ts").max().isoformat() if today.height else None,
            },
        }

    def close(self) -> None:
        if self.book is not None:
            self.book.journal.close()
