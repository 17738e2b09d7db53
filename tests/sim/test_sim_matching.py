import pytest
from hypothesis import given
from hypothesis import strategies as st

from cryptoarb.venues.sim.matching import Depletion, live_side, take

sides = st.lists(st.tuples(st.integers(1, 5), st.integers(1, 1_000)), min_size=0, max_size=30)


def _asks(side: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    ticks, tick = [], 1_000
    for gap, _ in side:
        tick += gap
        ticks.append(tick)
    return ticks, [u for _, u in side]


@given(sides, st.integers(0, 40_000))
def test_live_side_removes_exactly_the_depleted_units_from_the_top(side, depleted):
    ticks, units = _asks(side)
    live_ticks, live_units = live_side(ticks, units, depleted)
    assert sum(live_units) == max(0, sum(units) - depleted)
    assert live_ticks == ticks[len(ticks) - len(live_ticks):]
    assert all(u > 0 for u in live_units)


@given(sides, st.integers(900, 1_200), st.integers(0, 20_000), st.booleans())
def test_take_walks_from_the_top_within_the_limit(side, limit, want, buy):
    ticks, units = _asks(side)
    if not buy:  # a bid side descends
        ticks = [2_400 - t for t in ticks]
    fills = take(ticks, units, limit, want, buy=buy)
    within = [u for t, u in zip(ticks, units, strict=True) if (t <= limit if buy else t >= limit)]
    assert sum(n for _, n in fills) == min(want, sum(within))
    assert [t for t, _ in fills] == ticks[:len(fills)]
    assert all(0 < n <= u for (_, n), u in zip(fills, units, strict=False))


def test_depletion_refills_linearly_within_refill_s():
    d = Depletion()
    d.add(buy=True, units=100, refill_s=1.0)
    assert (d.bid_units, d.ask_units) == (0, 100)
    assert not d.refill(0.5)
    assert d.ask == pytest.approx(50)
    d.add(buy=True, units=50, refill_s=1.0)  # a new take restarts the clock for the whole gap
    assert not d.refill(0.75)
    assert d.ask == pytest.approx(25)
    assert d.refill(0.25 + 1e-9)
