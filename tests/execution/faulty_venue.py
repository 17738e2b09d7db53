"""A real venue behind a fault injector, and helpers to run the engine's live path on the simulator.

``FaultyVenue`` wraps a ``SimVenue`` (the real simulated exchange with IOC semantics, idempotent client
order ids and account balances) and, for the orders a rule matches, rejects them, fills them partly,
raises 429-style retryable errors before or after the venue processed them, hangs past the executor's
timeout, or answers "still open" and reports the final state later (pushed, or only over REST).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from cryptoarb.config import Settings, SimSettings
from cryptoarb.engine import Engine
from cryptoarb.execution.executor import floor_to
from cryptoarb.execution.live import LiveExecutor
from cryptoarb.model import Event, Execution, Order, OrderResult, OrderStatus
from cryptoarb.venues.base import OrderUpdate, RetryableVenueError, VenueError
from cryptoarb.venues.sim import SimVenue

SIM = SimSettings(pairs=300, assets=120, hot_pairs=20, mispricing_per_s=20.0, seed=3)
"""A small universe with frequent lagging quotes: a profitable cycle within a few simulated seconds."""


@dataclass
class Fault:
    kind: str
    """reject, partial, 429_before, 429_after, timeout_before, timeout_before_push, timeout_after, timeout_lost,
    open_push, open_rest, open_push_twice, error"""
    match: Callable[[Order], bool]
    times: int = 1
    fraction: Decimal = Decimal("0.5")
    hang_s: float = 5.0
    push_after_s: float = 0.01


@dataclass
class FaultyVenue:
    inner: SimVenue
    faults: list[Fault] = field(default_factory=list)
    placed: list[Order] = field(default_factory=list)
    """Every place_order call."""
    forwarded: list[str] = field(default_factory=list)
    """Client order ids of the orders that reached the real venue."""
    fetched: list[str] = field(default_factory=list)
    canceled: list[str] = field(default_factory=list)
    injected: list[tuple[str, str]] = field(default_factory=list)
    push: Callable[[OrderUpdate], None] | None = None
    _views: dict[str, OrderResult] = field(default_factory=dict)
    _on_the_wire: set[asyncio.Task[OrderResult]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.name = self.inner.name

    def inject(self, kind: str, *, leg_index: int | None = None, client_oid: str | None = None,
               **params: Any) -> Fault:
        def match(order: Order) -> bool:
            return (leg_index is None or order.leg_index == leg_index) and \
                (client_oid is None or order.client_oid == client_oid)

        fault = Fault(kind, match, **params)
        self.faults.append(fault)
        return fault

    def _take(self, order: Order) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and fault.match(order):
                fault.times -= 1
                self.injected.append((fault.kind, order.client_oid))
                return fault
        return None

    async def _land_late(self, order: Order, after_s: float, push: bool = False) -> OrderResult:
        await asyncio.sleep(after_s)
        result = await self._forward(order)
        if push and self.push is not None:
            self.push(OrderUpdate(self.name, order.symbol, order.client_oid, result.status, result.filled_size,
                                  result.fills, final=True, at=self.inner.now()))
        return result

    async def _forward(self, order: Order) -> OrderResult:
        self.forwarded.append(order.client_oid)
        return await self.inner.place_order(order)

    # -- the Venue protocol ------------------------------------------------------------------------------
    async def load_markets(self):
        return await self.inner.load_markets()

    async def fetch_tickers(self):
        return await self.inner.fetch_tickers()

    async def fetch_book(self, symbol: str, depth: int = 20):
        return await self.inner.fetch_book(symbol, depth)

    def stream_books(self, symbols=None):
        return self.inner.stream_books(symbols)

    async def fetch_balances(self):
        return await self.inner.fetch_balances()

    async def close(self) -> None:
        await self.inner.close()

    async def cancel_order(self, symbol: str, client_oid: str) -> None:
        self.canceled.append(client_oid)
        await self.inner.cancel_order(symbol, client_oid)

    async def fetch_order(self, symbol: str, client_oid: str) -> OrderResult:
        self.fetched.append(client_oid)
        if client_oid in self._views:
            return self._views[client_oid]
        return await self.inner.fetch_order(symbol, client_oid)

    async def place_order(self, order: Order) -> OrderResult:
        self.placed.append(order)
        fault = self._take(order)
        if fault is None:
            if order.client_oid in self._views:  # an order we answered for: the venue's idempotency
                return self._views[order.client_oid]
            return await self._forward(order)
        kind = fault.kind
        if kind == "reject":
            result = OrderResult(order, OrderStatus.REJECTED, reason="insufficient_funds: injected")
            self._views[order.client_oid] = result
            return result
        if kind == "error":
            raise VenueError("kucoin place_order: 400001 invalid signature (injected)")
        if kind == "429_before":
            raise RetryableVenueError("kucoin place_order: 429000 too many requests (injected)", retry_after_s=0.001,
                                      unprocessed=True)
        if kind == "429_after":
            await self._forward(order)
            raise RetryableVenueError("kucoin place_order: 429000 too many requests (injected)", retry_after_s=0.001)
        if kind in ("timeout_before", "timeout_before_push"):
            # the request is on the wire: it lands after hang_s, whatever the client does (and is pushed)
            landing = asyncio.ensure_future(self._land_late(order, fault.hang_s, push=kind == "timeout_before_push"))
            self._on_the_wire.add(landing)
            landing.add_done_callback(self._on_the_wire.discard)
            return await asyncio.shield(landing)
        if kind == "timeout_lost":  # the connection dropped the request: it never reaches the venue
            await asyncio.sleep(fault.hang_s)
            raise RetryableVenueError("kucoin place_order: connection reset (injected)")
        if kind == "timeout_after":
            result = await self._forward(order)
            await asyncio.sleep(fault.hang_s)
            return result
        if kind == "partial":
            market = self.inner.universe.by_symbol[order.symbol].market
            smaller = dataclasses.replace(order, size=floor_to(order.size * fault.fraction, market.size_increment))
            got = await self._forward(smaller)
            status = OrderStatus.PARTIAL if got.fills else OrderStatus.CANCELED
            result = OrderResult(order, status, got.fills, got.reason)
            self._views[order.client_oid] = result
            return result
        if kind in ("open_push", "open_rest", "open_push_twice"):
            final = await self._forward(order)
            if kind == "open_push" and self.push is not None:
                update = OrderUpdate(self.name, order.symbol, order.client_oid, final.status, final.filled_size,
                                     final.fills, final=True, at=self.inner.now())
                asyncio.get_running_loop().call_later(fault.push_after_s, self.push, update)
            if kind == "open_push_twice" and self.push is not None:  # the match message delivered twice
                match = OrderUpdate(self.name, order.symbol, order.client_oid, OrderStatus.PARTIAL,
                                    final.filled_size, final.fills, at=self.inner.now())
                done = OrderUpdate(self.name, order.symbol, order.client_oid, final.status, final.filled_size,
                                   final=True, at=self.inner.now())
                for update in (match, match, done):
                    asyncio.get_running_loop().call_later(fault.push_after_s, self.push, update)
            return OrderResult(order, OrderStatus.NEW)
        raise AssertionError(f"unknown fault {kind}")


def full_inventory(venue: SimVenue, usd_each: float = 20_000.0) -> dict[str, float]:
    """Some of every asset of the universe (for inventory mode), worth about ``usd_each``."""
    market = venue.market
    return {asset: round(usd_each / market.fair_usd(asset), 8) for asset in venue.universe.asset_index}


def make_live(settings: Settings, venue: FaultyVenue, events: list[Event], **executor_kw: Any) -> Engine:
    markets = venue.inner.universe.markets
    kw = {"order_timeout_s": 0.05, "retry_backoff_s": 0.001, "poll_interval_s": 0.01, "resolve_timeout_s": 0.5,
          **executor_kw}
    engine = Engine(settings, {venue.name: venue}, markets, events.append,
                    executor=lambda e: LiveExecutor.for_engine(e, clock=venue.inner.now, **kw))
    venue.push = engine.executor.on_order_update  # type: ignore[attr-defined]
    return engine


async def drive(engine: Engine, venue: FaultyVenue, until: Callable[[], bool], max_s: float = 60.0) -> None:
    """Stream the simulator into ``engine`` until ``until()`` holds with nothing in flight."""
    stream = venue.stream_books()
    try:
        async for batch in stream:
            now = venue.inner.now()
            engine.on_batch(batch, now, venue.name)
            engine.run_due(now)
            if engine.pending:
                await engine.executor.drain(5.0)  # type: ignore[attr-defined]
            if (until() and engine.pending == 0) or now > max_s:
                break
    finally:
        await stream.aclose()


def executions(events: list[Event]) -> list[Execution]:
    return [e for e in events if isinstance(e, Execution)]
