"""KuCoin spot websocket frames -> engine types (``BookUpdate``), decoded with msgspec.

Speed matters here: every ``ticker:all`` push (≈12k/s for 1,200 pairs) passes through
:meth:`KucoinCodec.decode`. The topic is found on the raw bytes, then one reused, typed msgspec decoder
per topic parses only the fields we need (unknown fields are skipped in C) and turns the price and size
strings into floats (``strict=False``), so no intermediate dicts or per-field Python calls exist.

``ticker:all`` and ``level2Depth5/50`` frames first go through ``_framescan``, a small C scanner built
with the package (``setup.py``): it reads a compact frame and builds its ``BookUpdate`` in one pass, which
takes ~30 % off decoding and applying a push (``benchmarks/ws_decode.py`` times both paths). It answers only for
frames it is sure of and returns None for anything else, which msgspec then decodes (and rejects, if
malformed); where it could not be compiled, :data:`FAST_SCAN` is False and msgspec decodes every frame.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from cryptoarb.model import BookUpdate, Level, WireLevel, WireNumber

try:
    from cryptoarb.venues.kucoin import _framescan
except ImportError:  # built without a C compiler: msgspec decodes every frame
    _framescan = None

VENUE = "kucoin"
FAST_SCAN = _framescan is not None
"""Whether ``ticker:all`` and depth frames are read by the compiled scanner (False: msgspec alone)."""


# -- control frames (no topic) -------------------------------------------------------------------------
class Welcome(msgspec.Struct, tag_field="type", tag="welcome", frozen=True, gc=False):
    id: str | int = ""


class Pong(msgspec.Struct, tag_field="type", tag="pong", frozen=True, gc=False):
    id: str | int = ""


class Ack(msgspec.Struct, tag_field="type", tag="ack", frozen=True, gc=False):
    id: str | int = ""


class ErrorFrame(msgspec.Struct, tag_field="type", tag="error", frozen=True, gc=False):
    id: str | int = ""
    code: int | str | None = None
    data: str | None = None


class OtherMessage(msgspec.Struct, frozen=True, gc=False):
    """A ``message`` push on a topic this codec does not turn into book updates."""

    topic: str
    subject: str = ""


Control = Welcome | Pong | Ack | ErrorFrame
Frame = BookUpdate | Welcome | Pong | Ack | ErrorFrame | OtherMessage


class CodecError(ValueError):
    """A frame that is not valid KuCoin JSON of the expected shape."""


# -- message payloads (only the fields we read) --------------------------------------------------------
class _TickerData(msgspec.Struct, gc=False):
    # KuCoin's key order: msgspec matches each key against the next declared field first
    bestAsk: WireNumber | None = None
    bestAskSize: WireNumber | None = None
    bestBid: WireNumber | None = None
    bestBidSize: WireNumber | None = None
    sequence: int = 0
    time: int = 0


class _TickerFrame(msgspec.Struct, gc=False):
    subject: str
    data: _TickerData


Levels = tuple[WireLevel, ...]


class _DepthData(msgspec.Struct, gc=False):
    asks: Levels = ()
    bids: Levels = ()
    timestamp: int = 0


class _DepthFrame(msgspec.Struct, gc=False):
    topic: str
    data: _DepthData


Change = tuple[WireNumber, WireNumber, str]


class _L2Changes(msgspec.Struct, gc=False):
    asks: list[Change] = msgspec.field(default_factory=list)
    bids: list[Change] = msgspec.field(default_factory=list)


class _L2Data(msgspec.Struct, gc=False):
    changes: _L2Changes
    sequenceStart: int
    sequenceEnd: int
    symbol: str = ""
    time: int = 0


class _L2Frame(msgspec.Struct, gc=False):
    data: _L2Data


class _L1Data(msgspec.Struct, gc=False):
    asks: list[WireNumber] | None = None
    bids: list[WireNumber] | None = None
    timestamp: int = 0


class _L1Frame(msgspec.Struct, gc=False):
    data: _L1Data


class _Envelope(msgspec.Struct, gc=False):
    type: str = ""
    topic: str = ""
    subject: str = ""


def _rows(changes: list[Change]) -> tuple[Level, ...]:
    # price "0" rows only advance the sequence; size 0 stays in: it deletes the level
    return tuple([(p, s) for p, s, _ in changes if p])


_TICKER_ALL_HEAD = b'{"topic":"/market/ticker:all"'
_DEPTH_HEADS = (b'{"topic":"/spotMarket/level2Depth50:', b'{"topic":"/spotMarket/level2Depth5:')
_TOPIC_KEY = b'"topic":"'


class KucoinCodec:
    """Decodes raw KuCoin frames into engine types. One per venue name; reuse it for every frame."""

    __slots__ = ("_control", "_depth", "_envelope", "_handlers", "_l1", "_l2", "_scan", "_ticker", "venue")

    def __init__(self, venue: str = VENUE, *, fast_scan: bool = True) -> None:
        """``fast_scan=False`` decodes every frame with msgspec, as where the scanner is not compiled."""
        self.venue = venue
        self._scan = _framescan.scan if fast_scan and _framescan is not None else None
        self._ticker = msgspec.json.Decoder(_TickerFrame, strict=False).decode
        self._depth = msgspec.json.Decoder(_DepthFrame, strict=False).decode
        self._l2 = msgspec.json.Decoder(_L2Frame, strict=False).decode
        self._l1 = msgspec.json.Decoder(_L1Frame, strict=False).decode
        self._control = msgspec.json.Decoder(Control).decode
        self._envelope = msgspec.json.Decoder(_Envelope).decode
        self._handlers: dict[bytes, Callable[[bytes, str, float], Frame]] = {
            b"/market/ticker": self._decode_ticker,
            b"/spotMarket/level2Depth50": self._decode_depth,
            b"/spotMarket/level2Depth5": self._decode_depth,
            b"/market/level2": self._decode_level2,
            b"/spotMarket/level1": self._decode_level1,
        }

    def decode(self, raw: bytes, received_at: float) -> Frame:
        """One websocket text frame (bytes) -> a ``BookUpdate`` or a control frame.

        Raises :class:`CodecError` on malformed input; never returns None.
        """
        scan = self._scan
        if scan is not None:  # the scanner tests the frame's head in C: no prefix test here
            update = scan(raw, self.venue, received_at, BookUpdate)
            if update is not None:
                return update
        return self._decode_msgspec(raw, received_at)

    def _decode_msgspec(self, raw: bytes, received_at: float) -> Frame:
        try:
            if raw.startswith(_TICKER_ALL_HEAD):  # KuCoin's own key order: the hottest frame, no search
                m = self._ticker(raw)
                d = m.data
                b, bs, a, az = d.bestBid, d.bestBidSize, d.bestAsk, d.bestAskSize
                # null or zero: that side is empty
                return BookUpdate(self.venue, m.subject, ((b, bs),) if b and bs else (),
                                  ((a, az),) if a and az else (), d.sequence, d.time, received_at)
            if raw.startswith(_DEPTH_HEADS):  # the next hottest: the parsed topic gives the symbol
                m = self._depth(raw)
                d = m.data
                # depth pushes carry no sequence; the timestamp orders them
                return BookUpdate(self.venue, m.topic.partition(":")[2], d.bids, d.asks, d.timestamp,
                                  d.timestamp, received_at)
            i = raw.find(_TOPIC_KEY)
            if i < 0:
                return self._decode_untopical(raw, received_at)
            i += 9
            topic = raw[i:raw.index(b'"', i)]
            prefix, _, symbols = topic.partition(b":")
            handler = self._handlers.get(prefix)
            if handler is None:
                return OtherMessage(topic.decode(), self._envelope(raw).subject)
            return handler(raw, symbols.decode(), received_at)
        except (msgspec.DecodeError, ValueError) as exc:  # ValidationError is a DecodeError
            raise CodecError(f"{exc}: {raw[:200]!r}") from exc

    # -- per topic ------------------------------------------------------------------------------------
    def _decode_ticker(self, raw: bytes, symbol: str, received_at: float) -> BookUpdate:
        m = self._ticker(raw)
        d = m.data
        b, bs, a, az = d.bestBid, d.bestBidSize, d.bestAsk, d.bestAskSize
        return BookUpdate(self.venue, m.subject if symbol == "all" else symbol,
                           ((b, bs),) if b and bs else (), ((a, az),) if a and az else (),
                           d.sequence, d.time, received_at)

    def _decode_depth(self, raw: bytes, symbol: str, received_at: float) -> BookUpdate:
        d = self._depth(raw).data
        # depth pushes carry no sequence; the timestamp orders them
        return BookUpdate(self.venue, symbol, d.bids, d.asks, d.timestamp, d.timestamp, received_at)

    def _decode_level2(self, raw: bytes, symbol: str, received_at: float) -> BookUpdate:
        d = self._l2(raw).data
        c = d.changes
        bids, asks = c.bids, c.asks
        return BookUpdate(self.venue, d.symbol or symbol, _rows(bids) if bids else (),
                           _rows(asks) if asks else (), d.sequenceEnd, d.time, received_at, False,
                           d.sequenceStart)

    def _decode_level1(self, raw: bytes, symbol: str, received_at: float) -> BookUpdate:
        d = self._l1(raw).data
        bids = ((d.bids[0], d.bids[1]),) if d.bids and len(d.bids) >= 2 and d.bids[0] else ()
        asks = ((d.asks[0], d.asks[1]),) if d.asks and len(d.asks) >= 2 and d.asks[0] else ()
        return BookUpdate(self.venue, symbol, bids, asks, d.timestamp, d.timestamp, received_at)

    def _decode_untopical(self, raw: bytes, received_at: float) -> Frame:
        try:
            return self._control(raw)
        except msgspec.ValidationError:
            env = self._envelope(raw)  # e.g. a message serialised with spaces: dispatch on the parsed topic
            if env.type != "message" or not env.topic:
                raise
            prefix, _, symbols = env.topic.partition(":")
            handler = self._handlers.get(prefix.encode())
            if handler is None:
                return OtherMessage(env.topic, env.subject)
            return handler(raw, symbols, received_at)


_default = KucoinCodec()


def decode_frame(raw: bytes, received_at: float = 0.0) -> Frame:
    """Decode one frame with the shared default codec (venue ``"kucoin"``)."""
    return _default.decode(raw, received_at)


def encode(message: dict[str, Any]) -> str:
    """A client frame as compact JSON text."""
    return msgspec.json.encode(message).decode()
