"""The engine under the full market: `cryptoarb sim-server` in its own process, the real `cryptoarb run`
pipeline against it, event-loop lag and throughput measured; then the same load with the original design's
scan (pandas over every pair, on the loop).

Per variant, a fresh simulator process pushes the full market (``--pairs`` pairs on ``ticker:all`` every
100 ms, every symbol every round: 12,500 messages/s at the defaults) plus ``level2Depth50`` for the
100-market watchlist, and a fresh child process runs :class:`cryptoarb.run.runner.RunApp` (paper trading,
REST scanner every 2 s, SQLite storage, console notifier and status view writing to /dev/null, status
endpoint on; the view is the plain status line a non-terminal gets, ``--tty-view`` renders the rich live
view instead). After start-up and ``--warmup`` seconds, a ``--duration`` window measures:

- event-loop lag p50 / p99 / max (a 10 ms ``LoopLagMonitor`` started at the window, same as the engine's);
- market-data messages processed per second, book updates applied per second;
- messages dropped: frames the engine received but could not apply (decode or engine errors), plus
  frames lost with a connection the server or the network cut (estimated from the server's count);
- reconnects (client side) and connections the server cut (slow consumer, faults);
- CPU of the engine process (plus its scan worker in ``process`` mode) and of the simulator;
- the noise floor: an idle event loop in another process, probed the same way over the same window (the
  machine is shared: what an idle loop sees, ours sees too);
- how long a descriptor that became readable waits for the engine's loop (``reaction``): another process
  writes its monotonic clock into a pipe every 10 ms and the engine's loop notes how late it reads each
  stamp, the path a market frame takes (the lag probe's timer runs where the loop's timer code puts it:
  asyncio's after the socket callbacks of its turn).

Variants: ``ours`` (the configured scan: bounded slices on the loop), ``process`` (the scan in a worker
process), ``naive`` (pandas over every pair on the loop: see :class:`NaivePandasEvaluator`).
``--compare-scan-modes`` measures the scan alone (slices against the process pool) on an idle loop.

    .venv/bin/python benchmarks/load.py [--duration 60] [--warmup 5] [--variants ours,naive]
                                        [--pairs 1250] [--ticker-hz 10] [--watchlist 100] [--max-legs 3]
                                        [--tty-view] [--set KEY=VALUE ...]

``--set`` overrides a ``[run]`` setting of the engine; ``--set event_loop=uvloop`` runs the child on uvloop
(asyncio's loop by default, as ``cryptoarb run``).

The last line printed is one JSON object (``loop_lag_p99_ms``, ``loop_lag_max_ms``, ``messages_per_s``,
``dropped``, ``reconnects``, ``naive_loop_lag_p99_ms``, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pandas as pd
from rich.console import Console

from cryptoarb.config import RunSettings, Settings
from cryptoarb.looplag import LoopLagMonitor
from cryptoarb.model import Cycle
from cryptoarb.run.runner import RunApp, run_coroutine
from cryptoarb.run.scanner import Ranking
from cryptoarb.run.watchlist import RankedCycle
from cryptoarb.venues.sim_process import start_server, stop_server

GOAL_P99_MS = 5.0
GOAL_MAX_MS = 50.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------------
# the original design's scan


class NaivePandasEvaluator:
    """The original design's scan: the REST snapshot into a DataFrame, then pandas over every pair.

    For every USDT pair, the base's other quotes are found with a boolean mask over the whole frame, and
    for each of those the quote's USDT pair with another mask; both directions of each triangle are priced
    after fees from the rows. Everything runs in one call on the event loop, with no await: this is the
    "CPU-heavy pass (pandas over every pair) on the same event loop" of DESIGN.md. It finds the same
    1,610 three-leg USDT cycles as ours on the default universe (mapped back to the engine's cycles for
    the watchlist).
    """

    name = "pandas-on-loop"

    def __init__(self, cycles: Sequence[Cycle], top: int) -> None:
        self.top = top
        self.cycles = list(cycles)
        self.by_legs = {tuple((leg.market.symbol, leg.side.value) for leg in c.legs): c for c in self.cycles}

    async def evaluate(self, raw: bytes) -> Ranking:
        started = time.perf_counter()
        data = json.loads(raw)["data"]
        df = pd.DataFrame(data["ticker"])
        for column, source in (("bid", "buy"), ("ask", "sell"), ("fee", "takerFeeRate")):
            df[column] = pd.to_numeric(df[source], errors="coerce")
        parts = df["symbol"].str.split("-", expand=True)
        df["base"], df["quote"] = parts[0], parts[1]
        found: list[tuple[tuple[tuple[str, str], ...], float]] = []
        for _, first in df[df["quote"] == "USDT"].iterrows():
            for _, mid in df[(df["base"] == first["base"]) & (df["quote"] != "USDT")].iterrows():
                back = df[df["symbol"] == f"{mid['quote']}-USDT"]
                if back.empty:
                    continue
                last = back.iloc[0]
                forward = (1 / (first["ask"] * (1 + first["fee"]))) * mid["bid"] * (1 - mid["fee"]) \
                    * last["bid"] * (1 - last["fee"])
                reverse = (1 / (last["ask"] * (1 + last["fee"]))) * (1 / (mid["ask"] * (1 + mid["fee"]))) \
                    * first["bid"] * (1 - first["fee"])
                found.append((((first["symbol"], "buy"), (mid["symbol"], "sell"), (last["symbol"], "sell")),
                              (forward - 1) * 10_000))
                found.append((((last["symbol"], "buy"), (mid["symbol"], "buy"), (first["symbol"], "sell")),
                              (reverse - 1) * 10_000))
        found.sort(key=lambda item: -item[1] if np.isfinite(item[1]) else np.inf)
        ranked = []
        for legs, bps in found:
            cycle = self.by_legs.get(legs)
            if cycle is not None and np.isfinite(bps) and len(ranked) < self.top:
                ranked.append(RankedCycle(cycle, float(bps), len(ranked) + 1))
        return Ranking(ranked, int(data.get("time") or 0), len(df), len(self.cycles),
                       (time.perf_counter() - started) * 1000)

    async def close(self) -> None:
        return None


# ---------------------------------------------------------------------------------------------------
# processes


def start_sim(pairs: int, ticker_hz: float) -> tuple[subprocess.Popen[str], str]:
    """`cryptoarb sim-server kucoin` pushing every symbol's ticker every round."""
    return start_server("cryptoarb.venues.kucoin.sim_cli", "--pairs", str(pairs), "--ticker-always", "--ticker-hz",
                        str(ticker_hz))




def start_floor_probe(duration: float, event_loop: str) -> subprocess.Popen[str]:
    """An idle event loop of the engine's kind in its own process, probed like ours for the same window: the
    machine's noise."""
    return subprocess.Popen([sys.executable, "-m", "cryptoarb.looplag", str(duration), event_loop],
                            stdout=subprocess.PIPE, text=True)


REACTION_WRITER = """
import os, struct, sys, time
fd, end = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])
try:
    while time.monotonic() < end:
        time.sleep(0.01)
        os.write(fd, struct.pack("=q", time.monotonic_ns()))
except BrokenPipeError:
    pass  # the engine closed its end: the window is over
"""


class ReactionProbe(asyncio.Protocol):
    """How long a descriptor that became readable waits for the engine's loop, as a market frame does.

    Another process writes its monotonic clock (shared by every process on Linux) into a pipe every 10 ms;
    this protocol, on the engine's loop, notes how much later it is handed each stamp. Unlike the lag probe's
    timer, this is the path a frame takes: epoll says the descriptor is ready, and the loop gets to it after
    whatever it was already running.
    """

    def __init__(self) -> None:
        self.delays_us: list[float] = []
        self._pending = b""

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        pending = self._pending + data
        whole = len(pending) - len(pending) % 8
        self.delays_us.extend((now - stamp) / 1000 for (stamp,) in struct.iter_unpack("=q", pending[:whole]))
        self._pending = pending[whole:]

    def percentile_ms(self, q: float) -> float | None:
        return round(float(np.percentile(self.delays_us, q)) / 1000, 3) if self.delays_us else None


async def start_reaction_probe(duration: float) -> tuple[ReactionProbe, asyncio.BaseTransport, subprocess.Popen[str]]:
    read_fd, write_fd = os.pipe()
    probe = ReactionProbe()
    transport, _ = await asyncio.get_running_loop().connect_read_pipe(lambda: probe, os.fdopen(read_fd, "rb", 0))
    writer = subprocess.Popen([sys.executable, "-c", REACTION_WRITER, str(write_fd), str(duration)],
                              pass_fds=(write_fd,), text=True)
    os.close(write_fd)
    return probe, transport, writer


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def worker_cpu() -> float:
    return sum(cpu_seconds(p.pid) for p in multiprocessing.active_children() if p.pid is not None)


# ---------------------------------------------------------------------------------------------------
# one variant, in a child process


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.05)


async def sim_stats(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with http.get(url + "/_sim/stats") as resp:
        return await resp.json() if resp.status == 200 else {}


def ticker_messages(app: RunApp) -> int:
    assert app.market_data is not None
    return sum(c["messages"] for c in app.market_data.stats()["connections"] if c["kind"] == "tickers")


async def measure(variant: str, url: str, sim_pid: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    settings = Settings(
        data_dir=work / "data", detector={"max_legs": args.max_legs},
        run=RunSettings(**{"rest_url": url, "status_port": 0, "watchlist_file": work / "data" / "watchlist.json",
                           "scan_interval_s": 2.0, "watchlist_size": args.watchlist,
                           "scan_mode": "process" if variant == "process" else "slices",
                           **run_overrides(args)}))
    sink = open(os.devnull, "w")  # noqa: SIM115 - closed below
    console = Console(file=sink, force_terminal=args.tty_view, width=160)
    factory = (lambda cycles, rs: NaivePandasEvaluator(cycles, top=rs.watchlist_size * 20)) \
        if variant == "naive" else None
    app = RunApp(settings, command="run", console=console, live_view=True, install_signals=False,
                 evaluator_factory=factory)
    task = asyncio.create_task(app.run())
    try:
        await until(lambda: app.state == "running" or task.done(), 120, "the engine to start")
        if task.done():
            raise RuntimeError(f"the engine stopped during start-up: {app.last_error or app.venue_error}")
        assert app.market_data is not None and app.scanner is not None
        await until(lambda: app.scanner.stats.scans >= 1, 60, "the first scan")
        await until(lambda: app.market_data.stats()["totals"]["subscribed"] >= 1 + args.watchlist, 60,
                    "depth for the watchlist")
        await asyncio.sleep(args.warmup)  # the warm-up is part of the measurement design
        startup_lag_max = app.lag.max_ms
        async with aiohttp.ClientSession() as http:
            floor = start_floor_probe(args.duration, settings.run.event_loop)
            reaction, reaction_pipe, reaction_writer = await start_reaction_probe(args.duration)
            lag = LoopLagMonitor()
            lag_task = asyncio.create_task(lag.run())
            md0 = app.market_data.stats()["totals"]
            srv0 = await sim_stats(http, url)
            c0, w0, s0, x0 = time.process_time(), time.monotonic(), cpu_seconds(sim_pid), worker_cpu()
            m0, u0, scans0 = app.messages, app.engine.counters.updates, app.scanner.stats.scans
            await asyncio.sleep(args.duration)
            c1, w1, s1, x1 = time.process_time(), time.monotonic(), cpu_seconds(sim_pid), worker_cpu()
            m1, u1, scans1 = app.messages, app.engine.counters.updates, app.scanner.stats.scans
            lag_task.cancel()
            reaction_pipe.close()  # the writer ends at its next write; it is reaped once the engine has stopped
            md1 = app.market_data.stats()["totals"]
            scan_ms = list(app.scanner.stats.durations_ms[-(scans1 - scans0):]) if scans1 > scans0 else []
            # drops: everything the server queued for our ticker:all connection by now must arrive; freeze
            # the server, let the client drain what is in flight, compare
            srv1 = await sim_stats(http, url)
            os.kill(sim_pid, signal.SIGSTOP)
            try:
                last, stable_since = -1, time.monotonic()
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    now_count = ticker_messages(app)
                    if now_count != last:
                        last, stable_since = now_count, time.monotonic()
                    elif time.monotonic() - stable_since > 0.5:
                        break
                    await asyncio.sleep(0.05)
                received = ticker_messages(app)
            finally:
                os.kill(sim_pid, signal.SIGCONT)
    finally:
        app.request_stop("duration")
        summary = await task
        sink.close()
    floor_out, _ = floor.communicate(timeout=60)
    reaction_writer.wait(timeout=60)
    idle = json.loads(floor_out.strip().splitlines()[-1]) if floor_out.strip() else {}
    window = w1 - w0
    cut = (srv1.get("slow_drops", 0) + srv1.get("fault_drops", 0)) - (srv0.get("slow_drops", 0)
                                                                      + srv0.get("fault_drops", 0))
    reconnects = md1["reconnects"]
    queued_to_us = srv1.get("ticker_all_frames", 0)
    behind = max(0, queued_to_us - received)
    lost = behind if (cut or reconnects) else 0
    errors = md1["decode_errors"] + md1["sink_errors"]
    with sqlite3.connect(work / "data" / "cryptoarb.sqlite") as db:
        rows = {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("opportunities", "rejections", "orders", "fills", "executions")}
    return {
        "variant": variant, "scan": app.evaluator.name if app.evaluator else "?", "window_s": round(window, 2),
        "loop_lag_p50_ms": round(lag.percentile(50), 3), "loop_lag_p99_ms": round(lag.percentile(99), 3),
        "loop_lag_p999_ms": round(lag.percentile(99.9), 3), "loop_lag_max_ms": round(lag.max_ms, 3),
        "lag_samples": lag.samples, "idle_loop_lag_p99_ms": round(idle.get("p99", float("nan")), 3),
        "idle_loop_lag_max_ms": round(idle.get("max", float("nan")), 3),
        "reaction_p50_ms": reaction.percentile_ms(50), "reaction_p99_ms": reaction.percentile_ms(99),
        "reaction_max_ms": round(max(reaction.delays_us) / 1000, 3) if reaction.delays_us else None,
        "reaction_samples": len(reaction.delays_us),
        "startup_loop_lag_max_ms": round(startup_lag_max, 1),
        "messages_per_s": round((m1 - m0) / window, 1), "updates_per_s": round((u1 - u0) / window, 1),
        "ws_messages_per_s": round((md1["messages"] - md0["messages"]) / window, 1),
        "dropped": errors + lost, "decode_or_engine_errors": errors, "lost_with_cut_connections": lost,
        "server_ticker_frames": queued_to_us, "client_ticker_frames": received,
        "backlog_at_end": behind if not (cut or reconnects) else 0,
        "reconnects": reconnects, "server_cut_connections": cut,
        "server_connections": srv1.get("connections"),
        "cpu_pct": round(100 * ((c1 - c0) + (x1 - x0)) / window, 1), "sim_cpu_pct": round(100 * (s1 - s0) / window, 1),
        "scans": scans1 - scans0, "scan_ms_p50": round(float(np.median(scan_ms)), 2) if scan_ms else None,
        "scan_ms_max": round(max(scan_ms), 2) if scan_ms else None,
        "opportunities": summary.opportunities_detected, "executed": summary.opportunities_executed,
        "trades": summary.trades, "db_rows": rows, "task_restarts": summary.task_restarts,
    }


def run_overrides(args: argparse.Namespace) -> dict[str, str]:
    """The ``[run]`` settings given with ``--set KEY=VALUE``."""
    return dict(item.split("=", 1) for item in args.set)


def child(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="cryptoarb-load-") as tmp:
        # the loop `cryptoarb run` would use with these settings: --set event_loop=uvloop selects uvloop
        event_loop = RunSettings(**run_overrides(args)).event_loop
        result = run_coroutine(measure(args.child, args.sim_url, args.sim_pid, args, Path(tmp)), event_loop)
    print(json.dumps({**result, "event_loop": event_loop}), flush=True)


# ---------------------------------------------------------------------------------------------------
# the scan alone: slices against the process pool, on an otherwise idle loop


def _sim_all_tickers(pairs: int) -> tuple[list[Any], bytes]:
    from cryptoarb.config import SimSettings
    from cryptoarb.venues.sim import SimMarket, build_universe

    settings = SimSettings(pairs=pairs, assets=max(10, pairs // 3))
    universe = build_universe(settings)
    market = SimMarket(universe, settings)
    for _ in range(40):
        market.step()
    rows = []
    for symbol in universe.symbols:
        book = market.book(symbol)
        rows.append({"symbol": symbol, "buy": repr(book.bids[0][0]), "sell": repr(book.asks[0][0]),
                     "takerFeeRate": "0.001"})
    return universe.markets, json.dumps({"code": "200000", "data": {"time": 0, "ticker": rows}}).encode()


async def compare_scan_modes(args: argparse.Namespace) -> dict[str, Any]:
    """Each evaluator ranks the same snapshot ``--scans`` times (after one untimed warm-up scan) while a 1 ms
    probe measures the loop; nothing else runs on it."""
    from cryptoarb.core.graph import enumerate_cycles
    from cryptoarb.run.scanner import ProcessEvaluator, SliceEvaluator

    markets, raw = _sim_all_tickers(args.pairs)
    out: dict[str, Any] = {}
    for legs in (3, 4):
        cycles = enumerate_cycles(markets, legs, ["USDT"])
        for name in ("slices", "process"):
            evaluator: Any = (SliceEvaluator(cycles, top=2000) if name == "slices"
                              else ProcessEvaluator(cycles, top=2000))
            if name == "process":
                await evaluator.start()
            await evaluator.evaluate(raw)  # warm: first calls, worker imports
            gc.collect()
            lag = LoopLagMonitor(interval_s=0.001)
            probe = asyncio.create_task(lag.run())
            walls = []
            for _ in range(args.scans):
                started = time.perf_counter()
                await evaluator.evaluate(raw)
                walls.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(0.05)
            probe.cancel()
            await evaluator.close()
            row = out[f"{legs}leg_{name}"] = {
                "cycles": len(cycles), "scan_ms_p50": round(float(np.median(walls)), 2),
                "lag_p99_ms": round(lag.percentile(99), 2), "lag_max_ms": round(lag.max_ms, 2)}
            print(f"{legs}-leg ({len(cycles):,} cycles) {name:8} scan p50 {row['scan_ms_p50']:7.2f} ms"
                  f"   probe lag p99 {row['lag_p99_ms']:6.2f} ms  max {row['lag_max_ms']:6.2f} ms", flush=True)
    return out


# ---------------------------------------------------------------------------------------------------
# the parent: one simulator and one child per variant


def run_variant(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    proc, url = start_sim(args.pairs, args.ticker_hz)
    try:
        cmd = [sys.executable, __file__, "--child", variant, "--sim-url", url, "--sim-pid", str(proc.pid),
               "--duration", str(args.duration), "--warmup", str(args.warmup), "--watchlist", str(args.watchlist),
               "--max-legs", str(args.max_legs)] + (["--tty-view"] if args.tty_view else []) \
            + [a for item in args.set for a in ("--set", item)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + args.warmup + 300)
        if done.returncode != 0 or not done.stdout.strip():
            raise RuntimeError(f"{variant} run failed ({done.returncode}): {done.stderr[-2000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        stop_server(proc)


ROWS = (
    ("scan", "scan", "{}"), ("event-loop lag p50 (ms)", "loop_lag_p50_ms", "{:.2f}"),
    ("event-loop lag p99 (ms)", "loop_lag_p99_ms", "{:.2f}"),
    ("event-loop lag p99.9 (ms)", "loop_lag_p999_ms", "{:.1f}"),
    ("event-loop lag max (ms)", "loop_lag_max_ms", "{:.1f}"),
    ("  idle loop, same time: p99 (ms)", "idle_loop_lag_p99_ms", "{:.2f}"),
    ("  idle loop, same time: max (ms)", "idle_loop_lag_max_ms", "{:.1f}"),
    ("ready pipe handled after p50 (ms)", "reaction_p50_ms", "{:.2f}"),
    ("ready pipe handled after p99 (ms)", "reaction_p99_ms", "{:.2f}"),
    ("messages processed /s", "messages_per_s", "{:,.0f}"), ("book updates applied /s", "updates_per_s", "{:,.0f}"),
    ("messages dropped", "dropped", "{}"), ("  lost with cut connections", "lost_with_cut_connections", "{}"),
    ("  backlog at end (not lost)", "backlog_at_end", "{}"), ("reconnects", "reconnects", "{}"),
    ("connections cut by server", "server_cut_connections", "{}"), ("CPU engine (%)", "cpu_pct", "{:.1f}"),
    ("CPU simulator (%)", "sim_cpu_pct", "{:.1f}"), ("scans", "scans", "{}"), ("scan ms p50", "scan_ms_p50", "{}"),
    ("scan ms max", "scan_ms_max", "{}"), ("opportunities / executed", None, None),
    ("start-up lag max (ms)", "startup_loop_lag_max_ms", "{:.1f}"),
)


def print_table(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    names = list(results)
    offered = args.pairs * args.ticker_hz
    print(f"\nload: {args.pairs} pairs on ticker:all at {args.ticker_hz:g} Hz (~{offered:,.0f} msg/s)"
          f" + depth50 for {args.watchlist} watchlist pairs; {args.duration:g} s window after {args.warmup:g} s "
          f"warm-up; {args.max_legs}-leg cycles; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"{'':32}" + "".join(f"{n:>18}" for n in names))
    for label, key, fmt in ROWS:
        if key is None:
            cells = [f"{r['opportunities']} / {r['executed']}" for r in results.values()]
        else:
            cells = [fmt.format(r[key]) if r.get(key) is not None else "-" for r in results.values()]
        print(f"{label:32}" + "".join(f"{c:>18}" for c in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="measured window, seconds")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds after start-up before measuring")
    parser.add_argument("--variants", default="ours,naive", help="comma list of ours, process, naive")
    parser.add_argument("--pairs", type=int, default=1250)
    parser.add_argument("--ticker-hz", type=float, default=10.0)
    parser.add_argument("--watchlist", type=int, default=100)
    parser.add_argument("--max-legs", type=int, default=3, choices=(3, 4),
                        help="cycle length (4: ~130,000 cycles instead of ~1,600, a far heavier scan)")
    parser.add_argument("--tty-view", action="store_true",
                        help="render the live terminal view (rich, every run.view_interval_s) instead of the plain "
                             "status line a non-terminal gets")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a [run] setting of the engine, e.g. --set ws_read_chunk_bytes=8192")
    parser.add_argument("--compare-scan-modes", action="store_true",
                        help="only measure the scan alone, slices against the process pool, 3- and 4-leg cycles")
    parser.add_argument("--scans", type=int, default=20, help="scans per mode with --compare-scan-modes")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--sim-url", help=argparse.SUPPRESS)
    parser.add_argument("--sim-pid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.compare_scan_modes:
        print(json.dumps(run_coroutine(compare_scan_modes(args)), separators=(",", ":")))
        return
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(variants) - {"ours", "process", "naive"}
    if unknown:
        parser.error(f"unknown variants: {', '.join(sorted(unknown))}")
    results: dict[str, dict[str, Any]] = {}
    for variant in variants:
        print(f"running {variant} ({args.duration:g} s)...", file=sys.stderr, flush=True)
        results[variant] = run_variant(variant, args)
    print_table(results, args)
    out: dict[str, Any] = {"duration_s": args.duration, "pairs": args.pairs, "max_legs": args.max_legs,
                           "tty_view": args.tty_view,
                           "offered_messages_per_s": args.pairs * args.ticker_hz, "watchlist": args.watchlist}
    for variant, r in results.items():
        prefix = "" if variant == "ours" else f"{variant}_"
        for key in ("loop_lag_p50_ms", "loop_lag_p99_ms", "loop_lag_p999_ms", "loop_lag_max_ms",
                    "idle_loop_lag_p99_ms", "idle_loop_lag_max_ms", "reaction_p50_ms", "reaction_p99_ms",
                    "reaction_max_ms", "event_loop", "messages_per_s",
                    "dropped", "reconnects", "cpu_pct", "sim_cpu_pct", "scan_ms_p50"):
            out[prefix + key] = r[key]
    if "ours" in results:
        ours = results["ours"]
        out["goals"] = {"loop_lag_p99_under_5ms": ours["loop_lag_p99_ms"] < GOAL_P99_MS,
                        "loop_lag_max_under_50ms": ours["loop_lag_max_ms"] < GOAL_MAX_MS,
                        "no_drop": ours["dropped"] == 0, "no_reconnect": ours["reconnects"] == 0,
                        "at_least_10k_msg_s": ours["messages_per_s"] >= 10_000}
        out["goals_met"] = all(out["goals"].values())
    print(json.dumps(out, separators=(",", ":")))


if __name__ == "__main__":
    main()
