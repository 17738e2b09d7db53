"""The simulator's websocket side: tokens, sessions, KuCoin's limits and error frames, fan-out.

One ``Hub`` owns every connection. Market data is queued per connection while the exchange publishes
and flushed in one transport write per connection (``flush`` runs once per loop iteration at most).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from cryptoarb.venues.kucoin import sim_frames as frames
from cryptoarb.venues.kucoin.sim_accounts import BalanceChange
from cryptoarb.venues.kucoin.sim_book import Delta
from cryptoarb.venues.kucoin.sim_config import WsLimits
from cryptoarb.venues.kucoin.sim_exchange import SimExchange
from cryptoarb.venues.kucoin.sim_faults import Faults

log = logging.getLogger(__name__)

ALL = "all"


@dataclass(slots=True)
class TokenInfo:
    private: bool
    issued_at: float


class Tokens:
    """Bullet tokens: valid for ``ttl_s``; ``expire_all`` ends every token issued so far."""

    def __init__(self, ttl_s: float, clock: Callable[[], float]) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._tokens: dict[str, TokenInfo] = {}
        self._cutoff = float("-inf")

    def issue(self, *, private: bool) -> str:
        token = secrets.token_urlsafe(96)
        self._tokens[token] = TokenInfo(private, self._clock())
        return token

    def get(self, token: str) -> TokenInfo | None:
        return self._tokens.get(token)

    def expired(self, info: TokenInfo) -> bool:
        return info.issued_at <= self._cutoff or self._clock() - info.issued_at > self.ttl_s

    def expire_all(self) -> None:
        self._cutoff = self._clock()


class Conn:
    __slots__ = ("closed", "connect_id", "id", "last_seen", "opened_at", "token", "topics", "transport",
                 "window", "ws")

    def __init__(self, cid: int, ws: web.WebSocketResponse, transport: asyncio.Transport, connect_id: str,
                 token: TokenInfo, now: float) -> None:
        self.id = cid
        self.ws = ws
        self.transport = transport
        self.connect_id = connect_id
        self.token = token
        self.topics: dict[str, set[str]] = {}
        self.window: deque[float] = deque()
        self.last_seen = now
        self.opened_at = now
        self.closed = False

    @property
    def topic_count(self) -> int:
        return sum(len(s) for s in self.topics.values())


class Hub:
    def __init__(self, exchange: SimExchange, limits: WsLimits, faults: Faults, tokens: Tokens, *,
                 ticker_always: bool = False, level2_prime: int = 0) -> None:
        self.exchange = exchange
        self.limits = limits
        self.faults = faults
        self.tokens = tokens
        self.ticker_always = ticker_always
        self.level2_prime = level2_prime
        self.conns: set[Conn] = set()
        self.subs: dict[str, dict[str, set[Conn]]] = {
            p: {} for p in (*frames.PUBLIC_TOPICS, *frames.PRIVATE_TOPICS)}
        self.stats: dict[str, int] = {"connections": 0, "frames": 0, "bytes": 0, "ticker_all_frames": 0,
                                      "errors": 0, "slow_drops": 0, "fault_drops": 0, "expired": 0}
        self._pending: dict[Conn, list[bytes]] = {}
        self._closing: set[asyncio.Task[bool]] = set()
        self._flush_scheduled = False
        self._dirty_top: set[str] = set()
        self._dirty_depth: set[str] = set()
        self._dirty_l1: set[str] = set()
        self._last_top: dict[str, tuple[float, float, float, float]] = {}
        self._ticker_cache: dict[str, tuple[tuple[float, float, float, float], int, bytes]] = {}
        self._ids = itertools.count(1)
        self._event_ids = itertools.count(354_689_988_084_000)
        exchange.book_listeners.append(self._on_book)
        level2 = self.subs[frames.LEVEL2]
        exchange.streams_level2 = lambda symbol: bool(level2.get(symbol))
        exchange.order_listeners.append(self._on_order)
        exchange.accounts.listeners.append(self._on_balance)

    # -- sending ----------------------------------------------------------------------------------------
    def queue(self, conn: Conn, frame: bytes) -> None:
        chunks = self._pending.get(conn)
        if chunks is None:
            self._pending[conn] = [frame]
        else:
            chunks.append(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        pending, self._pending = self._pending, {}
        for conn, chunks in pending.items():
            self._write(conn, chunks)

    def _write(self, conn: Conn, chunks: list[bytes]) -> None:
        t = conn.transport
        if conn.closed or t.is_closing():
            return
        if t.get_write_buffer_size() > self.limits.slow_client_bytes:
            self.stats["slow_drops"] += 1
            self._abort(conn)
            return
        t.writelines(chunks)
        self.stats["frames"] += len(chunks)

    def send_now(self, conn: Conn, frame: bytes) -> None:
        """Write a control frame after anything already queued for ``conn``."""
        chunks = self._pending.pop(conn, [])
        chunks.append(frame)
        self._write(conn, chunks)

    def _abort(self, conn: Conn) -> None:
        conn.closed = True
        conn.transport.abort()

    # -- exchange events ------------------------------------------------------------------------------
    def _on_book(self, sym: str, delta: Delta | None) -> None:
        self._dirty_top.add(sym)
        self._dirty_depth.add(sym)
        self._dirty_l1.add(sym)
        subs = self.subs[frames.LEVEL2].get(sym)
        if subs and delta is not None and not self.faults.stall_depth:
            frame = frames.level2(delta, self.exchange.fmt[sym])
            for conn in subs:
                self.queue(conn, frame)

    def _on_order(self, data: dict[str, Any]) -> None:
        uid = self.exchange.user_id
        v2 = self.subs[frames.ORDERS_V2].get(ALL)
        if v2:
            frame = frames.order_change(frames.ORDERS_V2, uid, data)
            for conn in v2:
                self.queue(conn, frame)
        v1 = self.subs[frames.ORDERS_V1].get(ALL)
        if v1 and data["type"] != "received":
            v1_data = {k: v for k, v in data.items() if k != "originSize"}
            frame = frames.order_change(frames.ORDERS_V1, uid, v1_data)
            for conn in v1:
                self.queue(conn, frame)

    def _on_balance(self, change: BalanceChange) -> None:
        subs = self.subs[frames.BALANCE].get(ALL)
        if subs:
            frame = frames.balance(self.exchange.user_id, change, str(next(self._event_ids)))
            for conn in subs:
                self.queue(conn, frame)

    # -- periodic pushes ------------------------------------------------------------------------------
    def push_tickers(self) -> None:
        """One ``/market/ticker`` round: every symbol whose top changed (or every symbol, always mode)."""
        ex = self.exchange
        dirty, self._dirty_top = self._dirty_top, set()
        symbols = ex.universe.symbols if self.ticker_always else sorted(dirty)
        all_conns = self.subs[frames.TICKER].get(ALL)
        per_symbol = self.subs[frames.TICKER]
        out: list[bytes] = []
        for sym in symbols:
            book = ex.books[sym]
            top = book.top
            if not self.ticker_always and self._last_top.get(sym) == top:
                continue
            self._last_top[sym] = top
            if all_conns:
                out.append(self._ticker_all_frame(sym))
            conns = per_symbol.get(sym)
            if conns:
                frame = frames.message(f"{frames.TICKER}:{sym}", "trade.ticker", self._ticker_data(sym))
                for conn in conns:
                    self.queue(conn, frame)
        if out and all_conns:
            blob = b"".join(out)
            self.stats["ticker_all_frames"] += len(out) * len(all_conns)
            for conn in all_conns:
                self.queue(conn, blob)

    def _ticker_data(self, sym: str) -> dict[str, Any]:
        ex = self.exchange
        last = ex.last_trade.get(sym)
        fmt = ex.fmt[sym]
        shown = None if last is None else (fmt.price(float(last[0])), fmt.size(float(last[1])))
        return frames.ticker_data(ex.books[sym], fmt, shown)

    def _ticker_all_frame(self, sym: str) -> bytes:
        book = self.exchange.books[sym]
        cached = self._ticker_cache.get(sym)
        if cached is not None and cached[0] == book.top and cached[1] == book.seq:
            return cached[2]
        frame = frames.ticker_all(sym, self._ticker_data(sym))
        self._ticker_cache[sym] = (book.top, book.seq, frame)
        return frame

    def push_depth(self) -> None:
        ex = self.exchange
        dirty, self._dirty_depth = self._dirty_depth, set()
        if self.faults.stall_depth:
            return
        for prefix, n in ((frames.DEPTH5, 5), (frames.DEPTH50, 50)):
            subs = self.subs[prefix]
            if not subs:
                continue
            for sym in dirty:
                conns = subs.get(sym)
                if conns:
                    frame = frames.depth(prefix, ex.books[sym], ex.fmt[sym], n)
                    for conn in conns:
                        self.queue(conn, frame)

    def push_level1(self) -> None:
        ex = self.exchange
        dirty, self._dirty_l1 = self._dirty_l1, set()
        subs = self.subs[frames.LEVEL1]
        if not subs:
            return
        for sym in dirty:
            conns = subs.get(sym)
            if conns:
                frame = frames.level1(ex.books[sym], ex.fmt[sym])
                for conn in conns:
                    self.queue(conn, frame)

    # -- faults and housekeeping ---------------------------------------------------------------------
    def housekeeping(self, now: float) -> None:
        """Expire tokens and drop silent clients (run about ten times a second)."""
        idle_s = (self.limits.ping_interval_ms + self.limits.ping_timeout_ms) / 1000
        for conn in list(self.conns):
            if conn.closed:
                continue
            if self.tokens.expired(conn.token):
                self.stats["expired"] += 1
                self.send_now(conn, frames.error(conn.connect_id, 401, "token is expired"))
                self._close_soon(conn)
            elif now - conn.last_seen > idle_s:
                self._close_soon(conn)

    def drop_all(self) -> None:
        for conn in list(self.conns):
            self.stats["fault_drops"] += 1
            self._abort(conn)

    def send_malformed(self) -> None:
        for conn in list(self.conns):
            self.queue(conn, frames.ws_text(frames.MALFORMED))

    def _close_soon(self, conn: Conn) -> None:
        if not conn.closed:
            conn.closed = True
            task = asyncio.get_running_loop().create_task(conn.ws.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close_all(self) -> None:
        for conn in list(self.conns):
            conn.closed = True
            await conn.ws.close()

    # -- sessions -------------------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True, compress=False, max_msg_size=1 << 20)
        if not ws.can_prepare(request).ok:
            raise web.HTTPBadRequest(text="websocket endpoint")
        await ws.prepare(request)
        transport = request.transport
        assert transport is not None
        connect_id = request.query.get("connectId") or secrets.token_hex(8)
        info = self.tokens.get(request.query.get("token", ""))
        if info is None or self.tokens.expired(info):
            reason = "token is invalid" if info is None else "token is expired"
            transport.write(frames.error(connect_id, 401, reason))
            await ws.close()
            return ws
        loop = asyncio.get_running_loop()
        conn = Conn(next(self._ids), ws, transport, connect_id, info, loop.time())
        self.conns.add(conn)
        self.stats["connections"] += 1
        self.send_now(conn, frames.control("welcome", connect_id))
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    self._on_client(conn, msg.data, loop.time())
        finally:
            conn.closed = True
            self._forget(conn)
        return ws

    def _forget(self, conn: Conn) -> None:
        self.conns.discard(conn)
        self._pending.pop(conn, None)
        for prefix, symbols in conn.topics.items():
            index = self.subs[prefix]
            for sym in symbols:
                holders = index.get(sym)
                if holders is not None:
                    holders.discard(conn)
                    if not holders:
                        del index[sym]

    def _on_client(self, conn: Conn, raw: str | bytes, now: float) -> None:
        conn.last_seen = now
        window = conn.window
        window.append(now)
        while window and window[0] <= now - self.limits.client_window_s:
            window.popleft()
        try:
            msg = orjson.loads(raw)
            rid = str(msg.get("id", ""))
            kind = msg.get("type")
        except (orjson.JSONDecodeError, AttributeError):
            self._error(conn, "", 400, "message is not valid json")
            return
        if len(window) > self.limits.client_messages:
            self._error(conn, rid, 509, f"exceed max permits per {self.limits.client_window_s:g} seconds")
            return
        if kind == "ping":
            if not self.faults.ignore_pings:
                self.send_now(conn, frames.control("pong", rid))
        elif kind in ("subscribe", "unsubscribe"):
            self._subscription(conn, rid, kind, msg)
        else:
            self._error(conn, rid, 415, "type is not supported")

    def _error(self, conn: Conn, rid: str, code: int, data: str) -> None:
        self.stats["errors"] += 1
        self.send_now(conn, frames.error(rid, code, data))

    def _subscription(self, conn: Conn, rid: str, kind: str, msg: dict[str, Any]) -> None:
        topic = str(msg.get("topic", ""))
        prefix, _, rest = topic.partition(":")
        if topic == frames.TICKER_ALL:
            symbols = [ALL]
        elif prefix in frames.PRIVATE_TOPICS:
            if not conn.token.private or not msg.get("privateChannel"):
                self._error(conn, rid, 401, f"topic {topic} requires privateChannel on a private token")
                return
            symbols = [ALL]
        elif prefix in frames.PUBLIC_TOPICS:
            symbols = list(dict.fromkeys(s for s in rest.split(",") if s))
            unknown = len(symbols) <= self.limits.topics_per_message and any(
                s not in self.exchange.books for s in symbols)
            if not symbols or unknown:
                self._error(conn, rid, 404, f"topic {topic} is not found")
                return
        else:
            self._error(conn, rid, 404, f"topic {topic} is not found")
            return
        index = self.subs[prefix]
        have = conn.topics.setdefault(prefix, set())
        if kind == "unsubscribe":
            for sym in symbols:
                have.discard(sym)
                holders = index.get(sym)
                if holders is not None:
                    holders.discard(conn)
        else:
            if len(symbols) > self.limits.topics_per_message:
                self._error(conn, rid, 509, "exceed max subscription count limitation of "
                                            f"{self.limits.topics_per_message} per time")
                return
            new = [s for s in symbols if s not in have]
            if conn.topic_count + len(new) > self.limits.topics_per_connection:
                self._error(conn, rid, 509, "exceed max subscription count limitation of "
                                            f"{self.limits.topics_per_connection} per session")
                return
            have.update(new)
            for sym in new:
                index.setdefault(sym, set()).add(conn)
        if msg.get("response"):
            self.send_now(conn, frames.control("ack", rid))
        if kind == "subscribe" and prefix == frames.LEVEL2:
            for sym in symbols:
                for _ in range(self.level2_prime):
                    self.exchange.prime(sym)
