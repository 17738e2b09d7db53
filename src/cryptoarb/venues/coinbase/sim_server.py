"""A loopback Coinbase Exchange websocket feed backed by the simulated world (``cryptoarb sim-server``).

Speaks ``ws-feed`` as ``reference/exchange-protocols.md`` §C describes it, for the public channels:

- ``subscribe`` / ``unsubscribe`` with ``product_ids`` and ``channels`` (names or
  ``{"name", "product_ids"}`` objects), answered with ``subscriptions`` (the connection's channels now);
- ``level2_batch``: a ``snapshot`` of the book on subscribe, then ``l2update`` changes every 50 ms
  (``["buy"|"sell", price, size]``, size ``"0"`` deletes);
- ``ticker``: the latest ticker on subscribe, then one message per simulated trade, with the
  product's ``sequence`` and a consecutive ``trade_id``; the simulator books one trade behind every
  round of book changes, so any dropped round shows as a trade-id gap (on the real feed a change with
  no trade behind it can be lost unseen);
- ``heartbeat``: every second per product, the latest ``sequence`` and ``last_trade_id``;
- the real refusals as ``{"type":"error","message":"Failed to subscribe","reason":...}``: unknown
  product or channel, an authenticated channel (``level2``, ``full``, ``user``, ``level3``), more than
  10 subscriptions per product and channel; more than 100 client messages a second is an error and a
  close; a connection that does not subscribe within 5 s is closed.

Every product has one ``sequence``, increased by each book change batch and each trade, and one
``trade_id`` counter, shared by all connections, so a client that misses messages sees the gap.

Faults, in-process (tests) or over HTTP (``POST /_sim/faults``): ``drop_connections()`` aborts every
socket; ``skip(product, rounds)`` leaves out a product's next publication rounds on every connection
(the server's book and counters move on, as when Coinbase drops messages for a slow client).
``advance(steps)`` (``POST /_sim/step``) steps a frozen market (``speed=0``) by hand; ``GET
/_sim/book/{product}`` is the book as published.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from cryptoarb.model import Level
from cryptoarb.venues.coinbase.codec import AUTH_CHANNELS, iso_time
from cryptoarb.venues.sim.loopback import run_until_cancelled
from cryptoarb.venues.sim.market import EPOCH_MS
from cryptoarb.venues.sim.world import SimWorld
from cryptoarb.venues.sim.world_feed import Client, WorldFeedConfig, WorldFeedServer

CHANNELS = frozenset({"ticker", "level2_batch", "heartbeat"})


@dataclass(frozen=True, slots=True)
class CoinbaseSimConfig(WorldFeedConfig):
    venue: str = "coinbase"
    batch_interval_s: float = 0.05
    heartbeat_interval_s: float = 1.0
    subscribe_timeout_s: float = 5.0
    client_messages_per_s: int = 100
    subscriptions_per_product: int = 10


def _num(x: float) -> str:
    return format(Decimal(repr(x)), "f")


def _levels(levels: Iterable[Level]) -> list[list[str]]:
    return [[_num(p), _num(s)] for p, s in levels]


class _Conn(Client):
    """One client socket: its subscriptions, and the outbox its writer task drains."""

    def __init__(self, ws: web.WebSocketResponse, opened: float) -> None:
        super().__init__(ws)
        self.opened = opened
        self.channels: dict[str, set[str]] = {}
        self.subscribed = asyncio.Event()
        self.sent_at: deque[float] = deque()
        self.writer: asyncio.Task[None] | None = None

    def wants(self, channel: str, product: str) -> bool:
        return product in self.channels.get(channel, ())


class CoinbaseSimServer(WorldFeedServer):
    """``await start()`` returns the feed URL (``ws://host:port``); point a client's feed URL at it."""

    tag = "cb"
    label = "coinbase sim"
    item = "product"
    config: CoinbaseSimConfig
    conns: set[_Conn]

    def __init__(self, config: CoinbaseSimConfig | None = None, *, world: SimWorld | None = None) -> None:
        super().__init__(config or CoinbaseSimConfig(), world)
        self.products = list(self.venue.universe.symbols)
        self._published: dict[str, tuple[dict[float, float], dict[float, float]]] = {}
        self._sequence: dict[str, int] = {}
        self._trade_id: dict[str, int] = {}
        self._open: dict[str, float] = {}  # the first price: open_24h
        self._ticker: dict[str, dict] = {}  # the last ticker, sent to a new ticker subscriber first
        for p in self.products:
            book = self.venue.market.book(p)
            self._published[p] = (dict(book.bids[: self._depth]), dict(book.asks[: self._depth]))
            self._sequence[p] = 1_000_000 + 1000 * len(self._sequence)
            self._trade_id[p] = 10_000 + len(self._trade_id)
            self._open[p] = (book.bids[0][0] + book.asks[0][0]) / 2 if book.bids and book.asks else 0.0
            if book.bids and book.asks:
                top = (book.bids[0][0], book.asks[0][0])
                self._trade_id[p] -= 1  # the opening trade takes the first id
                self._ticker[p] = self._trade(p, dict(book.bids), dict(book.asks), top, top, iso_time(EPOCH_MS))
        self._skip: dict[str, int] = {}
        self.stats = {"connections": 0, "messages_in": 0, "messages_out": 0, "errors": 0, "rounds": 0,
                      "skipped": 0, "dropped": 0}

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/", self._ws), web.get("/_sim/book/{product}", self._http_book)]

    def timers(self) -> list[tuple[str, float, Callable[[], None]]]:
        return [("cb-batch", self.config.batch_interval_s, self.publish),
                ("cb-heartbeat", self.config.heartbeat_interval_s, self.send_heartbeats)]

    # -- the market ------------------------------------------------------------------------------------
    def publish(self) -> None:
        """One ``level2_batch`` round: the changes since the last round, and a ticker per trade."""
        if not self._dirty:
            return
        self.stats["rounds"] += 1
        now_ms = self._now_ms()
        stamp = iso_time(now_ms)
        for product in sorted(self._dirty):
            book = self.venue.market.book(product)
            bids, asks = dict(book.bids[: self._depth]), dict(book.asks[: self._depth])
            old_bids, old_asks = self._published[product]
            changes = _diff("buy", old_bids, bids) + _diff("sell", old_asks, asks)
            if not changes:
                continue
            old_top = (max(old_bids, default=0.0), min(old_asks, default=0.0))
            self._published[product] = (bids, asks)
            self._sequence[product] += 1
            messages = [("level2_batch", {"type": "l2update", "product_id": product, "time": stamp,
                                          "changes": changes})]
            if bids and asks:  # the simulated match behind the change
                top = (max(bids), min(asks))
                messages.append(("ticker", self._trade(product, bids, asks, top, old_top, stamp)))
            if self._skip.get(product):
                self._skip[product] -= 1
                self.stats["skipped"] += 1
                continue
            for channel, message in messages:
                self._broadcast(channel, product, message)
        self._dirty.clear()

    def _trade(self, product: str, bids: dict[float, float], asks: dict[float, float], top: tuple[float, float],
               old_top: tuple[float, float], stamp: str) -> dict:
        side = "buy" if top[0] > old_top[0] or top[1] > old_top[1] else "sell"
        price = top[1] if side == "buy" else top[0]
        size = min(asks[top[1]], bids[top[0]]) / 10
        self._trade_id[product] += 1
        self._sequence[product] += 1
        open_price = self._open[product]
        self._ticker[product] = ticker = {
            "type": "ticker", "sequence": self._sequence[product], "product_id": product, "price": _num(price),
            "open_24h": _num(open_price), "volume_24h": "1000.0", "low_24h": _num(min(price, open_price)),
            "high_24h": _num(max(price, open_price)), "volume_30d": "30000.0", "best_bid": _num(top[0]),
            "best_bid_size": _num(bids[top[0]]), "best_ask": _num(top[1]), "best_ask_size": _num(asks[top[1]]),
            "side": side, "time": stamp, "trade_id": self._trade_id[product], "last_size": _num(size)}
        return ticker

    def send_heartbeats(self) -> None:
        stamp = iso_time(self._now_ms())
        for conn in list(self.conns):
            for product in sorted(conn.channels.get("heartbeat", ())):
                if self._skip.get(product):
                    continue
                self._send(conn, {"type": "heartbeat", "sequence": self._sequence[product],
                                  "last_trade_id": self._trade_id[product], "product_id": product, "time": stamp})

    def trade_id(self, product: str) -> int:
        """The product's last trade id (what its next heartbeat reports)."""
        return self._trade_id[product]

    def published_book(self, product: str) -> tuple[list[Level], list[Level]]:
        """The book as the feed has published it: (bids best first, asks best first)."""
        bids, asks = self._published[product]
        return sorted(bids.items(), reverse=True), sorted(asks.items())

    def _now_ms(self) -> int:
        return EPOCH_MS + int(self.world.time * 1000)

    # -- faults ----------------------------------------------------------------------------------------
    def skip(self, product: str, rounds: int = 1) -> None:
        """Leave ``product`` out of its next ``rounds`` publication rounds (and heartbeats meanwhile)."""
        if product not in self._published:
            raise KeyError(product)
        self._skip[product] = self._skip.get(product, 0) + rounds

    def apply_faults(self, body: dict[str, Any]) -> dict[str, object]:
        for product, rounds in (body.get("skip") or {}).items():
            self.skip(product, int(rounds))
        return {"skip": {p: n for p, n in self._skip.items() if n}}

    # -- websocket -------------------------------------------------------------------------------------
    async def _ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=None, autoping=True)
        await ws.prepare(request)
        conn = _Conn(ws, time.monotonic())
        conn.writer = asyncio.create_task(conn.write(), name="cb-conn-writer")
        self.conns.add(conn)
        self.stats["connections"] += 1
        deadline = asyncio.get_running_loop().call_later(self.config.subscribe_timeout_s, self._expire, conn)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                self.stats["messages_in"] += 1
                if not self._within_rate(conn):
                    self._error(conn, "rate limit exceeded", "too many messages")
                    conn.put(None)
                    break
                self._handle(conn, msg.data)
                if conn.subscribed.is_set():
                    deadline.cancel()
        finally:
            deadline.cancel()
            self.conns.discard(conn)
            if not conn.outbox or conn.outbox[-1] is not None:
                conn.writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, RuntimeError):
                await conn.writer
        return ws

    def _expire(self, conn: _Conn) -> None:
        if not conn.subscribed.is_set() and not conn.ws.closed:
            self._error(conn, "Failed to subscribe", "no subscribe message within 5 seconds")
            conn.put(None)

    def _within_rate(self, conn: _Conn) -> bool:
        now = time.monotonic()
        while conn.sent_at and conn.sent_at[0] <= now - 1.0:
            conn.sent_at.popleft()
        conn.sent_at.append(now)
        return len(conn.sent_at) <= self.config.client_messages_per_s

    def _handle(self, conn: _Conn, text: str) -> None:
        try:
            msg = orjson.loads(text)
            kind = msg["type"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self._error(conn, "Failed to parse message", "malformed JSON")
            return
        if kind not in ("subscribe", "unsubscribe"):
            self._error(conn, "Failed to subscribe", f"{kind} is not a valid message type")
            return
        top = msg.get("product_ids") or []
        wanted: list[tuple[str, list[str]]] = []
        for entry in msg.get("channels") or []:
            if isinstance(entry, str):
                wanted.append((entry, list(top)))
            elif isinstance(entry, dict) and isinstance(entry.get("name"), str):
                wanted.append((entry["name"], list(entry.get("product_ids") or top)))
        problem = self._problem(conn, kind, wanted)
        if problem:
            self._error(conn, "Failed to subscribe", problem)
            return
        new_books: list[str] = []
        new_tickers: list[str] = []
        for channel, products in wanted:
            held = conn.channels.setdefault(channel, set())
            for product in products:
                if kind == "subscribe":
                    if product not in held:
                        (new_books if channel == "level2_batch" else new_tickers if channel == "ticker" else []).append(
                            product)
                    held.add(product)
                else:
                    held.discard(product)
            if not held:
                del conn.channels[channel]
        if kind == "subscribe":
            conn.subscribed.set()
        self._send(conn, {"type": "subscriptions", "channels": [
            {"name": name, "product_ids": sorted(products)} for name, products in sorted(conn.channels.items())]})
        stamp = iso_time(self._now_ms())
        for product in new_books:
            bids, asks = self.published_book(product)
            self._send(conn, {"type": "snapshot", "product_id": product, "bids": _levels(bids), "asks": _levels(asks),
                              "time": stamp})
        for product in new_tickers:  # as Coinbase does: the latest ticker at once
            if product in self._ticker:
                self._send(conn, self._ticker[product])

    def _problem(self, conn: _Conn, kind: str, wanted: list[tuple[str, list[str]]]) -> str:
        if not wanted:
            return "no channels"
        for channel, products in wanted:
            if channel in AUTH_CHANNELS:
                return f"{channel} channel requires authentication"
            if channel not in CHANNELS:
                return f"{channel} is not a valid channel"
            if not products:
                return f"no product ids for {channel}"
            for product in products:
                if product not in self._published:
                    return f"{product} is not a valid product"
                if kind == "subscribe" and not conn.wants(channel, product):
                    holders = sum(1 for c in self.conns if c.wants(channel, product))
                    if holders >= self.config.subscriptions_per_product:
                        return f"exceeded {self.config.subscriptions_per_product} subscriptions for {product} " \
                               f"on {channel}"
        return ""

    def _error(self, conn: _Conn, message: str, reason: str) -> None:
        self.stats["errors"] += 1
        self._send(conn, {"type": "error", "message": message, "reason": reason})

    def _broadcast(self, channel: str, product: str, message: dict) -> None:
        payload = None
        for conn in self.conns:
            if conn.wants(channel, product):
                payload = payload or orjson.dumps(message)
                self._send_raw(conn, payload)

    def _send(self, conn: _Conn, message: dict) -> None:
        self._send_raw(conn, orjson.dumps(message))

    def _send_raw(self, conn: _Conn, payload: bytes) -> None:
        if conn.ws.closed:
            return
        self.stats["messages_out"] += 1
        conn.put(payload)

    # -- admin -----------------------------------------------------------------------------------------
    async def _http_book(self, request: web.Request) -> web.Response:
        product = request.match_info["product"]
        if product not in self._published:
            return web.json_response({"error": f"unknown product {product}"}, status=404)
        bids, asks = self.published_book(product)
        return web.json_response({"product_id": product, "sequence": self._sequence[product],
                                  "trade_id": self._trade_id[product], "bids": _levels(bids), "asks": _levels(asks)})


def _diff(side: str, old: dict[float, float], new: dict[float, float]) -> list[list[str]]:
    out = [[side, _num(p), "0"] for p in old if p not in new]
    out += [[side, _num(p), _num(s)] for p, s in new.items() if old.get(p) != s]
    return out


async def serve(config: CoinbaseSimConfig, on_listening: Callable[[str], None]) -> None:
    """Run until cancelled; ``on_listening(url)`` once the socket accepts connections."""
    await run_until_cancelled(CoinbaseSimServer(config), on_listening)
