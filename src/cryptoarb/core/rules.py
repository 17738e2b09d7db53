"""An exchange's order rules, checked the way the exchange checks them. Pure; shared by the executors
(before sending) and the simulated venues (on receipt), so both refuse exactly the same orders."""

from __future__ import annotations

from cryptoarb.model import Market, Order


def rule_violation(order: Order, market: Market) -> str:
    """The first exchange rule ``order`` breaks, as ``code: detail`` (the venue's wording); empty if none."""
    if not market.enabled:
        return "market_disabled: trading is disabled"
    if order.price <= 0 or order.size <= 0:
        return f"invalid_order: price {order.price} and size {order.size} must be positive"
    if order.price % market.price_tick != 0:
        return f"price_off_tick: price {order.price} is not a multiple of {market.price_tick}"
    if order.size % market.size_increment != 0:
        return f"size_off_increment: size {order.size} is not a multiple of {market.size_increment}"
    if order.size < market.min_size:
        return f"below_min_size: size {order.size} < {market.min_size}"
    if order.price * order.size < market.min_funds:
        return f"below_min_funds: funds {order.price * order.size} < {market.min_funds} {market.quote}"
    return ""
