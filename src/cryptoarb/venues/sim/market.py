"""The market model: hidden fair values, books quoted around them, lagging quotes, and taker matching.

Pure and synchronous. Time is virtual (``step()`` advances it by ``settings.step_ms``) and every random
draw comes from generators seeded by ``settings.seed``, so the same seed and the same sequence of
``step``/``consume`` calls give identical books.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from decimal import Decimal

import numpy as np

from cryptoarb.config import SimSettings
from cryptoarb.model import BookUpdate, Level, Side, Ticker
from cryptoarb.venues.sim.matching import Depletion, live_side, take
from cryptoarb.venues.sim.universe import AssetSpec, Tier, Universe

EPOCH_MS = 1_763_000_000_000
"""Exchange timestamp of virtual time 0."""

_EXTRA_LEVELS = 10  # quoted beyond the published depth so a snapshot stays full after small takes
_STABLE_REVERSION_PER_S = 0.05
_MISPRICE_WEIGHT = {Tier.HOT: 0.2, Tier.MEDIUM: 1.0, Tier.TAIL: 1.0}
_LONELY_WEIGHT = 0.2  # a base listed once can't be in a cycle; lag there is noise, not opportunity
_TINY_TOP_P = 0.15


def _scale(exp: int) -> tuple[int, int]:
    """(multiplier, divisor) turning an integer count of 10**exp into a correctly rounded float."""
    return (10**exp, 1) if exp >= 0 else (1, 10**-exp)


class FairValues:
    """Log USD fair values of assets, one random-walk step at a time: a market factor plus idiosyncratic
    noise per asset, occasional jumps, and stablecoins pulled back to their peg. ``rng`` is the caller's
    generator, drawn from in a fixed order, so a seed gives the same path."""

    def __init__(self, assets: Sequence[AssetSpec], dt: float, rng: np.random.Generator) -> None:
        vol = np.array([a.vol_bps for a in assets]) / 1e4 * math.sqrt(dt)
        corr = np.array([a.market_corr for a in assets])
        self.log_usd = np.log(np.array([a.fair_usd for a in assets]))
        self._anchor = self.log_usd.copy()
        self._kappa = np.array([_STABLE_REVERSION_PER_S * dt if a.stable else 0.0 for a in assets])
        self._sig_idio = vol * np.sqrt(1 - corr)
        self._sig_mkt = vol * np.sqrt(corr)
        self._jump_p = np.array([a.jump_per_s for a in assets]) * dt
        self._jump_sig = np.array([a.jump_bps for a in assets]) / 1e4
        self._rng = rng

    def step(self) -> None:
        lf, rng = self.log_usd, self._rng
        n = len(lf)
        z = rng.standard_normal(n + 1)
        lf += self._kappa * (self._anchor - lf) + self._sig_idio * z[:n] + self._sig_mkt * z[n]
        jumps = np.flatnonzero(rng.random(n) < self._jump_p)
        if len(jumps):
            lf[jumps] += rng.standard_normal(len(jumps)) * self._jump_sig[jumps]


class SimMarket:
    """One venue's books. ``fair``, when given, supplies the log USD fair value of every asset of the
    universe (in ``universe.assets`` order) at each step instead of the market's own random walk: that is
    how several venues share one set of hidden fair values (``venues.sim.world``)."""

    def __init__(self, universe: Universe, settings: SimSettings,
                 fair: Callable[[], np.ndarray] | None = None) -> None:
        self.universe = universe
        self.settings = settings
        self._fair = fair
        self.time = 0.0
        self._steps = 0
        self._dt = settings.step_ms / 1000
        self._depth = settings.depth_levels
        self._lq = settings.depth_levels + _EXTRA_LEVELS
        seed = settings.seed % (1 << 63)
        self._rng = np.random.default_rng([seed, 0x51A])
        self._rand = random.Random(seed * 1_000_003 + 17)
        self._rng_init = np.random.default_rng([seed, 0x1417])
        self._init_assets()
        self._init_pairs()
        self._next_mispricing = self._draw_mispricing_gap()
        self._mispriced: dict[int, float] = {}  # pair -> when competitors have closed it
        self._depleted: dict[int, Depletion] = {}
        self._to_emit: set[int] = set()  # consumed since the last step
        self._unsynced: set[int] = set()  # snapshot older than the book's state
        self._requote(np.arange(len(universe.pairs)))
        self._snaps = self._snapshots(list(range(len(universe.pairs))))

    # -- public -------------------------------------------------------------------------------------

    @property
    def steps(self) -> int:
        return self._steps

    def step(self) -> list[BookUpdate]:
        """Advance one step; the full snapshot of every book that changed."""
        self._steps += 1
        self.time = self._steps * self.settings.step_ms / 1000
        self._walk()
        closed = [i for i, until in self._mispriced.items() if until <= self.time]
        for i in closed:
            del self._mispriced[i]
            self._mult[i] = 1.0
        injected = self._inject_mispricings()
        cross = self._lf[self._base] - self._lf[self._quote]
        mask = self._rng.random(len(self._requote_p)) < self._requote_p
        mask |= np.abs(cross - self._quoted_at) > self._drift_limit
        if self._mispriced:
            mask[list(self._mispriced)] = False  # a lagging quote stays put until competitors close it
        mask[closed] = True
        mask[injected] = True
        rebuilt = np.flatnonzero(mask)
        self._requote(rebuilt)
        for i in injected:
            self._thin_top(i)
        dirty = set(rebuilt.tolist()) | self._to_emit
        for i, dep in list(self._depleted.items()):
            dirty.add(i)
            if dep.refill(self._dt):
                del self._depleted[i]
        self._to_emit.clear()
        self._unsynced.clear()
        order = sorted(dirty)
        out = self._snapshots(order)
        for i, snap in zip(order, out, strict=True):
            self._snaps[i] = snap
        return out

    def book(self, symbol: str) -> BookUpdate:
        return self._snaps[self._synced(self._index(symbol))]

    def tickers(self) -> list[Ticker]:
        for i in list(self._unsynced):
            self._synced(i)
        return [_ticker(s) for s in self._snaps]

    def consume(self, symbol: str, side: Side, limit_price: Decimal,
                size: Decimal) -> list[tuple[float, float]]:
        """Take liquidity as a taker (BUY: asks <= limit, SELL: bids >= limit); the (price, size) fills."""
        i = self._index(symbol)
        market = self.universe.pairs[i].market
        if limit_price <= 0 or size <= 0:
            return []
        buy = side is Side.BUY
        want = int(size / market.size_increment)
        quotient = limit_price / market.price_tick
        limit = math.floor(quotient) if buy else math.ceil(quotient)
        dep = self._depleted.get(i)
        if buy:
            ticks, units = live_side(self._at[i].tolist(), self._au[i].tolist(), dep.ask_units if dep else 0)
        else:
            ticks, units = live_side(self._bt[i].tolist(), self._bu[i].tolist(), dep.bid_units if dep else 0)
        fills = take(ticks, units, limit, want, buy=buy)
        if not fills:
            return []
        if dep is None:
            dep = self._depleted[i] = Depletion()
        dep.add(buy=buy, units=sum(n for _, n in fills), refill_s=self.settings.refill_s)
        self._to_emit.add(i)
        self._unsynced.add(i)
        pm, pd = self._px_scale[i]
        sm, sd = self._sz_scale[i]
        return [(t * pm / pd, n * sm / sd) for t, n in fills]

    def fair_usd(self, asset: str) -> float:
        """The hidden fair value; for tests and diagnostics only, never for trading decisions."""
        return math.exp(self._lf[self.universe.asset_index[asset]])

    def missing(self, symbol: str) -> tuple[float, float]:
        """Size (base units) taken from the (bids, asks) tops by takers and not yet refilled."""
        i = self._index(symbol)
        dep = self._depleted.get(i)
        if dep is None:
            return 0.0, 0.0
        sm, sd = self._sz_scale[i]
        return dep.bid_units * sm / sd, dep.ask_units * sm / sd

    def mispriced(self) -> dict[str, float]:
        """Symbols currently quoting a lagging price, with when competitors close them (diagnostics)."""
        return {self.universe.pairs[i].symbol: until for i, until in self._mispriced.items()}

    # -- fair values --------------------------------------------------------------------------------

    def _init_assets(self) -> None:
        if self._fair is not None:  # another's walk (a multi-venue world) sets them at every step
            self._fair_values: FairValues | None = None
            self._lf = np.array(self._fair(), dtype=np.float64)
        else:
            self._fair_values = FairValues(self.universe.assets, self._dt, self._rng)
            self._lf = self._fair_values.log_usd  # walked in place

    def _walk(self) -> None:
        if self._fair is not None:
            self._lf[:] = self._fair()
            return
        assert self._fair_values is not None
        self._fair_values.step()

    # -- books --------------------------------------------------------------------------------------

    def _init_pairs(self) -> None:
        pairs = self.universe.pairs
        n, lq = len(pairs), self._lq
        self._symbol_index = {p.symbol: p.index for p in pairs}
        self._base = np.array([p.base_index for p in pairs])
        self._quote = np.array([p.quote_index for p in pairs])
        self._inv_tick = np.array([10.0 ** -p.price_exp for p in pairs])
        self._incr = np.array([10.0 ** p.size_exp for p in pairs])
        self._half_spread = np.array([p.spread_bps for p in pairs]) / 2e4
        self._gap = np.array([p.level_gap_bps for p in pairs]) / 1e4
        self._top_usd = np.array([p.top_depth_usd for p in pairs])
        self._requote_p = 1 - np.exp(-np.array([p.requote_per_s for p in pairs]) * self._dt)
        self._profile = 1 + 0.12 * np.arange(lq)
        self._mult = np.ones(n)
        self._quoted_at = np.zeros(n)  # log cross rate each book was last quoted around
        # Makers re-quote early once fair value has run this far from their quote (a fraction of the
        # spread), so organic lag stays small and mispricings come from the injected lagging quotes.
        spread = np.array([p.spread_bps for p in pairs]) / 1e4
        self._drift_limit = spread * self._rng_init.uniform(0.4, 0.8, n)
        self._px_scale = [_scale(p.price_exp) for p in pairs]
        self._sz_scale = [_scale(p.size_exp) for p in pairs]
        self._px_mul, self._px_div = (np.array(c, np.float64) for c in zip(*self._px_scale, strict=True))
        self._sz_mul, self._sz_div = (np.array(c, np.float64) for c in zip(*self._sz_scale, strict=True))
        self._symbols = [p.symbol for p in pairs]
        self._bt = np.zeros((n, lq), np.int64)
        self._bu = np.zeros((n, lq), np.int64)
        self._at = np.zeros((n, lq), np.int64)
        self._au = np.zeros((n, lq), np.int64)
        self._seq = [0] * n
        quote_count: dict[str, int] = {}
        for p in pairs:
            quote_count[p.market.base] = quote_count.get(p.market.base, 0) + 1
        weights = [_MISPRICE_WEIGHT[p.tier] * (1.0 if quote_count[p.market.base] > 1 else _LONELY_WEIGHT)
                   for p in pairs]
        self._mis_cum = list(np.cumsum(weights))

    def _requote(self, idx: np.ndarray) -> None:
        """Re-quote books ``idx`` around their cross rate (times any lag multiplier), all at once."""
        k, lq, rng = len(idx), self._lq, self._rng
        if k == 0:
            return
        base, quote = self._base[idx], self._quote[idx]
        cross = self._lf[base] - self._lf[quote]
        self._quoted_at[idx] = cross
        mid = np.exp(cross) * self._mult[idx]
        inv_tick = self._inv_tick[idx]
        half = self._half_spread[idx] * rng.uniform(0.8, 1.25, k)
        bid0 = np.floor(mid * (1 - half) * inv_tick).astype(np.int64)
        ask0 = np.maximum(np.ceil(mid * (1 + half) * inv_tick).astype(np.int64), bid0 + 1)
        gap = np.maximum(1.0, mid * self._gap[idx] * inv_tick)[None, :, None]
        steps = np.maximum(1, np.rint(gap * rng.uniform(0.5, 1.5, (2, k, lq - 1)))).astype(np.int64)
        self._bt[idx, 0] = bid0
        self._bt[idx, 1:] = bid0[:, None] - np.cumsum(steps[0], axis=1)
        self._at[idx, 0] = ask0
        self._at[idx, 1:] = ask0[:, None] + np.cumsum(steps[1], axis=1)
        unit_usd = np.exp(self._lf[base]) * self._incr[idx]
        top_units = (self._top_usd[idx] / unit_usd)[None, :, None]
        units = np.maximum(1, top_units * self._profile * rng.lognormal(0, 0.35, (2, k, lq))).astype(np.int64)
        self._bu[idx] = units[0]
        self._au[idx] = units[1]

    def _thin_top(self, i: int) -> None:
        """A lagging quote shows little size at its best levels, sometimes too little to trade."""
        unit_usd = math.exp(self._lf[self._base[i]]) * self._incr[i]
        for units in (self._bu, self._au):
            for level in range(self._rand.randint(1, 3)):
                tiny = self._rand.random() < _TINY_TOP_P
                usd = _log_uniform(self._rand, 0.005, 0.5) if tiny else _log_uniform(self._rand, 5.0, 400.0)
                units[i, level] = max(1, int(usd / unit_usd))

    def _inject_mispricings(self) -> list[int]:
        injected: list[int] = []
        lo, hi = self.settings.mispricing_bps
        close_lo, close_hi = self.settings.competitor_close_s
        while self._next_mispricing <= self.time:
            self._next_mispricing += self._draw_mispricing_gap()
            i = self._rand.choices(range(len(self._mis_cum)), cum_weights=self._mis_cum)[0]
            shift = self._rand.uniform(lo, hi) / 1e4 * self._rand.choice((-1, 1))
            close_at = self.time + self._rand.uniform(close_lo, close_hi)
            if i in self._mispriced or i in injected:
                continue
            self._mult[i] = 1 + shift
            self._mispriced[i] = close_at
            injected.append(i)
        return injected

    def _draw_mispricing_gap(self) -> float:
        rate = self.settings.mispricing_per_s
        return self._rand.expovariate(rate) if rate > 0 else math.inf

    def _snapshots(self, order: list[int]) -> list[BookUpdate]:
        """Snapshot books ``order`` (sorted), converting untouched ones to floats in one numpy pass."""
        plain = [i for i in order if i not in self._depleted and self._bt[i, self._depth - 1] > 0]
        fast: dict[int, BookUpdate] = {}
        if plain:
            idx, d = np.array(plain), self._depth
            pm, pd, sm, sd = (a[idx, None] for a in (self._px_mul, self._px_div, self._sz_mul, self._sz_div))
            # Exact powers of ten, so each float is the correctly rounded decimal on the tick/lot grid.
            bp = (self._bt[idx, :d] * pm / pd).tolist()
            bs = (self._bu[idx, :d] * sm / sd).tolist()
            ap = (self._at[idx, :d] * pm / pd).tolist()
            az = (self._au[idx, :d] * sm / sd).tolist()
            for k, i in enumerate(plain):
                fast[i] = self._update(i, tuple(zip(bp[k], bs[k], strict=True)),
                                       tuple(zip(ap[k], az[k], strict=True)))
        return [fast.get(i) or self._snapshot(i) for i in order]

    def _snapshot(self, i: int) -> BookUpdate:
        bt, bu = self._bt[i].tolist(), self._bu[i].tolist()
        at, au = self._at[i].tolist(), self._au[i].tolist()
        dep = self._depleted.get(i)
        if dep is not None:
            bt, bu = live_side(bt, bu, dep.bid_units)
            at, au = live_side(at, au, dep.ask_units)
        pm, pd = self._px_scale[i]
        sm, sd = self._sz_scale[i]
        d = self._depth
        return self._update(
            i, tuple((t * pm / pd, n * sm / sd) for t, n in zip(bt[:d], bu[:d], strict=True) if t > 0),
            tuple((t * pm / pd, n * sm / sd) for t, n in zip(at[:d], au[:d], strict=True)))

    def _update(self, i: int, bids: tuple[Level, ...], asks: tuple[Level, ...]) -> BookUpdate:
        self._seq[i] += 1
        return BookUpdate(
            venue=self.universe.venue, symbol=self._symbols[i], bids=bids, asks=asks, sequence=self._seq[i],
            exchange_ts_ms=EPOCH_MS + self._steps * self.settings.step_ms, received_at=self.time,
            snapshot=True)

    def _synced(self, i: int) -> int:
        if i in self._unsynced:
            self._unsynced.discard(i)
            self._snaps[i] = self._snapshot(i)
        return i

    def _index(self, symbol: str) -> int:
        try:
            return self._symbol_index[symbol]
        except KeyError:
            raise KeyError(f"unknown symbol {symbol!r}") from None


def _ticker(snap: BookUpdate) -> Ticker:
    bid: Level = snap.bids[0] if snap.bids else (0.0, 0.0)
    ask: Level = snap.asks[0] if snap.asks else (0.0, 0.0)
    return Ticker(venue=snap.venue, symbol=snap.symbol, bid=bid[0], bid_size=bid[1], ask=ask[0],
                  ask_size=ask[1], ts_ms=snap.exchange_ts_ms)


def _log_uniform(rng: random.Random, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))
