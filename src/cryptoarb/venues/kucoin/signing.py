"""KuCoin REST request signing (API key versions 2/3) and its server-side verification.

``KC-API-SIGN = base64(HMAC_SHA256(secret, timestamp + METHOD + path_with_query + body))`` and, for key
versions 2 and 3, ``KC-API-PASSPHRASE = base64(HMAC_SHA256(secret, passphrase))``; version 1 sends the
passphrase in clear. The verifier answers with KuCoin's own error codes (reference §A.1).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field

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
