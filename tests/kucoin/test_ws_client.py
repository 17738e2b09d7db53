"""KucoinMarketData against the loopback fake: sharding, pacing, reconnects, errors, level2 sync, refresh."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from fake_ws import TICKER_ALL, Changed, FakeKucoin

from cryptoarb.core.books import BookStore
from cryptoarb.model import BookUpdate, Level, Notice
from cryptoarb.venues.kucoin.ws import KucoinMarketData, WsOptions

DEPTH50 = "/spotMarket/level2Depth50"
LEVEL2 = "/market/level2"
SYMS = [f"S{i:04d}-USDT" for i in range(1250)]
FAST = WsOptions(backoff_base_s=0.02, backoff_max_s=0.2, welcome_timeout_s=3.0, ack_timeout_s=3.0,
                 stale_after_s=None, snapshot_retry_s=0.01)


class Harness:
    """The engine's side: a BookStore fed by the sink, gap and notice callbacks, waitable."""

    def __init__(self) -> None:
        self.updates: list[BookUpdate] = []
        self.batches: list[list[BookUpdate]] = []
        self.gaps: list[str] = []
        self.notices: list[Notice] = []
        self.store = BookStore()
        self.changed = Changed()

    def sink(self, batch: list[BookUpdate]) -> None:
        self.batches.append(batch)
        for u in batch:
            self.updates.append(u)
            self.store.apply(u)
        self.changed.set()

    def on_gap(self, symbol: str) -> None:
        self.gaps.append(symbol)
        book = self.store.get(("kucoin", symbol))
        if book is not None:
            book.mark_gapped()
        self.changed.set()

    def on_notice(self, notice: Notice) -> None:
        self.notices.append(notice)
        self.changed.set()

    def seen(self, symbol: str) -> list[BookUpdate]:
        return [u for u in self.updates if u.symbol == symbol]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
        await self.changed.wait_for(predicate, timeout, what)


Start = Callable[..., Awaitable[tuple[FakeKucoin, KucoinMarketData, Harness]]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """start(fake_kwargs..., options=..., fetcher=...) -> a running fake, client and harness."""
    cleanups: list[Callable[[], Awaitable[None]]] = []
    http = aiohttp.ClientSession()

    async def _start(*, options: WsOptions = FAST, fetcher: Any = None,
                     **fake_kwargs: Any) -> tuple[FakeKucoin, KucoinMarketData, Harness]:
        fake = FakeKucoin(**fake_kwargs)
        await fake.start()
        h = Harness()
        md = KucoinMarketData(http, rest_url=fake.rest_url, on_updates=h.sink, on_gap=h.on_gap,
                              on_notice=h.on_notice, snapshot_fetcher=fetcher, options=options)
        task = asyncio.create_task(md.run())

        async def stop() -> None:
            await md.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await fake.close()

        cleanups.append(stop)
        return fake, md, h

    yield _start
    for stop in reversed(cleanups):
        await stop()
    await http.close()


def depth_conns(fake: FakeKucoin, prefix: str = DEPTH50) -> list[Any]:
    return [c for c in fake.live() if c.topics.get(prefix)]


async def test_1250_depth_symbols_shard_within_every_limit(start: Start):
    fake, md, h = await start()
    md.subscribe_all_tickers()
    md.set_depth_symbols(SYMS)
    await md.wait_live(timeout=15)
    assert fake.subscribed(DEPTH50) == set(SYMS) and fake.subscribed(TICKER_ALL) == {"all"}
    conns = depth_conns(fake)
    assert len(conns) >= 5
    assert all(c.topic_count <= 300 for c in fake.live())
    assert max(n for c in fake.conns for n in c.subscribe_sizes) <= 100
    assert sum(c.topic_count for c in conns) == 1250  # each symbol on exactly one connection
    assert fake.violations == [] and fake.errors_sent == []
    totals = md.stats()["totals"]
    assert (totals["topics"], totals["subscribed"], totals["errors"]) == (1251, 1251, 0)

    assert await fake.push_depth(SYMS[700], [(1.0, 2.0)], [(1.1, 3.0)]) == 1
    await h.wait_for(lambda: bool(h.seen(SYMS[700])), what="a depth push")

    md.set_depth_symbols(SYMS[:400])  # shrink: unsubscribe, and connections left empty go away
    await fake.wait_for(lambda: fake.subscribed(DEPTH50) == set(SYMS[:400]) and len(depth_conns(fake)) == 2,
                        timeout=10, what="the shrink")
    md.set_depth_symbols(SYMS[200:1250])  # and grow again into the freed room
    await fake.wait_for(lambda: fake.subscribed(DEPTH50) == set(SYMS[200:]), timeout=15, what="the regrowth")
    assert all(c.topic_count <= 300 for c in fake.live())
    assert fake.violations == [] and fake.errors_sent == []


async def test_pacer_keeps_client_messages_under_the_servers_rate(start: Start):
    fake, md, _ = await start(max_messages=6, window_s=0.5, options=replace(
        FAST, max_client_messages=5, message_window_s=0.5, ping_reserve=1, topics_per_message=10))
    md.set_depth_symbols(SYMS[:100])  # 10 subscribe messages on one connection: 3 windows' worth
    await fake.wait_for(lambda: fake.subscribed(DEPTH50) == set(SYMS[:100]), timeout=10, what="subscriptions")
    assert [len(depth_conns(fake))] == [1] and fake.conns[0].client_messages == 10
    assert fake.violations == []


async def test_dropped_connection_reconnects_with_a_new_token_and_resubscribes(start: Start):
    fake, md, h = await start()
    md.subscribe_all_tickers()
    md.set_depth_symbols(SYMS[:150])
    await fake.wait_for(lambda: fake.subscribed(DEPTH50) == set(SYMS[:150]) and fake.subscribed(TICKER_ALL),
                        what="subscriptions")
    [old] = depth_conns(fake)
    assert await fake.push_depth(SYMS[7], [(5.0, 1.0)], [(6.0, 1.0)]) == 1
    await h.wait_for(lambda: bool(h.seen(SYMS[7])), what="depth before the drop")
    await fake.drop(old)
    await h.wait_for(lambda: h.gaps == [SYMS[7]], what="the book on the lost connection marked gapped")
    await fake.wait_for(lambda: any(c is not old and c.topics.get(DEPTH50) == set(SYMS[:150])
                                    for c in depth_conns(fake)), what="resubscription")
    [new] = depth_conns(fake)
    assert new.token != old.token and new.connect_id != old.connect_id
    assert fake.subscribed(TICKER_ALL) == {"all"}  # the ticker connection was not disturbed
    assert await fake.push_depth(SYMS[3], [(5.0, 1.0)], [(6.0, 1.0)]) == 1
    await h.wait_for(lambda: bool(h.seen(SYMS[3])), what="data after the reconnect")
    depth_stats = [c for c in md.stats()["connections"] if c["kind"] == "depth"]
    assert [c["reconnects"] for c in depth_stats] == [1]
    assert fake.violations == []


async def test_lost_ticker_connection_gaps_the_books_it_fed(start: Start):
    fake, md, h = await start()
    md.subscribe_all_tickers()
    md.set_depth_symbols(["BTC-USDT"])
    await md.wait_live(timeout=5)
    await fake.push_depth("BTC-USDT", [(100.0, 1.0)], [(101.0, 1.0)])
    for symbol in ("BTC-USDT", "ETH-USDT", "XRP-USDT"):
        await fake.push_ticker(symbol, 9.0, 10.0)
    await h.wait_for(lambda: bool(h.seen("XRP-USDT") and h.seen("BTC-USDT")), what="depth and tickers")
    [tickers] = [c for c in fake.live() if c.topics.get(TICKER_ALL)]
    await fake.drop(tickers)
    await h.wait_for(lambda: sorted(h.gaps) == ["ETH-USDT", "XRP-USDT"], what="ticker-fed books gapped")
    await fake.wait_for(lambda: fake.subscribed(TICKER_ALL) == {"all"} and tickers.closed, what="reconnect")


async def test_missed_pong_is_a_dead_connection(start: Start):
    fake, md, _ = await start(ping_interval_ms=100, ping_timeout_ms=300)
    md.set_depth_symbols(SYMS[:3])
    await fake.wait_for(lambda: fake.subscribed(DEPTH50) == set(SYMS[:3]), what="subscription")
    [old] = depth_conns(fake)
    await fake.wait_for(lambda: old.client_messages >= 3, what="pings answered")  # 1 subscribe + pings
    old.ignore_pings = True
    await fake.wait_for(lambda: old.closed and any(c is not old for c in depth_conns(fake)),
                        what="reconnect after the missed pong")
    [conn] = [c for c in md.stats()["connections"] if c["kind"] == "depth"]
    assert "no pong" in conn["last_reason"]


async def test_error_frames_are_reported_without_silencing_the_socket(start: Start):
    fake, md, h = await start(known_symbols=set(SYMS))
    md.subscribe_all_tickers()
    md.set_depth_symbols([*SYMS[:5], "NOPE-USDT"])
    await fake.wait_for(lambda: fake.subscribed(DEPTH50) == set(SYMS[:5]), what="the valid symbols")
    await h.wait_for(lambda: any(n.fields.get("code") == "404" for n in h.notices), what="the 404 notice")
    assert "NOPE-USDT" not in fake.subscribed(DEPTH50)

    [conn] = depth_conns(fake)
    await fake.send_error(conn, 500, "internal error")  # an unsolicited error: report it, keep reading
    await h.wait_for(lambda: any(n.fields.get("code") == "500" for n in h.notices), what="the 500 notice")
    assert await fake.push_depth(SYMS[1], [(5.0, 1.0)], [(6.0, 1.0)]) == 1
    await h.wait_for(lambda: bool(h.seen(SYMS[1])), what="data after the error")
    assert not conn.closed and len(fake.conns) == 2
    assert md.stats()["totals"]["errors"] >= 2

    await fake.send_error(conn, 401, "token is expired")  # this one concerns the connection
    await fake.wait_for(lambda: conn.closed and fake.subscribed(DEPTH50) == set(SYMS[:5]),
                        what="reconnect after token is expired")
    assert depth_conns(fake)[0].token != conn.token


async def test_ticker_all_does_not_overwrite_books_with_live_depth(start: Start):
    fake, md, h = await start()
    md.subscribe_all_tickers()
    md.set_depth_symbols(["BTC-USDT"])
    await md.wait_live(timeout=5)
    await fake.push_ticker("BTC-USDT", 99.0, 101.0)  # depth not live yet: the ticker keeps the top fresh
    await h.wait_for(lambda: len(h.seen("BTC-USDT")) == 1, what="first ticker")
    await fake.push_depth("BTC-USDT", [(100.0, 1.0), (99.5, 2.0)], [(100.5, 1.0), (101.0, 2.0)])
    await h.wait_for(lambda: len(h.seen("BTC-USDT")) == 2, what="depth")
    await fake.push_ticker("BTC-USDT", 99.0, 101.0)
    await fake.push_ticker("ETH-USDT", 9.0, 10.0)  # same socket, so it arrives after the BTC ticker
    await h.wait_for(lambda: bool(h.seen("ETH-USDT")), what="ETH ticker")
    assert len(h.seen("BTC-USDT")) == 2
    assert list(h.store.get(("kucoin", "BTC-USDT")).bids) == [(100.0, 1.0), (99.5, 2.0)]  # type: ignore[union-attr]
    assert md.tradeable_gate("BTC-USDT") and md.tradeable_gate("ETH-USDT")
    assert md.tradeable_gate("XRP-USDT")  # ticker-only symbols: the health of the ticker:all stream

    md.set_depth_symbols([])  # no one maintains the depth any more: gapped until ticker:all refreshes it
    assert h.gaps == ["BTC-USDT"] and h.store.get(("kucoin", "BTC-USDT")).gapped  # type: ignore[union-attr]
    await fake.push_ticker("BTC-USDT", 99.5, 100.5)
    await h.wait_for(lambda: len(h.seen("BTC-USDT")) == 3, what="ticker:all back for BTC")
    book = h.store.get(("kucoin", "BTC-USDT"))
    assert book is not None and not book.gapped
    assert (list(book.bids), list(book.asks)) == ([(99.5, 2.5)], [(100.5, 1.5)])


class Exchange:
    """One symbol's true book and sequence, as the exchange holds it; serves REST snapshots."""

    def __init__(self, fake: FakeKucoin, symbol: str, h: Harness) -> None:
        self.fake = fake
        self.h = h
        self.symbol = symbol
        self.seq = 100
        self.bids = {100.0: 1.0, 99.0: 2.0}
        self.asks = {101.0: 1.0, 102.0: 2.0}
        self.fetches = 0
        self.hold: asyncio.Event | None = None  # set to make the next fetches wait
        self.stale_next = False

    def change(self, bids: Sequence[Level] = (), asks: Sequence[Level] = ()) -> tuple[int, int]:
        start = self.seq + 1
        for side, rows in ((self.bids, bids), (self.asks, asks)):
            for p, s in rows:
                if s == 0:
                    side.pop(p, None)
                else:
                    side[p] = s
        self.seq += max(1, len(bids) + len(asks))
        return start, self.seq

    async def push(self, bids: Sequence[Level] = (), asks: Sequence[Level] = ()) -> None:
        start, end = self.change(bids, asks)
        await self.fake.push_level2(self.symbol, start, end, bids=bids, asks=asks)

    async def fetch(self, symbol: str) -> BookUpdate:
        assert symbol == self.symbol
        self.fetches += 1
        self.h.changed.set()
        if self.hold is not None:
            await self.hold.wait()
        seq = self.seq - 10 if self.stale_next else self.seq
        self.stale_next = False
        return BookUpdate("kucoin", symbol, tuple(sorted(self.bids.items(), reverse=True)),
                          tuple(sorted(self.asks.items())), seq, 0, 0.0)

    def matches(self, h: Harness) -> bool:
        book = h.store.get(("kucoin", self.symbol))
        return (book is not None and not book.gapped and book.sequence == self.seq
                and list(book.bids) == sorted(self.bids.items(), reverse=True)
                and list(book.asks) == sorted(self.asks.items()))


async def test_level2_gap_marks_the_book_gapped_and_resyncs_it(start: Start):
    box: list[Exchange] = []
    fake, md, h = await start(options=replace(FAST, depth_mode="level2"), fetcher=lambda s: box[0].fetch(s))
    ex = Exchange(fake, "BTC-USDT", h)
    box.append(ex)
    ex.hold = asyncio.Event()
    md.set_depth_symbols(["BTC-USDT"])
    await fake.wait_for(lambda: fake.subscribed(LEVEL2) == {"BTC-USDT"}, what="subscription")
    await h.wait_for(lambda: ex.fetches == 1, what="the snapshot requested")  # on the subscribe ack
    assert not md.tradeable_gate("BTC-USDT") and md.gapped_symbols() == {"BTC-USDT"}
    await ex.push(bids=[(99.5, 3.0)])
    await ex.push(asks=[(101.0, 0.0)])
    ex.hold.set()
    ex.hold = None
    await h.wait_for(lambda: ex.matches(h), what="first sync")
    assert md.tradeable_gate("BTC-USDT") and md.gapped_symbols() == set()
    await ex.push(bids=[(100.0, 0.0), (98.0, 4.0)])
    await h.wait_for(lambda: ex.matches(h), what="a delta applied")

    ex.change(asks=[(103.0, 1.0)])  # the exchange moves on; this delta never reaches us
    ex.hold = asyncio.Event()
    await ex.push(asks=[(102.0, 5.0)])
    await h.wait_for(lambda: h.gaps == ["BTC-USDT"], what="the gap")
    assert h.store.get(("kucoin", "BTC-USDT")).gapped  # type: ignore[union-attr]
    assert not md.tradeable_gate("BTC-USDT") and md.gapped_symbols() == {"BTC-USDT"}
    await ex.push(bids=[(97.0, 1.0)])  # buffered while the snapshot is on its way
    ex.hold.set()
    await h.wait_for(lambda: ex.matches(h), what="resync")
    assert md.tradeable_gate("BTC-USDT")
    stats = md.stats()["totals"]
    assert (stats["gaps"], stats["resyncs"], stats["gapped"]) == (1, 2, 0)
    assert all(u.snapshot or u.sequence_start is not None for u in h.updates)


async def test_level2_snapshot_older_than_the_buffer_is_fetched_again(start: Start):
    exchanges: dict[str, Exchange] = {}
    fake, md, h = await start(options=replace(FAST, depth_mode="level2"),
                              fetcher=lambda s: exchanges[s].fetch(s))
    btc = exchanges["BTC-USDT"] = Exchange(fake, "BTC-USDT", h)
    eth = exchanges["ETH-USDT"] = Exchange(fake, "ETH-USDT", h)
    btc.hold = asyncio.Event()  # BTC's first snapshot is still on its way while deltas arrive
    btc.stale_next = True
    md.set_depth_symbols(["BTC-USDT", "ETH-USDT"])
    await h.wait_for(lambda: eth.matches(h), what="ETH synced")
    await btc.push(bids=[(99.5, 3.0)])
    await btc.push(asks=[(101.5, 2.0)])
    await eth.push(bids=[(98.0, 1.0)])  # same socket: once this is through, BTC's deltas are buffered
    await h.wait_for(lambda: eth.matches(h), what="ETH delta")
    btc.hold.set()  # the stale snapshot ends 10 before the buffer starts: a hole, so fetch again
    await h.wait_for(lambda: btc.matches(h), what="BTC synced")
    assert btc.fetches == 2 and h.gaps == []
    assert [u.sequence for u in h.seen("BTC-USDT")] == [btc.seq]  # the stale snapshot never got out


async def test_token_is_refreshed_before_it_expires_without_a_hole(start: Start):
    fake, md, h = await start(token_lifetime_s=1.5, options=replace(FAST, token_refresh_s=0.4))
    md.subscribe_all_tickers()
    md.set_depth_symbols(SYMS[:10])
    await fake.wait_for(lambda: fake.subscribed(TICKER_ALL) and fake.subscribed(DEPTH50) == set(SYMS[:10]),
                        what="subscriptions")
    pushed: list[int] = []
    holes: list[int] = []

    async def pusher() -> None:
        seq = 0
        while True:
            seq += 1
            if await fake.push_ticker("ETH-USDT", 9.0, 10.0, sequence=seq) == 0:
                holes.append(seq)
            pushed.append(seq)
            await asyncio.sleep(0.005)  # the feed's cadence, not a synchronisation

    feed = asyncio.create_task(pusher())
    try:
        await h.wait_for(lambda: all(c["refreshes"] >= 3 for c in md.stats()["connections"]), timeout=10,
                         what="three refreshes per connection")
    finally:
        feed.cancel()
    await h.wait_for(lambda: set(pushed) <= {u.sequence for u in h.seen("ETH-USDT")}, what="every ticker")
    assert holes == [] and len(pushed) > 50
    assert fake.expired_drops == 0 and fake.violations == []
    await fake.wait_for(lambda: len(fake.live()) == 2, what="old sessions closed")
    assert len(fake.tokens) >= 8 and len({c.token for c in fake.conns}) == len(fake.conns)


async def test_bullet_failures_back_off_then_connect(start: Start):
    fake, md, h = await start()
    fake.fail_bullets = 3
    md.set_depth_symbols(SYMS[:2])
    await fake.wait_for(lambda: fake.subscribed(DEPTH50) == set(SYMS[:2]), what="connect after failures")
    assert fake.fail_bullets == 0
    assert sum(n.kind == "kucoin_ws_connect_failed" for n in h.notices) == 3


async def test_silent_subscriptions_are_recycled_by_the_watchdog(start: Start):
    fake, md, _ = await start(options=replace(FAST, stale_after_s=0.3))
    md.set_depth_symbols(SYMS[:2])
    await fake.wait_for(lambda: fake.subscribed(DEPTH50) == set(SYMS[:2]), what="subscription")
    [first] = depth_conns(fake)
    await fake.wait_for(lambda: first.closed and bool(depth_conns(fake)), timeout=3, what="recycle")
    [conn] = [c for c in md.stats()["connections"] if c["kind"] == "depth"]
    assert "no data" in conn["last_reason"]
