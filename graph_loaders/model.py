"""The graph model: node labels with their keys and properties, relationship types with their ends.

One declaration drives the constraints, the bulk-import headers and the Cypher upserts, so the two
load paths cannot drift apart. Times are Neo4j DateTime in UTC (offset Z) on both paths.
"""
from __future__ import annotations

from dataclasses import dataclass

# Property kinds, as neo4j-admin import header types.
LONG, STRING, DATETIME = "long", "string", "datetime"


@dataclass(frozen=True)
class NodeSpec:
    label: str
    key: str  # unique, and the column name in every frame that refers to the node
    props: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class RelSpec:
    name: str  # frame name: one per (type, start label, end label)
    type: str
    start: str  # node label
    end: str
    props: tuple[tuple[str, str], ...] = ()
    # At most one relationship of this type leaves a start node (a customer's home city): a reload
    # removes the old one when it changes.
    single_per_start: bool = False


CUSTOMER = NodeSpec("Customer", "customer_id")
ACCOUNT = NodeSpec("Account", "account_id", (("ifsc", STRING),))
MERCHANT = NodeSpec("Merchant", "merchant_id", (("mcc", STRING),))
DEVICE = NodeSpec("Device", "device_id")
VPA = NodeSpec("VPA", "vpa")
CITY = NodeSpec("City", "city_id", (("name", STRING), ("state", STRING)))
# Which business days of processed data the graph holds, and how many rows each had then.
LOADED_DAY = NodeSpec("LoadedDay", "date", (("rows", LONG),))

NODES = (CUSTOMER, ACCOUNT, MERCHANT, DEVICE, VPA, CITY)
NODE_BY_LABEL = {n.label: n for n in (*NODES, LOADED_DAY)}

MONEY = (("count", LONG), ("failed_count", LONG), ("total_paise", LONG), ("first", DATETIME), ("last", DATETIME))
SEEN = (("first_seen", DATETIME), ("last_seen", DATETIME))

PAID = RelSpec("paid", "PAID", "Customer", "Merchant", MONEY)
TRANSFERRED_TO_VPA = RelSpec("transferred_to_vpa", "TRANSFERRED", "Customer", "VPA", MONEY)
TRANSFERRED_FROM_VPA = RelSpec("transferred_from_vpa", "TRANSFERRED", "VPA", "Customer", MONEY)
USES = RelSpec("uses", "USES", "Customer", "Device", (("count", LONG), *SEEN))
OWNS_ACCOUNT = RelSpec("owns_account", "OWNS", "Customer", "Account", SEEN)
OWNS_VPA = RelSpec("owns_vpa", "OWNS", "Customer", "VPA", SEEN)
CUSTOMER_CITY = RelSpec("customer_city", "LOCATED_IN", "Customer", "City", (("txn_count", LONG),), True)
MERCHANT_CITY = RelSpec("merchant_city", "LOCATED_IN", "Merchant", "City", (("txn_count", LONG),), True)

RELATIONSHIPS = (
    PAID, TRANSFERRED_TO_VPA, TRANSFERRED_FROM_VPA, USES, OWNS_ACCOUNT, OWNS_VPA, CUSTOMER_CITY, MERCHANT_CITY,
)


def start_key(rel: RelSpec) -> str:
    return NODE_BY_LABEL[rel.start].key


def end_key(rel: RelSpec) -> str:
    return NODE_BY_LABEL[rel.end].key
