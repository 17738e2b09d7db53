"""Paper execution: fills simulated honestly on the books as they stand when the orders would land.

Each leg is a limit IOC order at the plan's price. The engine calls :meth:`PaperExecutor.execute` at
``detected_at + latency`` (internal plus venue latency), so the books may have moved: legs fill
partly or not at all, exactly as live. Legs run sequentially: each leg spends what the previous leg
actually delivered. Venue rules (minimum size and funds, lot) are enforced as the venue would.
Fees are charged in the currency the market charges them in.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_DOWN, Decimal

from cryptoarb.core.books import BookStore
from cryptoarb.model import (
    Fill,
    Market,
    MarketKey,
    Opportunity,
    Order,
    OrderResult,
    OrderStatus,
    PlannedLeg,
    Side,
)
from cryptoarb.venues.base import LiquidityConsumer, Venue

ZERO = Decimal(0)


def client_oid(opportunity_id: str, leg_index: int) -> str:
    """Deterministic per opportunity and leg, so a retried request can never double an order."""
    return f"{opportunity_id}-L{leg_index}"


def _floor(value: Decimal, increment: Decimal) -> Decimal:
    return (value / increment).to_integral_value(rounding=ROUND_DOWN) * increment


class PaperExecutor:
    def __init__(self, books: BookStore, markets: Mapping[MarketKey, Market],
                 venues: Mapping[str, Venue]) -> None:
        self._books = books
        self._markets = markets
        self._venues = venues

    def execute(self, opportunity: Opportunity, now: float) -> tuple[OrderResult, ...]:
        results: list[OrderResult] = []
        available = opportunity.input
        for index, leg in enumerate(opportunity.legs):
            result = self._fill_leg(opportunity.id, index, leg, available, now)
            results.append(result)
            if not result.fills:
                break  # stranded: later legs have nothing to spend
            available = self._delivered(leg, result)
        return tuple(results)

    def _delivered(self, leg: PlannedLeg, result: OrderResult) -> Decimal:
        got = ZERO
        for fill in result.fills:
            got += fill.size if leg.side is Side.BUY else fill.price * fill.size
            if fill.fee_asset == leg.asset_out:
                got -= fill.fee
        return got

    def _fill_leg(self, opportunity_id: str, index: int, leg: PlannedLeg, available: Decimal,
                  now: float) -> OrderResult:
        market = self._markets[(leg.venue, leg.symbol)]
        fee_rate = market.taker_fee
        if leg.side is Side.SELL:
            size = min(leg.size, _floor(available, market.size_increment))
        else:
            budget = available / (1 + fee_rate) if market.fee_currency == "quote" else available
            size = min(leg.size, _floor(budget / leg.limit_price, market.size_increment))
        order = Order(client_oid(opportunity_id, index), opportunity_id, index, leg.venue, leg.symbol,
                      leg.side, leg.limit_price, size, created_at=now)
        if not market.enabled:
            return OrderResult(order, OrderStatus.REJECTED, reason="market disabled")
        if size < market.min_size or size <= 0:
            return OrderResult(order, OrderStatus.REJECTED, reason=f"size {size} below minimum {market.min_size}")
        if size * leg.limit_price < market.min_funds:
            return OrderResult(order, OrderStatus.REJECTED,
                               reason=f"funds {size * leg.limit_price} below minimum {market.min_funds}")
        book = self._books.get((leg.venue, leg.symbol))
        if book is None:
            return OrderResult(order, OrderStatus.CANCELED, reason="no book")
        buy = leg.side is Side.BUY
        taken = book.take(buy, float(leg.limit_price), float(size))
        fills: list[Fill] = []
        filled = ZERO
        for price, qty in taken:
            qty_d = min(_floor(Decimal(repr(qty)), market.size_increment), size - filled)
            if qty_d <= 0:
                continue
            price_d = Decimal(repr(price))
            notional = price_d * qty_d
            if buy and market.fee_currency == "received":
                fee, fee_asset = qty_d * fee_rate, market.base
            else:
                fee, fee_asset = notional * fee_rate, market.quote
            fills.append(Fill(order.client_oid, opportunity_id, index, leg.venue, leg.symbol, leg.side,
                              price_d, qty_d, fee, fee_asset, now))
            filled += qty_d
        venue = self._venues.get(leg.venue)
        if fills and isinstance(venue, LiquidityConsumer):
            venue.consume(leg.symbol, leg.side, leg.limit_price, filled)
        if filled == 0:
            return OrderResult(order, OrderStatus.CANCELED, reason="no liquidity at the limit price")
        status = OrderStatus.FILLED if filled >= size else OrderStatus.PARTIAL
        return OrderResult(order, status, tuple(fills))
