"""The Coinbase feed client against the loopback Coinbase simulator: books stay equal to what the feed
published through deltas, sequence gaps and dropped connections; the simulator refuses what Coinbase
refuses. The market is frozen and stepped by the test, so every run is the same."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import orjson
from feed_harness import Recorder, running

from cryptoarb.venues.coinbase.sim_server import CoinbaseSimConfig, CoinbaseSimServer
from cryptoarb.venues.coinbase.ws import CoinbaseMarketData, CoinbaseWsOptions
from cryptoarb.venues.kucoin.limits import Backoff

PRODUCTS = ["BTC-USD", "ETH-USD", "BTC-EUR"]


class Feed(Recorder):
    """A client, the books it built and everything it reported."""

    def __init__(self, http: aiohttp.ClientSession, url: str, **options: object) -> None:
        super().__init__("coinbase")
        self.client = CoinbaseMarketData(
            http, url=url, on_updates=self.on_updates, on_gap=self.on_gap, on_notice=self.on_notice,
            options=CoinbaseWsOptions(**options), backoff_factory=lambda: Backoff(0.01, 0.05, 0.0))

    def matches(self, server: CoinbaseSimServer, *products: str) -> bool:
        return all(self.book(p) == server.published_book(p) for p in products)


@asynccontextmanager
async def feed(server: CoinbaseSimServer, products=PRODUCTS, **options: object) -> AsyncIterator[Feed]:
    async with aiohttp.ClientSession() as http:
        f = Feed(http, server.url, **options)
        async with running(f.client, products):
            await f.signal.until(lambda: f.matches(server, *products))
            yield f


async def advance_until(server: CoinbaseSimServer, f: Feed, condition, steps: int = 400) -> None:
    for _ in range(steps):
        if condition():
            return
        server.advance(1)
    raise AssertionError("condition never met")


async def test_snapshot_then_batched_deltas_keep_the_books_equal(coinbase_server):
    async with feed(coinbase_server) as f:
        for _ in range(60):
            coinbase_server.advance(1)
            await f.signal.until(lambda: f.matches(coinbase_server, *PRODUCTS))
        stats = f.client.stats()
        assert stats["deltas"] > 30 and stats["tickers"] > 30 and stats["snapshots"] == len(PRODUCTS)
        assert stats["gaps"] == 0 and f.gaps == [] and stats["synced"] == len(PRODUCTS)
        book = f.books.get(("coinbase", "BTC-USD"))
        assert book.best_bid < book.best_ask and len(book.bids) == 50


async def test_a_dropped_round_is_a_sequence_gap_and_the_book_is_resynced(coinbase_server):
    async with feed(coinbase_server) as f:
        first = coinbase_server.trade_id("BTC-USD")
        coinbase_server.skip("BTC-USD", 1)  # the feed drops one round of BTC-USD messages
        await advance_until(coinbase_server, f, lambda: coinbase_server.stats["skipped"] == 1)
        assert coinbase_server.trade_id("BTC-USD") == first + 1
        await advance_until(coinbase_server, f, lambda: coinbase_server.trade_id("BTC-USD") == first + 2)
        await f.signal.until(lambda: f.gaps == ["BTC-USD"] and f.matches(coinbase_server, "BTC-USD"))
        assert f.client.stats()["resyncs"] == 1 and f.client.stats()["snapshots"] == len(PRODUCTS) + 1
        assert not f.books.get(("coinbase", "BTC-USD")).gapped  # healed by the fresh snapshot
        for _ in range(20):  # and deltas flow again on top of it
            coinbase_server.advance(1)
            await f.signal.until(lambda: f.matches(coinbase_server, *PRODUCTS))
        assert f.gaps == ["BTC-USD"]


async def test_a_heartbeat_ahead_of_the_last_ticker_is_a_gap(coinbase_server):
    async with feed(coinbase_server) as f:
        coinbase_server.skip("ETH-USD", 1)
        await advance_until(coinbase_server, f, lambda: coinbase_server.stats["skipped"] == 1)
        coinbase_server.send_heartbeats()  # nothing else moved: only the heartbeat shows the loss
        await f.signal.until(lambda: f.gaps == ["ETH-USD"] and f.matches(coinbase_server, "ETH-USD"))
        assert f.client.stats()["heartbeats"] >= len(PRODUCTS)


async def test_a_dropped_connection_reconnects_resubscribes_and_resyncs(coinbase_server):
    async with feed(coinbase_server) as f:
        assert coinbase_server.drop_connections() == 1
        await f.signal.until(lambda: sorted(f.gaps) == sorted(PRODUCTS))
        assert any(n.kind == "connection" for n in f.notices)
        await f.signal.until(lambda: f.matches(coinbase_server, *PRODUCTS))
        for _ in range(10):
            coinbase_server.advance(1)
            await f.signal.until(lambda: f.matches(coinbase_server, *PRODUCTS))
        stats = f.client.stats()
        assert stats["connects"] == 2 and stats["disconnects"] == 1 and stats["snapshots"] == 2 * len(PRODUCTS)


async def test_a_silent_feed_is_dropped_by_the_watchdog():
    server = CoinbaseSimServer(CoinbaseSimConfig(speed=0, heartbeat_interval_s=3600))
    await server.start()
    try:
        async with feed(server, ["BTC-USD"], stale_after_s=0.2) as f:
            await f.signal.until(lambda: f.gaps == ["BTC-USD"] and f.matches(server, "BTC-USD"))
            assert f.client.stats()["connects"] >= 2
    finally:
        await server.stop()


async def test_products_are_sharded_over_connections(coinbase_server):
    async with feed(coinbase_server, products_per_connection=1) as f:
        assert f.client.stats()["connects"] == len(PRODUCTS) == len(coinbase_server.conns)
        coinbase_server.advance(5)
        await f.signal.until(lambda: f.matches(coinbase_server, *PRODUCTS))


async def test_the_feed_as_a_ccxt_venues_book_stream(coinbase_server):
    from cryptoarb.venues.ccxt_venue import CcxtVenue

    async with aiohttp.ClientSession() as http:
        client = CoinbaseMarketData(http, url=coinbase_server.url)
        v = CcxtVenue("coinbaseexchange", name="coinbase", market_data=client.stream_books)  # orders via ccxt
        stream = v.stream_books(["BTC-USD", "ETH-USD"])
        seen = {}
        async with asyncio.timeout(10):
            async for batch in stream:
                seen.update({u.symbol: u for u in batch})
                if len(seen) == 2:
                    break
        await stream.aclose()
        await v.close()
        assert seen["BTC-USD"].snapshot and seen["BTC-USD"].venue == "coinbase"
        assert list(seen["ETH-USD"].bids) == coinbase_server.published_book("ETH-USD")[0]


async def raw_ws(server: CoinbaseSimServer, http: aiohttp.ClientSession, *messages: dict) -> list[dict]:
    """Send ``messages`` on a fresh socket; every frame received until the server closes it or goes quiet
    after answering each message."""
    out = []
    async with http.ws_connect(server.url) as ws:
        for message in messages:
            await ws.send_str(orjson.dumps(message).decode())
        while True:
            msg = await asyncio.wait_for(ws.receive(), 5)
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            out.append(orjson.loads(msg.data))
            if len([m for m in out if m["type"] in ("subscriptions", "error")]) == len(messages):
                break
    return out


async def test_the_simulator_refuses_what_coinbase_refuses(coinbase_server):
    async with aiohttp.ClientSession() as http:
        replies = await raw_ws(coinbase_server, http,
                               {"type": "subscribe", "product_ids": ["FOO-BAR"], "channels": ["ticker"]},
                               {"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["level2"]},
                               {"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["nope"]},
                               {"type": "subscribe", "channels": [{"name": "ticker", "product_ids": ["BTC-USD"]}]})
        errors = [m["reason"] for m in replies if m["type"] == "error"]
        assert errors == ["FOO-BAR is not a valid product", "level2 channel requires authentication",
                          "nope is not a valid channel"]
        assert replies[-1] == {"type": "subscriptions", "channels": [{"name": "ticker", "product_ids": ["BTC-USD"]}]}


async def test_the_simulator_closes_silent_and_chatty_clients():
    server = CoinbaseSimServer(CoinbaseSimConfig(speed=0, subscribe_timeout_s=0.1, client_messages_per_s=3))
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(server.url) as ws:  # never subscribes
                error = await asyncio.wait_for(ws.receive_json(), 5)
                assert error["type"] == "error" and "5 seconds" in error["reason"]
                assert (await asyncio.wait_for(ws.receive(), 5)).type == aiohttp.WSMsgType.CLOSE
            async with http.ws_connect(server.url) as ws:
                for _ in range(4):
                    await ws.send_str('{"type":"subscribe","product_ids":["BTC-USD"],"channels":["heartbeat"]}')
                frames = []
                while (msg := await asyncio.wait_for(ws.receive(), 5)).type == aiohttp.WSMsgType.TEXT:
                    frames.append(orjson.loads(msg.data))
                assert frames[-1] == {"type": "error", "message": "rate limit exceeded", "reason": "too many messages"}
                assert msg.type == aiohttp.WSMsgType.CLOSE
    finally:
        await server.stop()


async def test_sim_server_command_serves_the_feed(sim_process):
    url = sim_process("cryptoarb.venues.coinbase.sim_cli", "--speed", "4")
    async with aiohttp.ClientSession() as http:
        seen = Recorder("coinbase")
        client = CoinbaseMarketData(http, url=url, on_updates=seen.on_updates)
        async with running(client, ["BTC-USD", "USDT-EUR"]):
            await seen.signal.until(lambda: client.stats()["deltas"] >= 5 and client.stats()["synced"] == 2, 20)
            book = seen.books.get(("coinbase", "BTC-USD"))
            assert 0 < book.best_bid < book.best_ask
            async with http.get(url.replace("ws://", "http://") + "/_sim/book/BTC-USD") as resp:
                assert (await resp.json())["product_id"] == "BTC-USD"
