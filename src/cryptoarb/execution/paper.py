"""Paper execution: fills simulated honestly on the books as they stand when the orders would land.

Each leg is a limit IOC order at the plan's price. The engine calls :meth:`PaperExecutor.execute` at
``detected_at + latency`` (internal plus venue latency), so the books may have moved: legs fill
partly or not at all, exactly as live. Legs run sequentially: each leg spends what the previous leg
actually delivered. Venue rules (minimum size and funds, lot) are enforced as the venue would.
Fees are charged in the currency the market charges them in.

When a leg fails or fills partly, the asset it leaves stranded is handled by the failed-leg policy:
``unwind`` sells it back along the cycle's own markets, in reverse, with limit IOC orders no worse than
``unwind_slippage_bps`` from the best price; ``hold`` keeps it. Unwind orders are booked against the
opportunity (client order ids ``<opportunity>-U<n>``). Dust below a market's minimums is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal

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
UNLIMITED = Decimal("Infinity")
UNWIND_LEG_BASE = 100


def client_oid(opportunity_id: str, leg_index: int) -> str:
    """Deterministic per opportunity and leg, so a retried request can never double an order."""
    return f"{opportunity_id}-L{leg_index}"


def _floor(value: Decimal, increment: Decimal) -> Decimal:
    return (value / increment).to_integral_value(rounding=ROUND_DOWN) * increment


class PaperExecutor:
    def __init__(self, books: BookStore, markets: Mapping[MarketKey, Market], venues: Mapping[str, Venue],
                 *, failed_leg_policy: str = "unwind", unwind_slippage_bps: float = 50.0) -> None:
        self._books = books
        self._markets = markets
        self._venues = venues
        self._policy = failed_leg_policy
        self._unwind_slippage = Decimal(repr(unwind_slippage_bps)) / 10_000

    def execute(self, opportunity: Opportunity, now: float) -> tuple[OrderResult, ...]:
        results: list[OrderResult] = []
        stranded: list[tuple[int, Decimal]] = []  # (index of the leg whose output is stuck, amount)
        available = opportunity.input
        for index, leg in enumerate(opportunity.legs):
            result = self._fill_leg(opportunity.id, client_oid(opportunity.id, index), index, leg, available, now)
            results.append(result)
            leftover = available - self._spent(leg, result)
            if index > 0 and leftover > 0:
                stranded.append((index - 1, leftover))
            if not result.fills:
                break
            available = self._delivered(leg, result)
        if self._policy == "unwind":
            for leg_index, amount in stranded:
                results.extend(self._unwind(opportunity, leg_index, amount, now, len(results)))
        return tuple(results)

    def _unwind(self, opportunity: Opportunity, leg_index: int, amount: Decimal, now: float,
                counter: int) -> list[OrderResult]:
        """Sell ``amount`` of leg ``leg_index``'s output back to the start asset, leg by leg in reverse."""
        results: list[OrderResult] = []
        for leg in reversed(opportunity.legs[: leg_index + 1]):
            market = self._markets[(leg.venue, leg.symbol)]
            book = self._books.get(market.key)
            side = Side.SELL if leg.side is Side.BUY else Side.BUY
            if book is None or not (book.bids if side is Side.SELL else book.asks):
                break
            limit = self._unwind_limit(market, side, book.best_bid if side is Side.SELL else book.best_ask)
            back = PlannedLeg(leg.venue, leg.symbol, side, limit, UNLIMITED, amount, ZERO, ZERO, "",
                              leg.asset_out, leg.asset_in, 0.0)
            n = counter + len(results)
            result = self._fill_leg(opportunity.id, f"{opportunity.id}-U{n}", UNWIND_LEG_BASE + n, back, amount,
                                    now)
            if result.status is OrderStatus.REJECTED:
                break  # dust under the venue's minimums: kept
            results.append(result)
            if not result.fills:
                break
            amount = self._delivered(back, result)
        return results

    def _unwind_limit(self, market: Market, side: Side, best: float) -> Decimal:
        best_d = Decimal(repr(best))
        if side is Side.SELL:  # rounding the limit towards the best price keeps it inside the cap
            raw, rounding = best_d * (1 - self._unwind_slippage), ROUND_CEILING
        else:
            raw, rounding = best_d * (1 + self._unwind_slippage), ROUND_FLOOR
        return (raw / market.price_tick).to_integral_value(rounding=rounding) * market.price_tick

    def _spent(self, leg: PlannedLeg, result: OrderResult) -> Decimal:
        if leg.side is Side.SELL:
            return result.filled_size
        return sum((f.price * f.size + (f.fee if f.fee_asset == leg.asset_in else ZERO) for f in result.fills),
                   ZERO)

    def _delivered(self, leg: PlannedLeg, result: OrderResult) -> Decimal:
        got = ZERO
        for fill in result.fills:
            got += fill.size if leg.side is Side.BUY else fill.price * fill.size
            if fill.fee_asset == leg.asset_out:
                got -= fill.fee
        return got

    def _fill_leg(self, opportunity_id: str, oid: str, index: int, leg: PlannedLeg, available: Decimal,
                  now: float) -> OrderResult:
        market = self._markets[(leg.venue, leg.symbol)]
        fee_rate = market.taker_fee
        if leg.side is Side.SELL:
            size = min(leg.size, _floor(available, market.size_increment))
        else:
            budget = available / (1 + fee_rate) if market.fee_currency == "quote" else available
            size = min(leg.size, _floor(budget / leg.limit_price, market.size_increment))
        order = Order(oid, opportunity_id, index, leg.venue, leg.symbol,
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
