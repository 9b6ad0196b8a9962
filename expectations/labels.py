"""GX suite for incoming fraud labels, including the referential checks against the processed
transactions: a label must name a loaded transaction and cannot be reported before it happened.

The batch view carries `txn_loaded` and `txn_ts`, looked up from processed/ when the view is built.
"""
from __future__ import annotations

from datetime import datetime, timezone

import great_expectations as gx
import great_expectations.expectations as gxe

from expectations.transactions import CLOCK_SKEW, EARLIEST

LABELS_SUITE = "labels_raw"
LABEL_VALUES = (0, 1)


def _reason(reason: str) -> dict:
    return {"reason": reason}


def label_suite(now: datetime | None = None) -> gx.ExpectationSuite:
    now = now or datetime.now(timezone.utc)
    suite = gx.ExpectationSuite(name=LABELS_SUITE)
    add = suite.add_expectation
    add(gxe.ExpectColumnValuesToNotBeNull(column="txn_id", meta=_reason("txn_id: missing")))
    add(gxe.ExpectColumnProportionOfUniqueValuesToBeBetween(
        column="txn_id", min_value=1.0, max_value=1.0, meta=_reason("txn_id: not unique")))
    add(gxe.ExpectColumnValuesToBeNull(column="label_unparsed", meta=_reason("label: cannot be parsed")))
    add(gxe.ExpectColumnValuesToNotBeNull(column="label", meta=_reason("label: missing")))
    add(gxe.ExpectColumnValuesToBeInSet(column="label", value_set=list(LABEL_VALUES), meta=_reason("label: not 0 or 1")))
    add(gxe.ExpectColumnValuesToBeNull(column="reported_at_unparsed", meta=_reason("reported_at: cannot be parsed")))
    add(gxe.ExpectColumnValuesToNotBeNull(column="reported_at", meta=_reason("reported_at: missing")))
    add(gxe.ExpectColumnValuesToBeBetween(
        column="reported_at", min_value=EARLIEST, max_value=now + CLOCK_SKEW,
        meta=_reason("reported_at: in the future or before 2000")))
    add(gxe.ExpectColumnValuesToBeInSet(
        column="txn_loaded", value_set=[True], meta=_reason("txn_id: no such transaction in processed/")))
    add(gxe.ExpectColumnPairValuesAToBeGreaterThanB(
        column_A="reported_at", column_B="txn_ts", or_equal=True, ignore_row_if="either_value_is_missing",
        meta=_reason("reported_at: before the transaction")))
    return suite
