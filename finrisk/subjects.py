"""How finrisk refers to a data principal (a customer) outside the data itself.

The audit log, erasure certificates and the erasure register never hold a customer id in clear: they hold a subject reference, a keyed HMAC of the
id under the pseudonymisation key with its own domain prefix (`redact_argv` puts it in place of
the id on the command line the audit log records). With the key the bank can answer
"was customer X erased, and when?" by recomputing the reference; without it the reference says
nothing, and it never equals a token in the data (the prefix differs), so it is no trace of the
customer's identifiers.
"""
from __future__ import annotations

import polars as pl

SUBJECT_PREFIX = "subj_"
_DOMAIN = b"finrisk-subject:"  # domain separation: a subject reference is never a data token

CUSTOMER_PARAMETER = "customer_id"  # a command parameter of this name holds a customer id


def subject_ref(customer_id: str, key: bytes) -> str:
    """HMAC-SHA256 of the domain-prefixed id under the key chain (finrisk.privacy.token_of)."""
    from finrisk.privacy import TOKEN_PREFIX, token_of

    return SUBJECT_PREFIX + token_of(_DOMAIN.decode() + customer_id, key).removeprefix(TOKEN_PREFIX)


def subject_refs(customer_ids: pl.Series, key: bytes) -> pl.Series:
    """subject_ref of a whole column at once (the same HMAC, computed in DuckDB)."""
    from finrisk.privacy import TOKEN_PREFIX, pseudonymise_values

    tokens = pseudonymise_values(_DOMAIN.decode() + customer_ids.cast(pl.String), key)
    return (SUBJECT_PREFIX + tokens.str.strip_prefix(TOKEN_PREFIX)).alias(customer_ids.name)


def _customer_id_argument(command, argv: list[str]) -> str | None:
    """The value of a `customer_id` parameter of the (sub)command argv invokes, parsed by click
    itself so options and their values are told apart as the real run does."""
    ctx = command.make_context("finrisk", list(argv), resilient_parsing=True)
    while hasattr(command, "resolve_command"):  # a group (typer ships its own copy of click)
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        if not rest:
            break
        name, sub, rest = command.resolve_command(ctx, rest)
        if sub is None:
            break
        ctx = sub.make_context(name, rest, parent=ctx, resilient_parsing=True)
        command = sub
    value = ctx.params.get(CUSTOMER_PARAMETER)
    return value if isinstance(value, str) and value else None


def redact_argv(command, argv: list[str], key: bytes | None) -> list[str]:
    """The command line for the audit log, with the customer id of a per-customer command replaced
    by its subject reference (`<customer>` when no key is configured). `command` is the click
    group of the CLI (in the main callback: `ctx.command`)."""
    try:
        customer_id = _customer_id_argument(command, argv)
    except Exception:  # noqa: BLE001 - a command line click cannot parse runs nothing, so there is no id
        return list(argv)
    if customer_id is None:
        return list(argv)
    replacement = subject_ref(customer_id, key) if key else "<customer>"
    return [replacement if arg == customer_id else arg.replace(f"={customer_id}", f"={replacement}") for arg in argv]
