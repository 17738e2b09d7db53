"""A multi-venue simulated world: one set of hidden fair values quoted by several venues that drift apart.

Every venue of a :class:`SimWorld` is an ordinary :class:`SimMarket` (its own universe, books, lagging
quotes and matching) whose fair values come from the world instead of its own random walk: the world's
log USD fair value of each asset plus the venue's *premium* on it. Premiums are what make cross-exchange
arbitrage: each is the sum of

- a venue-wide premium (one Ornstein-Uhlenbeck process per venue, on every non-pegged asset),
- a per-asset premium (one OU process per venue and asset),
- divergence episodes: now and then a venue's price of one asset (or of all of them) moves away by
  tens of basis points over a second or two, holds, then decays back: prices drift apart and back.

Pegged assets (USD, USDT, USDC, DAI, EUR) carry no premium, so every venue agrees on them and the
premium shows in every market of the asset alike.

Three venue kinds, each with its own universe and defaults (:data:`PROFILES`, overridden per venue by
``[sim.venues.<name>]``):

- ``kucoin``: the KuCoin-like universe of ``build_universe`` (the same listing as the single-venue
  demo for the same seed), the reference venue (no premium by default);
- ``coinbase``: about fifty majors against USD, the top ones also against USDT, EUR and BTC, plus
  USDT-USD, USDT-EUR, ETH-BTC (Coinbase Exchange style product ids);
- ``bl3p``: BTC-EUR and LTC-EUR only, on BL3P's integer grid (prices 1e-5 EUR, amounts 1e-8).

Everything is pull-based and deterministic for a seed: :meth:`SimWorld.step` advances fair values,
premiums and every venue in lockstep; :meth:`SimWorld.stream` yields one step of every venue at a time
in a fixed venue order; each venue is also a ``SimVenue`` (:class:`WorldVenue`) whose own
``stream_books`` pulls the same lockstep world.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import zlib
from collections import deque
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

import msgspec
import numpy as np

from cryptoarb.config import SimSettings, SimVenueSettings
from cryptoarb.model import BookUpdate
from cryptoarb.venues.base import VenueError
from cryptoarb.venues.sim.market import FairValues, SimMarket
from cryptoarb.venues.sim.universe import (
    MAJORS,
    AssetSpec,
    PairSpec,
    Tier,
    Universe,
    _pair,
    build_universe,
)
from cryptoarb.venues.sim.venue import SimVenue

VENUE_KINDS = ("kucoin", "coinbase", "bl3p")
PEGGED = frozenset({"USD", "USDT", "USDC", "DAI", "EUR"})
EUR_USD = 1.08

_EPISODE_RAMP_S = (1.0, 3.0)
_EPISODE_HOLD_S = (2.0, 6.0)
_EPISODE_DECAY_S = (2.0, 5.0)
_EPISODE_VENUE_WIDE_P = 0.35


@dataclass(frozen=True, slots=True)
class VenueProfile:
    """How a kind of venue lists, charges and drifts (bps are of price; seconds of virtual time)."""

    kind: str
    taker_fee: Decimal
    premium_bps: float
    asset_premium_bps: float
    reversion_s: float
    divergence_per_s: float
    divergence_bps: tuple[float, float]
    mispricing_per_s: float | None  # None: the world settings' rate


PROFILES: dict[str, VenueProfile] = {
    "kucoin": VenueProfile("kucoin", Decimal("0.001"), 0.0, 0.0, 30.0, 0.0, (0.0, 0.0), None),
    "coinbase": VenueProfile("coinbase", Decimal("0.002"), 6.0, 4.0, 20.0, 1 / 6, (45.0, 110.0), 1.0),
    "bl3p": VenueProfile("bl3p", Decimal("0.0025"), 10.0, 6.0, 30.0, 1 / 7, (60.0, 140.0), 0.3),
}

DEFAULT_BALANCES: dict[str, dict[str, float]] = {
    "kucoin": {"USDT": 10_000.0, "BTC": 0.15, "ETH": 3.0, "KCS": 500.0},
    "coinbase": {"USD": 5_000.0, "USDT": 10_000.0, "EUR": 5_000.0, "BTC": 0.1, "ETH": 2.0, "LTC": 20.0},
    "bl3p": {"EUR": 8_000.0, "BTC": 0.05, "LTC": 20.0},
}
"""Paper inventory of a venue the configuration gives none (a buffer of each traded asset per venue)."""

_MIN_FUNDS: dict[str, Decimal] = {
    "USD": Decimal(1), "USDT": Decimal(1), "EUR": Decimal(1), "BTC": Decimal("0.00001"),
    "ETH": Decimal("0.0001"),
}
_COINBASE_SKIP = frozenset({"KCS", "TRX", "BNB", "TON", "XMR", "USDC", "DAI", "KAVA", "NEO", "VET", "ONE"})
_COINBASE_USDT = 20  # the top this many bases also trade against USDT
_COINBASE_EUR = 20
_COINBASE_BTC = 12
_COINBASE_HOT = 12
_QUOTE_HEAT = {"USD": 1.0, "USDT": 0.7, "EUR": 0.6, "BTC": 0.5}
_BL3P_PRICE_EXP = -5  # price_int is EUR x 1e5
_BL3P_SIZE_EXP = -8  # amount_int is BTC/LTC x 1e8


def venue_kind(name: str, settings: SimSettings) -> str:
    override = settings.venues.get(name)
    kind = override.kind if override is not None and override.kind is not None else name
    if kind not in PROFILES:
        raise ValueError(f"unknown simulated venue {name!r}: set [sim.venues.{name}] kind to one of "
                         f"{', '.join(VENUE_KINDS)}")
    return kind


def venue_profile(name: str, settings: SimSettings) -> VenueProfile:
    """The venue kind's profile with ``[sim.venues.<name>]`` applied."""
    profile = PROFILES[venue_kind(name, settings)]
    override = settings.venues.get(name) or SimVenueSettings()
    changes = {k: v for k, v in override.model_dump(exclude={"kind"}).items() if v is not None}
    if "taker_fee" in changes:
        changes["taker_fee"] = Decimal(repr(changes["taker_fee"]))
    if "divergence_bps" in changes:
        changes["divergence_bps"] = tuple(changes["divergence_bps"])
    return dataclasses.replace(profile, **changes)


def venue_seed(seed: int, name: str) -> int:
    """A venue's own seed: the world seed for ``kucoin`` (its universe is the single-venue one), a stable
    derivation from the name otherwise, so adding a venue never changes the others' listings."""
    if name == "kucoin":
        return seed
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % (1 << 62)


def world_balances(configured: Mapping[str, Mapping[str, float]], venues: Sequence[str],
                   settings: SimSettings | None = None) -> dict[str, dict[str, float]]:
    """Configured paper inventory, with :data:`DEFAULT_BALANCES` for venues that have none."""
    out = {v: dict(a) for v, a in configured.items()}
    for name in venues:
        if name not in out:
            kind = venue_kind(name, settings) if settings is not None else name
            out[name] = dict(DEFAULT_BALANCES.get(kind, {}))
    return out


def stamped(update: BookUpdate, received_at: float) -> BookUpdate:
    """``update`` as received at ``received_at`` (BookUpdate may be a dataclass or a msgspec Struct)."""
    if isinstance(update, msgspec.Struct):
        return msgspec.structs.replace(update, received_at=received_at)
    return dataclasses.replace(update, received_at=received_at)


# -- universes ---------------------------------------------------------------------------------------------
def _catalog(settings: SimSettings) -> tuple[AssetSpec, ...]:
    """Every asset of the world: the KuCoin-like universe's assets plus USD and EUR."""
    assets = list(build_universe(settings, venue="kucoin").assets)
    n = len(assets)
    assets.append(AssetSpec(name="USD", index=n, fair_usd=1.0, vol_bps=0.0, market_corr=0.0, jump_per_s=0.0,
                            jump_bps=0.0, stable=True, major=True))
    assets.append(AssetSpec(name="EUR", index=n + 1, fair_usd=EUR_USD, vol_bps=0.3, market_corr=0.0,
                            jump_per_s=0.0, jump_bps=0.0, stable=True, major=True))
    return tuple(assets)


def _listed(venue: str, catalog: Mapping[str, AssetSpec], listings: Sequence[tuple[str, str]], rng: random.Random,
            fee: Decimal, hot: int) -> Universe:
    """A universe of exactly ``listings`` (ordered hottest first), on assets re-indexed locally."""
    names = list(dict.fromkeys(a for pair in listings for a in pair))
    local = {name: dataclasses.replace(catalog[name], index=i) for i, name in enumerate(names)}
    n_medium = max(1, int(len(listings) * 0.35))
    pairs = []
    for pos, (base, quote) in enumerate(listings):
        tier = Tier.HOT if pos < hot else Tier.MEDIUM if pos < hot + n_medium else Tier.TAIL
        pairs.append(_pair(rng, pos, local[base], local[quote], 1.0 / (pos + 1), tier, venue, fee=fee,
                           min_funds=_MIN_FUNDS.get(quote, Decimal("0.1"))))
    return Universe(venue=venue, assets=tuple(local[n] for n in names), pairs=tuple(pairs))


def coinbase_listings(available: Collection[str]) -> list[tuple[str, str]]:
    """Coinbase-Exchange-like products, hottest first: majors vs USD, the top ones vs USDT, EUR, BTC."""
    bases = [name for name, _ in MAJORS if name in available and name not in _COINBASE_SKIP]
    bases = ["BTC", "ETH", *[b for b in bases if b not in ("BTC", "ETH")]][:50]
    listings: list[tuple[str, str]] = []
    for rank, base in enumerate(bases):
        listings.append((base, "USD"))
        if rank < _COINBASE_USDT:
            listings.append((base, "USDT"))
        if rank < _COINBASE_EUR:
            listings.append((base, "EUR"))
        if 0 < rank < _COINBASE_BTC:
            listings.append((base, "BTC"))
    listings += [("USDT", "USD"), ("USDT", "EUR")]
    rank_of = {b: i for i, b in enumerate(bases)} | {"USDT": 1}
    heat = {pair: _QUOTE_HEAT[pair[1]] / (rank_of[pair[0]] + 1) for pair in listings}
    return sorted(listings, key=lambda p: (-heat[p], p))


def build_venue_universe(name: str, settings: SimSettings, catalog: Sequence[AssetSpec] | None = None) -> Universe:
    """The universe of simulated venue ``name`` (its kind's listing, its own seed)."""
    kind = venue_kind(name, settings)
    profile = venue_profile(name, settings)
    if kind == "kucoin":
        universe = build_universe(settings, venue=name)
        if profile.taker_fee != universe.pairs[0].market.taker_fee:
            universe = _with_fee(universe, profile.taker_fee)
        return universe
    by_name = {a.name: a for a in (catalog or _catalog(settings))}
    rng = random.Random(venue_seed(settings.seed, name))
    if kind == "coinbase":
        return _listed(name, by_name, coinbase_listings(by_name), rng, profile.taker_fee, _COINBASE_HOT)
    universe = _listed(name, by_name, [("BTC", "EUR"), ("LTC", "EUR")], rng, profile.taker_fee, 0)
    return dataclasses.replace(universe, pairs=tuple(_bl3p_grid(p) for p in universe.pairs))


def _with_fee(universe: Universe, fee: Decimal) -> Universe:
    pairs = tuple(dataclasses.replace(p, market=dataclasses.replace(p.market, taker_fee=fee, maker_fee=fee))
                  for p in universe.pairs)
    return dataclasses.replace(universe, pairs=pairs)


def _bl3p_grid(pair: PairSpec) -> PairSpec:
    """Keep ticks and lots on BL3P's integer encoding (price 1e-5 EUR, amount 1e-8)."""
    price_exp = max(pair.price_exp, _BL3P_PRICE_EXP)
    size_exp = max(pair.size_exp, _BL3P_SIZE_EXP)
    m = pair.market
    market = dataclasses.replace(m, price_tick=Decimal(1).scaleb(price_exp), size_increment=Decimal(1).scaleb(size_exp),
                                 min_size=max(m.min_size, Decimal(1).scaleb(size_exp)))
    return dataclasses.replace(pair, market=market, price_exp=price_exp, size_exp=size_exp)


# -- premiums ----------------------------------------------------------------------------------------------
@dataclass(slots=True)
class _Episode:
    assets: np.ndarray  # world asset indexes it moves
    amplitude: float  # log units
    start: float
    ramp: float
    hold: float
    decay: float

    def level(self, t: float) -> float:
        age = t - self.start
        if age < self.ramp:
            return self.amplitude * age / self.ramp
        if age < self.ramp + self.hold:
            return self.amplitude
        return self.amplitude * math.exp(-(age - self.ramp - self.hold) / self.decay)

    def over(self, t: float) -> bool:
        return t - self.start > self.ramp + self.hold + 6 * self.decay


class _Premiums:
    """One venue's log premiums over the world's fair values, per world asset."""

    def __init__(self, profile: VenueProfile, n_assets: int, free: np.ndarray, candidates: np.ndarray,
                 dt: float, seed: int) -> None:
        self.profile = profile
        self._free = free  # 1.0 where an asset may carry a premium (not pegged), else 0.0
        self._candidates = candidates  # assets an episode may pick: listed here and on another venue
        self._dt = dt
        self._rng = np.random.default_rng([seed, 0x9E31])
        self._rand = random.Random(seed * 7 + 3)
        tau = profile.reversion_s
        self._decay = math.exp(-dt / tau)
        self._shock = math.sqrt(1 - self._decay**2)
        self._sig_venue = profile.premium_bps / 1e4
        self._sig_asset = profile.asset_premium_bps / 1e4
        self.venue_wide = self._sig_venue * float(self._rng.standard_normal())
        self.per_asset = self._sig_asset * self._rng.standard_normal(n_assets) * free
        self.episodes: list[_Episode] = []
        self.values = np.zeros(n_assets)
        self._next_episode = self._gap()
        self._compose(0.0)

    def _gap(self) -> float:
        rate = self.profile.divergence_per_s
        return self._rand.expovariate(rate) if rate > 0 and len(self._candidates) else math.inf

    def step(self, t: float) -> None:
        self.venue_wide = self.venue_wide * self._decay + self._sig_venue * self._shock * float(
            self._rng.standard_normal())
        self.per_asset *= self._decay
        self.per_asset += self._sig_asset * self._shock * self._rng.standard_normal(len(self.per_asset)) * self._free
        while self._next_episode <= t:
            self._next_episode += self._gap()
            lo, hi = self.profile.divergence_bps
            amplitude = self._rand.uniform(lo, hi) / 1e4 * self._rand.choice((-1, 1))
            if self._rand.random() < _EPISODE_VENUE_WIDE_P:
                assets = np.flatnonzero(self._free)
            else:
                assets = np.array([self._candidates[self._rand.randrange(len(self._candidates))]])
            self.episodes.append(_Episode(assets, amplitude, t, self._rand.uniform(*_EPISODE_RAMP_S),
                                          self._rand.uniform(*_EPISODE_HOLD_S), self._rand.uniform(*_EPISODE_DECAY_S)))
        self.episodes = [e for e in self.episodes if not e.over(t)]
        self._compose(t)

    def _compose(self, t: float) -> None:
        values = self.venue_wide * self._free + self.per_asset
        for episode in self.episodes:
            values[episode.assets] += episode.level(t)
        self.values = values


# -- the world ---------------------------------------------------------------------------------------------
class SimWorld:
    """Several simulated venues over one set of hidden fair values, stepped in lockstep.

    ``venues`` are names of venue kinds (``kucoin``, ``coinbase``, ``bl3p``) or names given a kind in
    ``settings.venues``; their order is the order of every step's batches. ``speed`` paces the pull-based
    streams against the wall clock (virtual seconds per wall second; <= 0: as fast as pulled).
    """

    def __init__(self, settings: SimSettings, venues: Sequence[str] = VENUE_KINDS, *, speed: float = 1.0,
                 balances: Mapping[str, Mapping[str, float]] | None = None) -> None:
        if not venues:
            raise ValueError("a world needs at least one venue")
        if len(set(venues)) != len(venues):
            raise ValueError(f"venue listed twice: {list(venues)}")
        self.settings = settings
        self.speed = speed
        self._dt = settings.step_ms / 1000
        self.time = 0.0
        self._steps = 0
        self._closed = False
        catalog = _catalog(settings)
        self.assets = catalog
        self.asset_index = {a.name: a.index for a in catalog}
        self._init_fair(catalog, settings.seed)
        universes = {name: build_venue_universe(name, settings, catalog) for name in venues}
        listed_on: dict[str, int] = {}
        for universe in universes.values():
            for asset in universe.assets:
                listed_on[asset.name] = listed_on.get(asset.name, 0) + 1
        free = np.array([0.0 if a.name in PEGGED or a.stable else 1.0 for a in catalog])
        self.profiles = {name: venue_profile(name, settings) for name in venues}
        self._premiums: dict[str, _Premiums] = {}
        self.venues: dict[str, WorldVenue] = {}
        self._buffers: dict[str, deque[list[BookUpdate]]] = {}
        self._wall0: float | None = None
        self._virtual0 = 0.0
        for name, universe in universes.items():
            idx = np.array([self.asset_index[a.name] for a in universe.assets], dtype=np.intp)
            candidates = np.array(sorted(self.asset_index[a.name] for a in universe.assets
                                         if listed_on[a.name] > 1 and free[self.asset_index[a.name]]),
                                  dtype=np.intp)
            seed = venue_seed(settings.seed, name)
            premiums = _Premiums(self.profiles[name], len(catalog), free, candidates, self._dt, seed)
            self._premiums[name] = premiums
            profile = self.profiles[name]
            venue_settings = settings.model_copy(update={
                "seed": seed, "venues": {},
                **({"mispricing_per_s": profile.mispricing_per_s} if profile.mispricing_per_s is not None else {})})
            market = SimMarket(universe, venue_settings, fair=self._fair_of(idx, premiums))
            held = None if balances is None else dict(balances.get(name, {}))
            self.venues[name] = WorldVenue(self, name, market, held)

    # -- fair values ----------------------------------------------------------------------------------------
    def _init_fair(self, assets: Sequence[AssetSpec], seed: int) -> None:
        self._fair_values = FairValues(assets, self._dt, np.random.default_rng([seed % (1 << 63), 0x3011D]))
        self._lf = self._fair_values.log_usd  # walked in place

    def _walk(self) -> None:
        self._fair_values.step()

    def _fair_of(self, idx: np.ndarray, premiums: _Premiums):
        def fair() -> np.ndarray:
            return self._lf[idx] + premiums.values[idx]
        return fair

    # -- stepping -------------------------------------------------------------------------------------------
    @property
    def steps(self) -> int:
        return self._steps

    def now(self) -> float:
        """Virtual time in seconds: the clock every venue of the world shares."""
        return self.time

    def step(self) -> list[tuple[str, list[BookUpdate]]]:
        """Advance fair values, premiums and every venue one step; each venue's changed books, in order."""
        self._steps += 1
        self.time = self._steps * self._dt
        self._walk()
        for premiums in self._premiums.values():
            premiums.step(self.time)
        out = [(name, venue.market.step()) for name, venue in self.venues.items()]
        for name, batch in out:
            buffer = self._buffers.get(name)
            if buffer is not None:
                buffer.append(batch)
        return out

    def snapshots(self) -> list[tuple[str, list[BookUpdate]]]:
        """Every book of every venue now (what a fresh subscription delivers)."""
        return [(name, venue.snapshot()) for name, venue in self.venues.items()]

    async def stream(self) -> AsyncIterator[list[tuple[str, list[BookUpdate]]]]:
        """Every venue's full books, then one lockstep step of every venue per item, paced by ``speed``."""
        yield self.snapshots()
        while not self._closed:
            await self._pace()
            if self._closed:
                return
            yield self.step()

    async def _pace(self) -> None:
        loop = asyncio.get_running_loop()
        if self._wall0 is None:
            self._wall0, self._virtual0 = loop.time(), self.time
        if self.speed > 0:
            delay = self._wall0 + (self.time + self._dt - self._virtual0) / self.speed - loop.time()
            await asyncio.sleep(max(0.0, delay))
        else:
            await asyncio.sleep(0)

    async def close(self) -> None:
        self._closed = True
        for venue in self.venues.values():
            await venue.close()

    @property
    def closed(self) -> bool:
        return self._closed

    # -- diagnostics ----------------------------------------------------------------------------------------
    def premium_bps(self, venue: str, asset: str) -> float:
        """How far ``venue`` prices ``asset`` above (+) or below the world's fair value, in bps."""
        return 1e4 * math.expm1(float(self._premiums[venue].values[self.asset_index[asset]]))

    def divergence_bps(self, asset: str) -> float:
        """The widest premium gap on ``asset`` between two venues that list it."""
        listed = [v for v, venue in self.venues.items() if asset in venue.universe.asset_index]
        if len(listed) < 2:
            return 0.0
        premiums = [self.premium_bps(v, asset) for v in listed]
        return max(premiums) - min(premiums)

    def fair_usd(self, asset: str) -> float:
        return math.exp(float(self._lf[self.asset_index[asset]]))


class WorldVenue(SimVenue):
    """One venue of a :class:`SimWorld`: a ``SimVenue`` (markets, books, orders, ``consume``) on the
    world's clock, whose ``stream_books`` pulls the world forward in lockstep with its other venues."""

    def __init__(self, world: SimWorld, name: str, market: SimMarket, balances: dict[str, float] | None) -> None:
        super().__init__(market.settings, name=name, speed=world.speed, balances=balances, market=market)
        self.world = world

    def now(self) -> float:
        return self.world.time

    def snapshot(self) -> list[BookUpdate]:
        now = self.now()
        return [stamped(self.market.book(s), now) for s in self.universe.symbols]

    async def stream_books(self, symbols: Collection[str] | None = None) -> AsyncIterator[list[BookUpdate]]:
        if self._streaming:
            raise VenueError("a world venue serves one book stream at a time")
        wanted = None if symbols is None else frozenset(self._checked(s) for s in symbols)
        self._streaming = True
        buffer: deque[list[BookUpdate]] = deque()
        self.world._buffers[self.name] = buffer
        try:
            first = self.snapshot()
            yield first if wanted is None else [u for u in first if u.symbol in wanted]
            while not self._closed and not self.world.closed:
                if not buffer:  # every venue's stream moves the one world; the slowest reads its backlog
                    await self.world._pace()
                    if self._closed or self.world.closed:
                        return
                    self.world.step()
                batch = buffer.popleft()
                yield batch if wanted is None else [u for u in batch if u.symbol in wanted]
        finally:
            self.world._buffers.pop(self.name, None)
            self._streaming = False
