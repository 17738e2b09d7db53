"""KuCoin websocket frames as the simulator sends them: JSON in KuCoin's key order, pre-framed.

Each payload is encoded once with orjson and wrapped in its websocket frame header once, so a frame
shared by many connections (``ticker:all``) costs one encode however many sockets it goes to, and a
burst of frames goes out in a single transport write.
"""

from __future__ import annotations

import struct
from typing import Any

import orjson

from cryptoarb.venues.kucoin.sim_accounts import BalanceChange, dstr
from cryptoarb.venues.kucoin.sim_book import Delta, Fmt, PublishedBook

TICKER = "/market/ticker"
TICKER_ALL = "/market/ticker:all"
LEVEL1 = "/spotMarket/level1"
DEPTH5 = "/spotMarket/level2Depth5"
DEPTH50 = "/spotMarket/level2Depth50"
LEVEL2 = "/market/level2"
ORDERS_V1 = "/spotMarket/tradeOrders"
ORDERS_V2 = "/spotMarket/tradeOrdersV2"
BALANCE = "/account/balance"
PUBLIC_TOPICS = frozenset({TICKER, LEVEL1, DEPTH5, DEPTH50, LEVEL2})
PRIVATE_TOPICS = frozenset({ORDERS_V1, ORDERS_V2, BALANCE})

MALFORMED = b'{"topic":"/market/ticker:all","type":"message","subject":'  # cut off mid-object

_LEN1 = struct.Struct("!BB").pack
_LEN2 = struct.Struct("!BBH").pack
_LEN8 = struct.Struct("!BBQ").pack


def ws_text(payload: bytes) -> bytes:
    """``payload`` as one unmasked, final websocket text frame (server to client, RFC 6455 §5.2)."""
    n = len(payload)
    if n < 126:
        return _LEN1(0x81, n) + payload
    if n < 65536:
        return _LEN2(0x81, 126, n) + payload
    return _LEN8(0x81, 127, n) + payload


def control(kind: str, rid: str, **extra: Any) -> bytes:
    """welcome / pong / ack / error frames: ``{"id": rid, "type": kind, ...}``."""
    return ws_text(orjson.dumps({"id": rid, "type": kind, **extra}))


def error(rid: str, code: int, data: str) -> bytes:
    return control("error", rid, code=code, data=data)


def message(topic: str, subject: str, data: dict[str, Any]) -> bytes:
    return ws_text(orjson.dumps({"topic": topic, "type": "message", "subject": subject, "data": data}))


def ticker_data(book: PublishedBook, fmt: Fmt, last: tuple[str, str] | None) -> dict[str, Any]:
    bid, bid_size, ask, ask_size = book.top
    price, size = last if last is not None else (fmt.price(bid), "0")
    return {"bestAsk": fmt.price(ask), "bestAskSize": fmt.size(ask_size), "bestBid": fmt.price(bid),
            "bestBidSize": fmt.size(bid_size), "price": price, "sequence": str(book.seq), "size": size,
            "time": book.time_ms}


def ticker_all(symbol: str, data: dict[str, Any]) -> bytes:
    # KuCoin's own key order; clients (ours included) may sniff the frame head
    return ws_text(orjson.dumps({"topic": TICKER_ALL, "type": "message", "subject": symbol, "data": data}))


def level2(delta: Delta, fmt: Fmt) -> bytes:
    p, s = fmt.price, fmt.size
    asks = [[p(x) if x else "0", s(y) if y else "0", str(q)] for x, y, q in delta.asks]
    bids = [[p(x) if x else "0", s(y) if y else "0", str(q)] for x, y, q in delta.bids]
    return message(f"{LEVEL2}:{delta.symbol}", "trade.l2update", {
        "changes": {"asks": asks, "bids": bids}, "sequenceEnd": delta.end, "sequenceStart": delta.start,
        "symbol": delta.symbol, "time": delta.time_ms})


def depth(prefix: str, book: PublishedBook, fmt: Fmt, n: int) -> bytes:
    p, s = fmt.price, fmt.size
    bids, asks = book.levels(n)
    return message(f"{prefix}:{book.snap.symbol}", "level2", {
        "asks": [[p(x), s(y)] for x, y in asks], "bids": [[p(x), s(y)] for x, y in bids],
        "timestamp": book.time_ms})


def level1(book: PublishedBook, fmt: Fmt) -> bytes:
    bid, bid_size, ask, ask_size = book.top
    return message(f"{LEVEL1}:{book.snap.symbol}", "level1", {
        "asks": [fmt.price(ask), fmt.size(ask_size)], "bids": [fmt.price(bid), fmt.size(bid_size)],
        "timestamp": book.time_ms})


def order_change(topic: str, user_id: str, data: dict[str, Any]) -> bytes:
    return ws_text(orjson.dumps({"topic": topic, "type": "message", "subject": "orderChange",
                                 "userId": user_id, "channelType": "private", "data": data}))


def balance(user_id: str, change: BalanceChange, event_id: str) -> bytes:
    ctx = change.context
    relation: dict[str, str] = {"symbol": ctx.symbol, "orderId": ctx.order_id}
    if ctx.trade_id:
        relation["tradeId"] = ctx.trade_id
    return ws_text(orjson.dumps({
        "topic": BALANCE, "type": "message", "subject": "account.balance", "id": event_id, "userId": user_id,
        "channelType": "private", "data": {
            "accountId": change.account_id, "currency": change.currency, "total": dstr(change.total),
            "available": dstr(change.available), "hold": dstr(change.hold),
            "availableChange": dstr(change.available_change), "holdChange": dstr(change.hold_change),
            "relationContext": relation, "relationEvent": ctx.event, "relationEventId": event_id,
            "time": str(change.time_ms)}}))
