"""The canonical transaction and label tables every stage after ingest reads."""
from __future__ import annotations

import polars as pl

CHANNELS = ("UPI", "IMPS", "NEFT", "RTGS", "CARD_POS", "CARD_ECOM", "ATM", "NETBANKING", "WALLET")
DIRECTIONS = ("DEBIT", "CREDIT")
STATUSES = ("SUCCESS", "FAILED", "PENDING", "REVERSED")
BUSINESS_TZ = "Asia/Kolkata"

TRANSACTION_SCHEMA: dict[str, pl.DataType] = {
    "txn_id": pl.String,
    "ts": pl.Datetime("us", "UTC"),
    "customer_id": pl.String,
    "account_id": pl.String,
    "counterparty": pl.String,
    "counterparty_type": pl.String,
    "mcc": pl.String,
    "channel": pl.String,
    "direction": pl.String,
    "amount_paise": pl.Int64,
    "currency": pl.String,
    "status": pl.String,
    "device_id": pl.String,
    "ip": pl.String,
    "city": pl.String,
    "state": pl.String,
    "pincode": pl.String,
    "latitude": pl.Float64,
    "longitude": pl.Float64,
    "ifsc": pl.String,
    # Direct identifiers: only ever stored as keyed pseudonyms.
    "customer_name": pl.String,
    "phone": pl.String,
    "email": pl.String,
    "payer_vpa": pl.String,
    "pan": pl.String,
    "aadhaar": pl.String,
}

# Fields that stay sensitive after pseudonymisation (where a person is, their network address):
# stored only encrypted, in a side table keyed by txn_id (finrisk.sensitive), never in the
# processed transactions themselves.
SENSITIVE_FIELDS = ("ip", "latitude", "longitude")
PROCESSED_COLUMNS = [c for c in TRANSACTION_SCHEMA if c not in SENSITIVE_FIELDS]

# Fields that are direct identifiers under the DPDP Act and are pseudonymised at ingest.
PII_FIELDS = ("account_id", "customer_name", "phone", "email", "payer_vpa", "pan", "aadhaar")
REQUIRED_FIELDS = ("txn_id", "ts", "customer_id", "amount_paise")

# Counterparties of these types are VPAs of people, so they are pseudonymised as well.
PERSON_COUNTERPARTY_TYPES = ("P2P",)

LABEL_SCHEMA: dict[str, pl.DataType] = {
    "txn_id": pl.String,
    "label": pl.Int8,
    "fraud_type": pl.String,
    "reported_at": pl.Datetime("us", "UTC"),
}


def empty_transactions() -> pl.DataFrame:
    return pl.DataFrame(schema=TRANSACTION_SCHEMA)
