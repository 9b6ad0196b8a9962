"""Keyed pseudonymisation of direct identifiers (DPDP Act): HMAC-SHA256 computed in DuckDB.

A token is `tk_` + the first 32 hex digits (128 bits) of HMAC-SHA256(key, value). The same value
gives the same token under the same key, in every column and every run, so joins and graph links
still work; without the key a token cannot be reversed or recomputed from a guessed value.
Each distinct value is HMAC-ed once; the tokens are then mapped back onto the rows.
"""
from __future__ import annotations

import hashlib

import duckdb
import polars as pl

TOKEN_PREFIX = "tk_"
TOKEN_HEX_CHARS = 32  # 128 bits of the HMAC: collision-free at any realistic customer count
MIN_KEY_BYTES = 16
# Placeholders from .env.example: never a real key.
PLACEHOLDER_KEYS = {b"change-me-64-hex-chars", b"change-me"}


class PseudonymKeyError(ValueError):
    """The pseudonymisation key is unusable; the message says why."""


def check_key(key: bytes) -> bytes:
    """Refuse keys that would make tokens guessable."""
    if key in PLACEHOLDER_KEYS:
        raise PseudonymKeyError(
            "FINRISK_PSEUDONYM_KEY is still the placeholder from .env.example; run `finrisk setup` for a fresh key "
            "or export the key from your secret store"
        )
    if len(key) < MIN_KEY_BYTES:
        raise PseudonymKeyError(
            f"FINRISK_PSEUDONYM_KEY is {len(key)} bytes; use at least {MIN_KEY_BYTES} random bytes "
            f"(e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
        )
    return key


def _hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def pseudonymise_values(values: pl.Series, key: bytes) -> pl.Series:
    """HMAC-SHA256 tokens for a column of strings, nulls kept null; vectorised in DuckDB."""
    ipad, opad = _hmac_pads(key)
    frame = pl.DataFrame({"v": values.cast(pl.String)})
    con = duckdb.connect()
    try:
        con.register("frame", frame)
        tokens = con.sql(
            f"""
            SELECT CASE WHEN v IS NULL THEN NULL ELSE
              '{TOKEN_PREFIX}' || substr(sha256(unhex('{opad.hex()}') || unhex(sha256(unhex('{ipad.hex()}') || encode(v)))),
                                         1, {TOKEN_HEX_CHARS})
            END AS t FROM frame
            """
        ).pl()["t"]
    finally:
        con.close()
    return tokens.alias(values.name)


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
