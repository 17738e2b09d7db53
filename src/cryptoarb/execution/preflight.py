"""Checks made on every leg before an opportunity's first order is sent (live execution). Pure.

A plan is refused as a whole, before anything reaches a venue, when any leg's market is unknown or
disabled, its book is not tradeable (stale, crossed, gapped), its price is off the tick grid or its size
off the lot grid, it is under the market's minimum size or minimum funds, or the balance that funds it
is not there. Which legs need a balance depends on the mode: in inventory mode every leg spends
inventory held on its venue; in sequential mode the first leg does, and so does any leg on another venue
than the leg before it (the inventory edge between venues).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from cryptoarb.core.books import BookStore, Freshness, tradeable
from cryptoarb.model import Market, MarketKey, Opportunity, PlannedLeg, RejectReason, Side

ZERO = Decimal(0)
PRICE_OFF_TICK = "price_off_tick"
SIZE_OFF_INCREMENT = "size_off_increment"


@dataclass(frozen=True, slots=True)
class PreflightFailure:
    leg_index: int
    reason: RejectReason | str
    """A RejectReason, or ``price_off_tick`` / ``size_off_increment`` (which the model has no member for)."""
    detail: str


def leg_input(leg: PlannedLeg, market: Market) -> Decimal:
    """The most of its input asset ``leg`` can spend: a SELL its size, a BUY its size at the limit price
    (plus the fee when the market charges it in quote)."""
    if leg.side is Side.SELL:
        return leg.size
    cost = leg.size * leg.limit_price
    return cost * (1 + market.taker_fee) if market.fee_currency == "quote" else cost


def funded_legs(opportunity: Opportunity, mode: str) -> list[int]:
    """Indexes of the legs whose input must already be held."""
    if mode == "inventory":
        return list(range(len(opportunity.legs)))
    legs = opportunity.legs
    return [i for i, leg in enumerate(legs) if i == 0 or leg.venue != legs[i - 1].venue]


def needs(opportunity: Opportunity, markets: Mapping[MarketKey, Market], mode: str) -> dict[tuple[str, str], Decimal]:
    """Per (venue, asset), the balance the plan draws on before any of its own fills arrive."""
    out: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for i in funded_legs(opportunity, mode):
        leg = opportunity.legs[i]
        market = markets.get((leg.venue, leg.symbol))
        if market is not None:
            out[(leg.venue, leg.asset_in)] += leg_input(leg, market)
    return dict(out)


def _failure(i: int, leg: PlannedLeg, reason: RejectReason | str, detail: str) -> PreflightFailure:
    # the leg's name is formatted only for a refusal: preflight runs on the order path, before the first order
    return PreflightFailure(i, reason, f"leg {i} {leg.side.value} {leg.symbol}@{leg.venue}: {detail}")


def preflight(opportunity: Opportunity, markets: Mapping[MarketKey, Market], books: BookStore, now: float,
              freshness: Freshness, available: Callable[[str, str], Decimal], mode: str = "sequential",
              ) -> PreflightFailure | None:
    """The first problem that rules the plan out, or None when every leg may be sent."""
    for i, leg in enumerate(opportunity.legs):
        market = markets.get((leg.venue, leg.symbol))
        if market is None:
            return _failure(i, leg, RejectReason.MARKET_DISABLED, "unknown market")
        if not market.enabled:
            return _failure(i, leg, RejectReason.MARKET_DISABLED, "market disabled")
        why = tradeable(books.get(market.key), now, freshness)
        if why is not None:
            return _failure(i, leg, RejectReason(why), why.replace("_", " "))
        if leg.limit_price <= 0 or leg.limit_price % market.price_tick != 0:
            return _failure(i, leg, PRICE_OFF_TICK, f"price {leg.limit_price} is not a multiple of {market.price_tick}")
        if leg.size <= 0 or leg.size % market.size_increment != 0:
            return _failure(i, leg, SIZE_OFF_INCREMENT,
                            f"size {leg.size} is not a multiple of {market.size_increment}")
        if leg.size < market.min_size:
            return _failure(i, leg, RejectReason.BELOW_MIN_SIZE, f"size {leg.size} < min size {market.min_size}")
        funds = leg.size * leg.limit_price
        if funds < market.min_funds:
            return _failure(i, leg, RejectReason.BELOW_MIN_FUNDS,
                            f"funds {funds} < min funds {market.min_funds} {market.quote}")
    for (venue, asset), need in needs(opportunity, markets, mode).items():
        have = available(venue, asset)
        if have < need:
            leg_index = next(i for i in funded_legs(opportunity, mode)
                             if (opportunity.legs[i].venue, opportunity.legs[i].asset_in) == (venue, asset))
            return PreflightFailure(leg_index, RejectReason.NO_BALANCE,
                                    f"leg {leg_index}: needs {need} {asset} on {venue}, {have} available")
    return None
