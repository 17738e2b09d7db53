"""BL3P public websocket frames <-> Python (``reference/exchange-protocols.md`` §C).

BL3P has no subscribe, ping or ack messages: the channel is in the URL,
``wss://api.bl3p.eu/1/{BTCEUR|LTCEUR}/{orderbook|trades}``, and the server pushes JSON text frames.
Prices are integers in EUR x 1e5 (``price_int``), amounts integers in BTC/LTC x 1e8 (``amount_int``).

- ``orderbook``: the whole book on every change:
  ``{"marketplace":"BTCEUR","asks":[{"amount_int":..,"price_int":..,"count":..}],"bids":[...]}``
- ``trades``: ``{"date":<unix s>,"marketplace":"BTCEUR","type":"buy"|"sell","price_int":..,"amount_int":..}``

Our symbols are ``BASE-QUOTE`` (``BTC-EUR``); BL3P's market ids are ``BASEQUOTE`` (``BTCEUR``).
"""

from __future__ import annotations

import msgspec

from cryptoarb.model import BookUpdate, Level

VENUE = "bl3p"
WS_URL = "wss://api.bl3p.eu"
PRICE_SCALE = 100_000
AMOUNT_SCALE = 100_000_000
MARKETS = ("BTCEUR", "LTCEUR")


class CodecError(ValueError):
    """A frame that is not valid BL3P JSON of the expected shape."""


class IntLevel(msgspec.Struct, frozen=True, gc=False):
    amount_int: int
    price_int: int
    count: int = 1


class Orderbook(msgspec.Struct, frozen=True, gc=False):
    asks: list[IntLevel] = msgspec.field(default_factory=list)
    bids: list[IntLevel] = msgspec.field(default_factory=list)
    marketplace: str = ""


class Trade(msgspec.Struct, frozen=True, gc=False):
    price_int: int
    amount_int: int
    type: str = ""
    marketplace: str = ""
    date: int = 0

    @property
    def price(self) -> float:
        return self.price_int / PRICE_SCALE

    @property
    def amount(self) -> float:
        return self.amount_int / AMOUNT_SCALE


_decode_book = msgspec.json.Decoder(Orderbook).decode
_decode_trade = msgspec.json.Decoder(Trade).decode
_encoder = msgspec.json.Encoder()


def market_id(symbol: str) -> str:
    """``BTC-EUR`` -> ``BTCEUR``."""
    return symbol.replace("-", "").upper()


def symbol_of(market: str) -> str:
    """``BTCEUR`` -> ``BTC-EUR`` (BL3P's quote is always the last three letters)."""
    return f"{market[:-3]}-{market[-3:]}"


def orderbook_url(base: str, symbol: str) -> str:
    return f"{base.rstrip('/')}/1/{market_id(symbol)}/orderbook"


def trades_url(base: str, symbol: str) -> str:
    return f"{base.rstrip('/')}/1/{market_id(symbol)}/trades"


def decode_orderbook(raw: bytes | str) -> Orderbook:
    try:
        return _decode_book(raw)
    except msgspec.DecodeError as exc:
        raise CodecError(f"{exc}: {raw[:200]!r}") from exc


def decode_trade(raw: bytes | str) -> Trade:
    try:
        return _decode_trade(raw)
    except msgspec.DecodeError as exc:
        raise CodecError(f"{exc}: {raw[:200]!r}") from exc


def _side(levels: list[IntLevel], descending: bool) -> tuple[Level, ...]:
    """Integer levels -> (price, size) floats, one per price (BL3P may split a price over entries)."""
    merged: dict[int, int] = {}
    for lv in levels:
        if lv.amount_int > 0 and lv.price_int > 0:
            merged[lv.price_int] = merged.get(lv.price_int, 0) + lv.amount_int
    return tuple((p / PRICE_SCALE, a / AMOUNT_SCALE) for p, a in sorted(merged.items(), reverse=descending))


def book_update(book: Orderbook, symbol: str, sequence: int, received_at: float, venue: str = VENUE,
                exchange_ts_ms: int = 0) -> BookUpdate:
    """A full ``orderbook`` frame as a snapshot (BL3P sends no sequence: ``sequence`` is the client's)."""
    return BookUpdate(venue=venue, symbol=symbol, bids=_side(book.bids, True), asks=_side(book.asks, False),
                      sequence=sequence, exchange_ts_ms=exchange_ts_ms, received_at=received_at, snapshot=True)


def to_int_price(price: float) -> int:
    return round(price * PRICE_SCALE)


def to_int_amount(amount: float) -> int:
    return round(amount * AMOUNT_SCALE)


def encode_orderbook(market: str, bids: list[Level] | tuple[Level, ...], asks: list[Level] | tuple[Level, ...],
                     counts: tuple[int, ...] = ()) -> bytes:
    """An ``orderbook`` frame as the server sends it (``counts``: orders per level, 1 by default)."""
    def side(levels: list[Level] | tuple[Level, ...]) -> list[dict[str, int]]:
        return [{"amount_int": to_int_amount(s), "price_int": to_int_price(p),
                 "count": counts[i] if i < len(counts) else 1} for i, (p, s) in enumerate(levels)]
    return _encoder.encode({"marketplace": market, "asks": side(asks), "bids": side(bids)})


def encode_trade(market: str, side: str, price: float, amount: float, date_s: int) -> bytes:
    return _encoder.encode({"date": date_s, "marketplace": market, "type": side, "price_int": to_int_price(price),
                            "amount_int": to_int_amount(amount)})
