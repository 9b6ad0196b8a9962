import hashlib
import hmac

import polars as pl
import pytest

from finrisk.config import ConfigError, Settings
from finrisk.privacy import is_token, pseudonymise, pseudonymise_values


def test_tokens_are_hmac_sha256_of_the_value():
    key = b"k" * 80  # longer than the block size: hashed first, as HMAC requires
    values = pl.Series("v", ["rahul.sharma@okhdfcbank", "9876543210", None, "ऋषि कुमार"])
    tokens = pseudonymise_values(values, key).to_list()
    for value, token in zip(values.to_list(), tokens):
        if value is None:
            assert token is None
        else:
            assert token == "tk_" + hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:32]
            assert is_token(token)


def test_pseudonymise_is_consistent_and_keyed():
    df = pl.DataFrame({"vpa": ["a@ybl", "b@ybl", "a@ybl"], "n": [1, 2, 3]})
    out = pseudonymise(df, ["vpa"], b"key-one")
    assert out.get_column("n").to_list() == [1, 2, 3]
    assert out["vpa"][0] == out["vpa"][2] != out["vpa"][1]
    assert "a@ybl" not in out["vpa"].to_list()
    other = pseudonymise(df, ["vpa"], b"key-two")
    assert other["vpa"][0] != out["vpa"][0]


def test_missing_key_is_a_clear_error():
    with pytest.raises(ConfigError, match="FINRISK_PSEUDONYM_KEY"):
        Settings(pseudonym_key=None, _env_file=None).require_pseudonym_key()
