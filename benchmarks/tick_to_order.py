"""Tick to order: a market data frame's bytes in, the first order's bytes out on a real loopback socket.

In-process, on one event loop, through the code a live run uses:

    raw websocket frame (bytes) -> KucoinCodec.decode -> Engine.on_batch (books, incremental detection,
    depth sizing, risk) -> LiveExecutor task (kill-switch gate, preflight of every leg, reservation,
    cycle driver[, durable intent write]) -> Venue.place_order -> KuCoin REST request (JSON body, HMAC
    signed headers, HTTP/1.1) written to a TCP connection on 127.0.0.1

The market is the simulator's KuCoin-like universe (1,250 pairs, every book loaded, every cycle of up to
three legs indexed), so detection does the work it does live. Each measured frame is a
``/spotMarket/level2Depth50:ETH-BTC`` push whose bids and asks sit 60-68 bps above the book (on the tick
grid), which makes USDT > ETH > BTC > USDT pay after fees; an unmeasured frame with the original book
follows each one, so every measured frame is a new plan. The venue answers every order as filled at its
limit price (the engine books it and releases the cycle); only the first order of each opportunity is
timed: from before ``decode`` to after the transport accepted the request's bytes.

    .venv/bin/python benchmarks/tick_to_order.py [--frames 2000] [--intent] [--uvloop]

``--intent`` adds the durable order-intent write (``StoreWriter.write_intent`` to SQLite in WAL mode)
before the order is sent, as a live run with storage does. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import orjson

from cryptoarb.config import Settings
from cryptoarb.engine import Engine
from cryptoarb.execution.live import LiveExecutor
from cryptoarb.model import Fill, Order, OrderResult, OrderStatus
from cryptoarb.venues.kucoin.codec import KucoinCodec
from cryptoarb.venues.kucoin.signing import Credentials, signed_headers
from cryptoarb.venues.sim import SimVenue

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


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(rank), math.ceil(rank)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


async def run(frames: int, warmup: int, intent: bool) -> dict:
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
    gc.collect()
    gc.freeze()
    for i in range(warmup + frames):
        venue.first_sent = asyncio.get_running_loop().create_future()
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
                total.append((written - t0) / 1000)
                sync.append((t1 - t0) / 1000)
                task.append((placed - t1) / 1000)
                send.append((written - placed) / 1000)
            await engine.executor.drain()
        now = time.monotonic()
        engine.on_batch([codec.decode(calm, now)], now, venue.name)
        await engine.executor.drain()
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
        "executed": engine.counters.executed, "detected": engine.counters.detected,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--intent", action="store_true", help="durable intent write (SQLite) before sending")
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.install()
    result = asyncio.run(run(args.frames, args.warmup, args.intent))
    result["loop"] = "uvloop" if args.uvloop else "asyncio"
    result["python"] = sys.version.split()[0]
    print(f"tick to first order on the wire ({result['measured']} frames, {result['loop']}"
          f"{', intent write' if args.intent else ''}):")
    print(f"  p50 {result['p50_us']:.1f} us   p90 {result['p90_us']:.1f} us   p99 {result['p99_us']:.1f} us   "
          f"max {result['max_us']:.1f} us")
    print(f"  p50 by stage: decode + engine {result['decode_engine_p50_us']:.1f} us, executor (task, gate, "
          f"preflight, driver{', intent' if args.intent else ''}) {result['executor_p50_us']:.1f} us, "
          f"serialize + sign + send {result['serialize_send_p50_us']:.1f} us")
    print(json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main()
