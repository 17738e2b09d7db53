"""Incremental detection against a full pandas pass and a Bellman-Ford search, on one update stream.

Builds a KuCoin-like universe (1,250 pairs, 420 assets) and a 3-venue cross-exchange universe, replays
a realistic mix of top-of-book updates (hot pairs most of the time, a long tail, lagging quotes that
open 15-80 bps mispricings) and measures per update:

1. ``Detector.update``: re-prices only the cycles through the updated market (every update, timed);
2. pandas: the original bot's full pass, a cycles x legs table whose rate product is recomputed;
3. Bellman-Ford: a negative-cycle search over the whole graph with -log weights (numpy relaxations).

2 and 3 are slow, so they run on a subsample, and on it all three must agree on what is profitable.

    .venv/bin/python benchmarks/detect.py [--updates 20000] [--seed 7] [--repeat 3]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pandas as pd

from cryptoarb.core.detector import Detector
from cryptoarb.core.graph import enumerate_cycles, index_by_market
from cryptoarb.model import Cycle, Leg, Market, MarketKey, Side

QUOTES = ("USDT", "USDC", "BTC", "ETH", "KCS", "TRX", "DAI")
QUOTE_USD = {"USDT": 1.0, "USDC": 1.0, "DAI": 1.0, "BTC": 60_000.0, "ETH": 3_000.0, "KCS": 9.0, "TRX": 0.12}
CROSSES = (("BTC", "USDT"), ("ETH", "USDT"), ("ETH", "BTC"), ("USDC", "USDT"), ("KCS", "USDT"),
           ("KCS", "BTC"), ("KCS", "ETH"), ("TRX", "USDT"), ("TRX", "BTC"), ("TRX", "ETH"), ("DAI", "USDT"),
           ("BTC", "USDC"), ("ETH", "USDC"), ("BTC", "DAI"), ("ETH", "DAI"), ("USDC", "DAI"))
EXTRA_QUOTES = ("BTC", "ETH", "USDC", "KCS", "TRX", "DAI")
EXTRA_WEIGHTS = (35, 25, 15, 10, 10, 5)
FEE = Decimal("0.001")
THRESHOLD_BPS = 0.0  # Bellman-Ford finds cycles that return more than nothing: compare on the same terms
HOT_PAIRS = 60
HOT_SHARE = 0.7
MISPRICING_RATE = 0.004
MISPRICING_BPS = (15.0, 80.0)


# ---------------------------------------------------------------------------------------------------
# universes and the update stream


@dataclass
class Universe:
    name: str
    markets: list[Market]
    inventory: dict[str, set[str]]
    fair: dict[str, float]
    offset: dict[MarketKey, float]  # per-market price offset (venue differences)
    spread: dict[MarketKey, float]
    hot: list[MarketKey]
    cycles: list[Cycle] = field(default_factory=list)


def kucoin_like(rng: random.Random, venues: Sequence[str], pairs: int = 1250, assets: int = 420,
                venue_offset_bps: float = 0.0) -> Universe:
    bases = [f"T{i:03d}" for i in range(assets - len(QUOTES))]
    fair = dict(QUOTE_USD) | {b: 10 ** rng.uniform(-4, 3) for b in bases}
    chosen = dict.fromkeys(CROSSES) | dict.fromkeys((b, "USDT") for b in bases)
    quotes_of = {b: 1 for b in bases}
    while len(chosen) < pairs:
        base = rng.choice(bases)
        quote = rng.choices(EXTRA_QUOTES, EXTRA_WEIGHTS)[0]
        if quotes_of[base] < 4 and (base, quote) not in chosen:
            chosen[(base, quote)] = None
            quotes_of[base] += 1
    # the majors and the most-quoted bases are the hot pairs
    by_heat = list(CROSSES) + sorted((p for p in chosen if p not in CROSSES), key=lambda p: -quotes_of[p[0]])
    markets, offset, spread = [], {}, {}
    for venue in venues:
        for base, quote in chosen:
            market = Market(venue=venue, symbol=f"{base}-{quote}", base=base, quote=quote,
                            price_tick=Decimal("1e-8"), size_increment=Decimal("1e-4"), min_size=Decimal(0),
                            min_funds=Decimal(0), taker_fee=FEE, maker_fee=FEE)
            markets.append(market)
            offset[market.key] = rng.gauss(0, venue_offset_bps) / 10_000
            major = base in QUOTES and quote in QUOTES
            spread[market.key] = rng.uniform(1, 4 if major else 30) / 10_000
    hot = [(v, f"{b}-{q}") for b, q in by_heat[:HOT_PAIRS] for v in venues]
    inventory = {q: set(venues) for q in QUOTES} if len(venues) > 1 else {}
    return Universe("kucoin-like" if len(venues) == 1 else f"{len(venues)}-venue cross-exchange",
                    markets, inventory, fair, offset, spread, hot)


@dataclass(frozen=True, slots=True)
class Update:
    key: MarketKey
    bid: float
    ask: float
    mispriced: bool


def update_stream(universe: Universe, rng: random.Random, n: int) -> list[Update]:
    """Quotes jitter around consistent fair prices; now and then one lags by 15-80 bps until a
    competitor closes it, a few to a few hundred updates later."""
    by_key = {m.key: m for m in universe.markets}
    hot = universe.hot
    tail = [k for k in by_key if k not in set(hot)]
    stream = [_quote(by_key, universe, rng, key, 0.0) for key in by_key]  # every book starts quoted
    closing: dict[int, list[MarketKey]] = {}
    lagging: set[MarketKey] = set()
    for i in range(n):
        for key in closing.pop(i, ()):
            lagging.discard(key)
            stream.append(_quote(by_key, universe, rng, key, 0.0))
        key = rng.choice(hot) if rng.random() < HOT_SHARE else rng.choice(tail)
        if key in lagging:
            continue  # the lagging quote stays until it is closed
        mispricing = 0.0
        if rng.random() < MISPRICING_RATE:
            mispricing = rng.choice((-1, 1)) * rng.uniform(*MISPRICING_BPS) / 10_000
            lagging.add(key)
            closing.setdefault(i + int(10 ** rng.uniform(0.5, 2.5)), []).append(key)
        stream.append(_quote(by_key, universe, rng, key, mispricing))
    return stream[:len(by_key) + n]


def _quote(by_key: dict[MarketKey, Market], universe: Universe, rng: random.Random, key: MarketKey,
           mispricing: float) -> Update:
    market = by_key[key]
    jitter = rng.gauss(0, 0.5) / 10_000
    mid = universe.fair[market.base] / universe.fair[market.quote] * (1 + universe.offset[key]) * (
        1 + mispricing + jitter)
    half = universe.spread[key] / 2
    return Update(key, float(f"{mid * (1 - half):.6g}"), float(f"{mid * (1 + half):.6g}"), mispricing != 0.0)


# ---------------------------------------------------------------------------------------------------
# the two baselines


def _rates(market: Market, bid: float, ask: float) -> tuple[float, float]:
    fee = float(market.taker_fee)
    return (bid * (1 - fee) if bid > 0 else 0.0), (1 / (ask * (1 + fee)) if 0 < ask < math.inf else 0.0)


class PandasScanner:
    """The original bot: a DataFrame of cycles x legs; every update recomputes every cycle's rate product."""

    def __init__(self, cycles: Sequence[Cycle]) -> None:
        self.markets = {leg.market.key: leg.market for c in cycles for leg in c.legs}
        self.labels = [f"{v}|{s}|{side}" for v, s in self.markets for side in ("sell", "buy")] + ["pad"]
        self.position = {label: i for i, label in enumerate(self.labels)}
        self.values = np.full(len(self.labels), np.nan)
        self.values[-1] = 1.0
        width = max(len(c.legs) for c in cycles)
        self.table = pd.DataFrame({
            f"leg{i}": [f"{c.legs[i].venue}|{c.legs[i].market.symbol}|{c.legs[i].side.value}"
                        if i < len(c.legs) else "pad" for c in cycles] for i in range(width)})
        self.ids = np.array([c.id for c in cycles])

    def sync(self, key: MarketKey, bid: float, ask: float) -> None:
        if key in self.markets:
            sell, buy = _rates(self.markets[key], bid, ask)
            self.values[self.position[f"{key[0]}|{key[1]}|sell"]] = sell
            self.values[self.position[f"{key[0]}|{key[1]}|buy"]] = buy

    def update(self, key: MarketKey, bid: float, ask: float) -> set[int]:
        rates = pd.Series(self.values, index=self.labels, copy=False)
        if key in self.markets:
            sell, buy = _rates(self.markets[key], bid, ask)
            rates.loc[f"{key[0]}|{key[1]}|sell"] = sell
            rates.loc[f"{key[0]}|{key[1]}|buy"] = buy
        product = pd.Series(1.0, index=self.table.index)
        for column in self.table.columns:
            product = product * self.table[column].map(rates)
        returns = (product - 1.0) * 10_000
        return set(self.ids[(returns >= THRESHOLD_BPS).to_numpy()].tolist())


class BellmanFord:
    """Negative-cycle search over (venue, asset) nodes with -log rates (peregrine's approach), vectorised."""

    def __init__(self, markets: Sequence[Market], inventory: dict[str, set[str]]) -> None:
        nodes: dict[tuple[str, str], int] = {}
        src, dst, legs = [], [], []
        self.edge_of: dict[MarketKey, tuple[int, int]] = {}
        self.markets = {m.key: m for m in markets}
        for market in markets:
            ids = []
            for side in (Side.SELL, Side.BUY):
                leg = Leg(market, side)
                ids.append(len(src))
                src.append(nodes.setdefault((leg.venue, leg.asset_in), len(nodes)))
                dst.append(nodes.setdefault((leg.venue, leg.asset_out), len(nodes)))
                legs.append(leg)
            self.edge_of[market.key] = (ids[0], ids[1])
        for asset, venues in inventory.items():
            for a in venues:
                for b in venues:
                    if a != b and (a, asset) in nodes and (b, asset) in nodes:
                        src.append(nodes[(a, asset)])
                        dst.append(nodes[(b, asset)])
                        legs.append(None)
        self.n = len(nodes)
        self.src = np.array(src)
        self.dst = np.array(dst)
        self.legs: list[Leg | None] = legs
        self.weight = np.full(len(src), np.inf)
        self.weight[len(self.edge_of) * 2:] = 0.0  # inventory edges are free
        self.edge_ids = np.arange(len(src))

    def sync(self, key: MarketKey, bid: float, ask: float) -> None:
        sell, buy = _rates(self.markets[key], bid, ask)
        e_sell, e_buy = self.edge_of[key]
        self.weight[e_sell] = -math.log(sell) if sell > 0 else np.inf
        self.weight[e_buy] = -math.log(buy) if buy > 0 else np.inf

    def update(self, key: MarketKey, bid: float, ask: float, early_exit: bool = False) -> list[Leg] | None:
        self.sync(key, bid, ask)
        return self.negative_cycle(early_exit)

    def negative_cycle(self, early_exit: bool = False) -> list[Leg] | None:
        """Textbook: n-1 relaxation rounds, then a round that still relaxes proves a negative cycle.

        ``early_exit`` stops as soon as a round changes nothing (a stronger baseline than the textbook).
        """
        dist = np.zeros(self.n)  # a virtual source joined to every node
        pred = np.full(self.n, -1)
        changed_node = -1
        settled = False
        for _ in range(self.n):
            candidate = dist[self.src] + self.weight
            better = candidate < dist[self.dst]
            if settled or not better.any():
                if early_exit:
                    return None
                settled = True
                continue
            new = dist.copy()
            np.minimum.at(new, self.dst[better], candidate[better])
            winners = better & (candidate <= new[self.dst])
            pred[self.dst[winners]] = self.edge_ids[winners]
            changed_node = int(self.dst[winners][0])
            dist = new
        if settled:
            return None
        # still relaxing after n rounds: walk back n steps to land on the cycle, then read it off
        node = changed_node
        for _ in range(self.n):
            node = int(self.src[pred[node]])
        cycle_edges, start = [], node
        while True:
            edge = int(pred[node])
            cycle_edges.append(edge)
            node = int(self.src[edge])
            if node == start:
                break
        return [leg for e in reversed(cycle_edges) if (leg := self.legs[e]) is not None]


def canonical(legs: Sequence[Leg], start_assets: set[str]) -> tuple[tuple[str, str, str], ...] | None:
    """The rotation enumerate_cycles would list: smallest leg key among legs leaving a start asset."""
    keys = [(leg.venue, leg.market.symbol, leg.side.value) for leg in legs]
    starts = [i for i, leg in enumerate(legs) if leg.asset_in in start_assets]
    if not starts:
        return None
    i = min(starts, key=lambda j: keys[j])
    return tuple(keys[i:] + keys[:i])


# ---------------------------------------------------------------------------------------------------
# the run


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def time_detector(universe: Universe, stream: list[Update], repeat: int) -> tuple[float, float, float]:
    p50s, p99s, means = [], [], []
    for _ in range(repeat):
        detector = Detector(universe.cycles, THRESHOLD_BPS)
        samples = []
        clock = time.perf_counter_ns
        gc.collect()
        for u in stream:
            started = clock()
            detector.update(u.key, u.bid, u.ask)
            samples.append(clock() - started)
        warm = samples[len(universe.markets):]  # the initial quoting of every book is not the steady state
        p50s.append(percentile(warm, 0.5) / 1000)
        p99s.append(percentile(warm, 0.99) / 1000)
        means.append(statistics.fmean(warm) / 1000)
    return statistics.median(p50s), statistics.median(p99s), statistics.median(means)


@dataclass
class Comparison:
    pandas_us: list[float] = field(default_factory=list)
    bf_us: list[float] = field(default_factory=list)
    bf_early_us: list[float] = field(default_factory=list)
    pandas_checked: int = 0
    pandas_mismatches: int = 0
    with_opportunity: int = 0
    bf_checked: int = 0
    bf_missed: int = 0  # we had a profitable cycle and Bellman-Ford found none: a real disagreement
    bf_found_ours: int = 0
    bf_found_not_ours: int = 0  # in scope (<= max legs, through a start asset) yet not ours: a real one
    bf_found_out_of_scope: int = 0  # longer than max legs or not through the start asset
    bf_found_when_we_had_none: int = 0

    @property
    def same(self) -> bool:
        return self.pandas_mismatches == 0 and self.bf_missed == 0 and self.bf_found_not_ours == 0


def compare(universe: Universe, stream: list[Update], pandas_samples: int, bf_samples: int,
            rng: random.Random, max_legs: int) -> Comparison:
    detector = Detector(universe.cycles, THRESHOLD_BPS)
    scanner = PandasScanner(universe.cycles)
    bellman = BellmanFord(universe.markets, universe.inventory)
    index = {k: set(v) for k, v in index_by_market(universe.cycles).items()}
    ours_by_keys = {tuple((leg.venue, leg.market.symbol, leg.side.value) for leg in c.legs): c.id
                    for c in universe.cycles}
    steady = range(len(universe.markets), len(stream))
    mispriced = [i for i in steady if stream[i].mispriced]
    pick_p = set(rng.sample(mispriced, min(len(mispriced), pandas_samples // 2)))
    pick_p |= set(rng.sample(list(steady), pandas_samples - len(pick_p)))
    pick_b = set(rng.sample(sorted(pick_p), min(bf_samples, len(pick_p))))
    result = Comparison()
    current: dict[int, float] = {}
    for i, u in enumerate(stream):
        hits = detector.update(u.key, u.bid, u.ask)
        for cid in index.get(u.key, ()):
            current.pop(cid, None)
        current.update((c.cycle.id, c.net_return_bps) for c in hits)
        if i in pick_p:
            started = time.perf_counter_ns()
            theirs = scanner.update(u.key, u.bid, u.ask)
            result.pandas_us.append((time.perf_counter_ns() - started) / 1000)
            result.pandas_checked += 1
            result.with_opportunity += bool(current)
            if theirs != set(current):
                # a disagreement only counts if it is not a float tie at the threshold
                returns = detector.returns()
                real = [c for c in theirs ^ set(current) if abs(returns[c] - THRESHOLD_BPS) > 1e-6]
                result.pandas_mismatches += bool(real)
        else:
            scanner.sync(u.key, u.bid, u.ask)
        if i in pick_b:
            started = time.perf_counter_ns()
            found = bellman.update(u.key, u.bid, u.ask)
            result.bf_us.append((time.perf_counter_ns() - started) / 1000)
            started = time.perf_counter_ns()
            early = bellman.update(u.key, u.bid, u.ask, early_exit=True)
            result.bf_early_us.append((time.perf_counter_ns() - started) / 1000)
            assert (early is None) == (found is None)
            result.bf_checked += 1
            if found is None:
                result.bf_missed += bool(current)
                continue
            if not current:
                result.bf_found_when_we_had_none += 1
            key = canonical(found, {"USDT"})
            if key is None or len(found) > max_legs:
                result.bf_found_out_of_scope += 1
            elif ours_by_keys.get(key) in current:
                result.bf_found_ours += 1
            else:
                result.bf_found_not_ours += 1
        else:
            bellman.sync(u.key, u.bid, u.ask)
    return result


def run_universe(universe: Universe, args: argparse.Namespace, rng: random.Random) -> dict:
    started = time.perf_counter()
    universe.cycles = enumerate_cycles(universe.markets, args.max_legs, {"USDT"}, universe.inventory)
    enumerate_s = time.perf_counter() - started
    stream = update_stream(universe, rng, args.updates)
    fan_out = max(len(v) for v in index_by_market(universe.cycles).values())
    p50, p99, mean = time_detector(universe, stream, args.repeat)
    comparison = compare(universe, stream, args.pandas_samples, args.bf_samples, rng, args.max_legs)
    pandas_p50 = statistics.median(comparison.pandas_us)
    bf_p50 = statistics.median(comparison.bf_us)
    bf_early_p50 = statistics.median(comparison.bf_early_us)
    bf_early_mean = statistics.fmean(comparison.bf_early_us)
    return {
        "universe": universe.name, "markets": len(universe.markets), "cycles": len(universe.cycles),
        "max_fan_out": fan_out, "enumerate_s": round(enumerate_s, 3), "updates": args.updates,
        "p50_us": round(p50, 2), "p99_us": round(p99, 2), "mean_us": round(mean, 2),
        "pandas_p50_us": round(pandas_p50, 1), "bellman_ford_p50_us": round(bf_p50, 1),
        "vs_pandas_ratio": round(pandas_p50 / p50, 1), "vs_bellman_ford_ratio": round(bf_p50 / p50, 1),
        "bellman_ford_early_exit_p50_us": round(bf_early_p50, 1),
        "vs_bellman_ford_early_exit_ratio": round(bf_early_p50 / p50, 1),
        "vs_bellman_ford_early_exit_mean_ratio": round(bf_early_mean / mean, 1),
        "vs_pandas_mean_ratio": round(statistics.fmean(comparison.pandas_us) / mean, 1),
        "same_opportunities": comparison.same, "comparison": comparison,
    }


def print_table(rows: list[dict]) -> None:
    print("per-update cost (µs); x = how many times our p50 (pandas, B-F) or mean (means)")
    print(f"{'universe':<24}{'markets':>8}{'cycles':>7}{'fan-out':>8}{'p50':>7}{'p99':>7}{'mean':>7}"
          f"{'pandas':>9}{'x':>6}{'B-F':>9}{'x':>7}{'B-F early':>10}{'x':>6}{'x mean':>8}  same")
    for r in rows:
        print(f"{r['universe']:<24}{r['markets']:>8}{r['cycles']:>7}{r['max_fan_out']:>8}{r['p50_us']:>7.2f}"
              f"{r['p99_us']:>7.2f}{r['mean_us']:>7.2f}{r['pandas_p50_us']:>9.0f}{r['vs_pandas_ratio']:>6.0f}"
              f"{r['bellman_ford_p50_us']:>9.0f}{r['vs_bellman_ford_ratio']:>7.0f}"
              f"{r['bellman_ford_early_exit_p50_us']:>10.0f}{r['vs_bellman_ford_early_exit_ratio']:>6.0f}"
              f"{r['vs_bellman_ford_early_exit_mean_ratio']:>8.0f}  {r['same_opportunities']}")
    for r in rows:
        c: Comparison = r["comparison"]
        print(f"{r['universe']}: enumerate {r['enumerate_s']} s; pandas checked {c.pandas_checked} updates "
              f"({c.with_opportunity} with an opportunity), {c.pandas_mismatches} disagreements; "
              f"Bellman-Ford checked {c.bf_checked}: found one of ours {c.bf_found_ours}, "
              f"missed ours {c.bf_missed}, found an in-scope cycle we lack {c.bf_found_not_ours}, "
              f"found one beyond our max legs/USDT {c.bf_found_out_of_scope} "
              f"(of which while we had none {c.bf_found_when_we_had_none})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="timed replays of the stream (median reported)")
    parser.add_argument("--pandas-samples", type=int, default=300)
    parser.add_argument("--bf-samples", type=int, default=60)
    parser.add_argument("--max-legs", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    single = run_universe(kucoin_like(rng, ["kucoin"]), args, rng)
    cross = run_universe(kucoin_like(rng, ["a", "b", "c"], venue_offset_bps=3.0), args, rng)
    print_table([single, cross])
    figures = {k: v for k, v in single.items() if k != "comparison"}
    figures["same_opportunities"] = single["same_opportunities"] and cross["same_opportunities"]
    figures |= {f"cross_{k}": v for k, v in cross.items() if k not in ("comparison", "universe", "updates")}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
