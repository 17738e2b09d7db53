"""The multi-venue simulated world: one set of fair values, venue universes, premiums that drift apart
and back, lockstep deterministic streams, and the cross-exchange cycles its inventory makes possible."""

from __future__ import annotations

import hashlib
import math
from decimal import Decimal

import pytest

from cryptoarb.config import SimSettings, SimVenueSettings
from cryptoarb.core.graph import enumerate_cycles
from cryptoarb.demo import cycle_kind
from cryptoarb.engine import _inventory
from cryptoarb.model import Order, OrderStatus, Side
from cryptoarb.venues.base import LiquidityConsumer, Venue, VenueError
from cryptoarb.venues.sim.universe import build_universe
from cryptoarb.venues.sim.world import (
    PEGGED,
    SimWorld,
    build_venue_universe,
    venue_profile,
    world_balances,
)

SMALL = SimSettings(seed=5, pairs=200, assets=80, hot_pairs=20)
VENUES = ["kucoin", "coinbase", "bl3p"]


def digest(world: SimWorld, steps: int) -> str:
    h = hashlib.sha256()
    for _ in range(steps):
        for venue, batch in world.step():
            for u in batch:
                h.update(repr((venue, u.symbol, u.bids, u.asks, u.sequence, u.received_at)).encode())
    return h.hexdigest()


def mid(world: SimWorld, venue: str, symbol: str) -> float:
    book = world.venues[venue].market.book(symbol)
    return (book.bids[0][0] + book.asks[0][0]) / 2


def test_same_seed_same_world_and_another_seed_another():
    a, b = SimWorld(SMALL, VENUES, speed=0), SimWorld(SMALL, VENUES, speed=0)
    assert digest(a, 150) == digest(b, 150)
    c = SimWorld(SMALL.model_copy(update={"seed": 6}), VENUES, speed=0)
    assert digest(c, 150) != digest(SimWorld(SMALL, VENUES, speed=0), 150)


def test_venue_universes():
    world = SimWorld(SMALL, VENUES, speed=0)
    kucoin, coinbase, bl3p = (world.venues[v].universe for v in VENUES)
    assert kucoin.pairs == build_universe(SMALL).pairs  # the single-venue demo's listing, same seed
    assert set(bl3p.symbols) == {"BTC-EUR", "LTC-EUR"}
    for p in bl3p.pairs:  # BL3P's integer grid: price x 1e5, amount x 1e8
        assert p.market.price_tick >= Decimal("1e-5") and p.market.size_increment >= Decimal("1e-8")
        assert p.market.taker_fee == Decimal("0.0025")
    quotes = {p.market.quote for p in coinbase.pairs}
    assert quotes == {"USD", "USDT", "EUR", "BTC"} and 80 <= len(coinbase.pairs) <= 130
    assert {"BTC-USD", "BTC-USDT", "BTC-EUR", "ETH-BTC", "USDT-USD", "USDT-EUR", "LTC-EUR"} <= set(coinbase.symbols)
    assert coinbase.pairs[0].market.taker_fee == Decimal("0.002")
    alone = build_venue_universe("coinbase", SMALL)  # a venue's listing doesn't depend on the others
    assert alone.pairs == coinbase.pairs


def test_one_set_of_fair_values_quoted_with_drifting_premiums():
    world = SimWorld(SMALL, VENUES, speed=0)
    widest = 0.0
    errors = []
    for k in range(1, 2401):  # two simulated minutes
        world.step()
        if k % 40:
            continue
        for symbol, venue in (("BTC-USDT", "coinbase"), ("BTC-EUR", "bl3p")):
            ref = "kucoin" if venue == "coinbase" else "coinbase"
            observed = math.log(mid(world, venue, symbol) / mid(world, ref, symbol))
            implied = (math.log1p(world.premium_bps(venue, "BTC") / 1e4)
                       - math.log1p(world.premium_bps(ref, "BTC") / 1e4))
            errors.append(abs(observed - implied))
        widest = max(widest, world.divergence_bps("BTC"))
    # books follow fair value + premium, within spreads and maker lag (and now and then a lagging quote)
    errors.sort()
    assert errors[len(errors) // 2] < 10e-4 and errors[int(len(errors) * 0.9)] < 40e-4
    assert widest > 40  # prices drift apart ...
    assert world.divergence_bps("USDT") == 0.0  # ... but pegged assets carry no premium
    assert {"USD", "USDT", "EUR"} <= PEGGED


def test_premiums_mean_revert():
    settings = SMALL.model_copy(update={"venues": {"coinbase": SimVenueSettings(divergence_per_s=0.0,
                                                                               premium_bps=20.0, reversion_s=5.0)}})
    world = SimWorld(settings, ["kucoin", "coinbase"], speed=0)
    samples = []
    for k in range(1, 6001):
        world.step()
        if k % 100 == 0:
            samples.append(world.premium_bps("coinbase", "ETH"))
    assert max(samples) > 5 and min(samples) < -5  # it wanders both ways around zero
    assert abs(sum(samples) / len(samples)) < 15
    assert venue_profile("coinbase", settings).premium_bps == 20.0


async def test_per_venue_streams_pull_one_lockstep_world():
    world = SimWorld(SMALL, ["kucoin", "bl3p"], speed=0)
    twin = SimWorld(SMALL, ["kucoin", "bl3p"], speed=0)
    expected = [twin.step() for _ in range(30)]
    kucoin_stream = world.venues["kucoin"].stream_books()
    bl3p_stream = world.venues["bl3p"].stream_books(["BTC-EUR"])
    first = await anext(kucoin_stream)
    assert {u.symbol for u in first} == set(world.venues["kucoin"].universe.symbols)
    assert [u.symbol for u in await anext(bl3p_stream)] == ["BTC-EUR"]
    for k in range(30):  # kucoin runs ahead and steps the world; bl3p reads the same steps afterwards
        assert await anext(kucoin_stream) == expected[k][0][1]
        assert world.venues["kucoin"].now() == world.now() == pytest.approx((k + 1) * 0.05)
    for k in range(30):
        assert await anext(bl3p_stream) == [u for u in expected[k][1][1] if u.symbol == "BTC-EUR"]
    assert world.steps == 30
    with pytest.raises(VenueError):
        await anext(world.venues["kucoin"].stream_books())
    await kucoin_stream.aclose()
    await bl3p_stream.aclose()


async def test_world_stream_yields_every_venue_each_step_in_order():
    world = SimWorld(SMALL, VENUES, speed=0)
    stream = world.stream()
    first = await anext(stream)
    assert [v for v, _ in first] == VENUES and all(batch for _, batch in first)
    for _ in range(5):
        assert [v for v, _ in await anext(stream)] == VENUES
    await world.close()
    assert world.closed


async def test_orders_and_liquidity_stay_on_their_own_venue():
    world = SimWorld(SMALL, ["kucoin", "coinbase"], speed=0, balances={"coinbase": {"USD": 100_000.0}})
    cb, ku = world.venues["coinbase"], world.venues["kucoin"]
    assert isinstance(cb, Venue) and isinstance(cb, LiquidityConsumer)
    before = ku.market.book("BTC-USDT")
    ask = cb.market.book("BTC-USD").asks[0]
    order = Order("w-1", "opp", 0, "coinbase", "BTC-USD", Side.BUY, Decimal(repr(ask[0])), Decimal(repr(ask[1])), 0.0)
    result = await cb.place_order(order)
    assert result.status is OrderStatus.FILLED and result.fills[0].fee == result.fills[0].price * \
        result.fills[0].size * Decimal("0.002")
    assert cb.market.book("BTC-USD").asks[0] != ask and ku.market.book("BTC-USDT") == before
    balances = {b.asset: b.free for b in await cb.fetch_balances()}
    assert balances["BTC"] == Decimal(repr(ask[1])) and balances["USD"] < 100_000


def test_inventory_edges_make_cross_exchange_and_mixed_cycles():
    world = SimWorld(SMALL, VENUES, speed=0)
    markets = [m for v in world.venues.values() for m in v.universe.markets]
    held = world_balances({}, VENUES)
    assert held["bl3p"] == {"EUR": 8000.0, "BTC": 0.05, "LTC": 20.0}
    cycles = enumerate_cycles(markets, 3, ["USDT", "EUR"], _inventory(held))
    kinds = {cycle_kind(c) for c in cycles}
    assert kinds == {"triangular", "cross-exchange", "mixed"}
    described = {c.describe() for c in cycles}
    assert "buy BTC-EUR@bl3p > sell BTC-EUR@coinbase" in described  # buy here, sell there
    assert any(len(c.venues) == 3 for c in cycles)  # e.g. BTC-USDT@kucoin > BTC-EUR@bl3p > USDT-EUR@coinbase


def test_unknown_venues_are_refused():
    with pytest.raises(ValueError, match="unknown simulated venue 'mtgox'"):
        SimWorld(SMALL, ["kucoin", "mtgox"], speed=0)
    renamed = SMALL.model_copy(update={"venues": {"cb2": SimVenueSettings(kind="coinbase", taker_fee=0.001)}})
    world = SimWorld(renamed, ["coinbase", "cb2"], speed=0)
    assert world.venues["cb2"].universe.pairs[0].market.taker_fee == Decimal("0.001")
    assert world.venues["cb2"].universe.pairs[0].market.venue == "cb2"
