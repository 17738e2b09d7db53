"""KuCoin REST request signing (API key versions 2/3) and its server-side verification.

``KC-API-SIGN = base64(HMAC_SHA256(secret, timestamp + METHOD + path_with_query + body))`` and, for key
versions 2 and 3, ``KC-API-PASSPHRASE = base64(HMAC_SHA256(secret, passphrase))``; version 1 sends the
passphrase in clear. The verifier answers with KuCoin's own error codes (reference §A.1).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

try:  # CPython's own SHA-256 (renamed _sha2 in 3.12); see HmacSha256 for why not OpenSSL's
    from _sha256 import sha256 as _small_sha256  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the interpreter
    try:
        from _sha2 import sha256 as _small_sha256  # type: ignore[import-not-found,no-redef]
    except ImportError:
        _small_sha256 = hashlib.sha256

MAX_CLOCK_SKEW_MS = 5_000


@dataclass(frozen=True, slots=True)
class Credentials:
    key: str
    secret: str = field(repr=False)
    passphrase: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class AuthFailure:
    """Why a signed request was refused: KuCoin's code and message, sent with HTTP 401."""

    code: str
    msg: str


def b64_hmac(secret: str, message: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()).decode()


class HmacSha256:
    """``b64_hmac`` for one secret, with the key's inner and outer hash states computed once.

    The order path signs one request after idling for as long as the market is quiet, when nothing of it is
    in the CPU's caches. There, ``hmac.new`` through OpenSSL took 75-85 µs for 2-3.5 µs of hashing (its
    provider lookup, context set-up and dispatch are a lot of code to fetch); these precomputed states on
    CPython's compact built-in SHA-256 take 22-27 µs (benchmarks/cold_path.py, benchmarks/README.md).
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, secret: str, sha256: Callable[..., Any] = _small_sha256) -> None:
        key = secret.encode()
        if len(key) > 64:  # RFC 2104: a key longer than the block is hashed first
            key = sha256(key).digest()
        key = key.ljust(64, b"\0")
        self._inner = sha256(bytes(b ^ 0x36 for b in key))
        self._outer = sha256(bytes(b ^ 0x5C for b in key))

    def b64(self, message: bytes) -> bytes:
        """base64(HMAC-SHA256(secret, message)), as ASCII bytes."""
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return binascii.b2a_base64(outer.digest(), newline=False)


def signed_headers(creds: Credentials, method: str, path_qs: str, body: str, timestamp_ms: int,
                   key_version: str = "2") -> dict[str, str]:
    """The KC-API-* headers for one request; ``path_qs`` is the path with its query, body "" for GET."""
    ts = str(timestamp_ms)
    return {
        "KC-API-KEY": creds.key,
        "KC-API-TIMESTAMP": ts,
        "KC-API-SIGN": b64_hmac(creds.secret, ts + method.upper() + path_qs + body),
        "KC-API-PASSPHRASE": (creds.passphrase if key_version == "1"
                              else b64_hmac(creds.secret, creds.passphrase)),
        "KC-API-KEY-VERSION": key_version,
    }


_REQUIRED = ("KC-API-KEY", "KC-API-SIGN", "KC-API-TIMESTAMP", "KC-API-PASSPHRASE")
MISSING_HEADER = AuthFailure(
    "400001", "Please check the header of your request for KC-API-KEY, KC-API-SIGN, KC-API-TIMESTAMP, "
              "KC-API-PASSPHRASE")
BAD_TIMESTAMP = AuthFailure(
    "400002", "KC-API-TIMESTAMP Invalid -- Time differs from server time by more than 5 seconds")
UNKNOWN_KEY = AuthFailure("400003", "KC-API-KEY not exists")
BAD_PASSPHRASE = AuthFailure("400004", "Invalid KC-API-PASSPHRASE")
BAD_SIGNATURE = AuthFailure("400005", "Invalid KC-API-SIGN")


def verify(headers: Mapping[str, str], method: str, path_qs: str | tuple[str, ...], body: str,
           creds: Credentials, now_ms: int) -> AuthFailure | None:
    """None when the request is signed by ``creds``; otherwise the failure KuCoin would report.

    ``path_qs`` may list several spellings of the request target (raw and decoded), any of which may
    have been signed: clients differ in whether they sign before or after percent-encoding.
    """
    if any(not headers.get(h) for h in _REQUIRED):
        return MISSING_HEADER
    if headers["KC-API-KEY"] != creds.key:
        return UNKNOWN_KEY
    try:
        ts = int(headers["KC-API-TIMESTAMP"])
    except ValueError:
        return BAD_TIMESTAMP
    if abs(now_ms - ts) > MAX_CLOCK_SKEW_MS:
        return BAD_TIMESTAMP
    # Signature before passphrase: a wrong secret also garbles a v2 passphrase, and should read as the
    # signature error (400005), not as a passphrase error.
    targets = (path_qs,) if isinstance(path_qs, str) else path_qs
    prefix = headers["KC-API-TIMESTAMP"] + method.upper()
    sign = headers["KC-API-SIGN"]
    if not any(hmac.compare_digest(sign, b64_hmac(creds.secret, prefix + t + body)) for t in targets):
        return BAD_SIGNATURE
    version = headers.get("KC-API-KEY-VERSION", "1")
    expected = creds.passphrase if version == "1" else b64_hmac(creds.secret, creds.passphrase)
    if not hmac.compare_digest(headers["KC-API-PASSPHRASE"], expected):
        return BAD_PASSPHRASE
    return None
