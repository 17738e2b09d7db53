"""BL3P: the integer codec, and the feed client against the loopback BL3P simulator (frozen market,
stepped by the test): books equal to what was pushed, a dropped connection, a silent feed, trades."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from feed_harness import Recorder, running

from cryptoarb.venues.bl3p.codec import (
    AMOUNT_SCALE,
    PRICE_SCALE,
    CodecError,
    book_update,
    decode_orderbook,
    decode_trade,
    encode_orderbook,
    market_id,
    orderbook_url,
    symbol_of,
)
from cryptoarb.venues.bl3p.sim_server import Bl3pSimServer
from cryptoarb.venues.bl3p.ws import Bl3pMarketData, Bl3pWsOptions
from cryptoarb.venues.kucoin.limits import Backoff

SYMBOLS = ["BTC-EUR", "LTC-EUR"]


# -- codec ----------------------------------------------------------------------------------------------
def test_integer_prices_and_amounts():
    book = decode_orderbook(b'{"marketplace":"BTCEUR","asks":[{"amount_int":2000000,"price_int":509400000,"count":1},'
                            b'{"amount_int":100,"price_int":509300000,"count":1}],'
                            b'"bids":[{"amount_int":1500000,"price_int":509300000,"count":2},'
                            b'{"amount_int":500000,"price_int":509200000,"count":1},'
                            b'{"amount_int":500000,"price_int":509300000,"count":1}]}')
    update = book_update(book, "BTC-EUR", 3, 1.25)
    assert (update.venue, update.symbol, update.sequence, update.snapshot) == ("bl3p", "BTC-EUR", 3, True)
    assert update.asks == ((5093.0, 1e-06), (5094.0, 0.02))  # sorted, best first
    assert update.bids == ((5093.0, 0.02), (5092.0, 0.005))  # one level per price
    trade = decode_trade(b'{"date":1509098234,"marketplace":"BTCEUR","type":"buy","price_int":509368999,'
                         b'"amount_int":20000000}')
    assert (trade.price, trade.amount, trade.type, trade.date) == (5093.68999, 0.2, "buy", 1509098234)
    assert (PRICE_SCALE, AMOUNT_SCALE) == (10**5, 10**8)


def test_round_trip_and_names():
    raw = encode_orderbook("LTCEUR", [(92.88, 6.36113)], [(93.5, 7.763)])
    book = decode_orderbook(raw)
    assert book.marketplace == "LTCEUR" and book.bids[0].price_int == 9288000 and book.bids[0].amount_int == 636113000
    assert book_update(book, "LTC-EUR", 1, 0.0).asks == ((93.5, 7.763),)
    assert (market_id("BTC-EUR"), symbol_of("LTCEUR")) == ("BTCEUR", "LTC-EUR")
    assert orderbook_url("wss://api.bl3p.eu/", "BTC-EUR") == "wss://api.bl3p.eu/1/BTCEUR/orderbook"
    with pytest.raises(CodecError):
        decode_orderbook(b'{"asks":[{"price_int":"x"}]}')


# -- the feed against the simulator ----------------------------------------------------------------------
class Feed(Recorder):
    def __init__(self, http: aiohttp.ClientSession, url: str, **options: object) -> None:
        super().__init__("bl3p")
        self.trades: list[tuple[str, object]] = []
        self.client = Bl3pMarketData(http, url=url, on_updates=self.on_updates, on_gap=self.on_gap,
                                     on_notice=self.on_notice, on_trade=self._trade,
                                     options=Bl3pWsOptions(**options),
                                     backoff_factory=lambda: Backoff(0.01, 0.05, 0.0))

    def _trade(self, symbol: str, trade: object) -> None:
        self.trades.append((symbol, trade))
        self.signal.set()

    def matches(self, server: Bl3pSimServer, *symbols: str) -> bool:
        return all(self.book(s) == server.pushed_book(s) for s in symbols)


@asynccontextmanager
async def feed(server: Bl3pSimServer, symbols=SYMBOLS, **options: object) -> AsyncIterator[Feed]:
    async with aiohttp.ClientSession() as http:
        f = Feed(http, server.url, **options)
        async with running(f.client, symbols):
            await f.signal.until(lambda: f.matches(server, *symbols))
            yield f


async def test_every_change_pushes_the_whole_book(bl3p_server):
    async with feed(bl3p_server, trades=True) as f:
        frames = f.client.stats()["frames"]
        for _ in range(300):
            bl3p_server.advance(1)
            await f.signal.until(lambda: f.matches(bl3p_server, *SYMBOLS))
        stats = f.client.stats()
        assert stats["frames"] > frames + 10 and stats["synced"] == 2 and f.gaps == []
        assert stats["connects"] == 4  # a socket per market and channel: the channel is in the URL
        await f.signal.until(lambda: len(f.trades) == bl3p_server.stats["trades_out"])
        assert {s for s, _ in f.trades} <= set(SYMBOLS) and f.trades
        book = f.books.get(("bl3p", "BTC-EUR"))
        assert 0 < book.best_bid < book.best_ask and len(book.bids) == 50


async def test_a_dropped_connection_is_a_gap_until_the_book_returns(bl3p_server):
    async with feed(bl3p_server) as f:
        assert bl3p_server.drop_connections() == 2
        await f.signal.until(lambda: sorted(f.gaps) == SYMBOLS)
        assert [n.kind for n in f.notices] == ["connection", "connection"]
        await f.signal.until(lambda: f.matches(bl3p_server, *SYMBOLS))  # reconnected: the book comes back
        for _ in range(100):
            bl3p_server.advance(1)
            await f.signal.until(lambda: f.matches(bl3p_server, *SYMBOLS))
        assert f.client.stats()["connects"] == 4 and f.client.stats()["disconnects"] == 2


async def test_a_silent_market_is_reconnected_by_the_staleness_watchdog(bl3p_server):
    async with feed(bl3p_server, ["BTC-EUR"], stale_after_s=0.2) as f:
        bl3p_server.silence("BTC-EUR")
        await f.signal.until(lambda: f.gaps == ["BTC-EUR"])
        assert f.client.stats()["stale"] >= 1
        bl3p_server.silence("BTC-EUR", False)
        await f.signal.until(lambda: f.matches(bl3p_server, "BTC-EUR"))


async def test_unknown_markets_are_not_found(bl3p_server):
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(bl3p_server.url + "/1/ETHEUR/orderbook")
        assert info.value.status == 404


async def test_sim_server_command_serves_bl3p(sim_process):
    url = sim_process("cryptoarb.venues.bl3p.sim_cli", "--speed", "5")
    async with aiohttp.ClientSession() as http:
        seen = Recorder("bl3p")
        client = Bl3pMarketData(http, url=url, on_updates=seen.on_updates)
        async with running(client, ["BTC-EUR"]):
            await seen.signal.until(lambda: client.stats()["frames"] >= 3, 20)
            book = seen.books.get(("bl3p", "BTC-EUR"))
            assert 0 < book.best_bid < book.best_ask
