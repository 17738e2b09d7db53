"""The native KuCoin market-data client against ccxt.pro, end to end over real loopback sockets.

For each ``--hz`` rate, a fresh ``cryptoarb sim-server`` process (``--ticker-always --ticker-hz HZ``)
pushes ``/market/ticker:all`` for every pair, every round, changed or not: ``pairs x hz`` messages/s
offered. On that same server, one after the other, in this process:

- **native**: :class:`cryptoarb.venues.kucoin.ws.KucoinMarketData` (``subscribe_all_tickers``) feeding a real
  :class:`cryptoarb.core.books.BookStore` through ``on_updates``, as the engine's sink does (every update
  applied, the stream's liveness stamped per batch);
- **ccxt**: ``ccxt.pro.kucoin.watch_tickers()`` (no symbols: ccxt subscribes ``/market/ticker:all``), awaited
  in a loop by a consumer that reads ``exchange.tickers`` (each await returns only the frame that woke it,
  reference §B.1); a frame counts once ccxt's ``handle_message`` has stored it in ``exchange.tickers``.

Each client connects, waits until it holds a ticker for every pair, warms up for ``--warmup`` s, then a
``--duration`` s window measures: messages/s it processed, messages/s the server pushed to it meanwhile
(it keeps up when it processed >= 97% of them; otherwise its backlog grows in the socket buffers, and
past 64 MiB the server cuts it off as a slow consumer: ccxt's consumer then watches again, which
reconnects), the CPU of this process (the client alone is running) as a share of a core, per message and
as messages/s per core of CPU (what one core could take), and the server process's CPU.

    .venv/bin/python benchmarks/ws_loopback.py [--hz 10,40] [--duration 15] [--warmup 3] [--pairs 1250]

The last line is one JSON object: ``native_messages_per_s``, ``ccxt_messages_per_s`` and ``ratio`` (native
over ccxt) at the highest rate, ``cpu_ratio`` (ccxt CPU per message over native's) and ``native_per_core`` /
``ccxt_per_core`` there, and ``runs`` with every figure of every rate. At a rate both keep up with the ratio
of messages/s is 1 and only the CPU figures tell them apart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
import ccxt.pro

from cryptoarb.core.books import BookStore
from cryptoarb.model import BookUpdate
from cryptoarb.venues.kucoin.ws import KucoinMarketData, WsOptions
from cryptoarb.venues.sim_process import start_server, stop_server

CCXT_URL_KEYS = ("public", "private", "futuresPublic", "futuresPrivate", "uta", "utaPrivate")
CLK_TCK = os.sysconf("SC_CLK_TCK")
KEPT_UP = 0.97


@dataclass
class Sim:
    proc: subprocess.Popen[str]
    url: str

    def cpu_s(self) -> float:
        """User + system CPU seconds of the server process so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    async def stats(self, http: aiohttp.ClientSession) -> dict[str, Any]:
        async with http.get(self.url + "/_sim/stats") as resp:
            return await resp.json()

    def stop(self) -> None:
        stop_server(self.proc)


def start_sim(pairs: int, hz: float, seed: int) -> Sim:
    proc, url = start_server("cryptoarb.venues.kucoin.sim_cli", "--pairs", str(pairs), "--seed", str(seed),
                             "--ticker-always", "--ticker-hz", str(hz))
    return Sim(proc, url)


@dataclass
class Result:
    client: str
    messages_per_s: float
    offered_per_s: float
    kept_up: bool
    cpu_cores: float
    cpu_us_per_message: float
    server_cpu_cores: float
    messages: int
    seconds: float
    books: int
    server_slow_drops: int
    errors: int = 0

    @property
    def per_core(self) -> float:
        """Messages per second of client CPU: what one core could take."""
        return self.messages_per_s / self.cpu_cores if self.cpu_cores else 0.0


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def measure(name: str, sim: Sim, http: aiohttp.ClientSession, count: Callable[[], int],
                  books: Callable[[], int], pairs: int, warmup: float, duration: float,
                  errors: Callable[[], int] = lambda: 0) -> Result:
    await until(lambda: books() >= pairs, 60, f"{name}: a ticker for every pair")
    await asyncio.sleep(warmup)
    s0, c0 = await sim.stats(http), count()
    w0, p0, srv0 = time.perf_counter(), time.process_time(), sim.cpu_s()
    await asyncio.sleep(duration)
    w1, p1, srv1 = time.perf_counter(), time.process_time(), sim.cpu_s()
    s1, c1 = await sim.stats(http), count()
    wall, n = w1 - w0, c1 - c0
    offered = s1["ticker_all_frames"] - s0["ticker_all_frames"]  # pushed to the one ticker:all socket
    cpu = p1 - p0
    return Result(name, n / wall, offered / wall, n >= KEPT_UP * offered, cpu / wall, cpu / max(n, 1) * 1e6,
                  (srv1 - srv0) / wall, n, wall, books(), s1["slow_drops"] - s0["slow_drops"], errors())


async def run_native(sim: Sim, pairs: int, warmup: float, duration: float) -> Result:
    store = BookStore()
    liveness = store.liveness("kucoin")
    clock = time.monotonic
    apply = store.apply
    n = 0

    def on_updates(batch: list[BookUpdate]) -> None:  # the engine's sink, minus detection
        nonlocal n
        liveness.alive_at = clock()
        for update in batch:
            apply(update)
        n += len(batch)

    async with aiohttp.ClientSession() as http:
        md = KucoinMarketData(http, rest_url=sim.url, on_updates=on_updates, clock=clock,
                              options=WsOptions(stale_after_s=None))
        md.subscribe_all_tickers()
        task = asyncio.create_task(md.run())
        try:
            await md.wait_live(30)
            return await measure("native", sim, http, lambda: n, lambda: len(store), pairs, warmup, duration)
        finally:
            await md.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def run_ccxt(sim: Sim, pairs: int, warmup: float, duration: float) -> Result:
    ex = ccxt.pro.kucoin({"enableRateLimit": False, "options": {"fetchMarkets": {"types": ["spot"]}}})
    for key in CCXT_URL_KEYS:
        ex.urls["api"][key] = sim.url
    n = 0
    handle = ex.handle_message

    def counting(client: Any, message: Any) -> Any:  # bound into the client when it is created
        nonlocal n
        result = handle(client, message)
        if type(message) is dict and message.get("type") == "message":
            n += 1
        return result

    ex.handle_message = counting
    seen = 0
    errors = 0

    async def consume() -> None:
        nonlocal seen, errors
        while True:
            try:
                await ex.watch_tickers()
            except Exception:  # e.g. cut off as a slow consumer: the next watch reconnects
                errors += 1
                await asyncio.sleep(0.1)
                continue
            seen = len(ex.tickers)  # a consumer reads the whole state from exchange.tickers

    try:
        await ex.load_markets()
        consumer = asyncio.create_task(consume())
        async with aiohttp.ClientSession() as http:
            try:
                return await measure("ccxt", sim, http, lambda: n, lambda: seen, pairs, warmup, duration,
                                     lambda: errors)
            finally:
                consumer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await consumer
    finally:
        await ex.close()


def show(r: Result) -> None:
    extra = (f", {r.server_slow_drops} slow-consumer drops" if r.server_slow_drops else "") + (
        f", {r.errors} watch errors" if r.errors else "")
    print(f"  {r.client:<7}{r.messages_per_s:>10,.0f} msg/s of {r.offered_per_s:>8,.0f} pushed "
          f"({'kept up' if r.kept_up else 'FELL BEHIND'}), client CPU {r.cpu_cores:5.2f} core "
          f"= {r.cpu_us_per_message:5.1f} µs/msg ({r.per_core:,.0f} msg/s per core), "
          f"server CPU {r.server_cpu_cores:4.2f} core, {r.books} books{extra}", flush=True)


async def main(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hz", default="10,40", help="ticker pushes per symbol per second, comma-separated")
    parser.add_argument("--duration", type=float, default=15.0, help="measured window per client, seconds")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--pairs", type=int, default=1250)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    rates = [float(x) for x in args.hz.split(",") if x.strip()]
    print(f"ws_loopback: {args.pairs} pairs, ticker:all, {args.duration:g} s per client after "
          f"{args.warmup:g} s warm-up; load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs", flush=True)
    runs = []
    for hz in rates:
        sim = start_sim(args.pairs, hz, args.seed)
        try:
            print(f"{hz:g} Hz x {args.pairs} pairs = {hz * args.pairs:,.0f} msg/s offered "
                  f"(server {sim.url})", flush=True)
            native = await run_native(sim, args.pairs, args.warmup, args.duration)
            show(native)
            gc.collect()
            ccxt_result = await run_ccxt(sim, args.pairs, args.warmup, args.duration)
            show(ccxt_result)
        finally:
            sim.stop()
        ratio = native.messages_per_s / ccxt_result.messages_per_s
        cpu_ratio = ccxt_result.cpu_us_per_message / native.cpu_us_per_message
        print(f"  ratio native/ccxt: {ratio:.2f}x messages/s, {cpu_ratio:.1f}x less CPU per message", flush=True)
        runs.append({"hz": hz, "native": asdict(native) | {"per_core": round(native.per_core)},
                     "ccxt": asdict(ccxt_result) | {"per_core": round(ccxt_result.per_core)},
                     "ratio": round(ratio, 3), "cpu_ratio": round(cpu_ratio, 2)})
    top = max(runs, key=lambda r: r["hz"])
    return {"native_messages_per_s": round(top["native"]["messages_per_s"]),
            "ccxt_messages_per_s": round(top["ccxt"]["messages_per_s"]), "ratio": top["ratio"],
            "cpu_ratio": top["cpu_ratio"], "native_per_core": top["native"]["per_core"],
            "ccxt_per_core": top["ccxt"]["per_core"], "hz": top["hz"], "pairs": args.pairs, "duration_s": args.duration,
            "native_kept_up": top["native"]["kept_up"], "ccxt_kept_up": top["ccxt"]["kept_up"],
            "load_average": round(os.getloadavg()[0], 2), "runs": runs}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1:]))))
