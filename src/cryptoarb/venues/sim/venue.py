"""``SimVenue``: the simulated KuCoin-like exchange behind the ``Venue`` protocol.

The book stream is pull-based: the market advances one step only when the consumer asks for the next
batch, so what happens never depends on wall-clock timing. ``speed`` only paces that pull against the
wall clock (virtual seconds per wall second; <= 0 runs as fast as the consumer pulls).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection
from decimal import Decimal

import msgspec

from cryptoarb.config import SimSettings
from cryptoarb.core.rules import rule_violation
from cryptoarb.model import Balance, BookUpdate, Fill, Market, Order, OrderResult, OrderStatus, Side, Ticker
from cryptoarb.venues.base import VenueError
from cryptoarb.venues.sim.market import SimMarket
from cryptoarb.venues.sim.universe import Universe, build_universe


class SimVenue:
    def __init__(self, settings: SimSettings, *, name: str = "kucoin", speed: float = 1.0,
                 balances: dict[str, float] | None = None, market: SimMarket | None = None) -> None:
        """``market``: an existing market model to serve (its universe is used); otherwise one is built
        from ``settings``."""
        self.name = name
        self.speed = speed
        if market is None:
            self.universe: Universe = build_universe(settings, venue=name)
            self.market = SimMarket(self.universe, settings)
        else:
            self.universe = market.universe
            self.market = market
        # None: an account with no balance checks (the paper engine keeps its own ledger).
        self._balances = None if balances is None else {a: Decimal(str(v)) for a, v in balances.items()}
        self._orders: dict[str, OrderResult] = {}
        self._streaming = False
        self._closed = False

    def now(self) -> float:
        """Virtual time in seconds: the clock an engine should use with this venue."""
        return self.market.time

    async def load_markets(self) -> list[Market]:
        return self.universe.markets

    async def fetch_tickers(self) -> list[Ticker]:
        return self.market.tickers()

    async def fetch_book(self, symbol: str, depth: int = 20) -> BookUpdate:
        snap = self.market.book(self._checked(symbol))
        return msgspec.structs.replace(snap, bids=snap.bids[:depth], asks=snap.asks[:depth],
                                   received_at=self.now())

    async def stream_books(self, symbols: Collection[str] | None = None) -> AsyncIterator[list[BookUpdate]]:
        if self._streaming:
            raise VenueError("a SimVenue serves one book stream at a time")
        wanted = None if symbols is None else frozenset(self._checked(s) for s in symbols)
        self._streaming = True
        try:
            loop = asyncio.get_running_loop()
            wall0, virtual0 = loop.time(), self.market.time
            # A (re)subscription delivers every book now, however long ago it last changed.
            yield [msgspec.structs.replace(self.market.book(s), received_at=self.now())
                   for s in self.universe.symbols if wanted is None or s in wanted]
            dt = self.market.settings.step_ms / 1000
            while not self._closed:
                if self.speed > 0:
                    delay = wall0 + (self.market.time + dt - virtual0) / self.speed - loop.time()
                    await asyncio.sleep(max(0.0, delay))
                else:
                    await asyncio.sleep(0)
                if self._closed:
                    return
                batch = self.market.step()
                yield batch if wanted is None else [u for u in batch if u.symbol in wanted]
        finally:
            self._streaming = False

    async def fetch_balances(self) -> list[Balance]:
        return [Balance(venue=self.name, asset=a, free=v, total=v) for a, v in (self._balances or {}).items()]

    async def place_order(self, order: Order) -> OrderResult:
        """A limit IOC against the simulated book; a repeated ``client_oid`` returns the first result."""
        if (done := self._orders.get(order.client_oid)) is not None:
            return done
        if self._closed:
            raise VenueError("venue is closed")
        result = self._execute(order)
        self._orders[order.client_oid] = result
        return result

    async def cancel_order(self, symbol: str, client_oid: str) -> None:
        # IOC orders are final the moment they are answered, so a known order has nothing left to cancel.
        if client_oid not in self._orders:
            raise VenueError(f"order {client_oid} not found")

    async def fetch_order(self, symbol: str, client_oid: str) -> OrderResult:
        try:
            return self._orders[client_oid]
        except KeyError:
            raise VenueError(f"order {client_oid} not found") from None

    async def close(self) -> None:
        self._closed = True

    def consume(self, symbol: str, side: Side, limit_price: Decimal,
                size: Decimal) -> list[tuple[float, float]]:
        return self.market.consume(self._checked(symbol), side, limit_price, size)

    def _checked(self, symbol: str) -> str:
        if symbol not in self.universe.by_symbol:
            raise VenueError(f"unknown symbol {symbol!r}")
        return symbol

    def _execute(self, order: Order) -> OrderResult:
        pair = self.universe.by_symbol.get(order.symbol)
        if pair is None:
            return _rejected(order, f"unknown_symbol: {order.symbol}")
        m = pair.market
        if problem := _rule_violation(order, m):
            return _rejected(order, problem)
        if problem := self._balance_problem(order, m):
            return _rejected(order, problem)
        now = self.now()
        taken = self.market.consume(order.symbol, order.side, order.price, order.size)
        fills = tuple(
            Fill(client_oid=order.client_oid, opportunity_id=order.opportunity_id, leg_index=order.leg_index,
                 venue=self.name, symbol=order.symbol, side=order.side, price=price, size=size,
                 fee=price * size * m.taker_fee, fee_asset=m.quote, at=now)
            for price, size in ((Decimal(repr(p)), Decimal(repr(s))) for p, s in taken))
        self._settle(m, order.side, fills)
        filled = sum((f.size for f in fills), Decimal(0))
        status = (OrderStatus.FILLED if filled == order.size
                  else OrderStatus.PARTIAL if filled > 0 else OrderStatus.CANCELED)
        return OrderResult(order=order, status=status, fills=fills)

    def _balance_problem(self, order: Order, m: Market) -> str:
        if self._balances is None:
            return ""
        if order.side is Side.BUY:
            need, asset = order.price * order.size * (1 + m.taker_fee), m.quote
        else:
            need, asset = order.size, m.base
        have = self._balances.get(asset, Decimal(0))
        return f"no_balance: need {need} {asset}, have {have}" if need > have else ""

    def _settle(self, m: Market, side: Side, fills: tuple[Fill, ...]) -> None:
        if self._balances is None:
            return
        b = self._balances
        for f in fills:
            cost = f.price * f.size
            if side is Side.BUY:
                b[m.quote] = b.get(m.quote, Decimal(0)) - cost - f.fee
                b[m.base] = b.get(m.base, Decimal(0)) + f.size
            else:
                b[m.base] = b.get(m.base, Decimal(0)) - f.size
                b[m.quote] = b.get(m.quote, Decimal(0)) + cost - f.fee


def _rule_violation(order: Order, m: Market) -> str:
    """The first rule ``order`` breaks on this venue, which takes limit IOC orders only; empty if none."""
    if order.type != "limit" or order.time_in_force != "IOC":
        return f"unsupported_order: only limit IOC orders, got {order.type} {order.time_in_force}"
    return rule_violation(order, m)


def _rejected(order: Order, reason: str) -> OrderResult:
    return OrderResult(order=order, status=OrderStatus.REJECTED, reason=reason)
