from __future__ import annotations

import random
from decimal import Decimal
from itertools import combinations, permutations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptoarb.core.graph import enumerate_cycles, index_by_market
from cryptoarb.model import Cycle, Leg, Market, Side

LegKey = tuple[str, str, str]


def make_market(base: str, quote: str, venue: str = "x", enabled: bool = True) -> Market:
    one = Decimal(1)
    return Market(venue, f"{base}-{quote}", base, quote, one, one, one, one, one, one, enabled=enabled)


def keys(cycle: Cycle) -> tuple[LegKey, ...]:
    return tuple((leg.venue, leg.market.symbol, leg.side.value) for leg in cycle.legs)


def triangle(venue: str = "x") -> list[Market]:
    return [make_market("BTC", "USDT", venue), make_market("ETH", "USDT", venue),
            make_market("ETH", "BTC", venue)]


def test_triangle_gives_both_directions_once_in_smallest_rotation():
    cycles = enumerate_cycles(triangle())
    assert [c.describe() for c in cycles] == [
        "buy BTC-USDT@x > buy ETH-BTC@x > sell ETH-USDT@x",
        "sell BTC-USDT@x > buy ETH-USDT@x > sell ETH-BTC@x",
    ]
    assert [c.id for c in cycles] == [0, 1]
    assert all(c.kind == "triangular" for c in cycles)


def test_start_assets_give_one_rotation_per_start_asset():
    usdt = enumerate_cycles(triangle(), start_assets={"USDT"})
    assert [c.path for c in usdt] == [("USDT", "BTC", "ETH", "USDT"), ("USDT", "ETH", "BTC", "USDT")]
    both = enumerate_cycles(triangle(), start_assets={"USDT", "BTC"})
    assert sorted(c.path for c in both) == [
        ("BTC", "ETH", "USDT", "BTC"), ("BTC", "USDT", "ETH", "BTC"),
        ("USDT", "BTC", "ETH", "USDT"), ("USDT", "ETH", "BTC", "USDT")]
    assert enumerate_cycles(triangle(), start_assets={"DOGE"}) == []


def test_legs_chain_and_close():
    for cycle in enumerate_cycles(triangle(), start_assets={"USDT", "ETH"}):
        for leg, nxt in zip(cycle.legs, cycle.legs[1:], strict=False):
            assert leg.asset_out == nxt.asset_in
        assert cycle.legs[-1].asset_out == cycle.start_asset


def test_a_market_is_never_used_twice():
    assert enumerate_cycles([make_market("BTC", "USDT")]) == []


def test_disabled_markets_give_no_edges():
    markets = triangle()
    markets[2] = make_market("ETH", "BTC", enabled=False)
    assert enumerate_cycles(markets) == []


def test_cross_venue_two_leg_cycles_need_inventory_of_both_assets():
    markets = [make_market("BTC", "USDT", "a"), make_market("BTC", "USDT", "b")]
    assert enumerate_cycles(markets, inventory={"BTC": {"a", "b"}}) == []
    assert enumerate_cycles(markets, inventory={"USDT": {"a", "b"}}) == []
    both = {"BTC": {"a", "b"}, "USDT": {"a", "b"}}
    cycles = enumerate_cycles(markets, start_assets={"USDT"}, inventory=both)
    assert [c.describe() for c in cycles] == ["buy BTC-USDT@a > sell BTC-USDT@b",
                                              "buy BTC-USDT@b > sell BTC-USDT@a"]
    assert all(c.kind == "cross-exchange" for c in cycles)
    # without start assets the same two cycles, each once
    assert len(enumerate_cycles(markets, inventory=both)) == 2


def test_mixed_cycle_hops_venues_in_the_middle():
    markets = [*triangle("a"), make_market("ETH", "USDT", "b")]
    cycles = enumerate_cycles(markets, start_assets={"USDT"}, inventory={"ETH": {"a", "b"}})
    described = {c.describe() for c in cycles}
    assert "buy BTC-USDT@a > buy ETH-BTC@a > sell ETH-USDT@a" in described
    # selling ETH on b lands USDT on b, which may close only if USDT is held on both venues
    assert "buy BTC-USDT@a > buy ETH-BTC@a > sell ETH-USDT@b" not in described
    both = {"ETH": {"a", "b"}, "USDT": {"a", "b"}}
    closing = enumerate_cycles(markets, start_assets={"USDT"}, inventory=both)
    assert "buy BTC-USDT@a > buy ETH-BTC@a > sell ETH-USDT@b" in {c.describe() for c in closing}


def test_four_leg_cycles_only_with_max_legs_four():
    square = [make_market("B", "A"), make_market("C", "B"), make_market("D", "C"), make_market("D", "A")]
    assert enumerate_cycles(square, max_legs=3) == []
    four = enumerate_cycles(square, max_legs=4)
    assert len(four) == 2
    assert all(len(c.legs) == 4 and c.kind == "multi-leg" for c in four)


def test_output_is_deterministic_whatever_the_market_order(kucoin_like):
    markets = kucoin_like(pairs=150, assets=60)
    inventory = {"USDT": {"kucoin"}}
    first = enumerate_cycles(markets, 3, {"USDT", "BTC"}, inventory)
    shuffled = markets[:]
    random.Random(3).shuffle(shuffled)
    second = enumerate_cycles(shuffled, 3, {"USDT", "BTC"}, inventory)
    assert [keys(c) for c in first] == [keys(c) for c in second]
    assert [c.id for c in first] == list(range(len(first)))


def test_index_by_market_lists_every_cycle_through_a_market():
    cycles = enumerate_cycles(triangle(), start_assets={"USDT", "BTC"})
    index = index_by_market(cycles)
    assert set(index) == {("x", "BTC-USDT"), ("x", "ETH-USDT"), ("x", "ETH-BTC")}
    assert all(index[key] == list(range(4)) for key in index)


def test_kucoin_sized_universe_enumerates(kucoin_like):
    """Enumeration time on this universe is measured in benchmarks/detect.py (enumerate_s)."""
    markets = kucoin_like()
    assert len(markets) == 1250
    cycles = enumerate_cycles(markets, 3, {"USDT"})
    assert len(cycles) > 1000
    assert all(c.start_asset == "USDT" and c.legs[-1].asset_out == "USDT" for c in cycles)
    fan_out = index_by_market(cycles)[("kucoin", "BTC-USDT")]
    assert len(fan_out) > 200


# ---------------------------------------------------------------------------------------------------
# against a brute force over every sequence of legs


def naive_cycles(markets: list[Market], max_legs: int, start_assets: set[str] | None,
                 inventory: dict[str, set[str]]) -> set[tuple[LegKey, ...]]:
    legs = [Leg(m, side) for m in markets if m.enabled for side in (Side.SELL, Side.BUY)]

    def joined(a: Leg, b: Leg) -> bool:
        held = inventory.get(a.asset_out, set())
        return a.asset_out == b.asset_in and (a.venue == b.venue or {a.venue, b.venue} <= held)

    def leg_key(leg: Leg) -> LegKey:
        return (leg.venue, leg.market.symbol, leg.side.value)

    found: set[tuple[LegKey, ...]] = set()
    for n in range(2, max_legs + 1):
        for seq in permutations(legs, n):
            if len({leg.market.key for leg in seq}) < n or not all(
                    joined(seq[i], seq[(i + 1) % n]) for i in range(n)):
                continue
            nodes = []
            for i, leg in enumerate(seq):
                entry, before = (leg.venue, leg.asset_in), (seq[i - 1].venue, seq[i - 1].asset_out)
                nodes += [entry] if entry == before else [before, entry]
            if len(set(nodes)) < len(nodes):
                continue
            rotations = [tuple(map(leg_key, seq[r:] + seq[:r])) for r in range(n)]
            if start_assets is None:
                found.add(min(rotations))
                continue
            for asset in start_assets:
                mine = [rot for r, rot in enumerate(rotations) if seq[r].asset_in == asset]
                if mine:
                    found.add(min(mine))
    return found


@st.composite
def small_worlds(draw: st.DrawFn):
    assets = ["USDT", "BTC", "ETH", "XRP"][: draw(st.integers(3, 4))]
    venues = ["a", "b", "c"][: draw(st.integers(1, 3))]
    markets = []
    for venue in venues:
        for lo, hi in combinations(assets, 2):
            if draw(st.integers(0, 2)):
                markets.append(make_market(hi, lo, venue, enabled=draw(st.integers(0, 5)) > 0))
    inventory = {a: {v for v in venues if draw(st.booleans())} for a in assets}
    max_legs = draw(st.sampled_from((2, 3, 4)))
    start = draw(st.sampled_from((None, {"USDT"}, {"USDT", "ETH"})))
    return markets, max_legs, start, inventory


@settings(max_examples=60, deadline=None)
@given(small_worlds())
def test_matches_brute_force(world):
    markets, max_legs, start, inventory = world
    if len(markets) > 7 and max_legs == 4:
        max_legs = 3  # keep the brute force quick
    cycles = enumerate_cycles(markets, max_legs, start, inventory)
    got = [keys(c) for c in cycles]
    assert len(got) == len(set(got))
    assert set(got) == naive_cycles(markets, max_legs, start, inventory)
    for cycle in cycles:
        assert 2 <= len(cycle.legs) <= max_legs
        if start is not None:
            assert cycle.start_asset in start


@pytest.mark.parametrize("max_legs", [3, 4])
def test_cross_exchange_universe_has_unique_cycles(kucoin_like, max_legs):
    markets = [m for v in ("a", "b") for m in kucoin_like(pairs=60, assets=30, venue=v)]
    inventory = {q: {"a", "b"} for q in ("USDT", "BTC", "ETH")}
    cycles = enumerate_cycles(markets, max_legs, {"USDT"}, inventory)
    assert len({keys(c) for c in cycles}) == len(cycles)
    assert any(c.kind == "cross-exchange" and len(c.legs) == 2 for c in cycles)
