"""Fault injection switches of the KuCoin simulator, settable by CLI flag and at runtime.

``GET /_sim/faults`` shows them; ``POST /_sim/faults`` with a JSON object changes any subset, e.g.
``{"ignore_pings": true, "level2_gap_every": 3}``. Zero/false means off. ``expire_tokens_now`` is an
action, not a state: every token issued so far expires at once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Faults:
    drop_every_s: float = 0.0
    """Abort every websocket connection every N seconds (a network drop: no close frame)."""
    ignore_pings: bool = False
    """Stop answering pings with pongs."""
    stall_depth: bool = False
    """Stop pushing depth (level2Depth5/50 snapshots and ``/market/level2`` deltas) while pongs, ticker:all and
    every other topic go on: a subscription stalled on a connection that still looks alive."""
    expire_tokens_every_s: float = 0.0
    """Every N seconds, all tokens issued so far expire: their sockets get KuCoin's "token is expired"
    error frame and are closed; connecting with one is refused the same way."""
    level2_gap_every: int = 0
    """Every Nth ``/market/level2`` delta of a symbol skips a sequence number."""
    malformed_every_s: float = 0.0
    """Every N seconds, send each websocket a frame that is not valid JSON."""
    http_429_burst: int = 0
    """Answer the next N rate-limited REST requests with HTTP 429 / code 429000 (counts down)."""
    reject_orders: bool = False
    """Refuse every new order with 400200 "Forbidden to place an order"."""

    def update(self, changes: dict[str, Any]) -> None:
        """Apply ``changes`` (field -> value), checking names and types; raises ValueError."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        unknown = set(changes) - set(fields)
        if unknown:
            raise ValueError(f"unknown fault(s): {', '.join(sorted(unknown))}")
        parsed: dict[str, Any] = {}
        for name, value in changes.items():
            kind = type(getattr(self, name))
            if kind is bool:
                if not isinstance(value, bool):
                    raise ValueError(f"{name} must be true or false")
                parsed[name] = value
            elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a number >= 0")
            elif kind is int and value != int(value):
                raise ValueError(f"{name} must be a whole number")
            else:
                parsed[name] = kind(value)
        for name, value in parsed.items():
            setattr(self, name, value)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
