import asyncio
import dataclasses
from decimal import Decimal

import pytest

from cryptoarb.config import SimSettings
from cryptoarb.model import Order, OrderStatus, Side
from cryptoarb.venues.base import LiquidityConsumer, Venue, VenueError
from cryptoarb.venues.sim import SimVenue, Tier

SMALL = SimSettings(pairs=120, assets=60, hot_pairs=10)


def _venue(settings: SimSettings = SMALL, **kwargs) -> SimVenue:
    return SimVenue(settings, speed=0, **kwargs)


def _order(symbol: str, side: Side, price: Decimal, size: Decimal, oid: str = "o1") -> Order:
    return Order(client_oid=oid, opportunity_id="opp", leg_index=0, venue="kucoin", symbol=symbol, side=side,
                 price=price, size=size, created_at=0.0)


def _dec(x: float) -> Decimal:
    return Decimal(repr(x))


def _tail(venue: SimVenue) -> str:
    return next(p.symbol for p in venue.universe.pairs if p.tier is Tier.TAIL and p.market.quote == "USDT")


async def test_is_a_venue_and_a_liquidity_consumer():
    venue = _venue()
    assert isinstance(venue, Venue) and isinstance(venue, LiquidityConsumer)
    markets = await venue.load_markets()
    assert len(markets) == len(venue.universe.pairs) and markets[0].venue == "kucoin"
    assert len(await venue.fetch_tickers()) == len(markets)
    book = await venue.fetch_book("BTC-USDT", depth=5)
    assert len(book.bids) == len(book.asks) == 5
    with pytest.raises(VenueError):
        await venue.fetch_book("NOPE-USDT")


async def test_stream_yields_snapshot_then_updates():
    venue = _venue()
    stream = venue.stream_books()
    first = await anext(stream)
    assert {u.symbol for u in first} == set(venue.universe.symbols)
    assert venue.now() == 0.0
    seen = 0
    for k in range(1, 41):
        batch = await anext(stream)
        assert venue.now() == pytest.approx(k * 0.05)
        assert all(u.received_at == venue.now() for u in batch)
        seen += len(batch)
    assert seen > 40
    with pytest.raises(VenueError):
        await anext(venue.stream_books())  # one stream drives the market
    await stream.aclose()
    again = await anext(venue.stream_books())  # free again once closed
    assert len(again) == len(venue.universe.symbols)
    assert all(u.received_at == venue.now() for u in again)
    assert (await venue.fetch_book(_tail(venue))).received_at == venue.now()


async def test_stream_filters_symbols_and_ends_on_close():
    venue = _venue()
    wanted = {"BTC-USDT", "ETH-USDT", _tail(venue)}
    batches = []
    async for batch in venue.stream_books(wanted):
        batches.append(batch)
        if len(batches) == 30:
            await venue.close()
    assert len(batches) == 30
    assert {u.symbol for u in batches[0]} == wanted
    assert all(u.symbol in wanted for b in batches for u in b)
    with pytest.raises(VenueError):
        await anext(_venue().stream_books(["NOPE-USDT"]))


async def test_stream_is_paced_by_speed():
    venue = SimVenue(SMALL, speed=2.0)
    stream = venue.stream_books()
    loop = asyncio.get_running_loop()
    start = loop.time()
    await anext(stream)
    for _ in range(4):  # 0.2 virtual seconds at 2x: >= 0.1 s of wall time
        await anext(stream)
    assert loop.time() - start >= 0.095
    await stream.aclose()


async def _digest(seed: int, steps: int) -> int:
    venue = SimVenue(SimSettings(seed=seed), speed=0)
    updates = []
    stream = venue.stream_books()
    async for batch in stream:
        updates.extend((u.symbol, u.sequence, u.exchange_ts_ms, u.bids, u.asks) for u in batch)
        if venue.market.steps == steps:
            break
    await stream.aclose()
    return hash(tuple(updates))


async def test_two_venues_with_one_seed_agree():
    a, b, c = await _digest(21, 100), await _digest(21, 100), await _digest(22, 100)
    assert a == b != c


async def test_ioc_fills_and_fees():
    venue = _venue()
    symbol = _tail(venue)
    m = venue.universe.by_symbol[symbol].market
    book = await venue.fetch_book(symbol)
    (p0, s0), (p1, s1) = book.asks[0], book.asks[1]
    size = _dec(s0) + _dec(s1) / 2
    size -= size % m.size_increment
    result = await venue.place_order(_order(symbol, Side.BUY, _dec(p1), size))
    assert result.status is OrderStatus.FILLED and result.filled_size == size
    assert [f.price for f in result.fills] == [_dec(p0), _dec(p1)]
    for f in result.fills:
        assert f.fee == f.price * f.size * Decimal("0.001") and f.fee_asset == "USDT"
        assert f.client_oid == "o1" and f.symbol == symbol and f.side is Side.BUY

    # The rest of level 1 and nothing beyond the limit: a partial fill.
    result = await venue.place_order(_order(symbol, Side.BUY, _dec(p1), Decimal(10) * size, "o2"))
    assert result.status is OrderStatus.PARTIAL
    assert result.filled_size == _dec(s0) + _dec(s1) - size
    # Nothing left at or under the limit: canceled, no fills.
    result = await venue.place_order(_order(symbol, Side.BUY, _dec(p1), size, "o3"))
    assert result.status is OrderStatus.CANCELED and result.fills == ()


async def test_retried_client_oid_never_fills_twice():
    venue = _venue()
    symbol = _tail(venue)
    m = venue.universe.by_symbol[symbol].market
    bid = (await venue.fetch_book(symbol)).bids[0]
    order = _order(symbol, Side.SELL, _dec(bid[0]), m.min_size)
    first = await venue.place_order(order)
    assert first.status is OrderStatus.FILLED
    missing = venue.market.missing(symbol)
    again = await venue.place_order(order)
    assert again is first
    assert venue.market.missing(symbol) == missing
    assert await venue.fetch_order(symbol, order.client_oid) is first
    await venue.cancel_order(symbol, order.client_oid)  # already final: nothing to do
    with pytest.raises(VenueError):
        await venue.fetch_order(symbol, "unknown")
    with pytest.raises(VenueError):
        await venue.cancel_order(symbol, "unknown")


@pytest.mark.parametrize(("case", "reason"), [
    ("unknown", "unknown_symbol"), ("tick", "price_off_tick"), ("lot", "size_off_increment"),
    ("min_size", "below_min_size"), ("min_funds", "below_min_funds"), ("gtc", "unsupported_order"),
])
async def test_rejections(case, reason):
    venue = _venue()
    symbol = "ETH-BTC"
    m = venue.universe.by_symbol[symbol].market
    ask = _dec((await venue.fetch_book(symbol)).asks[0][0])
    price, size = ask, m.min_size * 10
    if case == "unknown":
        symbol = "NOPE-USDT"
    elif case == "tick":
        price = ask + m.price_tick / 2
    elif case == "lot":
        size = m.min_size * 10 + m.size_increment / 2
    elif case == "min_size":
        size = m.min_size - m.size_increment
    elif case == "min_funds":
        price = m.price_tick  # on tick and above min size, but worth almost nothing
    order = _order(symbol, Side.BUY, price, size)
    if case == "gtc":
        order = dataclasses.replace(order, time_in_force="GTC")
    result = await venue.place_order(order)
    assert result.status is OrderStatus.REJECTED and result.fills == ()
    assert result.reason.startswith(reason), result.reason


async def test_balances_are_checked_and_settled():
    venue = _venue(balances={"USDT": 100.0, "BTC": 0.0})
    assert {b.asset: b.total for b in await venue.fetch_balances()} == {"USDT": Decimal("100.0"),
                                                                       "BTC": Decimal("0.0")}
    m = venue.universe.by_symbol["BTC-USDT"].market
    ask = _dec((await venue.fetch_book("BTC-USDT")).asks[0][0])
    too_big = await venue.place_order(_order("BTC-USDT", Side.BUY, ask, Decimal("0.01")))
    assert too_big.status is OrderStatus.REJECTED and too_big.reason.startswith("no_balance")
    size = m.min_size * 10
    ok = await venue.place_order(_order("BTC-USDT", Side.BUY, ask, size, "o2"))
    assert ok.status is OrderStatus.FILLED
    balances = {b.asset: b for b in await venue.fetch_balances()}
    assert balances["BTC"].total == size and balances["BTC"].free == size
    assert balances["USDT"].total == Decimal(100) - ask * size * Decimal("1.001")
    bid = _dec((await venue.fetch_book("BTC-USDT")).bids[0][0])
    sell = await venue.place_order(_order("BTC-USDT", Side.SELL, bid, size * 2, "o3"))
    assert sell.status is OrderStatus.REJECTED and sell.reason.startswith("no_balance")


async def test_consume_delegates_to_the_market():
    venue = _venue()
    symbol = _tail(venue)
    ask = (await venue.fetch_book(symbol)).asks[0]
    assert venue.consume(symbol, Side.BUY, _dec(ask[0]), Decimal("1e12")) == [ask]
    assert venue.consume(symbol, Side.BUY, _dec(ask[0]), Decimal("1e12")) == []
    with pytest.raises(VenueError):
        venue.consume("NOPE-USDT", Side.BUY, Decimal(1), Decimal(1))
