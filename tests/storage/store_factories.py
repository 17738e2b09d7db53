"""Events for the store tests, with values that catch lossy storage: long decimals, partial fills."""

from __future__ import annotations

from decimal import Decimal

from cryptoarb.model import (
    Event,
    Execution,
    Fill,
    Opportunity,
    Order,
    OrderResult,
    OrderStatus,
    PlannedLeg,
    Rejection,
    RejectReason,
    Side,
)
from cryptoarb.storage import Batch
from cryptoarb.storage.writer import event_rows

LEGS = (("USDT", "BTC", "BTC-USDT", Side.BUY), ("BTC", "ETH", "ETH-BTC", Side.BUY),
        ("ETH", "USDT", "ETH-USDT", Side.SELL))


def make_opportunity(oid: str = "opp-1", at: float = 100.0,
                     input_: Decimal = Decimal("1000.00000000")) -> Opportunity:
    output = input_ + Decimal("0.123456789012345678901234567")
    legs = tuple(
        PlannedLeg(venue="kucoin", symbol=sym, side=side, limit_price=Decimal("0.0512300000001"),
                   size=Decimal("1.2340000"), amount_in=Decimal("63.2"), amount_out=Decimal("1.234"),
                   fee=Decimal("0.001234"), fee_asset=a_in, asset_in=a_in, asset_out=a_out, book_age_ms=12.5)
        for a_in, a_out, sym, side in LEGS)
    return Opportunity(id=oid, cycle_id=7, kind="triangular", path=("USDT", "BTC", "ETH", "USDT"),
                       legs=legs, input=input_, output=output, profit=output - input_, profit_usd=0.1234,
                       net_return_bps=1.23456789, detected_at=at)


def make_order(opp: Opportunity, i: int, at: float) -> Order:
    leg = opp.legs[i]
    return Order(client_oid=f"{opp.id}-L{i}", opportunity_id=opp.id, leg_index=i, venue=leg.venue,
                 symbol=leg.symbol, side=leg.side, price=leg.limit_price, size=leg.size, created_at=at)


def make_execution(opp: Opportunity, at: float = 101.0, profit_usd: float = 0.1) -> Execution:
    results = []
    for i, leg in enumerate(opp.legs):
        order = make_order(opp, i, at - 0.5)
        # Two partial fills on the first leg: fill ids must stay distinct.
        sizes = (Decimal("1.0000000"), Decimal("0.2340000")) if i == 0 else (leg.size,)
        fills = tuple(
            Fill(client_oid=order.client_oid, opportunity_id=opp.id, leg_index=i, venue=leg.venue,
                 symbol=leg.symbol, side=leg.side, price=Decimal("0.05123000000009"), size=size,
                 fee=Decimal("0.00000123456789"), fee_asset=leg.asset_out, at=at)
            for size in sizes)
        results.append(OrderResult(order=order, status=OrderStatus.FILLED, fills=fills))
    return Execution(opportunity=opp, results=tuple(results), realized_profit=Decimal("0.1200000001"),
                     realized_profit_usd=profit_usd, fees_usd=0.03, at=at)


def make_rejection(at: float = 99.0) -> Rejection:
    return Rejection(cycle_id=3, path=("USDT", "KCS", "BTC", "USDT"), reason=RejectReason.BELOW_MIN_PROFIT,
                     detail="0.2 bps < 5", net_return_bps=0.2, at=at)


def batch_of(*events: Event) -> Batch:
    batch = Batch()
    for event in events:
        for table, row in event_rows(event):
            batch.add(table, row)
    return batch
