"""The failed-leg policy: what to do with the asset a failed or partly filled leg leaves stranded.

- ``unwind``: convert it back to the start asset within a slippage cap. Sequential mode sells the
  stranded amount back along the cycle's own markets, in reverse, each order spending what the previous
  one delivered. Inventory mode trims the cycle to its weakest leg: every leg that filled more than the
  least-filled one (as a share of its plan) is reversed by the excess, on its own market, so each
  venue's inventory moves as a smaller complete cycle would have moved it.
- ``hedge``: complete the failed leg with a limit IOC no worse than the cap from the plan's limit price
  (not sent when the market is already beyond it), then carry on (sequential: the next leg spends what
  the leg and its hedge delivered); whatever is still stranded after the hedge is unwound.
- ``hold``: keep it, and alert.

Recovery orders are limit IOC, never unbounded market orders: unwinds no worse than ``cap`` from the best
price at the time, hedges no worse than ``cap`` from the plan's price. They are booked against their
opportunity: client order ids ``<opportunity>-U<n>`` (unwind, ``leg_index`` 100 + n) and
``<opportunity>-H<n>`` (hedge, 200 + n), n being the number of orders the opportunity had sent before.
Amounts under a market's minimums (dust) are kept without an alert.
"""

from __future__ import annotations

from collections.abc import Generator
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from cryptoarb.core.rules import rule_violation
from cryptoarb.execution.executor import (
    HEDGE_LEG_BASE,
    UNLIMITED,
    UNWIND_LEG_BASE,
    ZERO,
    CycleContext,
    delivered,
    floor_to,
    hedge_oid,
    order_size,
    unwind_oid,
)
from cryptoarb.model import Market, Opportunity, Order, OrderResult, PlannedLeg, Side


def capped_limit(market: Market, side: Side, best: float, cap: Decimal) -> Decimal:
    """The worst price within ``cap`` of ``best``, on the tick grid, rounded towards ``best`` so the
    order never accepts more than the cap."""
    best_d = Decimal(repr(best))
    if side is Side.SELL:
        raw, rounding = best_d * (1 - cap), ROUND_CEILING
    else:
        raw, rounding = best_d * (1 + cap), ROUND_FLOOR
    return (raw / market.price_tick).to_integral_value(rounding=rounding) * market.price_tick


def _recovery_leg(leg: PlannedLeg, side: Side, limit: Decimal, amount_in: Decimal) -> PlannedLeg:
    if side is leg.side:
        asset_in, asset_out = leg.asset_in, leg.asset_out
    else:
        asset_in, asset_out = leg.asset_out, leg.asset_in
    return PlannedLeg(leg.venue, leg.symbol, side, limit, UNLIMITED, amount_in, ZERO, ZERO, "", asset_in,
                      asset_out, 0.0)


def amount_text(x: Decimal) -> str:
    """``2.00`` -> ``2``, ``1E+1`` -> ``10``: amounts in alerts as people write them."""
    return f"{x.normalize():f}" if x else "0"


def stranded_alert(opportunity: Opportunity, leg_index: int, amount: Decimal, what: str) -> str:
    leg = opportunity.legs[leg_index]
    return (f"{opportunity.id}: {amount_text(amount)} {leg.asset_out} on {leg.venue} stranded after leg "
            f"{leg_index + 1} ({' > '.join(opportunity.path)}); {what}")


def hedge_limit(market: Market, leg: PlannedLeg, ctx: CycleContext) -> Decimal | None:
    """A hedge's limit: the plan's limit price moved by the cap against us; None when the best price is
    already beyond it (the hedge could not fill: unwinding is the way out)."""
    limit = capped_limit(market, leg.side, float(leg.limit_price), ctx.cap)
    best = ctx.best(market.key, leg.side)
    if best is None:
        return None
    best_d = Decimal(repr(best))
    return None if (best_d > limit if leg.side is Side.BUY else best_d < limit) else limit


def hedge_order(opportunity: Opportunity, index: int, leg: PlannedLeg, market: Market, amount: Decimal, n: int,
                ctx: CycleContext) -> Order | None:
    """Leg ``index`` again for the ``amount`` of input it left unspent, no worse than the cap from the
    plan's limit price; None when the market is already beyond that, or the amount is dust."""
    limit = hedge_limit(market, leg, ctx)
    if limit is None:
        return None
    back = _recovery_leg(leg, leg.side, limit, amount)
    order = Order(hedge_oid(opportunity.id, n), opportunity.id, HEDGE_LEG_BASE + n, leg.venue, leg.symbol, leg.side,
                  limit, order_size(back, market, amount), created_at=ctx.clock())
    return None if rule_violation(order, market) else order


def unwind_chain(opportunity: Opportunity, leg_index: int, amount: Decimal, ctx: CycleContext,
                 results: list[OrderResult]) -> Generator[list[Order], list[OrderResult], str | None]:
    """Sell ``amount`` of leg ``leg_index``'s output back to the start asset, leg by leg in reverse.

    Appends every answered order to ``results``; returns an alert when something other than dust is
    left stranded (an order that filled partly or not at all, a missing book)."""
    alert = None
    for leg in reversed(opportunity.legs[: leg_index + 1]):
        market = ctx.markets[(leg.venue, leg.symbol)]
        side = Side.SELL if leg.side is Side.BUY else Side.BUY
        best = ctx.best(market.key, side)
        if best is None:
            return _join(alert, stranded_alert(opportunity, leg_index, amount,
                                               f"no {market.symbol} book to unwind on; held"))
        limit = capped_limit(market, side, best, ctx.cap)
        back = _recovery_leg(leg, side, limit, amount)
        n = len(results)
        order = Order(unwind_oid(opportunity.id, n), opportunity.id, UNWIND_LEG_BASE + n, leg.venue, leg.symbol,
                      side, limit, order_size(back, market, amount), created_at=ctx.clock())
        if rule_violation(order, market):
            return alert  # dust under the venue's minimums: kept
        (result,) = yield [order]
        results.append(result)
        if not result.fills:
            return _join(alert, stranded_alert(
                opportunity, leg_index, amount, f"unwind {side.value} {market.symbol} got no fill "
                f"({result.status.value}{': ' + result.reason if result.reason else ''}); held"))
        if not is_dust(order.size - result.filled_size, order.price, market):
            alert = _join(alert, f"{opportunity.id}: unwind {side.value} {market.symbol}@{leg.venue} filled "
                                 f"{amount_text(result.filled_size)} of {amount_text(order.size)}; the rest of its "
                                 f"{back.asset_in} held")
        amount = delivered(back, result)
    return alert


def is_dust(size: Decimal, price: Decimal, market: Market) -> bool:
    """Whether ``size`` at ``price`` is too small to trade on ``market`` (kept without an alert)."""
    return size < market.min_size or size * price < market.min_funds


def _join(first: str | None, second: str) -> str:
    return second if first is None else f"{first}; {second}"


def inventory_hedges(opportunity: Opportunity, filled: list[Decimal], ctx: CycleContext,
                     n0: int) -> list[tuple[int, Order]]:
    """Inventory mode: each short leg's remainder again, at the capped price."""
    out = []
    for i, leg in enumerate(opportunity.legs):
        market = ctx.markets[(leg.venue, leg.symbol)]
        remainder = floor_to(leg.size - filled[i], market.size_increment)
        if remainder <= 0:
            continue
        limit = hedge_limit(market, leg, ctx)
        if limit is None:
            continue
        n = n0 + len(out)
        order = Order(hedge_oid(opportunity.id, n), opportunity.id, HEDGE_LEG_BASE + n, leg.venue, leg.symbol,
                      leg.side, limit, remainder, created_at=ctx.clock())
        if not rule_violation(order, market):
            out.append((i, order))
    return out


def trim_orders(opportunity: Opportunity, filled: list[Decimal], ctx: CycleContext, n0: int) -> list[Order]:
    """Inventory mode: reverse what each leg filled beyond the least-filled leg's share of its plan."""
    legs = opportunity.legs
    share = min((filled[i] / leg.size if leg.size > 0 else Decimal(1)) for i, leg in enumerate(legs))
    share = max(min(share, Decimal(1)), ZERO)
    out = []
    for i, leg in enumerate(legs):
        market = ctx.markets[(leg.venue, leg.symbol)]
        excess = floor_to(filled[i] - leg.size * share, market.size_increment)
        if excess <= 0:
            continue
        side = Side.SELL if leg.side is Side.BUY else Side.BUY
        best = ctx.best(market.key, side)
        if best is None:
            continue
        n = n0 + len(out)
        order = Order(unwind_oid(opportunity.id, n), opportunity.id, UNWIND_LEG_BASE + n, leg.venue, leg.symbol,
                      side, capped_limit(market, side, best, ctx.cap), excess, created_at=ctx.clock())
        if not rule_violation(order, market):
            out.append(order)
    return out
