"""The REST scanner: every ``scan_interval_s`` one all-tickers snapshot, every cycle priced, the best ranked.

The full pass never holds the event loop for long, so the websocket readers keep their turn:

- ``slices`` (default): the snapshot is decoded with a typed msgspec decoder (only the four fields used),
  edge weights are computed vectorised, and the cycles are summed ``scan_slice_cycles`` at a time with
  an ``await`` between slices;
- ``process``: the raw response goes to one worker process that holds the cycle table and sends back
  only the ranking; the loop does nothing but the HTTP read.

benchmarks/load.py measures both against the original design (pandas over the snapshot on the loop).
The ranking's best cycles give the watchlist (:func:`cryptoarb.run.watchlist.select`), written
atomically and handed to the runner, which re-subscribes depth when it changed.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import msgspec
import numpy as np

from cryptoarb.core.detector import fee_log
from cryptoarb.model import Cycle, Leg, Side
from cryptoarb.run.venue import describe_failure
from cryptoarb.run.watchlist import RankedCycle, Watchlist, cycle_symbols, select, write_watchlist

log = logging.getLogger("cryptoarb.run.scanner")

ALL_TICKERS_PATH = "/api/v1/market/allTickers"
_NEG_INF = float("-inf")


class ScanError(Exception):
    """A scan that could not run (venue unreachable, refused, malformed answer); one line, no secrets."""


# -- the snapshot -------------------------------------------------------------------------------------

class _Tick(msgspec.Struct, gc=False):
    symbol: str
    buy: float | None = None
    sell: float | None = None


class _TickersData(msgspec.Struct, gc=False):
    time: int = 0
    ticker: list[_Tick] = msgspec.field(default_factory=list)


class _TickersResponse(msgspec.Struct, gc=False):
    code: str = ""
    msg: str = ""
    data: _TickersData | None = None


_decode_tickers = msgspec.json.Decoder(_TickersResponse, strict=False).decode


@dataclass(slots=True)
class Snapshot:
    bids: np.ndarray
    asks: np.ndarray
    time_ms: int
    quoted: int
    """Markets of the table the snapshot quoted on both sides."""


def decode_snapshot(raw: bytes, index: dict[str, int]) -> Snapshot:
    """An allTickers response body -> best bid and ask per market of ``index`` (0 / inf when missing)."""
    try:
        response = _decode_tickers(raw)
    except msgspec.DecodeError as exc:
        raise ScanError(f"allTickers: malformed answer: {exc}") from None
    if response.code != "200000" or response.data is None:
        raise ScanError(f"allTickers refused: code {response.code or '?'} {response.msg}".strip())
    bids = np.zeros(len(index))
    asks = np.full(len(index), np.inf)
    quoted = 0
    get = index.get
    for tick in response.data.ticker:
        i = get(tick.symbol)
        if i is None:
            continue
        bid, ask = tick.buy, tick.sell
        if bid and ask:
            bids[i] = bid
            asks[i] = ask
            quoted += 1
    return Snapshot(bids, asks, response.data.time, quoted)


# -- the cycle table ----------------------------------------------------------------------------------

@dataclass(slots=True)
class CycleTable:
    """Cycles as edge-id columns over one venue's markets: edge 2m sells market m, 2m+1 buys it, edge 2M
    is the zero-weight padding of shorter cycles (the detector's layout, built independently here so the
    scan never touches the engine's live detector)."""

    symbols: list[str]
    index: dict[str, int]
    fee_sell: np.ndarray
    fee_buy: np.ndarray
    columns: tuple[np.ndarray, ...]

    @classmethod
    def build(cls, cycles: Sequence[Cycle]) -> CycleTable:
        markets: dict[str, Any] = {}
        for cycle in cycles:
            for leg in cycle.legs:
                markets.setdefault(leg.market.symbol, leg.market)
        symbols = list(markets)
        index = {s: i for i, s in enumerate(symbols)}
        fee_sell = np.array([fee_log(Leg(m, Side.SELL)) for m in markets.values()], dtype=np.float64)
        fee_buy = np.array([fee_log(Leg(m, Side.BUY)) for m in markets.values()], dtype=np.float64)
        width = max((len(c.legs) for c in cycles), default=1)
        pad = 2 * len(symbols)
        edges = np.full((len(cycles), width), pad, dtype=np.intp)
        for ci, cycle in enumerate(cycles):
            for li, leg in enumerate(cycle.legs):
                edges[ci, li] = 2 * index[leg.market.symbol] + (leg.side is Side.BUY)
        columns = tuple(np.ascontiguousarray(edges[:, j]) for j in range(width))
        return cls(symbols, index, fee_sell, fee_buy, columns)

    @property
    def n_cycles(self) -> int:
        return len(self.columns[0]) if self.columns else 0

    def weights(self, snapshot: Snapshot) -> np.ndarray:
        n = len(self.symbols)
        w = np.empty(2 * n + 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            sell = np.where((snapshot.bids > 0) & np.isfinite(snapshot.bids),
                            np.log(snapshot.bids) + self.fee_sell, _NEG_INF)
            buy = np.where((snapshot.asks > 0) & np.isfinite(snapshot.asks),
                           -np.log(snapshot.asks) + self.fee_buy, _NEG_INF)
        w[0:2 * n:2] = sell
        w[1:2 * n:2] = buy
        w[2 * n] = 0.0
        return w

    def log_sums(self, w: np.ndarray, start: int, stop: int) -> np.ndarray:
        total = w.take(self.columns[0][start:stop])
        for column in self.columns[1:]:
            total += w.take(column[start:stop])
        return total


def top_k(log_sums: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(cycle indices, net return bps) of the ``k`` best finite cycles, best first (ties by index)."""
    finite = np.flatnonzero(np.isfinite(log_sums))
    if not len(finite):
        return np.empty(0, dtype=np.intp), np.empty(0)
    values = log_sums[finite]
    if len(finite) > k:
        part = np.argpartition(-values, k - 1)[:k]
        finite, values = finite[part], values[part]
    order = np.lexsort((finite, -values))
    return finite[order], 10_000.0 * np.expm1(values[order])


# -- evaluators ---------------------------------------------------------------------------------------

@dataclass(slots=True)
class Ranking:
    ranked: list[RankedCycle]
    snapshot_ms: int
    markets_quoted: int
    cycles: int
    eval_ms: float = 0.0


class Evaluator(Protocol):
    """Turns one raw allTickers body into a ranking of cycles; ``name`` shows in status and the watchlist."""

    name: str

    async def evaluate(self, raw: bytes) -> Ranking: ...

    async def close(self) -> None: ...


def _ranking(cycles: Sequence[Cycle], symbols: Sequence[tuple[str, ...]], idx: np.ndarray, bps: np.ndarray,
             snapshot_ms: int, quoted: int, eval_ms: float) -> Ranking:
    ranked = [RankedCycle(cycles[i], b, n + 1, symbols[i])
              for n, (i, b) in enumerate(zip(idx.tolist(), bps.tolist(), strict=True))]
    return Ranking(ranked, snapshot_ms, quoted, len(cycles), eval_ms)


class SliceEvaluator:
    """On the loop, in bounded slices: decode, weights, then ``slice_cycles`` cycle sums per turn."""

    name = "slices"

    def __init__(self, cycles: Sequence[Cycle], *, top: int, slice_cycles: int = 20_000) -> None:
        self.cycles = list(cycles)
        self.symbols = [cycle_symbols(c) for c in self.cycles]
        self.table = CycleTable.build(self.cycles)
        self.top = top
        self.slice_cycles = max(1, slice_cycles)
        self.slices = 0

    async def evaluate(self, raw: bytes) -> Ranking:
        started = time.perf_counter()
        snapshot = decode_snapshot(raw, self.table.index)
        await asyncio.sleep(0)
        w = self.table.weights(snapshot)
        n = self.table.n_cycles
        sums = np.empty(n)
        for start in range(0, n, self.slice_cycles):
            await asyncio.sleep(0)
            stop = min(n, start + self.slice_cycles)
            sums[start:stop] = self.table.log_sums(w, start, stop)
            self.slices += 1
        await asyncio.sleep(0)
        idx, bps = top_k(sums, self.top)
        await asyncio.sleep(0)
        return _ranking(self.cycles, self.symbols, idx, bps, snapshot.time_ms, snapshot.quoted,
                        (time.perf_counter() - started) * 1000)

    async def close(self) -> None:
        return None


_WORKER: dict[str, Any] = {}


def _worker_init(symbols: list[str], fee_sell: np.ndarray, fee_buy: np.ndarray,
                 columns: tuple[np.ndarray, ...]) -> None:
    _WORKER["table"] = CycleTable(symbols, {s: i for i, s in enumerate(symbols)}, fee_sell, fee_buy, columns)


def _worker_evaluate(raw: bytes, top: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    table: CycleTable = _WORKER["table"]
    snapshot = decode_snapshot(raw, table.index)
    idx, bps = top_k(table.log_sums(table.weights(snapshot), 0, table.n_cycles), top)
    return idx, bps, snapshot.time_ms, snapshot.quoted


def _worker_ping() -> bool:
    return "table" in _WORKER


class ProcessEvaluator:
    """In one worker process (spawned, so no locks or threads are inherited) that holds the cycle table;
    only the raw body goes in and the ranking comes back."""

    name = "process"

    def __init__(self, cycles: Sequence[Cycle], *, top: int) -> None:
        self.cycles = list(cycles)
        self.symbols = [cycle_symbols(c) for c in self.cycles]
        self.top = top
        table = CycleTable.build(self.cycles)
        self._pool = ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init,
            initargs=(table.symbols, table.fee_sell, table.fee_buy, table.columns))

    async def start(self) -> None:
        """Start the worker now (spawning imports numpy: ~1 s) rather than on the first scan."""
        await asyncio.get_running_loop().run_in_executor(self._pool, _worker_ping)

    async def evaluate(self, raw: bytes) -> Ranking:
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        idx, bps, time_ms, quoted = await loop.run_in_executor(self._pool, _worker_evaluate, raw, self.top)
        return _ranking(self.cycles, self.symbols, idx, bps, time_ms, quoted, (time.perf_counter() - started) * 1000)

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def make_evaluator(mode: str, cycles: Sequence[Cycle], *, top: int, slice_cycles: int) -> Evaluator:
    if mode == "process":
        return ProcessEvaluator(cycles, top=top)
    if mode == "slices":
        return SliceEvaluator(cycles, top=top, slice_cycles=slice_cycles)
    raise ValueError(f"unknown scan mode {mode!r} (slices, process)")


# -- fetching -----------------------------------------------------------------------------------------

@dataclass(slots=True)
class RateLimit:
    """KuCoin's ``gw-ratelimit-*`` headers of the last answer (the public pool for allTickers)."""

    limit: int | None = None
    remaining: int | None = None
    reset_ms: int | None = None

    def update(self, headers: Any) -> None:
        for name, attr in (("gw-ratelimit-limit", "limit"), ("gw-ratelimit-remaining", "remaining"),
                           ("gw-ratelimit-reset", "reset_ms")):
            value = headers.get(name)
            if value is not None and value.lstrip("-").isdigit():
                setattr(self, attr, int(value))


class TickerFetcher:
    """GET allTickers with aiohttp; the body stays raw bytes for the evaluator."""

    def __init__(self, http: aiohttp.ClientSession, rest_url: str, *, timeout_s: float = 10.0) -> None:
        self.http = http
        self.url = rest_url.rstrip("/") + ALL_TICKERS_PATH
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.rate_limit = RateLimit()

    async def __call__(self) -> bytes:
        try:
            async with self.http.get(self.url, timeout=self.timeout) as resp:
                self.rate_limit.update(resp.headers)
                raw = await resp.read()
                if resp.status != 200:
                    raise ScanError(f"allTickers: HTTP {resp.status} {raw[:160].decode(errors='replace')}")
                return raw
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise ScanError(describe_failure(exc, self.url)) from None


# -- the scanner --------------------------------------------------------------------------------------

@dataclass(slots=True)
class ScanStats:
    scans: int = 0
    errors: int = 0
    last_error: str = ""
    last_at: float | None = None
    last_fetch_ms: float = 0.0
    last_eval_ms: float = 0.0
    last_total_ms: float = 0.0
    last_markets_quoted: int = 0
    last_best_bps: float | None = None
    watchlist_changes: int = 0
    durations_ms: list[float] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        recent = self.durations_ms[-100:]
        return {"scans": self.scans, "errors": self.errors, "last_error": self.last_error, "last_at": self.last_at,
                "last_fetch_ms": round(self.last_fetch_ms, 3), "last_eval_ms": round(self.last_eval_ms, 3),
                "last_total_ms": round(self.last_total_ms, 3), "markets_quoted": self.last_markets_quoted,
                "best_net_return_bps": None if self.last_best_bps is None else round(self.last_best_bps, 4),
                "watchlist_changes": self.watchlist_changes,
                "total_ms_p50": round(float(np.median(recent)), 3) if recent else None}


class Scanner:
    """Scan, rank, select the watchlist, write it, hand it on; every ``interval_s`` on a fixed grid."""

    def __init__(self, *, fetch: Callable[[], Awaitable[bytes]], evaluator: Evaluator, venue: str, size: int,
                 watchlist_path: Path, on_watchlist: Callable[[Watchlist], None], interval_s: float = 2.0,
                 keep_rank: float = 1.5, clock: Callable[[], float] = time.time) -> None:
        self.fetch = fetch
        self.evaluator = evaluator
        self.venue = venue
        self.size = size
        self.keep_rank = keep_rank
        self.watchlist_path = Path(watchlist_path)
        self.on_watchlist = on_watchlist
        self.interval_s = interval_s
        self.clock = clock
        self.stats = ScanStats()
        self.watchlist: Watchlist | None = None
        self._errors_logged = 0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            try:
                await self.scan_once()
            except ScanError as exc:
                self._failed(str(exc))
            due += self.interval_s
            delay = due - loop.time()
            if delay < 0:  # a scan (or the machine) overran: skip the missed ticks, keep the grid
                due = loop.time()
                delay = 0.0
            await asyncio.sleep(delay)

    async def scan_once(self) -> Watchlist:
        started = time.perf_counter()
        raw = await self.fetch()
        fetched = time.perf_counter()
        ranking = await self.evaluator.evaluate(raw)
        evaluated = time.perf_counter()
        await asyncio.sleep(0)  # ranking, selection and encoding: each its own turn of the loop
        current = self.watchlist.symbols if self.watchlist is not None else ()
        scan = {"snapshot_ms": ranking.snapshot_ms, "markets": ranking.markets_quoted, "cycles": ranking.cycles,
                "duration_ms": round((evaluated - started) * 1000, 3), "mode": self.evaluator.name}
        watchlist = select(ranking.ranked, self.size, venue=self.venue, current=current, keep_rank=self.keep_rank,
                           at=self.clock(), scan=scan)
        await asyncio.sleep(0)
        await write_watchlist(self.watchlist_path, watchlist)
        stats = self.stats
        stats.scans += 1
        stats.last_at = watchlist.generated_at
        stats.last_fetch_ms = (fetched - started) * 1000
        stats.last_eval_ms = (evaluated - fetched) * 1000
        stats.last_total_ms = (time.perf_counter() - started) * 1000
        stats.last_markets_quoted = ranking.markets_quoted
        stats.last_best_bps = ranking.ranked[0].net_return_bps if ranking.ranked else None
        stats.durations_ms.append(stats.last_total_ms)
        if len(stats.durations_ms) > 1000:
            del stats.durations_ms[:500]
        if self.watchlist is None or watchlist.symbols != self.watchlist.symbols:
            stats.watchlist_changes += 1
        self.watchlist = watchlist
        self._errors_logged = 0
        self.on_watchlist(watchlist)
        return watchlist

    def _failed(self, message: str) -> None:
        self.stats.errors += 1
        self.stats.last_error = message
        # one line per failure at first, then every 10th while it keeps failing
        if self._errors_logged < 3 or self.stats.errors % 10 == 0:
            log.warning("scan failed: %s", message)
        self._errors_logged += 1
