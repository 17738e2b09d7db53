"""Every leg is checked before an opportunity's first order: one problem refuses the whole plan."""

from __future__ import annotations

import dataclasses
from decimal import Decimal as D

import msgspec
import pytest

from cryptoarb.core.books import BookStore, Freshness
from cryptoarb.execution.preflight import PRICE_OFF_TICK, SIZE_OFF_INCREMENT, funded_legs, needs, preflight
from cryptoarb.model import BookUpdate, Market, Opportunity, PlannedLeg, RejectReason, Side


def market(symbol: str, venue: str = "v", **kw) -> Market:
    base, quote = symbol.split("-")
    fields = {"price_tick": D("0.01"), "size_increment": D("0.01"), "min_size": D("0.1"), "min_funds": D("1"),
              "taker_fee": D("0.001"), "maker_fee": D("0.001"), **kw}
    return Market(venue, symbol, base, quote, **fields)


MARKETS = {m.key: m for m in (market("A-USDT"), market("A-B"), market("B-USDT"), market("B-USDT", "w"))}


def books(at: float = 10.0, **overrides) -> BookStore:
    store = BookStore()
    for (venue, symbol) in MARKETS:
        bids, asks = overrides.get(symbol, ([(1.0, 100.0)], [(1.01, 100.0)]))
        store.apply(BookUpdate(venue, symbol, tuple(bids), tuple(asks), 1, 0, at))
    return store


def leg(symbol, side, price, size, asset_in, asset_out, venue="v") -> PlannedLeg:
    return PlannedLeg(venue, symbol, side, D(price), D(size), D(0), D(0), D(0), symbol.split("-")[1], asset_in,
                      asset_out, 0.0)


def plan(*legs: PlannedLeg) -> Opportunity:
    return Opportunity("op9", 1, "triangular", ("USDT", "A", "B", "USDT"), legs, D("10"), D("10.1"), D("0.1"),
                       0.1, 10.0, 10.0)


PLAN = plan(leg("A-USDT", Side.BUY, "10.00", "1.00", "USDT", "A"),
            leg("A-B", Side.SELL, "2.00", "1.00", "A", "B"),
            leg("B-USDT", Side.SELL, "5.05", "1.99", "B", "USDT"))
RICH = {("v", "USDT"): D(1000), ("v", "A"): D(10), ("v", "B"): D(10), ("w", "B"): D(10)}


def check(opportunity=PLAN, store=None, now=10.5, balances=RICH, mode="sequential", markets=MARKETS):
    return preflight(opportunity, markets, store or books(), now, Freshness(2.0),
                     lambda v, a: balances.get((v, a), D(0)), mode)


def with_leg(i: int, **changes) -> Opportunity:
    legs = list(PLAN.legs)
    legs[i] = msgspec.structs.replace(legs[i], **changes)
    return msgspec.structs.replace(PLAN, legs=tuple(legs))


def test_a_sound_plan_passes():
    assert check() is None


@pytest.mark.parametrize(("opportunity", "reason"), [
    (with_leg(1, limit_price=D("2.005")), PRICE_OFF_TICK),
    (with_leg(1, size=D("1.005")), SIZE_OFF_INCREMENT),
    (with_leg(1, size=D("0.05")), RejectReason.BELOW_MIN_SIZE),
    (with_leg(1, size=D("0.40")), RejectReason.BELOW_MIN_FUNDS),  # 0.4 * 2.00 < 1
    (with_leg(1, symbol="C-B"), RejectReason.MARKET_DISABLED),
])
def test_leg_rules(opportunity, reason):
    problem = check(opportunity)
    assert problem is not None and problem.reason == reason and problem.leg_index == 1


def test_disabled_market_stale_and_crossed_books():
    disabled = {**MARKETS, ("v", "A-B"): dataclasses.replace(MARKETS[("v", "A-B")], enabled=False)}
    assert check(markets=disabled).reason is RejectReason.MARKET_DISABLED
    assert check(now=13.0).reason is RejectReason.STALE_BOOK  # every book 3 s old
    crossed = books(**{"B-USDT": ([(5.1, 1.0)], [(5.0, 1.0)])})
    problem = check(store=crossed)
    assert problem.reason is RejectReason.CROSSED_BOOK and problem.leg_index == 2


def test_balances_sequential_needs_only_the_first_legs_input():
    only_usdt = {("v", "USDT"): D("10.01")}  # 1 A at 10.00 plus the 0.1% fee
    assert check(balances=only_usdt) is None
    problem = check(balances={("v", "USDT"): D("10.00")})
    assert problem.reason is RejectReason.NO_BALANCE and problem.leg_index == 0 and "10.01" in problem.detail


def test_balances_inventory_mode_needs_every_legs_input_on_its_venue():
    assert funded_legs(PLAN, "inventory") == [0, 1, 2]
    assert needs(PLAN, MARKETS, "inventory") == {("v", "USDT"): D("10.01000"), ("v", "A"): D("1.00"),
                                                 ("v", "B"): D("1.99")}
    problem = check(balances={("v", "USDT"): D(1000), ("v", "A"): D(10)}, mode="inventory")
    assert problem.reason is RejectReason.NO_BALANCE and problem.leg_index == 2


def test_sequential_cross_venue_leg_draws_on_that_venues_inventory():
    cross = msgspec.structs.replace(PLAN, legs=(*PLAN.legs[:2], leg("B-USDT", Side.SELL, "5.05", "1.99", "B", "USDT",
                                                               venue="w")))
    assert funded_legs(cross, "sequential") == [0, 2]
    problem = check(cross, balances={("v", "USDT"): D(1000), ("v", "B"): D(10)})
    assert problem.reason is RejectReason.NO_BALANCE and problem.leg_index == 2 and "on w" in problem.detail
