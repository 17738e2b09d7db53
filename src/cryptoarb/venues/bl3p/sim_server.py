"""A loopback BL3P websocket server backed by the simulated world (``cryptoarb sim-server`` BL3P mode).

Speaks BL3P's public websocket API (``reference/exchange-protocols.md`` §C): the channel is in the path,
``/1/{BTCEUR|LTCEUR}/orderbook`` or ``/1/{...}/trades``; there is no subscribe, ping or ack message; the
server pushes JSON text frames with integer prices (EUR x 1e5) and amounts (x 1e8):

- ``orderbook``: the whole book (``asks``/``bids`` of ``{amount_int, price_int, count}``) every time it
  changes, checked every ``interval_s``; the simulator also sends the current book when a client
  connects (documented choice: BL3P's docs only promise pushes on change);
- ``trades``: a trade whenever a market's top of book moves (the simulated match that moved it).

An unknown market or channel is an HTTP 404 before the upgrade. Websocket-level pings are answered.
Faults, in-process or over HTTP (``POST /_sim/faults``): ``drop_connections()`` aborts every socket;
``silence(symbol, on)`` stops pushes for a market (a feed that goes quiet). ``advance(steps)``
(``POST /_sim/step``) steps a frozen market (``speed=0``); ``GET /_sim/book/{market}`` is the book as
last pushed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from cryptoarb.model import Level
from cryptoarb.venues.bl3p.codec import encode_orderbook, encode_trade, market_id
from cryptoarb.venues.sim.loopback import run_until_cancelled
from cryptoarb.venues.sim.market import EPOCH_MS
from cryptoarb.venues.sim.world import SimWorld
from cryptoarb.venues.sim.world_feed import Client, WorldFeedConfig, WorldFeedServer


@dataclass(frozen=True, slots=True)
class Bl3pSimConfig(WorldFeedConfig):
    venue: str = "bl3p"
    interval_s: float = 0.1
    book_on_connect: bool = True


class _Conn(Client):
    def __init__(self, ws: web.WebSocketResponse, market: str, channel: str) -> None:
        super().__init__(ws)
        self.market = market
        self.channel = channel


class Bl3pSimServer(WorldFeedServer):
    """``await start()`` returns the base URL (``ws://host:port``); markets live at ``/1/{MARKET}/...``."""

    tag = "bl3p"
    label = "bl3p sim"
    config: Bl3pSimConfig
    conns: set[_Conn]

    def __init__(self, config: Bl3pSimConfig | None = None, *, world: SimWorld | None = None) -> None:
        super().__init__(config or Bl3pSimConfig(), world)
        self.symbols = {market_id(s): s for s in self.venue.universe.symbols}
        self._pushed: dict[str, tuple[tuple[Level, ...], tuple[Level, ...]]] = {
            m: self._current(s) for m, s in self.symbols.items()}
        self._silent: set[str] = set()
        self.stats = {"connections": 0, "books_out": 0, "trades_out": 0, "rounds": 0, "dropped": 0}

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/1/{market}/{channel}", self._ws), web.get("/_sim/book/{market}", self._http_book)]

    def timers(self) -> list[tuple[str, float, Callable[[], None]]]:
        return [("bl3p-push", self.config.interval_s, self.publish)]

    def market_key(self, symbol: str) -> str:
        return market_id(symbol)

    # -- the market ------------------------------------------------------------------------------------
    def _current(self, symbol: str) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
        book = self.venue.market.book(symbol)
        return tuple(book.bids[: self._depth]), tuple(book.asks[: self._depth])

    def publish(self) -> None:
        """Push the whole book of every market that changed, and a trade where its top moved."""
        if not self._dirty:
            return
        self.stats["rounds"] += 1
        date_s = (EPOCH_MS + int(self.world.time * 1000)) // 1000
        for market in sorted(self._dirty):
            if market in self._silent:
                continue
            bids, asks = self._current(self.symbols[market])
            old_bids, old_asks = self._pushed[market]
            if (bids, asks) == (old_bids, old_asks):
                continue
            self._pushed[market] = (bids, asks)
            self._send(market, "orderbook", encode_orderbook(market, bids, asks))
            if bids and asks and old_bids and old_asks and (bids[0][0], asks[0][0]) != (old_bids[0][0], old_asks[0][0]):
                side = "buy" if asks[0][0] > old_asks[0][0] or bids[0][0] > old_bids[0][0] else "sell"
                price, size = (asks[0] if side == "buy" else bids[0])
                self._send(market, "trades", encode_trade(market, side, price, size / 10, date_s))
        self._dirty -= {m for m in self._dirty if m not in self._silent}

    def pushed_book(self, symbol: str) -> tuple[list[Level], list[Level]]:
        bids, asks = self._pushed[market_id(symbol)]
        return list(bids), list(asks)

    def _send(self, market: str, channel: str, payload: bytes) -> None:
        for conn in self.conns:
            if conn.market == market and conn.channel == channel and not conn.ws.closed:
                conn.put(payload)
                self.stats["books_out" if channel == "orderbook" else "trades_out"] += 1

    # -- faults ----------------------------------------------------------------------------------------
    def silence(self, symbol: str, on: bool = True) -> None:
        """Stop (or resume) every push for ``symbol``; changes made meanwhile are pushed on resume."""
        market = market_id(symbol)
        if market not in self.symbols:
            raise KeyError(symbol)
        if on:
            self._silent.add(market)
        else:
            self._silent.discard(market)
            self._dirty.add(market)

    def apply_faults(self, body: dict[str, Any]) -> dict[str, object]:
        for symbol, on in (body.get("silence") or {}).items():
            self.silence(symbol, bool(on))
        return {"silent": sorted(self._silent)}

    # -- websocket -------------------------------------------------------------------------------------
    async def _ws(self, request: web.Request) -> web.StreamResponse:
        market, channel = request.match_info["market"].upper(), request.match_info["channel"]
        if market not in self.symbols or channel not in ("orderbook", "trades"):
            raise web.HTTPNotFound(text=f"unknown market or channel: {market}/{channel}")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = _Conn(ws, market, channel)
        writer = asyncio.create_task(conn.write(), name="bl3p-conn-writer")
        self.conns.add(conn)
        self.stats["connections"] += 1
        if channel == "orderbook" and self.config.book_on_connect and market not in self._silent:
            bids, asks = self._pushed[market]
            conn.put(encode_orderbook(market, bids, asks))
            self.stats["books_out"] += 1
        try:
            async for msg in ws:  # BL3P ignores whatever a client sends
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.conns.discard(conn)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, RuntimeError):
                await writer
        return ws

    # -- admin -----------------------------------------------------------------------------------------
    async def _http_book(self, request: web.Request) -> web.Response:
        market = request.match_info["market"].upper()
        if market not in self.symbols:
            return web.json_response({"error": f"unknown market {market}"}, status=404)
        return web.Response(body=encode_orderbook(market, *self._pushed[market]), content_type="application/json")


async def serve(config: Bl3pSimConfig, on_listening: Callable[[str], None]) -> None:
    """Run until cancelled; ``on_listening(url)`` once the socket accepts connections."""
    await run_until_cancelled(Bl3pSimServer(config), on_listening)
