"""The order path's HMAC (precomputed key states on CPython's built-in SHA-256) against the standard library's."""

from __future__ import annotations

import base64
import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

from cryptoarb.venues.kucoin.signing import HmacSha256, b64_hmac


@given(secret=st.text(max_size=200), message=st.binary(max_size=600))
def test_the_precomputed_hmac_equals_the_standard_librarys(secret: str, message: bytes) -> None:
    expected = base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest())
    signer = HmacSha256(secret)
    assert signer.b64(message) == expected
    assert signer.b64(message) == expected  # the key's states are copied, never consumed
    assert HmacSha256(secret, hashlib.sha256).b64(message) == expected


def test_a_kucoin_request_signs_the_same_both_ways() -> None:
    message = '1700000000000POST/api/v1/hf/orders{"clientOid":"op1-L0","size":"0.001"}'
    secret = "f03a5284-5c39-4aaa-9b20-dea10bdcf8e3"
    assert HmacSha256(secret).b64(message.encode()).decode() == b64_hmac(secret, message)
