"""Tick to order: a market data frame's bytes in, the first order's bytes out on a real loopback socket.

In-process, on one event loop, through the code a live run uses:

    raw websocket frame (bytes) -> KucoinCodec.decode -> Engine.on_batch (books, incremental detection,
    depth sizing, risk) -> LiveExecutor, started eagerly inside the hand-over (kill-switch gate, preflight
    of every leg, reservation, cycle driver[, durable intent write]) -> Venue.place_order -> KuCoin REST
    request (JSON body, HMAC signed headers, HTTP/1.1) written to a TCP connection on 127.0.0.1

The market is the simulator's KuCoin-like universe (1,250 pairs, every book loaded, every cycle of up to
three legs indexed), so detection does the work it does live. Each measured frame is a
``/spotMarket/level2Depth50:ETH-BTC`` push whose bids and asks sit 60-68 bps above the book (on the tick
grid), which makes USDT > ETH > BTC > USDT pay after fees; an unmeasured frame with the original book
follows each one, so every measured frame is a new plan. The venue answers every order as filled at its
limit price (the engine books it and releases the cycle); only the first order of each opportunity is
timed: from before ``decode`` to after the transport accepted the request's bytes.

    .venv/bin/python benchmarks/tick_to_order.py [--frames 2000] [--intent] [--uvloop] [--gap-ms 0]

``--gap-ms`` idles that long between frames (untimed), as a live feed paces them; back to back, every
cache is hot.

``--sim-server`` measures the same path against ``cryptoarb sim-server`` in its own process, over loopback,
through the clients a live run uses: the frame comes from the server to the native public websocket
client (``KucoinMarketData``, ``level2Depth50``), the order goes out through ``KucoinRest`` (its own signed
request, ``order_wire.py``, with the simulator's fake keys, on its own keep-alive connection);
``--ccxt-orders`` sends it through ccxt's generic request pipeline on aiohttp instead, for comparison;
``--market-load`` has the server push the whole market on ticker:all (12,500 messages/s) into a watch-mode
engine on the same loop, so the measured frames meet a process busy with a live feed:

    .venv/bin/python benchmarks/tick_to_order.py --sim-server [--frames 300] [--speed 1] [--intent] [--uvloop]
                                                 [--ccxt-orders] [--market-load]

Timed from the moment the websocket client has the frame (``receive()`` returned, before decoding) to the
moment the first order's request bytes are handed to the socket's transport (right before the write). The frames are the
server's own ``ETH-BTC`` pushes on its running market. Before each one (untimed, from fresh REST snapshots)
the engine is given the server's ``BTC-USDT`` book, its ``ETH-USDT`` book moved 70-74 bps down (so that
USDT > ETH > BTC > USDT pays once the next ``ETH-BTC`` frame arrives) and an ``ETH-BTC`` book that does not
pay (so that only that frame completes the opportunity). The first order, a BUY of ETH-USDT at the lowered
ask, reaches the exchange and ends unfilled (IOC), so the account and the books stay as they were.

``--intent`` adds the durable order-intent write (``StoreWriter.write_intent`` to SQLite in WAL mode)
before the order is sent, as a live run with storage does. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from cryptoarb.config import Settings
from cryptoarb.engine import Engine
from cryptoarb.execution.live import LiveExecutor
from cryptoarb.model import Fill, Order, OrderResult, OrderStatus
from cryptoarb.venues.kucoin.codec import KucoinCodec
from cryptoarb.venues.kucoin.signing import Credentials, signed_headers
from cryptoarb.venues.sim import SimVenue
from cryptoarb.venues.sim_process import start_server, stop_server

SYMBOL = "ETH-BTC"
CREDS = Credentials("bench-key", "bench-secret", "bench-passphrase")
PATH = "/api/v1/hf/orders"


class LoopbackVenue:
    """Orders go out as signed KuCoin REST requests on a loopback TCP connection; answered as filled."""

    def __init__(self, sim: SimVenue, writer: asyncio.StreamWriter) -> None:
        self.name = sim.name
        self.sim = sim
        self.writer = writer
        self.markets = {m.symbol: m for m in sim.universe.markets}
        self.first_sent: asyncio.Future[tuple[int, int]] | None = None
        self.bytes_sent = 0

    async def place_order(self, order: Order) -> OrderResult:
        placed = time.perf_counter_ns()
        body = orjson.dumps({"clientOid": order.client_oid, "side": order.side.value, "symbol": order.symbol,
                             "type": order.type, "price": str(order.price), "size": str(order.size),
                             "timeInForce": order.time_in_force}).decode()
        headers = signed_headers(CREDS, "POST", PATH, body, int(time.time() * 1000))
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = (f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{head}"
                   f"Content-Length: {len(body)}\r\n\r\n{body}").encode()
        self.writer.write(request)  # the transport sends at once when its buffer is empty
        written = time.perf_counter_ns()
        self.bytes_sent += len(request)
        if order.leg_index == 0 and self.first_sent is not None and not self.first_sent.done():
            self.first_sent.set_result((placed, written))
        market = self.markets[order.symbol]
        fee = order.price * order.size * market.taker_fee
        fill = Fill(order.client_oid, order.opportunity_id, order.leg_index, self.name, order.symbol, order.side,
                    order.price, order.size, fee, market.quote, time.monotonic())
        return OrderResult(order, OrderStatus.FILLED, (fill,))

    async def fetch_order(self, symbol: str, client_oid: str) -> OrderResult:
        raise NotImplementedError

    async def cancel_order(self, symbol: str, client_oid: str) -> None:
        raise NotImplementedError


def depth50(symbol: str, bids, asks, shift_ticks: int, tick: Decimal, ts: int) -> bytes:
    places = max(0, -tick.as_tuple().exponent)

    def side(levels):
        out = []
        for price, size in levels[:50]:
            p = (Decimal(repr(price)) / tick).to_integral_value() + shift_ticks
            out.append([f"{p * tick:.{places}f}", repr(size)])
        return out

    frame = {"topic": f"/spotMarket/level2Depth50:{symbol}", "type": "message", "subject": "level2",
             "data": {"asks": side(asks), "bids": side(bids), "timestamp": ts}}
    return json.dumps(frame, separators=(",", ":")).encode()


class HandOver:
    """Notes when the engine hands each opportunity to the executor (the executor starts eagerly, inside
    ``on_batch``, so that is where the engine's part ends)."""

    def __init__(self, engine: Engine) -> None:
        self.ns: int | None = None
        submit = engine.executor.submit

        def timed(opportunity, now, internal_s=0.0, record=None):
            if self.ns is None:
                self.ns = time.perf_counter_ns()
            submit(opportunity, now, internal_s, record)

        engine.executor.submit = timed  # type: ignore[method-assign]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(rank), math.ceil(rank)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


async def run(frames: int, warmup: int, intent: bool, gap_ms: float = 0.0) -> dict:
    settings = Settings()
    sim = SimVenue(settings.sim, speed=0)
    markets = await sim.load_markets()

    async def sink(reader: asyncio.StreamReader, peer: asyncio.StreamWriter) -> None:
        try:
            while await reader.read(65536):
                pass
        except (asyncio.CancelledError, ConnectionError):
            pass
        finally:
            peer.close()

    server = await asyncio.start_server(sink, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    venue = LoopbackVenue(sim, writer)

    store = intents = None
    tmp = tempfile.TemporaryDirectory()
    if intent:
        from cryptoarb.storage.sqlite import SqliteStore
        from cryptoarb.storage.writer import StoreWriter

        store = SqliteStore(Path(tmp.name) / "bench.sqlite")
        await store.open()
        await store.migrate()
        intents = StoreWriter(store)

    engine = Engine(settings, {venue.name: venue}, markets, lambda _e: None,
                    executor=lambda e: LiveExecutor.for_engine(
                        e, clock=time.monotonic, write_intent=intents.write_intent if intents else None))
    codec = KucoinCodec(venue.name)
    now = time.monotonic()
    engine.on_batch([sim.market.book(s) for s in sim.universe.symbols], now, venue.name)
    book = sim.market.book(SYMBOL)
    tick = venue.markets[SYMBOL].price_tick
    mid = (book.bids[0][0] + book.asks[0][0]) / 2
    ticks_60bps = math.ceil(mid * 0.006 / float(tick))
    hot = [depth50(SYMBOL, book.bids, book.asks, ticks_60bps + k, tick, 1_700_000_000_000 + k) for k in range(5)]
    calm = depth50(SYMBOL, book.bids, book.asks, 0, tick, 1_699_999_999_999)

    total, sync, task, send = [], [], [], []
    missed = 0
    handed = HandOver(engine)
    gc.collect()
    gc.freeze()
    for i in range(warmup + frames):
        venue.first_sent = asyncio.get_running_loop().create_future()
        handed.ns = None
        raw = hot[i % len(hot)]
        t0 = time.perf_counter_ns()
        now = time.monotonic()
        update = codec.decode(raw, now)
        engine.on_batch([update], now, venue.name)
        t1 = time.perf_counter_ns()
        if not engine.pending:
            missed += 1
        else:
            placed, written = await venue.first_sent
            if i >= warmup:
                handed_ns = handed.ns or t1
                total.append((written - t0) / 1000)
                sync.append((handed_ns - t0) / 1000)
                task.append((placed - handed_ns) / 1000)
                send.append((written - placed) / 1000)
            await engine.executor.drain()
        now = time.monotonic()
        engine.on_batch([codec.decode(calm, now)], now, venue.name)
        await engine.executor.drain()
        if gap_ms:
            await asyncio.sleep(gap_ms / 1000)  # pacing only: frames as far apart as a live feed's
    gc.unfreeze()
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()
    if intents is not None:
        await intents.close()
        await store.close()
    tmp.cleanup()
    if not total:
        raise SystemExit(f"no opportunity was detected in {frames} frames")
    return {
        "frames": warmup + frames, "measured": len(total), "no_opportunity": missed,
        "p50_us": round(pct(total, 50), 1), "p90_us": round(pct(total, 90), 1), "p99_us": round(pct(total, 99), 1),
        "max_us": round(max(total), 1), "mean_us": round(statistics.fmean(total), 1),
        "decode_engine_p50_us": round(pct(sync, 50), 1), "executor_p50_us": round(pct(task, 50), 1),
        "serialize_send_p50_us": round(pct(send, 50), 1), "intent_write": intent,
        "bytes_per_order": round(venue.bytes_sent / max(1, engine.ledger.trades)),
        "executed": engine.counters.executed, "detected": engine.counters.detected, "gap_ms": gap_ms,
    }


# ---------------------------------------------------------------------------------------------------
# --sim-server: the KuCoin loopback server in its own process, the native websocket client, KucoinRest

SIM_START_TIMEOUT_S = 60.0
FRAME_TIMEOUT_S = 30.0
CALM_BPS = 500.0  # the non-paying ETH-BTC book: spread widened this much each way
LOWER_BPS = 70.0  # the ETH-USDT book given before each measured frame: this much (+0-4 bps) below the server's


def moved(update, tick: Decimal, now: float, *, down_bps: float = 0.0, widen_bps: float = 0.0):
    """``update`` moved down by ``down_bps`` and its spread widened by ``widen_bps`` each way (whole ticks),
    as received ``now``."""
    import msgspec

    mid = (update.bids[0][0] + update.asks[0][0]) / 2

    def ticks(bps: float) -> Decimal:
        return Decimal(math.ceil(mid * bps / 10_000 / float(tick))) * tick

    def side(levels, delta: Decimal):
        return tuple((float(Decimal(repr(p)) + delta), q) for p, q in levels)

    return msgspec.structs.replace(update, bids=side(update.bids, -ticks(down_bps + widen_bps)),
                                   asks=side(update.asks, -ticks(down_bps) + ticks(widen_bps)), received_at=now)


class FrameProbe:
    """The websocket client's clock (called right after ``receive()`` returns, before decoding) and its sink:
    while armed, the next frame goes to the engine and its timings to the armed future; otherwise frames
    are dropped, so the engine keeps the books the benchmark gave it."""

    def __init__(self, engine: Engine, venue: str, symbol: str, market: Engine | None = None) -> None:
        self.engine = engine
        self.venue = venue
        self.symbol = symbol
        self.market = market
        self.market_updates = 0
        self.frame_ns = 0
        self.armed: asyncio.Future[tuple[int, int, int]] | None = None
        self.seen = 0

    def clock(self) -> float:
        self.frame_ns = time.perf_counter_ns()
        return time.monotonic()

    def on_updates(self, batch: list) -> None:
        if not batch:
            return  # a pong
        if self.market is not None and batch[0].symbol != self.symbol:
            self.market.on_batch(batch, time.monotonic(), self.venue)  # ticker:all: the rest of the market
            self.market_updates += len(batch)
            return
        self.seen += 1
        armed = self.armed
        if armed is None or armed.done():
            return
        frame_ns = self.frame_ns
        self.engine.on_batch(batch, time.monotonic(), self.venue)
        done_ns = time.perf_counter_ns()
        self.armed = None
        armed.set_result((frame_ns, done_ns, self.engine.pending))


class TimedRest:
    """``KucoinRest`` as the executor's venue, noting when the first ``place_order`` of an opportunity
    starts; the order's bytes leaving are noted by an aiohttp trace on ccxt's session."""

    def __init__(self, rest: Any) -> None:
        self.rest = rest
        self.name = rest.name
        self.placed_ns: int | None = None
        self.written: asyncio.Future[int] | None = None
        self.bytes_sent = 0
        self.orders = 0

    async def place_order(self, order: Order) -> OrderResult:
        if self.placed_ns is None:
            self.placed_ns = time.perf_counter_ns()
        self.orders += 1
        return await self.rest.place_order(order)

    async def fetch_order(self, symbol: str, client_oid: str) -> OrderResult:
        return await self.rest.fetch_order(symbol, client_oid)

    async def cancel_order(self, symbol: str, client_oid: str) -> None:
        await self.rest.cancel_order(symbol, client_oid)

    async def on_chunk_sent(self, _session, _ctx, params) -> None:
        """aiohttp calls this right before it writes the request's bytes to the transport (--ccxt-orders)."""
        if params.method == "POST" and params.url.path.endswith("/orders"):
            self.on_written(len(params.chunk))

    def on_written(self, size: int) -> None:
        """The order's bytes are handed to the socket now (OrderWire calls this right before its write, as
        aiohttp's trace does for ccxt's requests)."""
        written = self.written
        if written is not None and not written.done():
            written.set_result(time.perf_counter_ns())
        self.bytes_sent += size


async def run_sim_server(frames: int, warmup: int, intent: bool, speed: float, pairs: int,
                         symbol: str, ccxt_orders: bool = False, market_load: bool = False) -> dict:
    import aiohttp

    from cryptoarb.venues.kucoin.rest import KucoinRest
    from cryptoarb.venues.kucoin.sim_config import DEFAULT_API_KEY, DEFAULT_API_PASSPHRASE, DEFAULT_API_SECRET
    from cryptoarb.venues.kucoin.ws import KucoinMarketData, WsOptions

    base, quote = symbol.split("-")
    buy_sym, sell_sym = f"{base}-USDT", f"{quote}-USDT"
    # --market-load: the whole market on ticker:all every round (12,500 messages/s at 1,250 pairs), as KuCoin
    # pushes it and benchmarks/load.py offers it
    load_args = ("--ticker-always", "--ticker-hz", "10") if market_load else ()
    proc, url = start_server("cryptoarb.venues.kucoin.sim_cli", "--speed", repr(speed), "--pairs", str(pairs),
                             *load_args, timeout_s=SIM_START_TIMEOUT_S)
    tmp = tempfile.TemporaryDirectory()
    rest = KucoinRest(api_key=DEFAULT_API_KEY, api_secret=DEFAULT_API_SECRET, api_passphrase=DEFAULT_API_PASSPHRASE,
                      base_url=url, enable_rate_limit=False, native_orders=not ccxt_orders)
    venue = TimedRest(rest)
    trace = aiohttp.TraceConfig()
    trace.on_request_chunk_sent.append(venue.on_chunk_sent)
    # ccxt opens its own aiohttp session on first use unless one is set: give it one that reports its writes
    rest._ex.session = aiohttp.ClientSession(trace_configs=[trace])
    if rest._wire is not None:
        rest._wire.on_write = venue.on_written
    http = aiohttp.ClientSession()
    store = intents = md = md_task = None
    try:
        markets = await rest.load_markets()
        held = await rest.fetch_balances()
        if intent:
            from cryptoarb.storage.sqlite import SqliteStore
            from cryptoarb.storage.writer import StoreWriter

            store = SqliteStore(Path(tmp.name) / "bench.sqlite")
            await store.open()
            await store.migrate()
            intents = StoreWriter(store)
        settings = Settings(mode="live", balances={venue.name: {b.asset: float(b.free) for b in held if b.free}},
                            risk={"cooldown_s": 0.0})
        engine = Engine(settings, {venue.name: venue}, markets, lambda _e: None,  # type: ignore[dict-item]
                        executor=lambda e: LiveExecutor.for_engine(
                            e, clock=time.monotonic, write_intent=intents.write_intent if intents else None))
        engine.ledger.set_balances(held)
        by_symbol = {m.symbol: m for m in markets}
        market = None
        if market_load:
            # The whole market's ticker:all through an engine of its own on the same loop, as `cryptoarb
            # watch` runs it (detection and sizing, no orders): the measured frames then meet a process
            # busy with a live feed, as in a real run, not one waking from idle.
            from cryptoarb.run.runner import WatchExecutor

            market = Engine(Settings(balances=settings.balances), {venue.name: venue}, markets,  # type: ignore[dict-item]
                            lambda _e: None, executor=WatchExecutor())
        probe = FrameProbe(engine, venue.name, symbol, market)
        md = KucoinMarketData(http, on_updates=probe.on_updates, rest_url=url, clock=probe.clock,
                              options=WsOptions(depth_mode="level2Depth50"), venue=venue.name)
        md.set_depth_symbols([symbol])
        if market_load:
            md.subscribe_all_tickers()
        md_task = asyncio.create_task(md.run())
        await md.wait_live(FRAME_TIMEOUT_S)
        loop = asyncio.get_running_loop()

        total, sync, task, client = [], [], [], []
        missed = 0
        handed = HandOver(engine)
        started = time.monotonic()
        gc.collect()
        gc.freeze()
        for i in range(warmup + frames):
            # Books given to the engine between frames (untimed): the server's ETH-USDT moved down, its
            # BTC-USDT, and an ETH-BTC that does not pay, so only the next ETH-BTC frame completes the cycle.
            snaps = [await rest.fetch_book(s, 50) for s in (symbol, sell_sym, buy_sym)]
            now = time.monotonic()
            engine.on_batch([moved(snaps[0], by_symbol[symbol].price_tick, now, widen_bps=CALM_BPS),
                             moved(snaps[1], by_symbol[sell_sym].price_tick, now),
                             moved(snaps[2], by_symbol[buy_sym].price_tick, now, down_bps=LOWER_BPS + i % 5)],
                            now, venue.name)
            if engine.pending:
                raise SystemExit("an opportunity completed without the server's frame; check the books")
            venue.placed_ns = None
            handed.ns = None
            venue.written = loop.create_future()
            probe.armed = armed = loop.create_future()
            try:
                frame_ns, engine_ns, pending = await asyncio.wait_for(armed, FRAME_TIMEOUT_S)
            except TimeoutError:
                raise SystemExit(f"no {symbol} frame from the server in {FRAME_TIMEOUT_S:g} s") from None
            if not pending:
                missed += 1
                continue
            written_ns = await asyncio.wait_for(venue.written, FRAME_TIMEOUT_S)
            placed_ns = venue.placed_ns or written_ns
            if i >= warmup:
                total.append((written_ns - frame_ns) / 1000)
                handed_ns = handed.ns or engine_ns
                sync.append((handed_ns - frame_ns) / 1000)
                task.append((placed_ns - handed_ns) / 1000)
                client.append((written_ns - placed_ns) / 1000)
            await engine.executor.drain()
        elapsed = time.monotonic() - started
        gc.unfreeze()
        filled = engine.ledger.trades
    finally:
        if md is not None:
            await md.close()
        if md_task is not None:
            md_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await md_task
        await http.close()
        await rest.close()
        if intents is not None:
            await intents.close()
        if store is not None:
            await store.close()
        stop_server(proc)
        tmp.cleanup()
    if not total:
        raise SystemExit(f"no opportunity was detected in {warmup + frames} frames")
    return {
        "mode": "sim-server", "frames": warmup + frames, "measured": len(total), "no_opportunity": missed,
        "p50_us": round(pct(total, 50), 1), "p90_us": round(pct(total, 90), 1), "p99_us": round(pct(total, 99), 1),
        "max_us": round(max(total), 1), "mean_us": round(statistics.fmean(total), 1),
        "decode_engine_p50_us": round(pct(sync, 50), 1), "executor_p50_us": round(pct(task, 50), 1),
        "rest_client_p50_us": round(pct(client, 50), 1), "intent_write": intent,
        "order_body_bytes": round(venue.bytes_sent / max(1, venue.orders)), "orders": venue.orders,
        "orders_filled": filled, "detected": engine.counters.detected, "server_frames": probe.seen,
        "frames_per_s": round((warmup + frames) / elapsed, 1), "server_speed": speed, "server_pairs": pairs,
        "symbol": symbol, "order_path": "ccxt" if ccxt_orders else "wire", "market_load": market_load,
        "market_updates_per_s": round(probe.market_updates / elapsed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=None, help="measured frames (default 2000; 300 with "
                                                                 "--sim-server)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed frames first (default 200; 20 with "
                                                                 "--sim-server)")
    parser.add_argument("--intent", action="store_true", help="durable intent write (SQLite) before sending")
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--gap-ms", type=float, default=0.0,
                        help="in-process: idle time between frames (a live feed's pace; 0 = back to back)")
    parser.add_argument("--sim-server", action="store_true",
                        help="against cryptoarb sim-server (own process) over loopback: KucoinMarketData in, "
                             "KucoinRest out")
    parser.add_argument("--speed", type=float, default=1.0, help="--sim-server: the market's speed")
    parser.add_argument("--pairs", type=int, default=1250, help="--sim-server: the universe's pairs")
    parser.add_argument("--symbol", default=SYMBOL, help="--sim-server: the X-Y pair of USDT > X > Y > USDT "
                                                         "whose frames are measured")
    parser.add_argument("--ccxt-orders", action="store_true",
                        help="--sim-server: send orders through ccxt's request pipeline (privatePostHfOrders) "
                             "instead of KucoinRest's own signed request (order_wire.py)")
    parser.add_argument("--market-load", action="store_true",
                        help="--sim-server: also stream ticker:all for the whole market through a watch-mode "
                             "engine on the same loop, as a live run is busy with it")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.install()
    if args.sim_server:
        frames = args.frames if args.frames is not None else 300
        warmup = args.warmup if args.warmup is not None else 20
        result = asyncio.run(run_sim_server(frames, warmup, args.intent, args.speed, args.pairs, args.symbol,
                                            args.ccxt_orders, args.market_load))
    else:
        frames = args.frames if args.frames is not None else 2000
        warmup = args.warmup if args.warmup is not None else 200
        result = asyncio.run(run(frames, warmup, args.intent, args.gap_ms))
    result["loop"] = "uvloop" if args.uvloop else "asyncio"
    result["python"] = sys.version.split()[0]
    where = "sim-server over loopback" if args.sim_server else "in-process"
    print(f"tick to first order on the wire, {where} ({result['measured']} frames, {result['loop']}"
          f"{', intent write' if args.intent else ''}):")
    print(f"  p50 {result['p50_us']:.1f} us   p90 {result['p90_us']:.1f} us   p99 {result['p99_us']:.1f} us   "
          f"max {result['max_us']:.1f} us")
    if args.sim_server:
        print(f"  p50 by stage: decode + engine {result['decode_engine_p50_us']:.1f} us, executor (gate, "
              f"preflight, driver{', intent' if args.intent else ''}) {result['executor_p50_us']:.1f} us, "
              f"KucoinRest ({result['order_path']}) to the socket {result['rest_client_p50_us']:.1f} us")
    else:
        print(f"  p50 by stage: decode + engine {result['decode_engine_p50_us']:.1f} us, executor (gate, "
              f"preflight, driver{', intent' if args.intent else ''}) {result['executor_p50_us']:.1f} us, "
              f"serialize + sign + send {result['serialize_send_p50_us']:.1f} us")
    print(json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main()
