"""KuCoin websocket decode + book update: cryptoarb's codec versus ccxt.pro's ``handle_message``.

Both sides get identical recorded frames as bytes, in one process:

- ours: ``KucoinCodec.decode(raw, received_at)`` then ``BookStore.apply(update)`` (what the engine's sink
  does with every update); ``ticker:all`` and depth frames go through the C scanner (``_framescan``), and
  the same codec with ``fast_scan=False`` (msgspec alone, as where the scanner is not compiled) is timed
  beside it, so its gain is measured in the same run;
- ccxt: ``exchange.handle_message(client, json_parser.loads(raw))``: the per-frame work of ccxt.pro's
  kucoin client (``json_parser`` is ccxt's own: orjson when installed, as here).

Frames: ``ticker:all`` for N symbols, ``level2Depth50`` snapshots, ``/market/level2`` increments on
1,000-level books (prices at six significant digits, sizes at a pair's increment, as KuCoin sends them).
Repeats are interleaved (ours, ccxt, ours, ...) so machine load hits both alike; each timed pass follows
an untimed one on the same path and is measured in thread CPU time. The times printed are medians over
the repeats; the ratio is the median of each repeat's own ratio (ccxt / ours), since this machine's speed
drifts by up to 2x between seconds and a pair measured moments apart sees the same drift. After the
table, where the msgspec path's ticker:all time goes (the parse, then the fields and level tuples, the
``BookUpdate`` and the codec's call added one at a time, then ``BookStore.apply``), and its depth50 floor: the
msgspec parse of the same frames into the same level tuples, alone and kept per market, and the same frames
with each side left as raw JSON and kept (what a decode costs that parses levels only when they are read).
The last line is one JSON object.

    .venv/bin/python benchmarks/ws_decode.py [--symbols 1250] [--repeats 11]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import ccxt.pro
import msgspec
from ccxt.async_support.base.ws.client import json_parser

from cryptoarb.core.books import BookStore
from cryptoarb.model import BookUpdate
from cryptoarb.venues.kucoin.codec import FAST_SCAN, KucoinCodec, _DepthFrame, _TickerFrame

L2_SYMBOLS = 100
L2_BOOK_LEVELS = 1000
L2_FRAMES = 20_000
DEPTH50_FRAMES = 2_000


def _num(x: float, decimals: int = 8) -> str:
    text = f"{max(x, 10.0 ** -decimals):.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _size(rng: random.Random, hi: float) -> str:
    """Sizes are multiples of the pair's base increment: as many decimals as that allows, zeros stripped."""
    return _num(rng.uniform(0.0001, hi), rng.randint(0, 8))


def _price(x: float) -> str:
    """Six significant digits, as KuCoin's price increments give (67218.7, 0.0123456)."""
    return _num(x, max(0, 5 - math.floor(math.log10(x))))


def symbols(n: int) -> list[str]:
    quotes = ("USDT", "BTC", "ETH", "USDC", "KCS")
    return [f"C{i:04d}-{quotes[i % len(quotes)]}" for i in range(n)]


def ticker_all_frames(syms: list[str], rng: random.Random) -> list[bytes]:
    out = []
    for seq, s in enumerate(syms, start=14691455768):
        mid = rng.uniform(0.01, 70_000)
        frame = {"topic": "/market/ticker:all", "type": "message", "subject": s,
                 "data": {"bestAsk": _price(mid * 1.0001), "bestAskSize": _size(rng, 50),
                          "bestBid": _price(mid * 0.9999), "bestBidSize": _size(rng, 50),
                          "price": _price(mid), "sequence": str(seq), "size": _size(rng, 1),
                          "time": 1729757723612 + seq % 1000}}
        out.append(json.dumps(frame, separators=(",", ":")).encode())
    return out


def _ladder(rng: random.Random, mid: float, n: int, down: bool) -> list[list[str]]:
    step = mid * 0.0001
    return [[_price(mid - (i + 1) * step if down else mid + (i + 1) * step), _size(rng, 20)]
            for i in range(n)]


def depth50_frames(syms: list[str], rng: random.Random, count: int) -> list[bytes]:
    out = []
    for i in range(count):
        s = syms[i % len(syms)]
        mid = rng.uniform(1, 70_000)
        frame = {"topic": f"/spotMarket/level2Depth50:{s}", "type": "message", "subject": "level2",
                 "data": {"asks": _ladder(rng, mid, 50, False), "bids": _ladder(rng, mid, 50, True),
                          "timestamp": 1729822226746 + i}}
        out.append(json.dumps(frame, separators=(",", ":")).encode())
    return out


def level2_books(syms: list[str], rng: random.Random) -> dict[str, dict[str, Any]]:
    books = {}
    for s in syms:
        mid = round(rng.uniform(10, 1000), 1)
        books[s] = {"mid": mid, "sequence": 1_000_000,
                    "bids": [[mid - 0.1 * (i + 1), rng.uniform(0.1, 5)] for i in range(L2_BOOK_LEVELS)],
                    "asks": [[mid + 0.1 * (i + 1), rng.uniform(0.1, 5)] for i in range(L2_BOOK_LEVELS)]}
    return books


def level2_frames(books: dict[str, dict[str, Any]], rng: random.Random, count: int) -> list[bytes]:
    seqs = {s: b["sequence"] for s, b in books.items()}
    names = list(books)
    out = []
    for i in range(count):
        s = names[i % len(names)]
        mid = books[s]["mid"]
        changes: dict[str, list[list[str]]] = {"asks": [], "bids": []}
        start = seqs[s] + 1
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            seqs[s] += 1
            side = rng.choice(("asks", "bids"))
            off = 0.1 * rng.randint(1, 1200)
            price = round(mid + off if side == "asks" else mid - off, 1)
            size = "0" if rng.random() < 0.3 else _num(rng.uniform(0.01, 5))
            changes[side].append([_num(price), size, str(seqs[s])])
        frame = {"topic": f"/market/level2:{s}", "type": "message", "subject": "trade.l2update",
                 "data": {"changes": changes, "sequenceEnd": seqs[s], "sequenceStart": start, "symbol": s,
                          "time": 1729816425625 + i}}
        out.append(json.dumps(frame, separators=(",", ":")).encode())
    return out


# -- the two paths -----------------------------------------------------------------------------------
class Ours:
    def __init__(self, fast_scan: bool = True) -> None:
        self.codec = KucoinCodec(fast_scan=fast_scan)
        self.store = BookStore()

    def reset_level2(self, books: dict[str, dict[str, Any]]) -> None:
        self.store = BookStore()
        for s, b in books.items():
            bids, asks = tuple(map(tuple, b["bids"])), tuple(map(tuple, b["asks"]))
            self.store.apply(BookUpdate("kucoin", s, bids, asks, b["sequence"], 0, 0.0))

    def run(self, frames: list[bytes]) -> None:
        decode = self.codec.decode
        apply = self.store.apply
        for raw in frames:
            apply(decode(raw, 1.0))

    def decode_only(self, frames: list[bytes]) -> None:
        decode = self.codec.decode
        for raw in frames:
            decode(raw, 1.0)


def parse_only(frames: list[bytes]) -> None:
    """The msgspec parse alone, into the codec's ticker Struct: the floor under our decode."""
    parse = msgspec.json.Decoder(_TickerFrame, strict=False).decode
    for raw in frames:
        parse(raw)


def parse_levels(frames: list[bytes]) -> None:
    """The parse, then the fields read and made into the update's level tuples, inline (no codec call)."""
    parse = msgspec.json.Decoder(_TickerFrame, strict=False).decode
    for raw in frames:
        d = parse(raw).data
        b, bs, a, az = d.bestBid, d.bestBidSize, d.bestAsk, d.bestAskSize
        _ = ((b, bs),) if b and bs else (), ((a, az),) if a and az else ()


def parse_update(frames: list[bytes]) -> None:
    """The codec's ticker branch inline: the parse, the level tuples and the ``BookUpdate``, with no call."""
    parse = msgspec.json.Decoder(_TickerFrame, strict=False).decode
    for raw in frames:
        m = parse(raw)
        d = m.data
        b, bs, a, az = d.bestBid, d.bestBidSize, d.bestAsk, d.bestAskSize
        BookUpdate("kucoin", m.subject, ((b, bs),) if b and bs else (), ((a, az),) if a and az else (),
                   d.sequence, d.time, 1.0)


class _RawDepthData(msgspec.Struct, gc=False):
    asks: msgspec.Raw = msgspec.Raw(b"[]")
    bids: msgspec.Raw = msgspec.Raw(b"[]")
    timestamp: int = 0


class _RawDepthFrame(msgspec.Struct, gc=False):
    topic: str
    data: _RawDepthData


class DepthFloor:
    """The msgspec parse of depth frames into the codec's Struct (the engine's level tuples), alone and then
    kept per market as a book store keeps the latest snapshot: the floor under any decode + apply that
    holds every level as a Python float, since replacing a market's last ~300 objects is part of it.

    ``parse_raw_and_hold`` parses the same frames with each side left as raw JSON (``msgspec.Raw``, still
    validated as JSON) and holds that: what a decode costs that leaves the levels unparsed until read."""

    def __init__(self) -> None:
        self.parse = msgspec.json.Decoder(_DepthFrame, strict=False).decode
        self.parse_raw = msgspec.json.Decoder(_RawDepthFrame).decode
        self.held: dict[str, _DepthFrame] = {}
        self.held_raw: dict[str, _RawDepthFrame] = {}

    def parse_only(self, frames: list[bytes]) -> None:
        parse = self.parse
        for raw in frames:
            parse(raw)

    def parse_and_hold(self, frames: list[bytes]) -> None:
        _hold(self.parse, self.held, frames)

    def parse_raw_and_hold(self, frames: list[bytes]) -> None:
        _hold(self.parse_raw, self.held_raw, frames)


def _hold(parse: Callable[[bytes], Any], held: dict[str, Any], frames: list[bytes]) -> None:
    for raw in frames:
        m = parse(raw)
        held[m.topic] = m


class Ccxt:
    def __init__(self, syms: list[str], loop: asyncio.AbstractEventLoop) -> None:
        self.exchange = ccxt.pro.kucoin({"asyncio_loop": loop, "enableRateLimit": False})
        self.exchange.set_markets([{
            "id": s, "symbol": s.replace("-", "/"), "base": s.split("-")[0], "quote": s.split("-")[1],
            "baseId": s.split("-")[0], "quoteId": s.split("-")[1], "type": "spot", "spot": True,
            "active": True, "precision": {"amount": 1e-8, "price": 1e-8}, "limits": {}} for s in syms])
        self.client = self.exchange.client("ws://127.0.0.1:9/?token=t&connectId=public")

    def reset_level2(self, books: dict[str, dict[str, Any]]) -> None:
        ex = self.exchange
        for s, b in books.items():
            ob = ex.order_book({})
            ob.reset({"bids": b["bids"], "asks": b["asks"], "nonce": b["sequence"], "timestamp": 0,
                      "symbol": s.replace("-", "/")})
            ex.orderbooks[s.replace("-", "/")] = ob

    def run(self, frames: list[bytes]) -> None:
        handle = self.exchange.handle_message
        client = self.client
        loads = json_parser.loads
        for raw in frames:
            handle(client, loads(raw))


def nop() -> None:
    pass


def timed_passes(frames: list[bytes], paths: list[tuple[Callable[[], None], Callable[[list[bytes]], None]]],
                 repeats: int) -> list[list[float]]:
    """µs per message (thread CPU time) of each (reset, run) path in every repeat, repeats interleaved.

    Each timed pass follows an untimed one on the same path: a process runs one implementation, so the
    steady state has its caches warm, not evicted by the other side's last pass.
    """
    samples: list[list[float]] = [[] for _ in paths]
    for _ in range(repeats):
        for i, (reset, run) in enumerate(paths):
            reset()
            run(frames)
            reset()
            t0 = time.thread_time_ns()
            run(frames)
            samples[i].append((time.thread_time_ns() - t0) / 1000 / len(frames))
    return samples


def interleaved(frames: list[bytes], paths: list[tuple[Callable[[], None], Callable[[list[bytes]], None]]],
                repeats: int) -> list[float]:
    """Median µs per message for each path (see :func:`timed_passes`)."""
    return [statistics.median(s) for s in timed_passes(frames, paths, repeats)]


def paired_ratio(theirs: list[float], ours: list[float]) -> float:
    """The median over repeats of their time / ours in the same repeat: this machine's speed drifts by
    2x between seconds, and a pair measured moments apart sees the same drift."""
    return statistics.median(t / o for t, o in zip(theirs, ours, strict=True))


async def main(argv: list[str]) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=1250)
    parser.add_argument("--repeats", type=int, default=11)
    args = parser.parse_args(argv)
    rng = random.Random(7)
    syms = symbols(args.symbols)
    l2_syms = syms[:L2_SYMBOLS]
    ticks = ticker_all_frames(syms, rng)
    depth = depth50_frames(syms, rng, DEPTH50_FRAMES)
    l2_books = level2_books(l2_syms, rng)
    l2 = level2_frames(l2_books, rng, L2_FRAMES)
    theirs = Ccxt(syms, asyncio.get_running_loop())
    try:
        out = run_all(args.repeats, ticks, depth, l2, l2_books, theirs)
        print(json.dumps(out))
        return out
    finally:
        await theirs.exchange.close()


def run_all(repeats: int, ticks: list[bytes], depth: list[bytes], l2: list[bytes],
            l2_books: dict[str, dict[str, Any]], theirs: Ccxt) -> dict[str, float]:
    if not FAST_SCAN:
        print("the C frame scanner is not built: 'ours' is msgspec alone", file=sys.stderr)
    # a symbol streams ticker:all or depth, not both
    ours_ticks, ours_depth, ours_l2 = Ours(), Ours(), Ours()
    slow_ticks, slow_depth = Ours(fast_scan=False), Ours(fast_scan=False)
    for warm, paths in ((ticks, (ours_ticks, slow_ticks)), (depth, (ours_depth, slow_depth))):
        for ours in paths:  # first touches create books and caches
            ours.run(warm)
        theirs.run(warm)

    out: dict[str, float] = {}
    rows = [("ticker_all", ticks, ours_ticks, slow_ticks, nop, nop),
            ("depth50", depth, ours_depth, slow_depth, nop, nop),
            ("level2", l2, ours_l2, None, lambda: ours_l2.reset_level2(l2_books),
             lambda: theirs.reset_level2(l2_books))]
    print(f"{'frame':<12}{'bytes':>7}{'ours µs':>10}{'ccxt µs':>10}{'ratio':>8}{'msgspec alone µs':>18}{'ratio':>8}")
    for name, frames, ours, slow, reset_ours, reset_ccxt in rows:
        paths = [(reset_ours, ours.run), (reset_ccxt, theirs.run)] + ([(nop, slow.run)] if slow else [])
        samples = timed_passes(frames, paths, repeats)
        ours_us, ccxt_us = statistics.median(samples[0]), statistics.median(samples[1])
        ratio = paired_ratio(samples[1], samples[0])
        size = statistics.median(len(f) for f in frames)
        line = f"{name:<12}{size:>7.0f}{ours_us:>10.3f}{ccxt_us:>10.3f}{ratio:>8.1f}"
        out[f"ours_{name}_us"] = round(ours_us, 3)
        out[f"ccxt_{name}_us"] = round(ccxt_us, 3)
        out[f"{name}_ratio"] = round(ratio, 2)
        if slow:
            slow_us, slow_ratio = statistics.median(samples[2]), paired_ratio(samples[1], samples[2])
            line += f"{slow_us:>18.3f}{slow_ratio:>8.1f}"
            out[f"msgspec_{name}_us"] = round(slow_us, 3)
            out[f"msgspec_{name}_ratio"] = round(slow_ratio, 2)
        print(line)
    print("msgspec alone: the same codec with fast_scan=False, which decodes every frame as where the C scanner "
          "is not compiled; the breakdowns below are of that path")
    parse_us, levels_us, update_us, decode_us, total_us = interleaved(
        ticks, [(nop, parse_only), (nop, parse_levels), (nop, parse_update), (nop, slow_ticks.decode_only),
                (nop, slow_ticks.run)], repeats)
    print(f"ticker_all, msgspec alone: parse {parse_us:.3f} µs, + fields and level tuples {levels_us - parse_us:.3f}"
          f" µs, + BookUpdate {update_us - levels_us:.3f} µs, + the codec's call {decode_us - update_us:.3f} µs, "
          f"+ BookStore.apply {total_us - decode_us:.3f} µs")
    out["msgspec_ticker_all_parse_us"] = round(parse_us, 3)
    out["msgspec_ticker_all_levels_us"] = round(levels_us, 3)
    out["msgspec_ticker_all_update_us"] = round(update_us, 3)
    out["msgspec_ticker_all_decode_us"] = round(decode_us, 3)
    floor = DepthFloor()
    floor.parse_and_hold(depth)
    floor.parse_raw_and_hold(depth)
    parse_us, hold_us, raw_us, total_us, ccxt_us = interleaved(
        depth, [(nop, floor.parse_only), (nop, floor.parse_and_hold), (nop, floor.parse_raw_and_hold),
                (nop, slow_depth.run), (nop, theirs.run)],
        repeats)
    print(f"depth50, msgspec alone: parse {parse_us:.3f} µs, + holding it per market {hold_us - parse_us:.3f} µs "
          f"(floor: ccxt / that = {ccxt_us / hold_us:.1f}x), + BookUpdate and BookStore.apply "
          f"{total_us - hold_us:.3f} µs ({ccxt_us / total_us:.1f}x); levels left as raw JSON and held: "
          f"{raw_us:.3f} µs ({ccxt_us / raw_us:.1f}x)")
    out["msgspec_depth50_parse_us"] = round(parse_us, 3)
    out["msgspec_depth50_parse_hold_us"] = round(hold_us, 3)
    out["msgspec_depth50_floor_ratio"] = round(ccxt_us / hold_us, 2)
    out["depth50_raw_hold_us"] = round(raw_us, 3)
    return out


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
