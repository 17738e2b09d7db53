"""The REST scanner: its cycle pricing agrees with the engine's detector, both evaluators agree, a scan
writes the watchlist and hands it on, failures are counted and retried on the next tick."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import numpy as np
import orjson
import pytest

from cryptoarb.config import SimSettings
from cryptoarb.core.detector import Detector
from cryptoarb.core.graph import enumerate_cycles
from cryptoarb.run.scanner import (
    CycleTable,
    ProcessEvaluator,
    ScanError,
    Scanner,
    SliceEvaluator,
    decode_snapshot,
    top_k,
)
from cryptoarb.run.watchlist import Watchlist, read_watchlist
from cryptoarb.venues.sim import SimMarket, build_universe


@pytest.fixture(scope="module")
def universe():
    settings = SimSettings(pairs=300, assets=100, hot_pairs=20)
    u = build_universe(settings)
    market = SimMarket(u, settings)
    for _ in range(40):
        market.step()
    books = {s: market.book(s) for s in u.symbols}
    return u, books


def all_tickers(books, *, drop: set[str] = frozenset(), code: str = "200000") -> bytes:
    rows = []
    for symbol, book in books.items():
        if symbol in drop:
            continue
        rows.append({"symbol": symbol, "symbolName": symbol, "buy": repr(book.bids[0][0]),
                     "sell": repr(book.asks[0][0]), "bestBidSize": "1", "bestAskSize": "1",
                     "takerFeeRate": "0.001", "last": "1"})
    return orjson.dumps({"code": code, "data": {"time": 1_700_000_000_000, "ticker": rows}})


def test_cycle_table_prices_every_cycle_like_the_detector(universe) -> None:
    u, books = universe
    for legs, starts in ((3, ["USDT"]), (3, None), (4, ["USDT"])):
        cycles = enumerate_cycles(u.markets, legs, starts)
        detector = Detector(cycles, 5.0)
        for book in books.values():
            detector.update((book.venue, book.symbol), book.bids[0][0], book.asks[0][0])
        table = CycleTable.build(cycles)
        snapshot = decode_snapshot(all_tickers(books), table.index)
        assert snapshot.quoted == len(table.symbols)
        w = table.weights(snapshot)
        sums = np.concatenate([table.log_sums(w, a, min(a + 97, table.n_cycles)) for a in range(0, table.n_cycles, 97)])
        np.testing.assert_allclose(sums, detector.log_returns(), rtol=0, atol=1e-12)


def test_top_k_is_best_first_and_skips_missing_books() -> None:
    sums = np.array([0.001, -np.inf, 0.003, 0.002, 0.003, np.nan])
    idx, bps = top_k(sums, 3)
    assert idx.tolist() == [2, 4, 3]  # ties by index
    np.testing.assert_allclose(bps, 10_000 * np.expm1([0.003, 0.003, 0.002]))
    assert top_k(np.array([-np.inf]), 5)[0].tolist() == []


def test_decode_snapshot_rejects_errors_and_tolerates_missing_pairs(universe) -> None:
    _, books = universe
    symbols = list(books)
    index = {s: i for i, s in enumerate(symbols)}
    snap = decode_snapshot(all_tickers(books, drop={symbols[0]}), index)
    assert snap.bids[0] == 0 and snap.asks[0] == np.inf and snap.quoted == len(symbols) - 1
    with pytest.raises(ScanError, match="429000"):
        decode_snapshot(orjson.dumps({"code": "429000", "msg": "Too Many Requests"}), index)
    with pytest.raises(ScanError, match="malformed"):
        decode_snapshot(b"<html>", index)


async def test_slice_and_process_evaluators_agree(universe) -> None:
    u, books = universe
    cycles = enumerate_cycles(u.markets, 3, None)
    raw = all_tickers(books)
    slices = SliceEvaluator(cycles, top=50, slice_cycles=100)
    process = ProcessEvaluator(cycles, top=50)
    try:
        await process.start()
        a, b = await slices.evaluate(raw), await process.evaluate(raw)
    finally:
        await process.close()
    assert slices.slices >= len(cycles) // 100
    assert [r.cycle.id for r in a.ranked] == [r.cycle.id for r in b.ranked]
    assert [r.rank for r in a.ranked] == list(range(1, 51))
    np.testing.assert_allclose([r.net_return_bps for r in a.ranked], [r.net_return_bps for r in b.ranked])
    assert a.markets_quoted == b.markets_quoted == len({leg.market.symbol for c in cycles for leg in c.legs})


async def test_scan_writes_the_watchlist_and_hands_it_on(universe, tmp_path: Path) -> None:
    u, books = universe
    cycles = enumerate_cycles(u.markets, 3, ["USDT"])
    bodies = [all_tickers(books)]
    handed: list[Watchlist] = []

    async def fetch() -> bytes:
        return bodies[-1]

    path = tmp_path / "data" / "watchlist.json"
    scanner = Scanner(fetch=fetch, evaluator=SliceEvaluator(cycles, top=400), venue="kucoin", size=20,
                      watchlist_path=path, on_watchlist=handed.append, interval_s=2.0)
    wl = await scanner.scan_once()
    assert handed == [wl] and read_watchlist(path) == wl
    assert 18 <= len(wl.symbols) <= 20
    assert all(wl.by_symbol[s] for s in wl.symbols)
    doc = json.loads(path.read_text())
    assert doc["scan"]["cycles"] == len(cycles) and doc["scan"]["mode"] == "slices"
    assert scanner.stats.scans == 1 and scanner.stats.errors == 0


async def test_failed_scans_are_counted_and_the_grid_goes_on(universe, tmp_path: Path) -> None:
    u, books = universe
    cycles = enumerate_cycles(u.markets, 3, ["USDT"])
    calls = 0
    done = asyncio.Event()

    async def fetch() -> bytes:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ScanError("cannot reach api.example: DNS lookup failed")
        done.set()
        return all_tickers(books)

    scanner = Scanner(fetch=fetch, evaluator=SliceEvaluator(cycles, top=100), venue="kucoin", size=10,
                      watchlist_path=tmp_path / "wl.json", on_watchlist=lambda wl: None, interval_s=0.01)
    task = asyncio.create_task(scanner.run())
    try:
        await asyncio.wait_for(done.wait(), 10)
        await asyncio.wait_for(_until(lambda: scanner.stats.scans >= 1), 10)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert scanner.stats.errors == 2
    assert "DNS lookup failed" in scanner.stats.last_error


async def _until(predicate) -> None:
    while not predicate():
        await asyncio.sleep(0.005)


def test_random_prices_rank_consistently(universe) -> None:
    """Rank 1 is the cycle with the largest product of fee-adjusted rates, recomputed by hand."""
    u, books = universe
    rng = random.Random(3)
    cycles = enumerate_cycles(u.markets, 3, ["USDT"])
    table = CycleTable.build(cycles)
    noisy = {s: type("B", (), {"bids": [(b.bids[0][0] * (1 + rng.uniform(-0.01, 0.01)), 1)],
                               "asks": [(b.asks[0][0] * (1 + rng.uniform(-0.01, 0.01)), 1)]})()
             for s, b in books.items()}
    snapshot = decode_snapshot(all_tickers(noisy), table.index)
    idx, bps = top_k(table.log_sums(table.weights(snapshot), 0, table.n_cycles), 1)
    best = cycles[idx[0]]

    def product(cycle) -> float:
        out = 1.0
        for leg in cycle.legs:
            b = noisy[leg.market.symbol]
            fee = float(leg.market.taker_fee)
            out *= b.bids[0][0] * (1 - fee) if leg.side.value == "sell" else 1 / (b.asks[0][0] * (1 + fee))
        return out

    assert bps[0] == pytest.approx((product(best) - 1) * 10_000, rel=1e-9)
    assert product(best) == pytest.approx(max(product(c) for c in cycles), rel=1e-12)
