"""Keyed pseudonymisation of direct identifiers (DPDP Act): HMAC-SHA256 computed in DuckDB.

A token is `tk_` + the first 32 hex digits (128 bits) of HMAC-SHA256(key, value). The same value
gives the same token under the same key, in every column and every run, so joins and graph links
still work; without the key a token cannot be reversed or recomputed from a guessed value.
Each distinct value is HMAC-ed once; the tokens are then mapped back onto the rows.

The key is a chain: one key, or several separated by commas, oldest first (FINRISK_PSEUDONYM_KEY
or the lines of FINRISK_PSEUDONYM_KEY_FILE). Under a chain k1,k2 a value's token is the k2 token
of its k1 token. A key rotation (`finrisk.rotation`) appends a key and wraps every stored token
once, so data ingested afterwards under the longer chain gets exactly the tokens the rotated data
holds. A chain of one key gives the tokens it always gave.
"""
from __future__ import annotations

import hashlib
import hmac

import duckdb
import polars as pl

TOKEN_PREFIX = "tk_"
TOKEN_HEX_CHARS = 32  # 128 bits of the HMAC: collision-free at any realistic customer count
TOKEN_PATTERN = rf"{TOKEN_PREFIX}[0-9a-f]{{{TOKEN_HEX_CHARS}}}"
CHAIN_SEPARATOR = b","  # never in a hex, base64 or URL-safe key
FINGERPRINT_PREFIX = "kfp_"
_FINGERPRINT_PROBE = "finrisk-key-chain-fingerprint"  # domain separation: never a customer's value
MIN_KEY_BYTES = 16
# Placeholders from .env.example: never a real key.
PLACEHOLDER_KEYS = {b"change-me-64-hex-chars", b"change-me"}


class PseudonymKeyError(ValueError):
    """The pseudonymisation key is unusable; the message says why."""


def key_chain(key: bytes) -> tuple[bytes, ...]:
    """The keys of a configured chain, oldest first (one key is a chain of one)."""
    return tuple(key.split(CHAIN_SEPARATOR))


def extend_chain(key: bytes, new_key: bytes) -> bytes:
    """The configured form of `key` with `new_key` appended."""
    return CHAIN_SEPARATOR.join((*key_chain(key), new_key))


def check_key(key: bytes) -> bytes:
    """Refuse keys that would make tokens guessable (each key of a chain)."""
    links = key_chain(key)
    for position, link in enumerate(links, 1):
        name = "FINRISK_PSEUDONYM_KEY" if len(links) == 1 else f"key {position} of the FINRISK_PSEUDONYM_KEY chain"
        if link in PLACEHOLDER_KEYS:
            raise PseudonymKeyError(
                f"{name} is still the placeholder from .env.example; run `finrisk setup` for a fresh key "
                "or export the key from your secret store"
            )
        if len(link) < MIN_KEY_BYTES:
            raise PseudonymKeyError(
                f"{name} is {len(link)} bytes; use at least {MIN_KEY_BYTES} random bytes "
                f"(e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
                + ("; keys of a chain are separated by commas" if len(links) > 1 else "")
            )
    if len(set(links)) != len(links):
        raise PseudonymKeyError("the FINRISK_PSEUDONYM_KEY chain holds the same key twice")
    return key


def _hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def _token_sql(value_bytes: str, key: bytes) -> str:
    """DuckDB expression: the token of the bytes `value_bytes` under one key."""
    ipad, opad = _hmac_pads(key)
    digest = f"sha256(unhex('{opad.hex()}') || unhex(sha256(unhex('{ipad.hex()}') || {value_bytes})))"
    return f"'{TOKEN_PREFIX}' || substr({digest}, 1, {TOKEN_HEX_CHARS})"


def pseudonymise_values(values: pl.Series, key: bytes) -> pl.Series:
    """HMAC-SHA256 tokens under the key chain for a column of strings, nulls kept null; vectorised in DuckDB."""
    expression = "encode(v)"
    for position, link in enumerate(key_chain(key)):
        expression = _token_sql(expression if position == 0 else f"encode({expression})", link)
    frame = pl.DataFrame({"v": values.cast(pl.String)})
    con = duckdb.connect()
    try:
        con.register("frame", frame)
        tokens = con.sql(f"SELECT CASE WHEN v IS NULL THEN NULL ELSE {expression} END AS t FROM frame").pl()["t"]
    finally:
        con.close()
    return tokens.alias(values.name)


def token_of(value: str, key: bytes) -> str:
    """The token of one value under the key chain (the same as pseudonymise_values)."""
    token = value
    for link in key_chain(key):
        token = TOKEN_PREFIX + hmac.new(link, token.encode("utf-8"), hashlib.sha256).hexdigest()[:TOKEN_HEX_CHARS]
    return token


def chain_fingerprint(key: bytes) -> str:
    """A keyed hash that names a key chain without revealing it: two chains have the same
    fingerprint exactly when they give the same tokens."""
    return FINGERPRINT_PREFIX + token_of(_FINGERPRINT_PROBE, key).removeprefix(TOKEN_PREFIX)


def _row_hash(columns: list[str], seed: int) -> pl.Expr:
    """A 64-bit hash of the tuple of `columns`, from fast per-column hashes (a seed per position)."""
    combined = None
    for position, column in enumerate(columns):
        part = pl.col(column).hash(seed + position)
        combined = part if combined is None else combined ^ part
    return combined


class Pseudonymiser:
    """Tokens under one key, remembering the tokens it has made so a value is HMAC-ed once per run."""

    def __init__(self, key: bytes):
        self.key = key
        self._known = pl.DataFrame(schema={"value": pl.String, "token": pl.String})

    def table(self, values: pl.Series) -> pl.DataFrame:
        """value -> token for the distinct non-null values given."""
        distinct = values.drop_nulls().unique().cast(pl.String).rename("value").to_frame()
        new = distinct.join(self._known, on="value", how="anti")
        if new.height:
            fresh = pl.DataFrame({"value": new.get_column("value").rechunk(),
                                  "token": pseudonymise_values(new.get_column("value"), self.key).rechunk()})
            self._known = pl.concat([self._known, fresh]).rechunk()
        return self._known.join(distinct, on="value", how="semi")

    def _replace(self, series: list[pl.Series]) -> list[pl.Series]:
        table = self.table(pl.concat([s.rename("value").cast(pl.String) for s in series]))
        old, new = table.get_column("value"), table.get_column("token")
        # One series at a time: several replace_strict in one with_columns over many-chunked
        # columns made Polars take seconds and gigabytes instead of milliseconds.
        return [s.replace_strict(old, new, default=None, return_dtype=pl.String) for s in series]

    def _tokens_by_tuple(self, values: pl.DataFrame) -> pl.DataFrame | None:
        """Token columns for `values`, computed once per distinct tuple of values.

        Rows are grouped by a 64-bit hash of their tuple; a second, independent hash confirms
        that every row really has its group's values. On a (vanishingly rare) collision this
        returns None and the caller takes the exact path.
        """
        columns = values.columns
        hashes = values.select(_row_hash(columns, 0x51F0).alias("h1"), _row_hash(columns, 0x7A3C).alias("h2"))
        first = hashes.get_column("h1").is_first_distinct()
        reps = pl.concat([hashes.filter(first), values.filter(first)], how="horizontal").rechunk()
        reps = reps.with_columns(self._replace([reps.get_column(c) for c in columns]))
        position = hashes.get_column("h1").replace_strict(
            reps.get_column("h1"), pl.Series(range(reps.height), dtype=pl.UInt32), return_dtype=pl.UInt32
        )
        if not (reps.get_column("h2").gather(position) == hashes.get_column("h2")).all():
            return None
        return reps.select(columns)[position]

    def apply(
        self, df: pl.DataFrame, columns: list[str] | tuple[str, ...], where: dict[str, pl.Expr] | None = None
    ) -> pl.DataFrame:
        """Replace each listed column by its tokens; `where[column]` limits which rows are replaced."""
        where = where or {}
        present = [c for c in columns if c in df.columns and df.get_column(c).null_count() < df.height]
        if not present:
            return df
        # Identifiers of one person travel together (account, name, phone, VPA), so hashing their
        # tuple once per row is much cheaper than a hash-table lookup per column.
        groups = [[c for c in present if c not in where]] + [[c] for c in present if c in where]
        replaced = []
        for group in (g for g in groups if g):
            values = df.select(
                (pl.when(where[c]).then(pl.col(c)) if c in where else pl.col(c)).alias(c) for c in group
            )
            tokens = self._tokens_by_tuple(values)
            if tokens is None:
                tokens = pl.DataFrame(self._replace([values.get_column(c) for c in group]))
            for c in group:
                token = tokens.get_column(c)
                replaced.append(
                    pl.when(where[c]).then(token).otherwise(pl.col(c)).alias(c) if c in where else token.alias(c)
                )
        return df.with_columns(replaced)


def pseudonymise(
    df: pl.DataFrame, columns: list[str] | tuple[str, ...], key: bytes, where: dict[str, pl.Expr] | None = None
) -> pl.DataFrame:
    """Replace each listed column by its tokens; `where[column]` limits which rows are replaced.

    The same value gets the same token in every column (a payer VPA and the same VPA as a P2P
    counterparty), because the token depends on the value and the key only.
    """
    return Pseudonymiser(key).apply(df, columns, where)


def is_token(value: str | None) -> bool:
    return value is not None and value.startswith(TOKEN_PREFIX) and len(value) == len(TOKEN_PREFIX) + TOKEN_HEX_CHARS
