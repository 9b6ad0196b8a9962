"""Keyed pseudonymisation of direct identifiers (DPDP Act): HMAC-SHA256 computed in DuckDB."""
from __future__ import annotations

import hashlib

import duckdb
import polars as pl

TOKEN_PREFIX = "tk_"
TOKEN_HEX_CHARS = 32  # 128 bits of the HMAC: collision-free at any realistic customer count


def _hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def pseudonymise_values(values: pl.Series, key: bytes) -> pl.Series:
    """HMAC-SHA256 tokens for a column of strings, nulls kept null; vectorised in DuckDB."""
    ipad, opad = _hmac_pads(key)
    frame = pl.DataFrame({"v": values.cast(pl.String)})
    tokens = duckdb.sql(
        f"""
        SELECT CASE WHEN v IS NULL THEN NULL ELSE
          '{TOKEN_PREFIX}' || substr(sha256($opad::BLOB || unhex(sha256($ipad::BLOB || encode(v)))), 1, {TOKEN_HEX_CHARS})
        END AS t FROM frame
        """.replace("$opad", f"unhex('{opad.hex()}')").replace("$ipad", f"unhex('{ipad.hex()}')")
    ).pl()["t"]
    return tokens.alias(values.name)


def pseudonymise(df: pl.DataFrame, columns: list[str] | tuple[str, ...], key: bytes) -> pl.DataFrame:
    """Replace each listed column by its token; hashes each distinct value once."""
    out = df
    for col in columns:
        if col not in out.columns:
            continue
        distinct = out.get_column(col).drop_nulls().unique()
        mapping = pl.DataFrame({col: distinct, "__token": pseudonymise_values(distinct, key)})
        out = (
            out.join(mapping, on=col, how="left", maintain_order="left")
            .with_columns(pl.col("__token").alias(col))
            .drop("__token")
        )
    return out


def is_token(value: str | None) -> bool:
    return value is not None and value.startswith(TOKEN_PREFIX) and len(value) == len(TOKEN_PREFIX) + TOKEN_HEX_CHARS
