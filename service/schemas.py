"""Request and response bodies of the scoring API (OpenAPI at /docs)."""
from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, create_model

from finrisk.schema import CHANNELS, DIRECTIONS, STATUSES

Id = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
Text = Annotated[str, Field(min_length=1, max_length=128)]


class Transaction(BaseModel):
    """One transaction in canonical form (see the data contract): `ts` timezone-aware, money in
    integer paise. Direct identifiers are refused; a person-to-person payee is sent as its `tk_`
    pseudonym, as ingest stores it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    txn_id: Id
    ts: AwareDatetime = Field(description="When it happened, with its UTC offset (e.g. 2026-02-05T10:15:00+05:30).")
    customer_id: Id
    amount_paise: int = Field(ge=0, le=10**15, description="Amount in paise (INR 1 = 100 paise).")
    counterparty: Id | None = Field(None, description="Merchant id, or the payee's pseudonym for P2P payments.")
    counterparty_type: Text | None = None
    mcc: Annotated[str, Field(pattern=r"^[0-9]{4}$")] | None = None
    channel: Literal[CHANNELS] | None = None  # type: ignore[valid-type]
    direction: Literal[DIRECTIONS] | None = None  # type: ignore[valid-type]
    status: Literal[STATUSES] | None = None  # type: ignore[valid-type]
    device_id: Id | None = None
    city: Text | None = None
    state: Text | None = None
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    currency: Literal["INR"] | None = "INR"
    ip: Annotated[str, Field(max_length=45)] | None = None
    pincode: Annotated[str, Field(pattern=r"^[1-9][0-9]{5}$")] | None = None
    ifsc: Annotated[str, Field(pattern=r"^[A-Z]{4}0[A-Z0-9]{6}$")] | None = None


Decision = Literal["allow", "review", "block", "not_processed"]


def batch_request(max_batch: int) -> type[BaseModel]:
    """The batch body, with its size limit from configuration."""
    return create_model(
        "BatchRequest",
        __config__=ConfigDict(extra="forbid"),
        transactions=(Annotated[list[Transaction], Field(min_length=1, max_length=max_batch)], ...),
    )


class ScoreResult(BaseModel):
    txn_id: str
    score: float | None = Field(description="Probability of fraud from the champion model, 0..1; null when not processed.")
    anomaly_score: float | None = Field(description="Anomaly ensemble rank, 0..1 (1 = most unusual); null when not processed.")
    decision: Decision = Field(
        description="allow / review / block, from the configured thresholds; not_processed when the customer "
        "withdrew consent for fraud detection or was erased (nothing of the transaction is kept)."
    )
    reasons: list[str] = Field(description="Features that raised the score most, with their values.")
    model_version: int | None = Field(description="Registered version of the model that scored it; null when not processed.")
    duplicate: bool = Field(description="True when this txn_id was scored before: the first result is returned.")


class BatchResult(BaseModel):
    results: list[ScoreResult]


class CustomerTwin(BaseModel):
    customer_id: str
    as_of: date = Field(description="The twin summarises everything before this business day.")
    profile: dict | None
    counterparties: list[dict]
    devices: list[dict]
    today: dict = Field(description="The day's transactions scored so far.")


class Problem(BaseModel):
    detail: str
