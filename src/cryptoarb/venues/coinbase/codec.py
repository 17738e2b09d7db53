"""Coinbase Exchange websocket feed (``ws-feed``) frames <-> Python, decoded with msgspec.

Reference: ``reference/exchange-protocols.md`` §C and https://docs.cdp.coinbase.com/exchange/websocket-feed.
Public channels used here: ``ticker`` (one message per trade: best bid/ask, ``trade_id``, the product's
``sequence``), ``level2_batch`` (a ``snapshot``, then ``l2update`` changes batched every 50 ms) and
``heartbeat`` (once a second per product: the product's latest ``sequence`` and ``last_trade_id``).
Prices and sizes are decimal strings; msgspec turns them into floats (``strict=False``) in C.

``l2update`` carries no sequence, so a book's continuity is checked through the product's trade ids
(consecutive per product) and sequences, as the docs advise: a ticker whose ``trade_id`` skips one, or a
heartbeat whose ``last_trade_id`` is ahead of the last ticker, means messages were dropped
(``ws.CoinbaseMarketData`` then resynchronises the book).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from cryptoarb.model import BookUpdate, WireLevel, WireNumber

VENUE = "coinbase"
FEED_URL = "wss://ws-feed.exchange.coinbase.com"
PUBLIC_CHANNELS = frozenset({"ticker", "ticker_batch", "level2_batch", "heartbeat", "status", "matches"})
AUTH_CHANNELS = frozenset({"level2", "full", "user", "level3"})


class CodecError(ValueError):
    """A frame that is not valid Coinbase JSON of the expected shape."""


class Channel(msgspec.Struct, frozen=True, gc=False):
    name: str
    product_ids: list[str] = msgspec.field(default_factory=list)


class Subscriptions(msgspec.Struct, tag_field="type", tag="subscriptions", frozen=True, gc=False):
    channels: list[Channel] = msgspec.field(default_factory=list)


class Ticker(msgspec.Struct, tag_field="type", tag="ticker", frozen=True, gc=False):
    product_id: str
    sequence: int = 0
    price: WireNumber = 0.0
    best_bid: WireNumber = 0.0
    best_bid_size: WireNumber = 0.0
    best_ask: WireNumber = 0.0
    best_ask_size: WireNumber = 0.0
    side: str = ""
    time: str = ""
    trade_id: int | None = None
    last_size: WireNumber = 0.0


class Snapshot(msgspec.Struct, tag_field="type", tag="snapshot", frozen=True, gc=False):
    product_id: str
    bids: tuple[WireLevel, ...] = ()
    asks: tuple[WireLevel, ...] = ()
    time: str = ""


class L2Update(msgspec.Struct, tag_field="type", tag="l2update", frozen=True, gc=False):
    product_id: str
    changes: list[tuple[str, WireNumber, WireNumber]] = msgspec.field(default_factory=list)
    time: str = ""


class Heartbeat(msgspec.Struct, tag_field="type", tag="heartbeat", frozen=True, gc=False):
    product_id: str
    sequence: int = 0
    last_trade_id: int = 0
    time: str = ""


class Error(msgspec.Struct, tag_field="type", tag="error", frozen=True, gc=False):
    message: str = ""
    reason: str = ""


class Other(msgspec.Struct, frozen=True, gc=False):
    """A message of a type this codec does not interpret (``status``, ``ticker_batch``, ...)."""

    type: str = ""


Frame = Subscriptions | Ticker | Snapshot | L2Update | Heartbeat | Error | Other
_Known = Subscriptions | Ticker | Snapshot | L2Update | Heartbeat | Error

_decode_known = msgspec.json.Decoder(_Known, strict=False).decode
_decode_other = msgspec.json.Decoder(Other).decode
_encoder = msgspec.json.Encoder()


def decode(raw: bytes | str) -> Frame:
    """One text frame -> its message; raises :class:`CodecError` on malformed input."""
    try:
        return _decode_known(raw)
    except msgspec.ValidationError as exc:
        try:
            other = _decode_other(raw)
        except msgspec.DecodeError:
            raise CodecError(f"{exc}: {bytes(raw[:200]) if isinstance(raw, bytes) else raw[:200]!r}") from exc
        if other.type in ("subscriptions", "ticker", "snapshot", "l2update", "heartbeat", "error"):
            raise CodecError(f"{exc}: {raw[:200]!r}") from exc
        return other
    except msgspec.DecodeError as exc:
        raise CodecError(f"{exc}: {raw[:200]!r}") from exc


def encode(message: Any) -> bytes:
    """A message (dict or one of the structs) as compact JSON bytes."""
    return _encoder.encode(message)


def subscribe_message(product_ids: list[str], channels: list[str], *, unsubscribe: bool = False) -> dict[str, Any]:
    return {"type": "unsubscribe" if unsubscribe else "subscribe", "product_ids": list(product_ids),
            "channels": list(channels)}


def time_ms(text: str) -> int:
    """``2019-08-14T20:42:27.265Z`` -> Unix milliseconds (0 when absent)."""
    if not text:
        return 0
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return 0


def iso_time(ms: int) -> str:
    """Unix milliseconds -> Coinbase's ISO 8601 UTC text with microseconds."""
    seconds, millis = divmod(ms, 1000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis * 1000:06d}Z"


def snapshot_update(msg: Snapshot, sequence: int, received_at: float, venue: str = VENUE) -> BookUpdate:
    """A ``snapshot`` as a full book; ``sequence`` is the client's own per-product counter."""
    return BookUpdate(venue=venue, symbol=msg.product_id, bids=tuple(lv for lv in msg.bids if lv[1] > 0),
                      asks=tuple(lv for lv in msg.asks if lv[1] > 0), sequence=sequence,
                      exchange_ts_ms=time_ms(msg.time), received_at=received_at, snapshot=True)


def l2update_update(msg: L2Update, sequence: int, received_at: float, venue: str = VENUE) -> BookUpdate:
    """An ``l2update`` as a delta (size 0 deletes the level) continuing the client's sequence."""
    bids = tuple((p, s) for side, p, s in msg.changes if side == "buy")
    asks = tuple((p, s) for side, p, s in msg.changes if side == "sell")
    return BookUpdate(venue=venue, symbol=msg.product_id, bids=bids, asks=asks, sequence=sequence,
                      exchange_ts_ms=time_ms(msg.time), received_at=received_at, snapshot=False,
                      sequence_start=sequence)
