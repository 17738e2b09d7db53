"""The generic ccxt venue against the KuCoin simulator (in-process, over loopback), through the same code
path any ccxt exchange takes: REST markets, fees, balances and orders; books through ccxt.pro with the
staleness watchdog, or through REST polling; configuration and credentials from the settings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import pytest

from cryptoarb.config import ConfigError, SimSettings, load_settings, with_balances
from cryptoarb.model import Balance, Order, OrderStatus, Side
from cryptoarb.venues.base import OrderNotFoundError, RetryableVenueError, Venue, VenueError
from cryptoarb.venues.ccxt_venue import CcxtVenue
from cryptoarb.venues.kucoin.sim_config import SimServerConfig
from cryptoarb.venues.kucoin.sim_server import KucoinSimServer
from cryptoarb.venues.sim.universe import build_universe

SIM = SimSettings(seed=11, pairs=60, assets=20, hot_pairs=15, depth_levels=50)
CREDS = {"api_key": "sim-key", "secret": "sim-secret", "password": "sim-passphrase"}
OPTIONS = {"uta": False, "fetchMarkets": {"types": ["spot"]}}


async def kucoin_sim(speed: float = 0.0) -> KucoinSimServer:
    server = KucoinSimServer(SimServerConfig(port=0, speed=speed, sim=SIM))
    await server.start()
    return server


@pytest.fixture
async def frozen() -> AsyncIterator[KucoinSimServer]:
    server = await kucoin_sim()
    yield server
    await server.stop()


def venue(server: KucoinSimServer, **kwargs) -> CcxtVenue:
    return CcxtVenue("kucoin", credentials=kwargs.pop("credentials", CREDS), api_url=server.url, options=OPTIONS,
                     enable_rate_limit=False, **kwargs)


def buy(oid: str, price: Decimal, size: Decimal, symbol: str = "BTC-USDT") -> Order:
    return Order(client_oid=oid, opportunity_id="opp", leg_index=0, venue="kucoin", symbol=symbol, side=Side.BUY,
                 price=price, size=size, created_at=0.0)


def dec(x: float) -> Decimal:
    return Decimal(repr(x))


async def faults(server: KucoinSimServer, **changes) -> None:
    async with aiohttp.ClientSession() as http, http.post(server.url + "/_sim/faults", json=changes) as resp:
        assert resp.status == 200


async def test_markets_fees_balances_and_books_through_ccxt(frozen):
    v = venue(frozen)
    try:
        assert isinstance(v, Venue) and v.authenticated
        markets = {m.symbol: m for m in await v.load_markets()}
        expected = {p.symbol: p.market for p in build_universe(SIM).pairs}
        assert set(markets) == set(expected)
        for symbol, m in markets.items():
            want = expected[symbol]
            assert (m.venue, m.base, m.quote, m.price_tick, m.size_increment, m.min_size, m.min_funds) == (
                "kucoin", want.base, want.quote, want.price_tick, want.size_increment, want.min_size, want.min_funds)
            assert m.taker_fee == Decimal("0.001") and m.fee_currency == "quote"
        balances = {b.asset: b for b in await v.fetch_balances()}
        assert balances["USDT"].free == balances["USDT"].total == Decimal(100_000)
        tickers = await v.fetch_tickers()
        assert len(tickers) == 60 and all(t.bid < t.ask for t in tickers)
        book = await v.fetch_book("BTC-USDT", 5)  # KuCoin takes only 20 or 100: the venue finds out
        assert len(book.bids) == len(book.asks) == 5 and book.snapshot and book.bids[0][0] < book.asks[0][0]
        assert len((await v.fetch_book("ETH-USDT", 50)).asks) == 50
        with pytest.raises(VenueError, match="unknown symbol"):
            await v.fetch_book("NOPE-USDT")
    finally:
        await v.close()


async def test_limit_ioc_orders_are_filled_never_doubled_and_looked_up(frozen):
    v = venue(frozen)
    try:
        await v.load_markets()
        (p0, s0), (p1, s1) = (await v.fetch_book("BTC-USDT", 5)).asks[:2]
        filled = await v.place_order(buy("cc-fill", dec(p0), dec(s0)))
        assert filled.status is OrderStatus.FILLED and filled.filled_size == dec(s0)
        fill = filled.fills[0]
        assert (fill.price, fill.fee_asset, fill.venue, fill.client_oid) == (dec(p0), "USDT", "kucoin", "cc-fill")
        assert fill.fee == dec(p0) * dec(s0) * Decimal("0.001")
        assert await v.place_order(buy("cc-fill", dec(p0), dec(s0))) == filled  # a retry: the same order
        partial = await v.place_order(buy("cc-part", dec(p1), dec(s1) * 2))
        assert partial.status is OrderStatus.PARTIAL and partial.filled_size == dec(s1)
        bid = (await v.fetch_book("BTC-USDT", 5)).bids[0][0]
        missed = await v.place_order(buy("cc-miss", dec(bid), Decimal("0.001")))
        assert missed.status is OrderStatus.CANCELED and missed.fills == ()
        await v.cancel_order("BTC-USDT", "cc-miss")  # final already
        tiny = await v.place_order(buy("cc-tiny", dec(p1), Decimal("0.000001")))
        assert tiny.status is OrderStatus.REJECTED and "minimum" in tiny.reason
        async with aiohttp.ClientSession() as http, http.get(frozen.url + "/_sim/orders") as resp:
            oids = [o["clientOid"] for o in await resp.json()]
        assert sorted(oids) == ["cc-fill", "cc-miss", "cc-part"]  # one each; the rejected one never rested
        other = venue(frozen)  # a restarted process: finds the order by its client id
        try:
            await other.load_markets()
            again = await other.fetch_order("BTC-USDT", "cc-part")
            assert again.status is OrderStatus.PARTIAL and again.filled_size == dec(s1)
            with pytest.raises(OrderNotFoundError):
                await other.fetch_order("BTC-USDT", "never-sent")
        finally:
            await other.close()
    finally:
        await v.close()


async def test_rate_limits_are_retryable_and_a_retry_never_doubles(frozen):
    v = venue(frozen)
    try:
        await v.load_markets()
        ask = (await v.fetch_book("BTC-USDT", 5)).asks[0][0]
        await faults(frozen, http_429_burst=1)
        with pytest.raises(RetryableVenueError):
            await v.fetch_balances()
        await faults(frozen, http_429_burst=1)
        order = buy("cc-rl", dec(ask), Decimal("0.001"))
        with pytest.raises(RetryableVenueError):
            await v.place_order(order)
        result = await v.place_order(order)  # looked up by client id first; it was never placed: sent now
        assert result.status is OrderStatus.FILLED
        async with aiohttp.ClientSession() as http, http.get(frozen.url + "/_sim/orders") as resp:
            assert [o["clientOid"] for o in await resp.json()].count("cc-rl") == 1
    finally:
        await v.close()


async def test_errors_never_carry_credentials(frozen):
    v = venue(frozen, credentials={**CREDS, "secret": "not-the-secret-xyz"})
    try:
        with pytest.raises(VenueError) as info:
            await v.fetch_balances()
        assert not isinstance(info.value, RetryableVenueError)
        assert "400005" in str(info.value) and "not-the-secret-xyz" not in str(info.value)
    finally:
        await v.close()


async def test_books_stream_through_ccxt_pro(frozen):
    v = venue(frozen, depth=20)
    try:
        await v.load_markets()
        assert v.uses_websocket
        seen: dict[str, object] = {}
        stream = v.stream_books(["BTC-USDT", "ETH-USDT"])
        async with asyncio.timeout(30):
            async for batch in stream:
                for update in batch:
                    seen[update.symbol] = update
                if len(seen) == 2:
                    break
        await stream.aclose()
        rest = await v.fetch_book("ETH-USDT", 20)  # frozen market: the streamed book is the REST one
        assert seen["ETH-USDT"].bids == rest.bids and seen["ETH-USDT"].asks == rest.asks
        assert v.stats["recycles"] == 0
    finally:
        await v.close()


async def test_a_silent_connection_is_recycled_by_the_watchdog(frozen):
    gaps: list[str] = []
    v = venue(frozen, watch_timeout_s=0.5, on_gap=gaps.append)
    try:
        await v.load_markets()
        books = 0
        stream = v.stream_books(["BTC-USDT"])
        async with asyncio.timeout(60):
            async for batch in stream:  # frozen: one book, then silence, a recycle, the book again
                books += len(batch)
                if books >= 2:
                    break
        await stream.aclose()
        assert v.stats["recycles"] >= 1 and v.stats["watch_timeouts"] >= 1 and gaps[:1] == ["BTC-USDT"]
    finally:
        await v.close()


async def test_books_can_be_polled_over_rest_within_the_rate_limit():
    server = await kucoin_sim(speed=4)
    v = venue(server, streaming="rest", poll_interval_s=0.05, depth=5)
    try:
        await v.load_markets()
        assert not v.uses_websocket
        seqs: dict[str, list[int]] = {"BTC-USDT": [], "ETH-USDT": []}
        stream = v.stream_books(list(seqs))
        async with asyncio.timeout(30):
            async for batch in stream:
                for update in batch:
                    seqs[update.symbol].append(update.sequence)
                    assert len(update.bids) == 5
                if min(len(s) for s in seqs.values()) >= 3:
                    break
        await stream.aclose()
        assert all(s == sorted(s) and len(set(s)) == len(s) for s in seqs.values())
        assert v.stats["polls"] >= 6 and v._ex.enableRateLimit  # polling never turns the limiter off
    finally:
        await v.close()
        await server.stop()


async def test_configured_by_exchange_id_with_credentials_from_the_environment(frozen, monkeypatch, tmp_path):
    monkeypatch.setenv("CRYPTOARB_SECRETS__CCXT__KUCOIN__API_KEY", "sim-key")
    monkeypatch.setenv("CRYPTOARB_SECRETS__CCXT__KUCOIN__SECRET", "sim-secret")
    monkeypatch.setenv("CRYPTOARB_SECRETS__CCXT__KUCOIN__PASSWORD", "sim-passphrase")
    path = tmp_path / "cryptoarb.toml"
    path.write_text(f'venues = ["kucoin", "binance"]\n[ccxt.kucoin]\napi_url = "{frozen.url}"\n'
                    '[ccxt.kucoin.options]\nuta = false\n[ccxt.kucoin.options.fetchMarkets]\ntypes = ["spot"]\n')
    settings = load_settings(path)
    assert settings.venues == ["kucoin", "binance"]  # any ccxt exchange id is a venue
    v = CcxtVenue.from_settings(settings, "kucoin", enable_rate_limit=False)
    try:
        assert v.authenticated
        await v.load_markets()
        balances = await v.fetch_balances()
        updated = with_balances(settings, "kucoin", balances)
        assert updated.balances["kucoin"]["USDT"] == 100_000 and updated.balances["kucoin"]["ETH"] == 40
    finally:
        await v.close()
    with pytest.raises(ConfigError, match="unknown venue 'mtgox'"):
        load_settings(path.write_text('venues = ["mtgox"]\n') and path)
    with pytest.raises(VenueError, match="does not support"):
        CcxtVenue("mtgox")


def test_with_balances_keeps_only_what_is_held():
    settings = load_settings(None)
    rows = [Balance("coinbase", "BTC", Decimal("0.5"), Decimal("0.5")),
            Balance("coinbase", "XRP", Decimal(0), Decimal(3))]
    assert with_balances(settings, "coinbase", rows).balances["coinbase"] == {"BTC": 0.5}
