"""The feature catalogue: each feature declared once, with its entity, window and inputs."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Feature:
    name: str
    entity: str
    window: str | None
    description: str
    needs: tuple[str, ...]


CATALOGUE: tuple[Feature, ...] = (
    Feature("amount_rupees_log", "transaction", None, "log10 of the amount in rupees", ("amount_paise",)),
    Feature("hour_of_day", "transaction", None, "hour of day in Asia/Kolkata", ("ts",)),
    Feature("is_night", "transaction", None, "between 00:00 and 05:59 Asia/Kolkata", ("ts",)),
    Feature("channel_code", "transaction", None, "payment channel as a category code", ("channel",)),
    Feature("is_debit", "transaction", None, "money leaves the customer's account", ("direction",)),
    Feature("txn_count_1h", "customer", "1h", "customer's transactions in the hour before", ("customer_id", "ts")),
    Feature("txn_count_24h", "customer", "24h", "customer's transactions in the 24 h before", ("customer_id", "ts")),
    Feature("amount_sum_24h_rupees", "customer", "24h", "customer's spend in the 24 h before", ("customer_id", "ts", "amount_paise")),
    Feature(
        "amount_vs_30d_mean", "customer", "30d",
        "amount over the customer's mean amount in the 30 days before (null without history)",
        ("customer_id", "ts", "amount_paise"),
    ),
    Feature("seconds_since_prev", "customer", None, "seconds since the customer's previous transaction", ("customer_id", "ts")),
    Feature(
        "first_time_counterparty", "customer x counterparty", None,
        "the customer has never paid this merchant or payee before", ("customer_id", "counterparty", "ts"),
    ),
)

MODEL_FEATURES: tuple[str, ...] = tuple(f.name for f in CATALOGUE)
