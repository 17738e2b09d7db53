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
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from aiohttp import WSMsgType, web

from cryptoarb.config import SimSettings
from cryptoarb.model import BookUpdate, Level
from cryptoarb.venues.bl3p.codec import encode_orderbook, encode_trade, market_id
from cryptoarb.venues.sim.market import EPOCH_MS
from cryptoarb.venues.sim.world import SimWorld, WorldVenue

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Bl3pSimConfig:
    host: str = "127.0.0.1"
    port: int = 0
    sim: SimSettings = field(default_factory=lambda: SimSettings(depth_levels=50))
    speed: float = 1.0
    """Simulated seconds per wall second; 0 freezes the market (it moves only through ``advance``)."""
    venue: str = "bl3p"
    interval_s: float = 0.1
    book_on_connect: bool = True


class _Conn:
    def __init__(self, ws: web.WebSocketResponse, market: str, channel: str) -> None:
        self.ws = ws
        self.market = market
        self.channel = channel
        self.outbox: deque[str] = deque()
        self.ready = asyncio.Event()

    def put(self, payload: bytes) -> None:
        self.outbox.append(payload.decode())
        self.ready.set()

    async def write(self) -> None:
        while not self.ws.closed:
            await self.ready.wait()
            self.ready.clear()
            while self.outbox and not self.ws.closed:
                await self.ws.send_str(self.outbox.popleft())


class Bl3pSimServer:
    """``await start()`` returns the base URL (``ws://host:port``); markets live at ``/1/{MARKET}/...``."""

    def __init__(self, config: Bl3pSimConfig | None = None, *, world: SimWorld | None = None) -> None:
        self.config = cfg = config or Bl3pSimConfig()
        self._owns_world = world is None
        self.world = world or SimWorld(cfg.sim, [cfg.venue], speed=cfg.speed)
        self.venue: WorldVenue = self.world.venues[cfg.venue]
        self.symbols = {market_id(s): s for s in self.venue.universe.symbols}
        self._depth = self.world.settings.depth_levels
        self._pushed: dict[str, tuple[tuple[Level, ...], tuple[Level, ...]]] = {
            m: self._current(s) for m, s in self.symbols.items()}
        self._dirty: set[str] = set()
        self._silent: set[str] = set()
        self.conns: set[_Conn] = set()
        self.stats: dict[str, int] = {"connections": 0, "books_out": 0, "trades_out": 0, "rounds": 0, "dropped": 0}
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_routes([
            web.get("/1/{market}/{channel}", self._ws),
            web.get("/_sim/stats", self._http_stats), web.post("/_sim/faults", self._http_faults),
            web.post("/_sim/step", self._http_step), web.get("/_sim/book/{market}", self._http_book),
        ])
        return app

    async def start(self) -> str:
        self._runner = web.AppRunner(self.app(), handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"ws://{self.config.host}:{port}"
        self._tasks = [asyncio.create_task(self._every(self.config.interval_s, self.publish), name="bl3p-push")]
        if self._owns_world and self.config.speed > 0:
            self._tasks.append(asyncio.create_task(self._drive(), name="bl3p-world"))
        return self.url

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for conn in list(self.conns):
            with contextlib.suppress(Exception):
                await conn.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _every(self, interval_s: float, work: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                work()
            except Exception:
                log.exception("bl3p sim: %s failed", getattr(work, "__name__", work))

    async def _drive(self) -> None:
        async for step in self.world.stream():
            self.on_step(step)

    # -- the market ------------------------------------------------------------------------------------
    def _current(self, symbol: str) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
        book = self.venue.market.book(symbol)
        return tuple(book.bids[: self._depth]), tuple(book.asks[: self._depth])

    def on_step(self, step: list[tuple[str, list[BookUpdate]]]) -> None:
        for venue, batch in step:
            if venue == self.config.venue:
                self._dirty.update(market_id(u.symbol) for u in batch)

    def advance(self, steps: int = 1) -> None:
        """Step the world ``steps`` times and push (a frozen market's clock, for tests)."""
        for _ in range(steps):
            self.on_step(self.world.step())
        self.publish()

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
    def drop_connections(self) -> int:
        dropped = 0
        for conn in list(self.conns):
            transport = conn.ws._req.transport if conn.ws._req is not None else None
            if transport is not None:
                transport.abort()
                dropped += 1
        self.stats["dropped"] += dropped
        return dropped

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
    async def _http_stats(self, request: web.Request) -> web.Response:
        return web.json_response({**self.stats, "live_connections": len(self.conns), "steps": self.world.steps})

    async def _http_faults(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read() or b"{}")
        out: dict[str, object] = {}
        if body.get("drop_connections"):
            out["dropped"] = self.drop_connections()
        for symbol, on in (body.get("silence") or {}).items():
            try:
                self.silence(symbol, bool(on))
            except KeyError:
                return web.json_response({"error": f"unknown market {symbol}"}, status=400)
        out["silent"] = sorted(self._silent)
        return web.json_response(out)

    async def _http_step(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read() or b"{}")
        self.advance(int(body.get("steps", 1)))
        return web.json_response({"steps": self.world.steps, "time": self.world.time})

    async def _http_book(self, request: web.Request) -> web.Response:
        market = request.match_info["market"].upper()
        if market not in self.symbols:
            return web.json_response({"error": f"unknown market {market}"}, status=404)
        return web.Response(body=encode_orderbook(market, *self._pushed[market]), content_type="application/json")


async def serve(config: Bl3pSimConfig, on_listening: Callable[[str], None]) -> None:
    """Run until cancelled; ``on_listening(url)`` once the socket accepts connections."""
    server = Bl3pSimServer(config)
    await server.start()
    on_listening(server.url)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()
