"""One venue of a :class:`SimWorld` pushed to websocket clients: what the Coinbase and BL3P simulators share.

:class:`WorldFeedServer` drives the world (unless it was handed a shared one, which its owner steps and
reports through ``on_step``), pushes on timers, steps a frozen market by hand (``advance``), aborts every
socket on demand, and serves the admin API: ``GET /_sim/stats``, ``POST /_sim/faults``
(``drop_connections`` plus the venue's own faults) and ``POST /_sim/step``. A subclass speaks the protocol:
its routes (``GET /_sim/book/...`` among them), its timers and what a round pushes (``publish``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from cryptoarb.config import SimSettings
from cryptoarb.model import BookUpdate
from cryptoarb.venues.sim.loopback import Background, LoopbackServer
from cryptoarb.venues.sim.world import SimWorld, WorldVenue


@dataclass(frozen=True, slots=True)
class WorldFeedConfig:
    """Where the server listens and what it simulates; a subclass sets ``venue``'s default."""

    host: str = "127.0.0.1"
    port: int = 0
    sim: SimSettings = field(default_factory=lambda: SimSettings(depth_levels=50))
    speed: float = 1.0
    """Simulated seconds per wall second; 0 freezes the market (it moves only through ``advance``)."""
    venue: str = ""


class Client:
    """One websocket client: an outbox that :meth:`write` (the client's writer task) drains in order."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.outbox: deque[str | None] = deque()  # None: close once everything before it is sent
        self.ready = asyncio.Event()

    def put(self, payload: bytes | None) -> None:
        self.outbox.append(None if payload is None else payload.decode())
        self.ready.set()

    async def write(self) -> None:
        while not self.ws.closed:
            await self.ready.wait()
            self.ready.clear()
            while self.outbox and not self.ws.closed:
                text = self.outbox.popleft()
                if text is None:
                    await self.ws.close()
                    return
                await self.ws.send_str(text)


class WorldFeedServer(LoopbackServer):
    """``await start()`` returns the base URL (``ws://host:port``). A subclass names itself in ``tag``
    (task names), ``label`` (log lines) and ``item`` (a market, in admin errors), and sets ``stats``."""

    tag = "sim"
    label = "sim"
    item = "market"
    stats: dict[str, int]  # counters served at /_sim/stats, "dropped" among them

    def __init__(self, config: WorldFeedConfig, world: SimWorld | None) -> None:
        super().__init__()
        self.config = config
        self._owns_world = world is None
        self.world = world or SimWorld(config.sim, [config.venue], speed=config.speed)
        self.venue: WorldVenue = self.world.venues[config.venue]
        self._depth = self.world.settings.depth_levels
        self._dirty: set[str] = set()  # the markets (``market_key``) changed since the last round
        self.conns: set[Any] = set()

    # -- what a subclass gives -------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    def timers(self) -> list[tuple[str, float, Callable[[], None]]]:
        """(task name, interval in seconds, work) for each thing done on a timer while listening."""
        raise NotImplementedError

    def publish(self) -> None:
        raise NotImplementedError

    def apply_faults(self, body: dict[str, Any]) -> dict[str, object]:
        """The venue's own faults in a ``POST /_sim/faults`` body; raises ``KeyError(name)`` for an unknown
        market; returns what the answer reports of them."""
        return {}

    def market_key(self, symbol: str) -> str:
        """What the protocol calls ``symbol``'s market."""
        return symbol

    # -- lifecycle -------------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_routes([
            *self.routes(),
            web.get("/_sim/stats", self._http_stats), web.post("/_sim/faults", self._http_faults),
            web.post("/_sim/step", self._http_step),
        ])
        return app

    def background(self) -> Background:
        tasks = [(name, self._every(interval_s, work)) for name, interval_s, work in self.timers()]
        if self._owns_world and self.config.speed > 0:
            tasks.append((f"{self.tag}-world", self._drive()))
        return tasks

    async def close_connections(self) -> None:
        for conn in list(self.conns):
            with contextlib.suppress(Exception):
                await conn.ws.close()

    async def _every(self, interval_s: float, work: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                work()
            except Exception:
                logging.getLogger(type(self).__module__).exception(
                    "%s: %s failed", self.label, getattr(work, "__name__", work))

    async def _drive(self) -> None:
        async for step in self.world.stream():
            self.on_step(step)

    # -- the market ------------------------------------------------------------------------------------
    def on_step(self, step: list[tuple[str, list[BookUpdate]]]) -> None:
        """Note the books a world step changed (call it when the world is stepped elsewhere)."""
        for venue, batch in step:
            if venue == self.config.venue:
                self._dirty.update(self.market_key(u.symbol) for u in batch)

    def advance(self, steps: int = 1) -> None:
        """Step the world ``steps`` times and publish (a frozen market's clock, for tests)."""
        for _ in range(steps):
            self.on_step(self.world.step())
        self.publish()

    # -- faults ----------------------------------------------------------------------------------------
    def drop_connections(self) -> int:
        """Abort every websocket, as a network failure would; returns how many."""
        dropped = 0
        for conn in list(self.conns):
            transport = conn.ws._req.transport if conn.ws._req is not None else None
            if transport is not None:
                transport.abort()
                dropped += 1
        self.stats["dropped"] += dropped
        return dropped

    # -- admin -----------------------------------------------------------------------------------------
    async def _http_stats(self, request: web.Request) -> web.Response:
        return web.json_response({**self.stats, "live_connections": len(self.conns), "steps": self.world.steps})

    async def _http_faults(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read() or b"{}")
        out: dict[str, object] = {}
        if body.get("drop_connections"):
            out["dropped"] = self.drop_connections()
        try:
            out.update(self.apply_faults(body))
        except KeyError as exc:
            return web.json_response({"error": f"unknown {self.item} {exc.args[0]}"}, status=400)
        return web.json_response(out)

    async def _http_step(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read() or b"{}")
        self.advance(int(body.get("steps", 1)))
        return web.json_response({"steps": self.world.steps, "time": self.world.time})
