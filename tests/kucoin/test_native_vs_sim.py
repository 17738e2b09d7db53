"""The native market-data client (KucoinMarketData) against the KuCoin simulator in a separate process, over
loopback: the whole market plus sharded depth within every limit the server enforces, and each injected
fault survived (reconnect on a new token, resubscribe, resync) without a stale or gapped book ever being
reported tradeable.

The engine's side is wired as ``cryptoarb run`` wires it: ``on_updates`` feeds a ``BookStore`` (a batch,
even empty, proves the venue's stream alive), ``on_gap`` marks the book gapped, and a book may be traded on
when ``tradeable(book, now, Freshness)`` is None.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
import pytest
from fake_ws import Changed
from kucoin_sim_process import SimProcess
from yarl import URL

from cryptoarb.core.books import BookStore, Freshness, tradeable
from cryptoarb.model import BookUpdate, Notice, Order, Side
from cryptoarb.venues.kucoin.rest import KucoinRest
from cryptoarb.venues.kucoin.ws import KucoinMarketData, WsOptions

VENUE = "kucoin"
FRESH = Freshness(max_age=2.0)
FAST = WsOptions(backoff_base_s=0.05, backoff_max_s=0.5, welcome_timeout_s=3.0, ack_timeout_s=5.0,
                 snapshot_retry_s=0.05)
# a moving market whose every ticker is pushed each round, so every book has fresh data to recover with
MOVING = ("--speed", "2", "--ticker-always", "--ticker-hz", "4")
FROZEN = ("--pairs", "60", "--speed", "0", "--ticker-always", "--ticker-hz", "4", "--balance", "USDT=10000000")
SHORT_PINGS = ("--ping-interval-ms", "400", "--ping-timeout-ms", "400")
SHARD40 = replace(FAST, topics_per_connection=40, topics_per_message=40)  # 60 depth books on 2 sockets
SHARD10 = replace(FAST, topics_per_connection=10, topics_per_message=10)


class Engine:
    """The engine's side of the client, as the runner wires it, plus what the tests check on it."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.store = BookStore()
        self.liveness = self.store.liveness(VENUE)
        self.changed = Changed()
        self.updates = 0
        self.gaps: list[str] = []
        self.notices: list[Notice] = []
        self.last_gap: dict[str, float] = {}
        self.last_snapshot: dict[str, float] = {}
        self.traded_while_gapped: list[tuple[str, float]] = []  # must stay empty
        self.history: dict[str, list[tuple[int, list[Any], list[Any]]]] = {}  # symbol -> books after each update

    # -- the client's callbacks -----------------------------------------------------------------------
    def on_updates(self, batch: list[BookUpdate]) -> None:
        now = self.clock()
        self.liveness.alive_at = now  # a batch, even empty, proves the stream alive (Engine.on_batch)
        for update in batch:
            book = self.store.apply(update)
            if update.snapshot:
                self.last_snapshot[update.symbol] = now
            track = self.history.get(update.symbol)
            if track is not None:
                track.append((book.sequence, list(book.bids), list(book.asks)))
        self.updates += len(batch)
        self.changed.set()

    def on_gap(self, symbol: str) -> None:
        book = self.store.get((VENUE, symbol))
        if book is not None:
            book.mark_gapped()
        self.gaps.append(symbol)
        self.last_gap[symbol] = self.clock()
        if self.verdict(symbol) is None:
            self.traded_while_gapped.append((symbol, self.clock()))
        self.changed.set()

    def on_notice(self, notice: Notice) -> None:
        self.notices.append(notice)
        self.changed.set()

    # -- checks ----------------------------------------------------------------------------------------
    def verdict(self, symbol: str) -> str | None:
        return tradeable(self.store.get((VENUE, symbol)), self.clock(), FRESH)

    def untradeable(self, symbols: list[str]) -> list[str]:
        return [s for s in symbols if self.verdict(s) is not None]

    def gapped_now(self) -> list[str]:
        """Books the client reported gapped and has not refreshed with a whole snapshot since."""
        return [s for s, t in self.last_gap.items() if t >= self.last_snapshot.get(s, float("-inf"))]

    def check_gapped_are_untradeable(self) -> list[str]:
        """The rule under test: a book whose data is gapped is never tradeable. Returns the gapped books."""
        gapped = self.gapped_now()
        assert gapped, "expected books to be gapped at this point"
        traded = [s for s in gapped if self.verdict(s) is None]
        assert traded == [], f"gapped books reported tradeable: {traded[:5]}"
        return gapped

    def lost(self) -> list[Notice]:
        return [n for n in self.notices if n.kind == "kucoin_ws_disconnected"]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
        await self.changed.wait_for(predicate, timeout, what)

    @contextlib.asynccontextmanager
    async def ticking(self, every_s: float = 0.05) -> AsyncIterator[None]:
        """Re-evaluate waits as time passes, not only when callbacks fire (staleness is a matter of time)."""

        async def tick() -> None:
            while True:
                await asyncio.sleep(every_s)  # a clock's cadence, as the engine's timers have
                self.changed.set()

        task = asyncio.create_task(tick())
        try:
            yield
        finally:
            task.cancel()


@dataclass
class Wire:
    """The client's HTTP requests as aiohttp traced them: bullets and websocket connects."""

    requests: list[tuple[str, URL]] = field(default_factory=list)

    @property
    def bullets(self) -> int:
        return sum(m == "POST" and u.path == "/api/v1/bullet-public" for m, u in self.requests)

    @property
    def ws_tokens(self) -> list[str]:
        return [u.query["token"] for m, u in self.requests if m == "GET" and "token" in u.query]


@dataclass
class Rig:
    sim: SimProcess
    md: KucoinMarketData
    engine: Engine
    wire: Wire
    symbols: list[str]
    depth: list[str]
    snapshots: Snapshots

    async def stats(self) -> dict[str, Any]:
        return await self.sim.stats()

    async def healthy(self, timeout: float = 30.0) -> None:
        """Every connection up and subscribed, every level2 book synced, every book of the market tradeable."""
        await self.md.wait_live(timeout)
        await self.engine.wait_for(lambda: not self.md.gapped_symbols() and not self.engine.untradeable(self.symbols),
                                   timeout, "every book synced and tradeable")

    async def server_settles(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0,
                             what: str = "") -> dict[str, Any]:
        """Poll the server's counters until ``predicate`` holds (its closing sockets finish on its own time)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            stats = await self.stats()
            if predicate(stats):
                return stats
            assert loop.time() < deadline, f"server never reached {what}: {stats}"
            await asyncio.sleep(0.05)  # polling cadence of a condition with a deadline

    def tokens_all_fresh(self) -> None:
        tokens = self.wire.ws_tokens
        assert len(tokens) <= self.wire.bullets, "a connection without its own bullet"
        assert len(set(tokens)) == len(tokens), "a token was reused"


class Snapshots:
    """The client's level2 snapshots from REST (``KucoinRest.fetch_book``, as the runner fetches them); a
    test may hold them back with ``gate``."""

    def __init__(self, rest: KucoinRest, engine: Engine) -> None:
        self.rest = rest
        self.engine = engine
        self.fetches: list[str] = []
        self.gate: asyncio.Event | None = None

    async def fetch(self, symbol: str) -> BookUpdate:
        self.fetches.append(symbol)
        self.engine.changed.set()
        if self.gate is not None:
            await self.gate.wait()
        return await self.rest.fetch_book(symbol, 100)


MakeRig = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def make_rig(sim_factory: Callable[..., SimProcess]) -> AsyncIterator[MakeRig]:
    """make_rig(*sim_args, depth=N, options=...) -> the simulator, the client streaming ticker:all and depth
    for the first N symbols, and the engine's side, with every connection live."""
    cleanups: list[Callable[[], Awaitable[None]]] = []

    async def make(*sim_args: str, depth: int, options: WsOptions = FAST, level2: bool = False) -> Rig:
        sim = sim_factory(*sim_args)
        wire = Wire()

        async def on_request(_s: Any, _c: Any, params: aiohttp.TraceRequestStartParams) -> None:
            wire.requests.append((params.method, params.url))

        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(on_request)
        http = aiohttp.ClientSession(trace_configs=[trace])
        rest = KucoinRest(base_url=sim.url, enable_rate_limit=False)  # the REST snapshots (public, unsigned)
        cleanups.extend([http.close, rest.close])
        async with http.get(sim.url + "/api/v2/symbols") as resp:
            symbols = [s["symbol"] for s in (await resp.json())["data"]]
        engine = Engine(time.monotonic)
        snapshots = Snapshots(rest, engine)
        md = KucoinMarketData(http, rest_url=sim.url, on_updates=engine.on_updates, on_gap=engine.on_gap,
                              on_notice=engine.on_notice, clock=time.monotonic,
                              snapshot_fetcher=snapshots.fetch if level2 else None,
                              options=replace(options, depth_mode="level2") if level2 else options)
        md.subscribe_all_tickers()
        md.set_depth_symbols(symbols[:depth])
        task = asyncio.create_task(md.run())

        async def stop() -> None:
            await md.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        cleanups.append(stop)
        rig = Rig(sim, md, engine, wire, symbols, symbols[:depth], snapshots)
        await rig.healthy()
        return rig

    yield make
    for stop in reversed(cleanups):
        await stop()


def depth_connections(md: KucoinMarketData) -> list[dict[str, Any]]:
    return [c for c in md.stats()["connections"] if c["kind"] == "depth"]


async def raw_subscribe(sim: SimProcess, http: aiohttp.ClientSession, topics: list[str]) -> list[dict[str, Any]]:
    """Subscribe ``topics`` on a raw socket of our own, one message each; the server's answers."""
    async with http.post(sim.url + "/api/v1/bullet-public") as resp:
        data = (await resp.json())["data"]
    ws = await http.ws_connect(data["instanceServers"][0]["endpoint"], params={"token": data["token"]})
    answers = []
    try:
        assert orjson.loads((await ws.receive(timeout=5)).data)["type"] == "welcome"
        for i, topic in enumerate(topics):
            await ws.send_str(orjson.dumps({"id": f"r{i}", "type": "subscribe", "topic": topic,
                                            "response": True}).decode())
            while True:
                frame = orjson.loads((await ws.receive(timeout=5)).data)
                if frame.get("id") == f"r{i}":
                    answers.append(frame)
                    break
    finally:
        await ws.close()
    return answers


# -- the whole market within the limits -------------------------------------------------------------------
@pytest.mark.slow
async def test_streams_every_pair_and_150_depth_books_on_sharded_connections_within_every_limit(
        make_rig: MakeRig) -> None:
    # the server enforces 100 topics per connection (KuCoin: 300-400), so 150 depth books need 2 sockets
    rig = await make_rig(*MOVING, "--topics-per-connection", "100", depth=150,
                         options=replace(FAST, topics_per_connection=100))
    md, engine = rig.md, rig.engine
    assert len(rig.symbols) == 1250
    assert len(engine.store) == 1250 and not engine.untradeable(rig.symbols)  # every ticker received
    def depth_of(symbol: str) -> int:
        book = engine.store.get((VENUE, symbol))
        return min(len(book.bids), len(book.asks)) if book is not None else 0

    await engine.wait_for(lambda: all(depth_of(s) > 1 for s in rig.depth), what="depth for all 150 books")
    assert [c["subscribed"] for c in depth_connections(md)] == [100, 50]
    totals = md.stats()["totals"]
    assert (totals["connections"], totals["subscribed"], totals["errors"], totals["reconnects"]) == (3, 151, 0, 0)
    assert totals["decode_errors"] == 0 and engine.gaps == []

    stats = await rig.stats()
    assert stats["errors"] == 0  # no error frame ever sent: no limit exceeded, no topic refused
    assert (stats["connections"], stats["live_connections"], stats["fault_drops"]) == (3, 3, 0)
    assert stats["ticker_all_frames"] >= 1250

    # the same server does refuse what is over its limits, with KuCoin's error frames
    depth50 = "/spotMarket/level2Depth50:"
    async with aiohttp.ClientSession() as http:
        over_message = await raw_subscribe(rig.sim, http, [depth50 + ",".join(rig.symbols[:101])])
        over_session = await raw_subscribe(rig.sim, http, [depth50 + ",".join(rig.symbols[:100]),
                                                           depth50 + rig.symbols[100]])
    assert over_message == [{"id": "r0", "type": "error", "code": 509,
                             "data": "exceed max subscription count limitation of 100 per time"}]
    assert over_session == [{"id": "r0", "type": "ack"}, {
        "id": "r1", "type": "error", "code": 509,
        "data": "exceed max subscription count limitation of 100 per session"}]
    assert (await rig.stats())["errors"] == 2  # ours; the client's count is still zero
    assert md.stats()["totals"]["errors"] == 0


# -- faults -------------------------------------------------------------------------------------------------
async def test_dropped_connections_reconnect_on_new_tokens_resubscribe_and_books_recover(
        make_rig: MakeRig) -> None:
    rig = await make_rig(*MOVING, "--pairs", "300", depth=60, options=SHARD40)
    md, engine = rig.md, rig.engine
    assert len(depth_connections(md)) == 2 and len(rig.wire.ws_tokens) == 3

    await rig.sim.faults(drop_every_s=1.0)  # every socket aborted each second, no close frame
    await engine.wait_for(lambda: len(engine.lost()) >= 3, what="the first drop")
    # every book was fed by a lost socket: each is reported gapped and none is tradeable until new data
    gapped = engine.check_gapped_are_untradeable()
    assert set(engine.gaps) == set(rig.symbols)
    assert len(gapped) > 0
    await engine.wait_for(lambda: len(engine.lost()) >= 6, what="the second drop")
    engine.check_gapped_are_untradeable()
    await rig.sim.faults(drop_every_s=0)

    await rig.healthy()
    assert engine.gapped_now() == [] and engine.traded_while_gapped == []
    assert all(c["reconnects"] >= 2 for c in md.stats()["connections"])
    rig.tokens_all_fresh()  # each reconnect went through a new bullet and a token never used before
    stats = await rig.server_settles(lambda s: s["live_connections"] == 3, what="3 live sockets")
    assert stats["fault_drops"] >= 6 and stats["connections"] >= 9 and stats["errors"] == 0
    assert md.stats()["totals"]["subscribed"] == 61  # resubscribed everything it held


async def test_unanswered_pings_end_the_connection_and_it_reconnects(make_rig: MakeRig) -> None:
    rig = await make_rig(*MOVING, *SHORT_PINGS, "--pairs", "300", depth=60,
                         options=SHARD40)
    md, engine = rig.md, rig.engine
    await rig.sim.faults(ignore_pings=True)  # data keeps coming, pongs do not
    await engine.wait_for(lambda: len(engine.lost()) >= 3, what="pong timeouts")
    assert all("no pong within 0.4s" in n.message for n in engine.lost())
    engine.check_gapped_are_untradeable()
    await engine.wait_for(lambda: len(engine.lost()) >= 6, what="pong timeouts on the new sockets too")
    await rig.sim.faults(ignore_pings=False)

    await rig.healthy()
    assert engine.gapped_now() == [] and engine.traded_while_gapped == []
    rig.tokens_all_fresh()
    assert all("no pong" in c["last_reason"] for c in md.stats()["connections"])
    stats = await rig.server_settles(lambda s: s["live_connections"] == 3, what="3 live sockets")
    assert stats["errors"] == 0 and stats["connections"] >= 9


async def test_expired_tokens_reconnect_with_fresh_tokens(make_rig: MakeRig) -> None:
    rig = await make_rig(*MOVING, "--pairs", "300", depth=60, options=SHARD40)
    md, engine = rig.md, rig.engine
    await rig.sim.faults(expire_tokens_every_s=1.0)  # "token is expired" on every socket, then a close
    await engine.wait_for(lambda: len(engine.lost()) >= 6, what="two rounds of expiries")
    expired = [n for n in engine.notices if n.kind == "kucoin_ws_error" and n.fields.get("code") == "401"]
    assert expired and all("token is expired" in n.message for n in expired)
    engine.check_gapped_are_untradeable()
    await rig.sim.faults(expire_tokens_every_s=0)

    await rig.healthy()
    assert engine.gapped_now() == [] and engine.traded_while_gapped == []
    rig.tokens_all_fresh()
    assert all(c["reconnects"] >= 2 for c in md.stats()["connections"])
    stats = await rig.server_settles(lambda s: s["live_connections"] == 3, what="3 live sockets")
    assert stats["expired"] >= 6 and stats["errors"] == 0


async def test_malformed_frames_are_reported_and_the_socket_keeps_streaming(
        make_rig: MakeRig, caplog: pytest.LogCaptureFixture) -> None:
    rig = await make_rig(*MOVING, "--pairs", "300", depth=60, options=SHARD40)
    md, engine = rig.md, rig.engine
    caplog.set_level(logging.WARNING, logger="cryptoarb.venues.kucoin.ws")
    await rig.sim.faults(malformed_every_s=0.3)  # a cut-off JSON frame to every socket
    await engine.wait_for(lambda: md.decode_errors >= 6, what="malformed frames on every socket")
    await rig.sim.faults(malformed_every_s=0)
    seen = engine.updates
    await engine.wait_for(lambda: engine.updates > seen + 1000, what="data after the malformed frames")
    assert not engine.untradeable(rig.symbols)  # nothing went stale or gapped
    assert engine.gaps == [] and engine.lost() == []
    assert any("undecodable frame" in r.getMessage() for r in caplog.records)  # reported
    totals = md.stats()["totals"]
    assert totals["decode_errors"] == md.decode_errors >= 6 and totals["reconnects"] == 0
    stats = await rig.stats()
    assert (stats["connections"], stats["live_connections"], stats["errors"]) == (3, 3, 0)


async def test_a_stalled_exchange_makes_books_stale_until_it_recovers(make_rig: MakeRig) -> None:
    # pings every 4 s, 4 s to answer: the client notices a silent exchange 4-8 s after it stalls, well
    # after the 2 s within which a book must have been confirmed current
    rig = await make_rig(*MOVING, "--pairs", "300", depth=60,
                         options=replace(SHARD40, ping_interval_s=4.0, ping_timeout_s=4.0))
    md, engine = rig.md, rig.engine
    probe = rig.symbols[-1]  # a ticker-only book
    os.kill(rig.sim.proc.pid, signal.SIGSTOP)  # the exchange freezes: sockets stay open, nothing arrives
    try:
        async with engine.ticking():
            # stale by age alone, while every stream still looks healthy to the client
            await engine.wait_for(lambda: engine.verdict(probe) is not None, timeout=FRESH.max_age + 2,
                                  what="the books going stale")
            assert engine.untradeable(rig.symbols) == rig.symbols
            assert engine.verdict(probe) == "stale_book" and engine.lost() == [] and md.tradeable_gate(probe)
            # then the missing pongs: every socket given up, every book gapped
            await engine.wait_for(lambda: len(engine.lost()) >= 3, timeout=15, what="no pong on any socket")
        assert all("no pong within 4s" in n.message for n in engine.lost())
        engine.check_gapped_are_untradeable()
        assert engine.untradeable(rig.symbols) == rig.symbols and not md.tradeable_gate(probe)
    finally:
        os.kill(rig.sim.proc.pid, signal.SIGCONT)
    await rig.healthy(timeout=45)
    assert engine.gapped_now() == [] and engine.traded_while_gapped == []
    rig.tokens_all_fresh()


@pytest.mark.parametrize("level2", [False, True], ids=["depth50", "level2"])
async def test_a_depth_stream_that_stalls_on_a_live_connection_hands_its_books_to_ticker_all(
        make_rig: MakeRig, level2: bool) -> None:
    # the depth topics go silent while every connection answers its pings and ticker:all keeps flowing: the
    # venue looks alive, so only ticker:all being ahead of the depth stream tells the two apart (a top the depth
    # stream never delivered; for level2, whose quiet books are current, a sequence past the book's)
    rig = await make_rig(*MOVING, "--pairs", "300", depth=60, level2=level2, options=SHARD40)
    md, engine = rig.md, rig.engine

    def depth_of(symbol: str) -> int:
        book = engine.store.get((VENUE, symbol))
        return min(len(book.bids), len(book.asks)) if book is not None else 0

    await engine.wait_for(lambda: all(depth_of(s) > 1 for s in rig.depth), what="depth for every watched book")
    assert md.depth_lags == 0  # a moving market with its depth flowing: nothing is behind
    resyncs = md.resyncs
    await rig.sim.faults(stall_depth=True)
    try:
        async with engine.ticking():
            await engine.wait_for(lambda: md.depth_lags >= 10, timeout=20, what="stalled depth books handed back")
            handed = [s for s in rig.depth if s in engine.last_gap]
            assert handed and md.stats()["totals"]["depth_lags"] == md.depth_lags
            # each was marked gapped, then ticker:all made it one level deep and current again
            await engine.wait_for(lambda: any(depth_of(s) == 1 and engine.verdict(s) is None for s in handed),
                                  what="a handed-back book current again at one level")
            assert engine.traded_while_gapped == [] and md.stats()["totals"]["reconnects"] == 0
    finally:
        await rig.sim.faults(stall_depth=False)
    # depth50 pushes whole books again; level2 deltas come back past a gap, and each book resyncs from a snapshot
    await engine.wait_for(lambda: all(depth_of(s) > 1 for s in handed), timeout=20,
                          what="the depth stream taking its books back")
    if level2:
        assert md.resyncs >= resyncs + len(handed)


async def test_level2_gaps_mark_the_book_gapped_then_it_resyncs_whole(make_rig: MakeRig) -> None:
    # a frozen market: the book moves only with our orders, so each delta and gap is ours to cause
    rig = await make_rig(*FROZEN, depth=20, level2=True, options=SHARD10)
    md, engine, snapshots = rig.md, rig.engine, rig.snapshots
    assert len(depth_connections(md)) == 2 and md.gapped_symbols() == set()
    symbol = "BTC-USDT" if "BTC-USDT" in rig.depth else rig.depth[0]
    history = engine.history[symbol] = []
    resyncs = md.resyncs
    trader = KucoinRest(api_key="sim-key", api_secret="sim-secret", api_passphrase="sim-passphrase",
                        base_url=rig.sim.url, enable_rate_limit=False)

    async def exchange_book() -> tuple[int, list[Any], list[Any]]:
        async with aiohttp.ClientSession() as http, \
                http.get(f"{rig.sim.url}/api/v1/market/orderbook/level2_100?symbol={symbol}") as resp:
            data = (await resp.json())["data"]
        return (int(data["sequence"]), [(float(p), float(q)) for p, q in data["bids"]],
                [(float(p), float(q)) for p, q in data["asks"]])

    async def take_top_ask(n: int) -> None:
        """One order taking the top ask: one level2 delta."""
        book = engine.store.get((VENUE, symbol))
        assert book is not None
        price, size = book.asks[0]
        order = Order(f"l2-{n}", "opp", 0, VENUE, symbol, Side.BUY, Decimal(repr(price)), Decimal(repr(size)), 0.0)
        seen = len(history)
        await trader.place_order(order)
        await engine.wait_for(lambda: len(history) > seen or symbol in engine.gapped_now(), what="the delta")

    try:
        snapshots.gate = asyncio.Event()  # the resync's snapshot waits until we have looked at the book
        snapshots.fetches.clear()
        await rig.sim.faults(level2_gap_every=2)  # every 2nd delta of a book skips a sequence number
        n = 0
        while symbol not in engine.gapped_now():
            n += 1
            assert n <= 4, "no gap after 4 deltas"
            await take_top_ask(n)
        await rig.sim.faults(level2_gap_every=0)
        await engine.wait_for(lambda: snapshots.fetches == [symbol], what="the resync's snapshot requested")
        assert md.gapped_symbols() == {symbol} and not md.tradeable_gate(symbol)
        assert engine.check_gapped_are_untradeable() == [symbol]
        assert engine.verdict(symbol) == "stale_book"
        await take_top_ask(n + 1)  # deltas go on meanwhile: buffered, never applied to a gapped book
        assert engine.verdict(symbol) == "stale_book"

        snapshots.gate.set()
        await engine.wait_for(lambda: symbol not in engine.gapped_now(), what="the resync")
        assert md.gapped_symbols() == set() and md.tradeable_gate(symbol) and engine.verdict(symbol) is None
        assert history[-1] == await exchange_book()  # whole again: the exchange's own book, level for level

        await take_top_ask(n + 2)  # continuous deltas after the resync keep it whole
        assert history[-1] == await exchange_book()
        totals = md.stats()["totals"]
        assert (totals["gaps"], totals["gapped"], md.resyncs - resyncs) == (1, 0, 1)
        assert engine.gaps == [symbol] and engine.traded_while_gapped == []
        assert md.depth_lags == 0  # a quiet book through a gap and its resync is never taken for a stalled stream
        assert (await rig.stats())["errors"] == 0
    finally:
        if snapshots.gate is not None:
            snapshots.gate.set()
        await trader.close()
