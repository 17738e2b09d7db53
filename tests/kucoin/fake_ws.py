"""A small KuCoin-protocol websocket fake for the client tests, enforcing the real limits.

POST /api/v1/bullet-public hands out a fresh token per call; GET /ws?token=..&connectId=.. sends a
welcome, answers pings, acks (un)subscribes and refuses what KuCoin refuses, with KuCoin's error
frames: more than ``topics_per_message`` symbols in one subscribe, more than ``topics_per_connection``
symbols on one connection, more than ``max_messages`` client messages in ``window_s``. Every refusal is
recorded in ``violations``: a well-behaved client leaves it empty. Tests push frames with ``push_*``,
inject faults (drop, ignore pings, error frames, token expiry) and wait on state with ``wait_for``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

TICKER_ALL = "/market/ticker:all"
Level = tuple[float, float]


class Changed:
    """Wait for a predicate over state that callbacks mutate: set() after each change."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            self._event.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
            try:
                await asyncio.wait_for(self._event.wait(), remaining)
            except TimeoutError:
                continue


@dataclass(eq=False)
class FakeConn:
    id: int
    token: str
    connect_id: str
    ws: web.WebSocketResponse
    topics: dict[str, set[str]] = field(default_factory=dict)  # prefix -> symbols
    received: deque[float] = field(default_factory=deque)  # client message times in the window
    client_messages: int = 0
    subscribe_sizes: list[int] = field(default_factory=list)
    ignore_pings: bool = False
    closed: bool = False

    @property
    def topic_count(self) -> int:
        return sum(len(s) for s in self.topics.values())

    def has(self, prefix: str, symbol: str) -> bool:
        return symbol in self.topics.get(prefix, ())


class FakeKucoin:
    def __init__(self, *, topics_per_message: int = 100, topics_per_connection: int = 300,
                 max_messages: int = 100, window_s: float = 10.0, ping_interval_ms: int = 18000,
                 ping_timeout_ms: int = 10000, token_lifetime_s: float | None = None,
                 known_symbols: set[str] | None = None) -> None:
        self.topics_per_message = topics_per_message
        self.topics_per_connection = topics_per_connection
        self.max_messages = max_messages
        self.window_s = window_s
        self.ping_interval_ms = ping_interval_ms
        self.ping_timeout_ms = ping_timeout_ms
        self.token_lifetime_s = token_lifetime_s
        self.known_symbols = known_symbols
        self.tokens: dict[str, float] = {}  # token -> issued at
        self.conns: list[FakeConn] = []
        self.violations: list[str] = []
        self.errors_sent: list[dict[str, Any]] = []
        self.expired_drops = 0
        self.fail_bullets = 0  # answer the next N bullet requests with HTTP 503
        self.changed = Changed()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._timers: set[asyncio.Task[None]] = set()
        self.port = 0

    # -- lifecycle ----------------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/v1/bullet-public", self._bullet)
        app.router.add_get("/ws", self._ws)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def close(self) -> None:
        for task in self._timers:
            task.cancel()
        for conn in self.live():
            await conn.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def live(self) -> list[FakeConn]:
        return [c for c in self.conns if not c.closed]

    def subscribed(self, prefix: str) -> set[str]:
        return {s for c in self.live() for s in c.topics.get(prefix, ())}

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
        await self.changed.wait_for(predicate, timeout, what)

    # -- REST ---------------------------------------------------------------------------------------
    async def _bullet(self, request: web.Request) -> web.Response:
        if self.fail_bullets > 0:
            self.fail_bullets -= 1
            self.changed.set()
            return web.json_response({"code": "503000", "msg": "service unavailable"}, status=503)
        token = f"tok{next(self._ids)}"
        self.tokens[token] = time.monotonic()
        self.changed.set()
        return web.json_response({"code": "200000", "data": {
            "token": token, "instanceServers": [{
                "endpoint": f"ws://127.0.0.1:{self.port}/ws", "encrypt": False, "protocol": "websocket",
                "pingInterval": self.ping_interval_ms, "pingTimeout": self.ping_timeout_ms}]}})

    # -- websocket ----------------------------------------------------------------------------------
    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        token = request.query.get("token", "")
        connect_id = request.query.get("connectId", "")
        if token not in self.tokens:
            await ws.send_str(json.dumps({"id": connect_id, "type": "error", "code": 401,
                                          "data": "token is invalid"}))
            await ws.close()
            return ws
        conn = FakeConn(len(self.conns), token, connect_id, ws)
        self.conns.append(conn)
        if self.token_lifetime_s is not None:
            left = self.tokens[token] + self.token_lifetime_s - time.monotonic()
            timer = asyncio.create_task(self._expire(conn, left))
            self._timers.add(timer)
            timer.add_done_callback(self._timers.discard)
        await ws.send_str(json.dumps({"id": connect_id, "type": "welcome"}))
        self.changed.set()
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._on_client(conn, json.loads(msg.data))
                    self.changed.set()
        finally:
            conn.closed = True
            self.changed.set()
        return ws

    async def _expire(self, conn: FakeConn, after_s: float) -> None:
        await asyncio.sleep(max(0.0, after_s))  # the token's lifetime, as the exchange keeps it
        if not conn.closed:
            self.expired_drops += 1
            await self._error(conn, "", 401, "token is expired")
            await conn.ws.close()

    async def _on_client(self, conn: FakeConn, msg: dict[str, Any]) -> None:
        now = time.monotonic()
        conn.client_messages += 1
        conn.received.append(now)
        while conn.received and conn.received[0] <= now - self.window_s:
            conn.received.popleft()
        rid = str(msg.get("id", ""))
        if len(conn.received) > self.max_messages:
            self.violations.append(f"conn {conn.id}: {len(conn.received)} messages in {self.window_s}s")
            await self._error(conn, rid, 509, f"exceed max permits of {self.max_messages} per "
                                              f"{self.window_s:g} seconds")
            return
        kind = msg.get("type")
        if kind == "ping":
            if not conn.ignore_pings:
                await conn.ws.send_str(json.dumps({"id": rid, "type": "pong"}))
        elif kind in ("subscribe", "unsubscribe"):
            await self._subscription(conn, rid, kind, str(msg.get("topic", "")), bool(msg.get("response")))
        else:
            await self._error(conn, rid, 415, "type is not supported")

    async def _subscription(self, conn: FakeConn, rid: str, kind: str, topic: str, response: bool) -> None:
        prefix, _, rest = topic.partition(":")
        if topic == TICKER_ALL:
            prefix, symbols = TICKER_ALL, ["all"]
        else:
            symbols = [s for s in rest.split(",") if s]
        if kind == "unsubscribe":
            conn.topics.get(prefix, set()).difference_update(symbols)
        else:
            conn.subscribe_sizes.append(len(symbols))
            if len(symbols) > self.topics_per_message:
                self.violations.append(f"conn {conn.id}: {len(symbols)} topics in one subscribe")
                await self._error(conn, rid, 509, "exceed max subscription count limitation of "
                                                  f"{self.topics_per_message} per time")
                return
            have = conn.topics.setdefault(prefix, set())
            new = set(symbols) - have
            if conn.topic_count + len(new) > self.topics_per_connection:
                total = conn.topic_count + len(new)
                self.violations.append(f"conn {conn.id}: {total} topics on a connection")
                await self._error(conn, rid, 509, "exceed max subscription count limitation of "
                                                  f"{self.topics_per_connection} per session")
                return
            if self.known_symbols is not None and prefix != TICKER_ALL and not new <= self.known_symbols:
                await self._error(conn, rid, 404, f"topic {topic} is not found")
                return
            have.update(new)
        if response:
            await conn.ws.send_str(json.dumps({"id": rid, "type": "ack"}))

    async def _error(self, conn: FakeConn, rid: str, code: int, data: str) -> None:
        frame = {"id": rid, "type": "error", "code": code, "data": data}
        self.errors_sent.append(frame)
        if not conn.closed:
            await conn.ws.send_str(json.dumps(frame))

    # -- what tests do ------------------------------------------------------------------------------
    async def send_error(self, conn: FakeConn, code: int, data: str, rid: str = "") -> None:
        await self._error(conn, rid, code, data)

    async def drop(self, conn: FakeConn) -> None:
        await conn.ws.close()

    async def push(self, prefix: str, symbol: str, data: dict[str, Any], subject: str) -> int:
        """Send one ``message`` frame to every connection subscribed to ``prefix`` for ``symbol``."""
        if prefix == TICKER_ALL:
            topic, key = TICKER_ALL, "all"
        else:
            topic, key = f"{prefix}:{symbol}", symbol
        text = json.dumps({"topic": topic, "type": "message", "subject": subject, "data": data},
                          separators=(",", ":"))
        sent = 0
        for conn in self.live():
            if conn.has(prefix, key):
                try:
                    await conn.ws.send_str(text)
                    sent += 1
                except ConnectionError:
                    pass
        return sent

    async def push_ticker(self, symbol: str, bid: float, ask: float, sequence: int = 1) -> int:
        return await self.push(TICKER_ALL, symbol, {
            "bestAsk": str(ask), "bestAskSize": "1.5", "bestBid": str(bid), "bestBidSize": "2.5",
            "price": str(bid), "sequence": str(sequence), "size": "0.1", "time": 1729757723612}, symbol)

    async def push_depth(self, symbol: str, bids: list[tuple[float, float]], asks: list[tuple[float, float]],
                         ts: int = 1729822226746, depth: int = 50) -> int:
        return await self.push(f"/spotMarket/level2Depth{depth}", symbol, {
            "asks": [[str(p), str(s)] for p, s in asks], "bids": [[str(p), str(s)] for p, s in bids],
            "timestamp": ts}, "level2")

    async def push_level2(self, symbol: str, start: int, end: int, *, bids: Sequence[Level] = (),
                          asks: Sequence[Level] = ()) -> int:
        return await self.push("/market/level2", symbol, {
            "changes": {"asks": [[str(p), str(s), str(end)] for p, s in asks],
                        "bids": [[str(p), str(s), str(end)] for p, s in bids]},
            "sequenceEnd": end, "sequenceStart": start, "symbol": symbol, "time": 1729816425625},
            "trade.l2update")
