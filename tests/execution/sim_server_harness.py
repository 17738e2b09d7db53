"""The engine's live path against ``cryptoarb sim-server`` in its own process, over loopback.

:class:`LiveHarness` puts an :class:`~cryptoarb.engine.Engine` with a
:class:`~cryptoarb.execution.live.LiveExecutor` in front of :class:`~cryptoarb.venues.kucoin.rest.KucoinRest`
(the simulator's fake keys), writes order intents durably to SQLite through
:class:`~cryptoarb.storage.writer.StoreWriter` before every order, and records every ``place_order`` call.

Books reach the engine either as REST snapshots (:meth:`LiveHarness.prime`, for a frozen market where a
test hands over a plan it crafted with :func:`craft`) or from the native public websocket client
(:meth:`LiveHarness.stream`, for a running market where the engine detects, sizes and executes by itself).
Waiting is on events (:meth:`LiveHarness.until`), never on sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import sys
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp

from cryptoarb.config import Settings
from cryptoarb.engine import Engine
from cryptoarb.execution.live import LiveExecutor
from cryptoarb.model import (
    Cycle,
    Event,
    Execution,
    Market,
    Opportunity,
    Order,
    OrderResult,
    PlannedLeg,
    Rejection,
    RejectReason,
    Side,
)
from cryptoarb.storage.sqlite import SqliteStore
from cryptoarb.storage.writer import StoreWriter
from cryptoarb.venues.kucoin.rest import KucoinRest
from cryptoarb.venues.kucoin.ws import KucoinMarketData, WsOptions

VENUE = "kucoin"
ZERO = Decimal(0)


def _sim_process() -> ModuleType:
    """``tests/kucoin/kucoin_sim_process.py`` (starts and stops the server process), under its own name."""
    name = "kucoin_sim_process"
    module = sys.modules.get(name)
    if module is None:
        path = Path(__file__).resolve().parents[1] / "kucoin" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module


_proc = _sim_process()
SimProcess = _proc.SimProcess
start_sim = _proc.start_sim
CREDS = _proc.CREDS


def d(x: float | str | Decimal) -> Decimal:
    """A book float as the decimal it was printed as."""
    return x if isinstance(x, Decimal) else Decimal(repr(x)) if isinstance(x, float) else Decimal(x)


def floor_to(x: Decimal, inc: Decimal) -> Decimal:
    return (x / inc).to_integral_value(rounding=ROUND_DOWN) * inc


class RecordingVenue:
    """``KucoinRest`` as the executor sees it, with every ``place_order`` call and how it ended
    (the result's status, or the exception's class name)."""

    def __init__(self, rest: KucoinRest, trail: list[tuple[str, str]]) -> None:
        self.rest = rest
        self.name = rest.name
        self.calls: list[tuple[Order, str]] = []
        self.trail = trail

    def placed(self, client_oid: str | None = None) -> list[tuple[Order, str]]:
        return [c for c in self.calls if client_oid is None or c[0].client_oid == client_oid]

    async def place_order(self, order: Order) -> OrderResult:
        self.trail.append(("send", order.client_oid))
        try:
            result = await self.rest.place_order(order)
        except Exception as exc:
            self.calls.append((order, type(exc).__name__))
            raise
        self.calls.append((order, result.status.value))
        return result

    async def fetch_order(self, symbol: str, client_oid: str) -> OrderResult:
        return await self.rest.fetch_order(symbol, client_oid)

    async def cancel_order(self, symbol: str, client_oid: str) -> None:
        await self.rest.cancel_order(symbol, client_oid)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rest, name)


class LiveHarness:
    """One engine with a live executor against one sim-server. Build with :meth:`open`; ``await close()``."""

    def __init__(self, sim: Any, rest: KucoinRest, store: SqliteStore, writer: StoreWriter) -> None:
        self.sim = sim
        self.rest = rest
        self.trail: list[tuple[str, str]] = []
        """("intent", client_oid) once an order's row is durable, ("send", client_oid) as it is sent."""
        self.venue = RecordingVenue(rest, self.trail)
        self.store = store
        self.writer = writer
        self.events: list[Event] = []
        self.intents: list[Order] = []
        self.before_send: Callable[[tuple[Order, ...]], Awaitable[None]] | None = None
        """Awaited with every batch of orders right before their intents are written (fault switches)."""
        self.updates = 0
        self.engine: Engine
        self._changed = asyncio.Event()
        self._http: aiohttp.ClientSession | None = None
        self.market_data: KucoinMarketData | None = None
        self._md_task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, sim: Any, db: Path, *, mode: str = "sequential", policy: str = "unwind",
                   cap_bps: float = 50.0, risk: dict[str, Any] | None = None,
                   balances: dict[str, Decimal] | None = None, **executor_kw: Any) -> LiveHarness:
        rest = KucoinRest(api_key=CREDS.key, api_secret=CREDS.secret, api_passphrase=CREDS.passphrase,
                          base_url=sim.url, enable_rate_limit=False, timeout_s=10.0)
        store = SqliteStore(db)
        await store.open()
        await store.migrate()
        self = cls(sim, rest, store, StoreWriter(store))
        try:
            if balances is not None:
                await sim.admin("POST", "/_sim/balances", {k: str(v) for k, v in balances.items()})
            markets = await rest.load_markets()
            held = await rest.fetch_balances()
            settings = Settings(
                mode="live", balances={VENUE: {b.asset: float(b.free) for b in held if b.free > 0}},
                execution={"leg_mode": mode, "failed_leg_policy": policy, "unwind_slippage_bps": cap_bps},
                risk={"max_concurrent": 1, **(risk or {})})
            kw = {"order_timeout_s": 5.0, "retry_backoff_s": 0.01, "poll_interval_s": 0.05,
                  "resolve_timeout_s": 2.0, **executor_kw}
            self.engine = Engine(settings, {VENUE: self.venue}, markets, self.publish,  # type: ignore[dict-item]
                                 executor=lambda e: LiveExecutor.for_engine(e, clock=time.monotonic,
                                                                            write_intent=self.write_intent, **kw))
            self.engine.ledger.set_balances(held)  # exactly the account's amounts
        except BaseException:
            await self.close()
            raise
        return self

    # -- the engine's outputs --------------------------------------------------------------------------
    def publish(self, event: Event) -> None:
        self.events.append(event)
        self.writer.submit(event)
        self._changed.set()

    async def write_intent(self, *orders: Order) -> None:
        self.intents.extend(orders)
        if self.before_send is not None:
            await self.before_send(orders)
        await self.writer.write_intent(*orders)
        self.trail.extend(("intent", o.client_oid) for o in orders)

    @property
    def executor(self) -> LiveExecutor:
        return self.engine.executor  # type: ignore[return-value]

    def executions(self) -> list[Execution]:
        return [e for e in self.events if isinstance(e, Execution)]

    def rejections(self, reason: RejectReason | None = None) -> list[Rejection]:
        return [e for e in self.events if isinstance(e, Rejection) and (reason is None or e.reason is reason)]

    async def until(self, done: Callable[[], bool], timeout_s: float = 60.0) -> None:
        """Wait until ``done()`` holds after an event or a market update, then for every opportunity in
        flight to complete."""
        async with asyncio.timeout(timeout_s):
            while not done():
                self._changed.clear()
                await self._changed.wait()
            await self.executor.drain()

    # -- the server's view ----------------------------------------------------------------------------
    async def server_orders(self) -> list[dict[str, Any]]:
        return await self.sim.admin("GET", "/_sim/orders")

    async def server_balances(self) -> dict[str, Decimal]:
        return {b.asset: b.free for b in await self.rest.fetch_balances()}

    async def stored(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        await self.writer.flush()
        async with self.store.db.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    # -- books ----------------------------------------------------------------------------------------
    async def prime(self, symbols: Iterable[str], depth: int = 50) -> None:
        """Load REST snapshots of ``symbols`` into the engine's books (a frozen market stays as loaded)."""
        snaps = [await self.rest.fetch_book(s, depth) for s in symbols]
        now = time.monotonic()
        self.engine.on_batch(snaps, now, VENUE)

    async def stream(self, symbols: Collection[str], live_timeout_s: float = 30.0) -> None:
        """Feed the engine from the native public websocket client (``level2Depth50`` of ``symbols``)."""
        self._http = aiohttp.ClientSession()
        self.market_data = md = KucoinMarketData(
            self._http, on_updates=self._on_updates, rest_url=self.sim.url, clock=time.monotonic,
            options=WsOptions(depth_mode="level2Depth50"), venue=VENUE)
        md.set_depth_symbols(symbols)
        self._md_task = asyncio.create_task(md.run(), name="sim-market-data")
        await md.wait_live(live_timeout_s)

    async def stop_stream(self) -> None:
        """Stop the market data, then let every opportunity in flight complete."""
        if self.market_data is not None:
            await self.market_data.close()
        if self._md_task is not None:
            self._md_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._md_task
            self._md_task = None
        await self.executor.drain()

    def _on_updates(self, batch: list[Any]) -> None:
        now = time.monotonic()
        self.engine.on_batch(batch, now, VENUE)
        self.engine.run_due(now)
        self.updates += len(batch)
        self._changed.set()

    def cycle_symbols(self) -> set[str]:
        return {leg.market.symbol for cycle in self.engine.cycles for leg in cycle.legs}

    # -- handing a crafted plan to the engine -----------------------------------------------------------
    def hand_over(self, opportunity: Opportunity) -> None:
        """What the engine does with a plan it accepted: publish it, count it in flight, record it in the
        opportunity ledger and hand it to the executor."""
        engine = self.engine
        engine.publish(opportunity)
        engine.risk.started(opportunity.id)
        engine._dispatch(opportunity, time.monotonic(), time.perf_counter_ns())

    async def close(self) -> None:
        if self.market_data is not None:
            await self.market_data.close()
        if self._md_task is not None:
            self._md_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._md_task
            self._md_task = None
        if self._http is not None:
            await self._http.close()
        with contextlib.suppress(Exception):
            if hasattr(self, "engine"):
                await self.executor.drain(10.0)
        with contextlib.suppress(Exception):
            await self.writer.close()
        await self.store.close()
        await self.rest.close()


# -- plans crafted on the books -------------------------------------------------------------------------
def _levels(market: Market, side: Side, engine: Engine) -> list[tuple[Decimal, Decimal]]:
    book = engine.books.get(market.key)
    assert book is not None, f"no book for {market.symbol}"
    return [(d(p), d(s)) for p, s in (book.asks if side is Side.BUY else book.bids)]


def _walk(levels: list[tuple[Decimal, Decimal]], size: Decimal) -> tuple[Decimal, Decimal]:
    cost, worst, left = ZERO, ZERO, size
    for price, qty in levels:
        if left <= 0:
            break
        take = min(qty, left)
        cost += price * take
        worst = price
        left -= take
    assert left <= 0, f"size {size} is more than the book holds"
    return cost, worst


def _buy_size(levels: list[tuple[Decimal, Decimal]], amount: Decimal, factor: Decimal, inc: Decimal) -> Decimal:
    """The largest grid size whose hold (size at the worst level walked, times ``factor``) fits ``amount``."""
    best, depth = ZERO, ZERO
    for price, qty in levels:
        depth += qty
        size = min(floor_to(amount / (price * factor), inc), floor_to(depth, inc))
        if size > best and size * price * factor <= amount:
            best = size
    return best


def craft(engine: Engine, cycle: Cycle, first_size: Decimal, opportunity_id: str, *,
          top_only: Collection[int] = ()) -> Opportunity:
    """An exact plan of ``cycle`` on the engine's books, its first leg trading ``first_size``.

    Each leg walks its book from the best level (limit price: the worst level walked) with what the leg
    before delivers after fees, as sizing does, whether or not the cycle pays. A leg in ``top_only`` is
    planned at its best price as if that level held any size: sent as planned, it fills only that level.
    """
    legs: list[PlannedLeg] = []
    amount = ZERO
    for i, leg in enumerate(cycle.legs):
        m = leg.market
        levels = _levels(m, leg.side, engine)
        if i in top_only:
            levels = [(levels[0][0], Decimal("1e30"))]
        buy = leg.side is Side.BUY
        factor = 1 + m.taker_fee
        if i == 0:
            size = first_size
        elif buy:
            size = _buy_size(levels, amount, factor, m.size_increment)
        else:
            size = floor_to(amount, m.size_increment)
        notional, limit = _walk(levels, size)
        fee = notional * m.taker_fee
        if i == 0:
            amount = notional * factor if buy else size
        out = size if buy else notional - fee
        legs.append(PlannedLeg(m.venue, m.symbol, leg.side, limit, size, amount, out, fee, m.quote, leg.asset_in,
                               leg.asset_out, 0.0))
        amount = out
    first, last = legs[0].amount_in, legs[-1].amount_out
    profit = last - first
    return Opportunity(opportunity_id, cycle.id, cycle.kind, cycle.path, tuple(legs), first, last, profit,
                       float(profit), float(profit / first) * 10_000, time.monotonic())


def usd_prices(tickers: Iterable[Any], anchor: str = "USDT") -> dict[str, float]:
    """Every asset's mid price in ``anchor``, through the tickers' pairs."""
    pairs = [(t.symbol.split("-")[0], t.symbol.split("-")[1], (t.bid + t.ask) / 2) for t in tickers if t.bid and t.ask]
    price = {anchor: 1.0}
    grew = True
    while grew:
        grew = False
        for base, quote, mid in pairs:
            if quote in price and base not in price:
                price[base] = mid * price[quote]
                grew = True
            elif base in price and quote not in price:
                price[quote] = price[base] / mid
                grew = True
    return price
