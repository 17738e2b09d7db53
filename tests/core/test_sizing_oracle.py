"""Property tests: detector and sizing against an independent exact oracle written with Fractions.

The oracle re-implements the leg semantics from their definition (continuous inverse of the book walk,
or for a BUY of its hold at the limit price, then floor to the grid) and brute-forces every first-leg size
on its grid whose order's hold fits the input cap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from itertools import combinations

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from cryptoarb.core.books import BookStore, Freshness
from cryptoarb.core.detector import Detector
from cryptoarb.core.graph import enumerate_cycles
from cryptoarb.core.sizing import size_cycle
from cryptoarb.model import BookUpdate, Cycle, Leg, Market, Opportunity, Rejection, Side

NOW = 100.0
FRESH = Freshness(max_age=5.0)
INCREMENTS = (Decimal("1"), Decimal("0.1"), Decimal("0.01"), Decimal("0.001"))
MAX_GRID = 150  # first-leg sizes the brute force may try per cycle


def _sig(x: float, digits: int = 6) -> float:
    return float(f"{x:.{digits}g}")


# ---------------------------------------------------------------------------------------------------
# the world


@dataclass
class World:
    markets: list[Market]
    books: dict[tuple[str, str], tuple[tuple[tuple[float, float], ...], tuple[tuple[float, float], ...]]]
    inventory: dict[str, set[str]]
    start_assets: set[str] | None
    threshold_bps: float
    max_legs: int


@st.composite
def worlds(draw: st.DrawFn) -> World:
    n_assets = draw(st.integers(3, 5))
    assets = ["USD", *(f"A{i}" for i in range(1, n_assets))]
    fair = {"USD": 1.0} | {a: draw(st.integers(1, 2000)) / 100 for a in assets[1:]}
    venues = [f"v{i}" for i in range(draw(st.integers(1, 3)))]
    markets: list[Market] = []
    books = {}
    for venue in venues:
        pairs = [p for p in combinations(range(n_assets), 2) if draw(st.integers(0, 3))]
        for lo, hi in pairs:
            base, quote = (assets[hi], assets[lo]) if draw(st.booleans()) else (assets[lo], assets[hi])
            inc = draw(st.sampled_from(INCREMENTS))
            min_size = inc * draw(st.integers(0, 3)) + (inc / 2 if draw(st.booleans()) else 0)
            market = Market(
                venue=venue, symbol=f"{base}-{quote}", base=base, quote=quote, price_tick=Decimal("1e-8"),
                size_increment=inc, min_size=min_size,
                min_funds=Decimal(draw(st.integers(0, 20))) / 20,
                taker_fee=Decimal(draw(st.integers(0, 300))) / 100_000, maker_fee=Decimal(0),
                fee_currency=draw(st.sampled_from(("quote", "received"))))
            markets.append(market)
            mid = fair[base] / fair[quote] * (1 + draw(st.integers(-300, 300)) / 20_000)
            half = draw(st.integers(1, 30)) / 10_000
            sides = []
            for sign in (-1, 1):
                price = mid * (1 + sign * half)
                levels = []
                for _ in range(draw(st.integers(1, 4))):
                    size = _sig(draw(st.integers(1, 100)) / fair[base])
                    levels.append((_sig(price), size))
                    price *= 1 + sign * draw(st.integers(1, 100)) / 10_000
                sides.append(tuple(levels))
            books[market.key] = (sides[0], sides[1])
    inventory = {}
    for asset in assets:
        held = {v for v in venues if draw(st.booleans())}
        if held:
            inventory[asset] = held
    start_assets = draw(st.sampled_from((None, {"USD"})))
    threshold = draw(st.integers(-100, 100)) / 2
    max_legs = draw(st.sampled_from((3, 3, 4)))
    return World(markets, books, inventory, start_assets, threshold, max_legs)


def _book_store(world: World) -> BookStore:
    store = BookStore()
    for (venue, symbol), (bids, asks) in world.books.items():
        store.apply(BookUpdate(venue, symbol, bids, asks, 1, 0, NOW - 0.25))
    return store


# ---------------------------------------------------------------------------------------------------
# the oracle


def F(x: float | Decimal) -> Fraction:
    return Fraction(repr(x)) if isinstance(x, float) else Fraction(x)


def o_levels(leg: Leg, world: World) -> list[tuple[Fraction, Fraction]]:
    bids, asks = world.books[leg.market.key]
    return [(F(p), F(q)) for p, q in (bids if leg.side is Side.SELL else asks)]


def o_top_rate(leg: Leg, world: World) -> Fraction:
    price = o_levels(leg, world)[0][0]
    fee = F(leg.market.taker_fee)
    if leg.side is Side.SELL:
        return price * (1 - fee)
    return (1 - fee) / price if leg.market.fee_currency == "received" else 1 / (price * (1 + fee))


def o_walk(levels, size: Fraction) -> tuple[Fraction, Fraction] | None:
    cost, worst, left = Fraction(0), Fraction(0), size
    for price, qty in levels:
        if left <= 0:
            break
        take = min(qty, left)
        cost += price * take
        worst = price
        left -= take
    return None if left > 0 else (cost, worst)


def o_hold_size(levels, budget: Fraction) -> Fraction:
    """The largest continuous size ``s`` whose hold ``s * worst(s)`` is at most ``budget`` (caller checks
    the book holds it): sizes on a level hold at that level's price, so the hold jumps between levels."""
    size, below = Fraction(0), Fraction(0)
    for price, qty in levels:
        if budget / price <= below:
            break  # the first size on this level already holds more than the budget
        size = min(budget / price, below + qty)
        below += qty
    return size


@dataclass(frozen=True)
class OLeg:
    size: Fraction
    limit: Fraction
    amount_in: Fraction
    amount_out: Fraction
    fee: Fraction
    hold: Fraction  # what placing the order ties up: a SELL its size, a BUY size * limit (* (1 + fee))


def o_leg(leg: Leg, levels, *, amount_in: Fraction | None = None, size: Fraction | None = None) -> OLeg | str:
    market = leg.market
    inc, fee = F(market.size_increment), F(market.taker_fee)
    received = leg.side is Side.BUY and market.fee_currency == "received"
    k = 1 + fee if leg.side is Side.BUY and not received else Fraction(1)
    if leg.side is Side.SELL:
        if size is None:
            size = math.floor(amount_in / inc) * inc
        else:
            amount_in = size
    elif size is None:
        # a limit buy holds size * limit (* (1 + fee)): the largest size whose hold fits the input
        if amount_in > sum(q for _, q in levels) * levels[-1][0] * k:
            return "depth"
        size = math.floor(o_hold_size(levels, amount_in / k) / inc) * inc
    if size <= 0:
        return "min_size"
    walked = o_walk(levels, size)
    if walked is None:
        return "depth"
    notional, worst = walked
    if amount_in is None:
        amount_in = notional * k
    if size < F(market.min_size):
        return "min_size"
    if notional < F(market.min_funds):
        return "min_funds"
    if leg.side is Side.SELL:
        return OLeg(size, worst, amount_in, notional * (1 - fee), notional * fee, size)
    if received:
        return OLeg(size, worst, amount_in, size * (1 - fee), size * fee, size * worst)
    return OLeg(size, worst, amount_in, size, notional * fee, size * worst * k)


def o_plan(cycle: Cycle, world: World, first_size: Fraction) -> list[OLeg] | str:
    legs: list[OLeg] = []
    for i, leg in enumerate(cycle.legs):
        levels = o_levels(leg, world)
        result = o_leg(leg, levels, size=first_size) if i == 0 else \
            o_leg(leg, levels, amount_in=legs[-1].amount_out)
        if isinstance(result, str):
            return result
        legs.append(result)
    return legs


def o_best(cycle: Cycle, world: World, cap: Fraction) -> tuple[Fraction, int] | None:
    """Brute force: (best profit, its first size in increments) over every first size within the cap."""
    first = cycle.legs[0]
    levels = o_levels(first, world)
    inc = F(first.market.size_increment)
    best = None
    for n in range(1, MAX_GRID + 3):
        walked = o_walk(levels, n * inc)
        if walked is None:
            break
        fee = F(first.market.taker_fee)
        k = 1 + fee if first.side is Side.BUY and first.market.fee_currency == "quote" else 1
        # the cap bounds what the first order holds when placed (a BUY: its size at its limit price)
        if (n * inc * walked[1] * k if first.side is Side.BUY else n * inc) > cap:
            break
        plan = o_plan(cycle, world, n * inc)
        if isinstance(plan, str):
            continue
        profit = plan[-1].amount_out - plan[0].amount_in
        if best is None or profit > best[0]:
            best = (profit, n)
    else:
        raise AssertionError("cap allows more first sizes than the brute force tries")
    return best


def o_input_per_size(leg: Leg, world: World) -> Fraction:
    if leg.side is Side.SELL:
        return Fraction(1)
    price = o_levels(leg, world)[0][0]
    return price * (1 + F(leg.market.taker_fee)) if leg.market.fee_currency == "quote" else price


# ---------------------------------------------------------------------------------------------------
# properties


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=worlds(), data=st.data())
def test_detector_and_sizing_match_the_oracle(world: World, data: st.DataObject) -> None:
    cycles = enumerate_cycles(world.markets, world.max_legs, world.start_assets, world.inventory)
    assume(cycles)
    multipliers = {c.id: math.prod(o_top_rate(leg, world) for leg in c.legs) for c in cycles}
    line = 1 + Fraction(world.threshold_bps) / 10_000
    assume(all(abs(m - line) > Fraction(1, 10**9) for m in multipliers.values()))
    expected = {cid for cid, m in multipliers.items() if m >= line}

    # (a) incremental updates in a random order report exactly the newly complete cycles that clear
    detector = Detector(cycles, world.threshold_bps)
    order = data.draw(st.permutations(sorted(world.books)))
    quoted: set[tuple[str, str]] = set()
    for key in order:
        bids, asks = world.books[key]
        quoted.add(key)
        got = {c.cycle.id for c in detector.update(key, bids[0][0], asks[0][0])}
        assert got == {c.id for c in cycles if c.id in expected and key in {leg.market.key for leg in c.legs}
                       and all(leg.market.key in quoted for leg in c.legs)}
    assert {c.cycle.id for c in detector.evaluate_all()} == expected
    event(f"detector candidates: {'some' if expected else 'none'}")

    # (b)-(d) sizing: a profitable-at-top cycle if there is one, and any cycle
    store = _book_store(world)
    promising = [c for c in cycles if multipliers[c.id] > 1]
    picks = [data.draw(st.sampled_from(cycles))]
    if promising:
        picks.append(data.draw(st.sampled_from(promising)))
    for cycle in picks:
        first = cycle.legs[0]
        inc_value = F(first.market.size_increment) * o_input_per_size(first, world)
        max_input = Decimal(f"{float(inc_value) * data.draw(st.integers(1, 4 * MAX_GRID)) / 4:.8g}")
        cap = Fraction(max_input)
        best = o_best(cycle, world, cap)
        default = size_cycle(cycle, store, NOW, max_input, 1.0, FRESH)
        exact = size_cycle(cycle, store, NOW, max_input, 1.0, FRESH, tolerance=Decimal(0))
        for result in (default, exact):
            if isinstance(result, Rejection):
                assert best is None or best[0] <= 0, (best, result)
                continue
            assert isinstance(result, Opportunity)
            # (c) the plan is real: recomputed by the oracle from its first size it is the same, and profits
            assert (F(result.legs[0].size) / F(first.market.size_increment)).denominator == 1
            plan = o_plan(cycle, world, F(result.legs[0].size))
            assert not isinstance(plan, str), plan
            profit = plan[-1].amount_out - plan[0].amount_in
            assert F(result.profit) == profit > 0
            assert F(result.input) == plan[0].amount_in <= plan[0].hold <= cap
            assert F(result.output) == plan[-1].amount_out
            # every order can be placed as planned: each later leg's hold fits what the leg before delivers
            assert all(theirs.hold <= theirs.amount_in for theirs in plan[1:])
            # (d) leg by leg
            for mine, theirs in zip(result.legs, plan, strict=True):
                reported = (mine.size, mine.limit_price, mine.amount_in, mine.amount_out, mine.fee)
                assert tuple(map(F, reported)) == (
                    theirs.size, theirs.limit, theirs.amount_in, theirs.amount_out, theirs.fee)
            # (b) as good as the brute force, to within one first-leg increment carried through the cycle
            assert best is not None and best[0] > 0
            assert best[0] - inc_value * multipliers[cycle.id] <= profit <= best[0]
        event(f"rejected: {default.reason}" if isinstance(default, Rejection) else "opportunity")
        if isinstance(exact, Opportunity):
            # with no tolerance the search stops only where a bound proves nothing better is left
            assert F(exact.profit) == best[0]
            event("default tolerance found the optimum" if default.profit == exact.profit
                  else "default tolerance within bound")
