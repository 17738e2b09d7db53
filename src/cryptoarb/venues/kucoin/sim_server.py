"""``cryptoarb sim-server``: a loopback server speaking KuCoin's spot REST and websocket protocols.

Backed by ``SimMarket`` (advanced one step every ``step_ms / speed`` of wall time) and its matching
engine, so real clients (ccxt, ccxt.pro, our own adapters) run against it unmodified with only their
URLs changed (reference §B.2). Besides KuCoin's API it serves a small admin API, unauthenticated:

- ``GET/POST /_sim/faults`` read or change the fault switches (``sim_faults.Faults``);
- ``GET /_sim/stats`` counters (connections, frames and bytes pushed, errors, orders, steps);
- ``POST /_sim/balances`` ``{"USDT": "1000", ...}`` sets available balances;
- ``GET /_sim/orders`` every order the server holds, in the classic view.

Usage::

    server = KucoinSimServer(SimServerConfig(port=0))
    url = await server.start()     # "http://127.0.0.1:PORT"
    ...
    await server.stop()
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from aiohttp import web

from cryptoarb.venues.kucoin.sim_accounts import hex_id
from cryptoarb.venues.kucoin.sim_auth import Pools, gatekeeper, kucoin_json
from cryptoarb.venues.kucoin.sim_config import SimServerConfig
from cryptoarb.venues.kucoin.sim_exchange import SimExchange
from cryptoarb.venues.kucoin.sim_faults import Faults
from cryptoarb.venues.kucoin.sim_orders import classic_view
from cryptoarb.venues.kucoin.sim_rest import RestApi
from cryptoarb.venues.kucoin.sim_ws import Hub, Tokens
from cryptoarb.venues.sim.loopback import Background, LoopbackServer, run_until_cancelled

log = logging.getLogger(__name__)

HOUSEKEEPING_S = 0.1


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class KucoinSimServer(LoopbackServer):
    """``await start()`` listens and starts the market; it returns the REST base URL (the websocket endpoint
    comes from the bullet)."""

    scheme = "http"
    config: SimServerConfig

    def __init__(self, config: SimServerConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or SimServerConfig()
        self.faults: Faults = dataclasses.replace(config.faults)
        self.exchange = SimExchange(config.sim, balances=config.balances, hf=config.hf,
                                    user_id=hex_id("user", config.credentials.key), clock_ms=wall_ms,
                                    fee_discount=config.fee_discount)
        self.tokens = Tokens(config.ws.token_ttl_s, time.monotonic)
        self.hub = Hub(self.exchange, config.ws, self.faults, self.tokens, ticker_always=config.ticker_always,
                       level2_prime=config.level2_prime)
        self.rest = RestApi(self.exchange, self.tokens, config, wall_ms)
        self.pools = Pools(config.quotas)
        self._fault_clock: dict[str, float] = {}
        self._apply_faults()

    def app(self) -> web.Application:
        gate = gatekeeper(self.config.credentials, self.pools, self.faults, wall_ms)
        app = web.Application(middlewares=[gate], client_max_size=1 << 20)
        app.router.add_routes(self.rest.routes())
        app.router.add_routes([
            web.get("/", self.hub.handle),
            web.get("/_sim/faults", self._get_faults), web.post("/_sim/faults", self._post_faults),
            web.get("/_sim/stats", self._stats), web.post("/_sim/balances", self._balances),
            web.get("/_sim/orders", self._orders),
        ])
        return app

    def background(self) -> Background:
        cfg = self.config
        tasks = [("sim-tickers", self._every(1 / cfg.ticker_hz, self.hub.push_tickers)),
                 ("sim-depth", self._every(1 / cfg.depth_hz, self._push_books)),
                 ("sim-housekeeping", self._every(HOUSEKEEPING_S, self._housekeeping))]
        if cfg.speed > 0:  # speed 0 freezes the market: books change only when orders take liquidity
            tasks.append(("sim-step", self._every(cfg.sim.step_ms / 1000 / cfg.speed, self._step)))
        return tasks

    async def close_connections(self) -> None:
        await self.hub.close_all()

    # -- background work ------------------------------------------------------------------------------
    async def _every(self, interval_s: float, work: Callable[[], None]) -> None:
        """Run ``work`` on a fixed wall-clock grid; after a stall, skip the missed ticks."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due += interval_s
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -1.0:
                due = loop.time()
            try:
                work()
            except Exception:
                log.exception("sim-server: %s failed", getattr(work, "__name__", work))

    def _step(self) -> None:
        self.exchange.step()
        self.hub.push_level1()

    def _push_books(self) -> None:
        self.hub.push_depth()
        self.hub.push_level1()  # books also change between steps (orders), and never step when frozen

    def _housekeeping(self) -> None:
        now = asyncio.get_running_loop().time()
        f = self.faults
        for name, every, action in (("drop", f.drop_every_s, self.hub.drop_all),
                                    ("expire", f.expire_tokens_every_s, self.tokens.expire_all),
                                    ("malformed", f.malformed_every_s, self.hub.send_malformed)):
            last = self._fault_clock.setdefault(name, now)
            if every <= 0:
                self._fault_clock[name] = now
            elif now - last >= every:
                self._fault_clock[name] = now
                action()
        self.hub.housekeeping(now)

    def _apply_faults(self) -> None:
        self.exchange.level2_gap_every = self.faults.level2_gap_every
        self.exchange.reject_orders = self.faults.reject_orders

    # -- admin ----------------------------------------------------------------------------------------
    async def _get_faults(self, request: web.Request) -> web.Response:
        return kucoin_json(self.faults.as_dict())

    async def _post_faults(self, request: web.Request) -> web.Response:
        try:
            changes = orjson.loads(await request.read())
            if not isinstance(changes, dict):
                raise ValueError("send a JSON object of fault -> value")
            if changes.pop("expire_tokens_now", False):
                self.tokens.expire_all()
            self.faults.update(changes)
        except (orjson.JSONDecodeError, ValueError) as exc:
            return kucoin_json({"error": str(exc)}, 400)
        self._apply_faults()
        return kucoin_json(self.faults.as_dict())

    async def _stats(self, request: web.Request) -> web.Response:
        stats: dict[str, Any] = dict(self.hub.stats)
        stats.update(live_connections=len(self.hub.conns), orders=len(self.exchange.orders),
                     steps=self.exchange.market.steps, symbols=len(self.exchange.books))
        return kucoin_json(stats)

    async def _balances(self, request: web.Request) -> web.Response:
        try:
            wanted = {str(c): Decimal(str(v)) for c, v in orjson.loads(await request.read()).items()}
        except (orjson.JSONDecodeError, AttributeError, InvalidOperation) as exc:
            return kucoin_json({"error": f"send a JSON object of currency -> amount ({exc})"}, 400)
        for currency, amount in wanted.items():
            self.exchange.accounts.set(currency, amount)
        return kucoin_json(self.exchange.accounts.rows())

    async def _orders(self, request: web.Request) -> web.Response:
        return kucoin_json([classic_view(o) for o in self.exchange.orders.values()])


async def serve(config: SimServerConfig, on_listening: Callable[[str], None]) -> None:
    """Run until cancelled; ``on_listening(url)`` once the socket accepts connections."""
    await run_until_cancelled(KucoinSimServer(config), on_listening)
