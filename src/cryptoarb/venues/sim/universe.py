"""A KuCoin-like spot universe: assets with hidden fair values, pairs with rules and liquidity profiles.

Everything is drawn from ``random.Random(settings.seed)``, so a seed names one universe exactly.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from decimal import Decimal
from enum import IntEnum

from cryptoarb.config import SimSettings
from cryptoarb.model import Market

QUOTES: tuple[str, ...] = ("USDT", "USDC", "BTC", "ETH", "KCS", "TRX", "DAI")
STABLES = frozenset({"USDT", "USDC", "DAI"})
FEE = Decimal("0.001")
MIN_FUNDS: dict[str, Decimal] = {
    "USDT": Decimal("0.1"), "USDC": Decimal("0.1"), "DAI": Decimal("0.1"), "BTC": Decimal("0.00001"),
    "ETH": Decimal("0.0001"), "KCS": Decimal("0.01"), "TRX": Decimal("1"),
}

# Rough USD values; they only need to put each major in the right decade.
MAJORS: tuple[tuple[str, float], ...] = (
    ("BTC", 95_000.0), ("ETH", 3_300.0), ("KCS", 11.0), ("TRX", 0.25), ("USDC", 1.0), ("DAI", 1.0),
    ("SOL", 180.0), ("XRP", 2.2), ("ADA", 0.9), ("DOGE", 0.32), ("BNB", 650.0), ("DOT", 6.5),
    ("LTC", 100.0), ("LINK", 20.0), ("AVAX", 35.0), ("TON", 5.5), ("SHIB", 0.00002), ("BCH", 450.0),
    ("XLM", 0.4), ("ATOM", 6.5), ("UNI", 12.0), ("NEAR", 5.0), ("ETC", 26.0), ("FIL", 5.0),
    ("APT", 9.0), ("ARB", 0.7), ("OP", 1.9), ("INJ", 22.0), ("SUI", 4.0), ("PEPE", 0.000018),
    ("HBAR", 0.28), ("ICP", 10.0), ("AAVE", 300.0), ("MKR", 1_500.0), ("ALGO", 0.35), ("VET", 0.045),
    ("SAND", 0.55), ("MANA", 0.5), ("AXS", 6.5), ("GRT", 0.2), ("XTZ", 1.2), ("EOS", 0.8),
    ("NEO", 14.0), ("KAVA", 0.45), ("FLOW", 0.75), ("CRV", 0.9), ("EGLD", 30.0), ("THETA", 1.8),
    ("CHZ", 0.09), ("XMR", 190.0), ("ZEC", 55.0), ("DASH", 35.0), ("IOTA", 0.3), ("ONE", 0.02),
    ("FET", 1.4), ("RNDR", 7.0), ("WLD", 2.3), ("SEI", 0.45), ("TIA", 5.5), ("JUP", 0.9),
)

QUOTE_PAIRS: tuple[tuple[str, str], ...] = (
    ("BTC", "USDT"), ("ETH", "USDT"), ("ETH", "BTC"), ("KCS", "USDT"), ("KCS", "BTC"), ("KCS", "ETH"),
    ("TRX", "USDT"), ("TRX", "BTC"), ("TRX", "ETH"), ("USDC", "USDT"), ("DAI", "USDT"), ("BTC", "USDC"),
    ("ETH", "USDC"), ("BTC", "DAI"), ("ETH", "DAI"), ("KCS", "USDC"),
)

# Chance that a listing of a non-quote base uses each quote (besides USDT, which is almost always there).
_QUOTE_WEIGHTS: dict[str, float] = {"BTC": 0.3, "USDC": 0.22, "ETH": 0.2, "KCS": 0.1, "TRX": 0.09,
                                    "DAI": 0.09}
_QUOTE_HEAT: dict[str, float] = {"USDT": 1.0, "BTC": 0.8, "ETH": 0.7, "USDC": 0.45, "KCS": 0.3, "TRX": 0.25,
                                 "DAI": 0.2}
_MEDIUM_SHARE = 0.25
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class Tier(IntEnum):
    HOT = 0
    MEDIUM = 1
    TAIL = 2


@dataclass(frozen=True, slots=True)
class AssetSpec:
    """One asset and how its hidden fair value moves (vol in bps per sqrt(second))."""

    name: str
    index: int
    fair_usd: float
    vol_bps: float
    market_corr: float
    jump_per_s: float
    jump_bps: float
    stable: bool
    major: bool


@dataclass(frozen=True, slots=True)
class PairSpec:
    """A market's rules plus its liquidity profile: spread, depth, level spacing, re-quote rate."""

    index: int
    market: Market
    base_index: int
    quote_index: int
    hotness: float
    tier: Tier
    spread_bps: float
    level_gap_bps: float
    top_depth_usd: float
    requote_per_s: float
    price_exp: int
    size_exp: int

    @property
    def symbol(self) -> str:
        return self.market.symbol


@dataclass(frozen=True)
class Universe:
    venue: str
    assets: tuple[AssetSpec, ...]
    pairs: tuple[PairSpec, ...]
    by_symbol: dict[str, PairSpec] = field(init=False, repr=False, compare=False)
    asset_index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_symbol", {p.symbol: p for p in self.pairs})
        object.__setattr__(self, "asset_index", {a.name: a.index for a in self.assets})

    @property
    def markets(self) -> list[Market]:
        return [p.market for p in self.pairs]

    @property
    def symbols(self) -> list[str]:
        return [p.symbol for p in self.pairs]

    @property
    def base_assets(self) -> list[str]:
        return list(dict.fromkeys(p.market.base for p in self.pairs))

    def quotes_of(self, base: str) -> list[str]:
        return [p.market.quote for p in self.pairs if p.market.base == base]


def build_universe(settings: SimSettings, venue: str = "kucoin") -> Universe:
    rng = random.Random(settings.seed)
    qq_bases = list(dict.fromkeys(b for b, _ in QUOTE_PAIRS))
    listings_needed = max(settings.pairs - len(QUOTE_PAIRS), 1)
    n_other = max(settings.assets - len(qq_bases), math.ceil(listings_needed / 4))
    listings_needed = max(listings_needed, n_other)

    assets = _assets(rng, n_other)
    names = [a.name for a in assets]
    others = [a for a in assets if a.name not in STABLES and a.name not in qq_bases]
    counts = _quote_counts(rng, others, listings_needed)

    listings: list[tuple[str, str]] = list(QUOTE_PAIRS)
    for asset, count in zip(others, counts, strict=True):
        listings.extend((asset.name, q) for q in _pick_quotes(rng, asset, count))

    rank = {name: i for i, name in enumerate(names)}
    heat = [1.0 / (rank[b] + 1) * _QUOTE_HEAT[q] for b, q in listings]
    order = sorted(range(len(listings)), key=lambda i: (-heat[i], listings[i]))
    top_heat = heat[order[0]]
    n_medium = int(len(listings) * _MEDIUM_SHARE)
    by_name = {a.name: a for a in assets}
    pairs = []
    for pos, li in enumerate(order):
        base, quote = listings[li]
        tier = (Tier.HOT if pos < settings.hot_pairs
                else Tier.MEDIUM if pos < settings.hot_pairs + n_medium else Tier.TAIL)
        pairs.append(_pair(rng, pos, by_name[base], by_name[quote], heat[li] / top_heat, tier, venue))
    return Universe(venue=venue, assets=tuple(assets), pairs=tuple(pairs))


def _assets(rng: random.Random, n_other: int) -> list[AssetSpec]:
    """USDT, the quote assets and real majors, then synthetic names up to ``n_other`` non-quote bases."""
    specs: list[AssetSpec] = []
    taken = {"USDT"}

    def add(name: str, fair: float, *, major: bool) -> None:
        stable = name in STABLES
        vol = 0.3 if stable else rng.uniform(2.0, 4.0) if major else rng.uniform(4.0, 10.0)
        specs.append(AssetSpec(
            name=name, index=len(specs), fair_usd=fair, vol_bps=vol,
            market_corr=0.0 if stable else 0.5, jump_per_s=0.0 if stable else 1 / 600 if major else 1 / 300,
            jump_bps=0.0 if stable else 20.0 if major else 60.0, stable=stable, major=major))
        taken.add(name)

    add("USDT", 1.0, major=True)
    quote_set = set(QUOTES)
    n_majors = 0
    for name, fair in MAJORS:
        is_other = name not in quote_set
        if is_other and n_majors >= n_other:
            continue
        add(name, fair, major=True)
        n_majors += is_other
    for _ in range(n_other - n_majors):
        add(_fresh_name(rng, taken), math.exp(rng.uniform(math.log(1e-6), math.log(5e4))), major=False)
    return specs


def _fresh_name(rng: random.Random, taken: set[str]) -> str:
    while True:
        name = "".join(rng.choice(_LETTERS) for _ in range(rng.choice((3, 3, 4, 4, 5))))
        if name not in taken:
            return name


def _quote_counts(rng: random.Random, bases: list[AssetSpec], total: int) -> list[int]:
    """How many quotes each base is listed against (1..4), summing to ``total`` when that is possible."""
    counts = [rng.choice((3, 4)) if a.major else rng.choices((1, 2, 3, 4), (25, 30, 25, 20))[0]
              for a in bases]
    total = min(max(total, len(bases)), 4 * len(bases))
    idx = list(range(len(bases)))
    while (diff := sum(counts) - total) != 0:
        i = rng.choice(idx)
        if diff > 0 and counts[i] > 1 and not bases[i].major:
            counts[i] -= 1
        elif diff < 0 and counts[i] < 4:
            counts[i] += 1
        elif diff > 0 and all(counts[j] == 1 or bases[j].major for j in idx):
            counts[i] = max(1, counts[i] - 1)
    return counts


def _pick_quotes(rng: random.Random, asset: AssetSpec, count: int) -> list[str]:
    chosen: list[str] = ["USDT"] if asset.major or rng.random() < 0.97 else []
    pool = dict(_QUOTE_WEIGHTS)
    while len(chosen) < count:
        quote = rng.choices(list(pool), list(pool.values()))[0]
        del pool[quote]
        chosen.append(quote)
    return chosen


def _pair(rng: random.Random, index: int, base: AssetSpec, quote: AssetSpec, hotness: float, tier: Tier,
          venue: str, *, fee: Decimal = FEE, min_funds: Decimal | None = None) -> PairSpec:
    price = base.fair_usd / quote.fair_usd
    digits = 6 if tier is Tier.HOT else 5 if tier is Tier.MEDIUM else rng.choice((4, 5))
    price_exp = math.floor(math.log10(price)) - (digits - 1)
    # One increment is worth $0.0001..$0.01, as on KuCoin.
    size_exp = math.floor(math.log10(10 ** rng.uniform(-3, -2) / base.fair_usd))
    inc_usd = 10.0 ** size_exp * base.fair_usd
    min_exp = size_exp + max(1, math.ceil(math.log10(rng.uniform(0.05, 1.0) / inc_usd)))
    if tier is Tier.HOT:
        spread, gap, top, rate = rng.uniform(1, 5), rng.uniform(0.5, 2), _log_uniform(rng, 5e3, 5e4), \
            rng.uniform(4, 10)
    elif tier is Tier.MEDIUM:
        spread, gap, top, rate = rng.uniform(5, 15), rng.uniform(2, 6), _log_uniform(rng, 5e2, 5e3), \
            1 / rng.uniform(1, 4)
    else:
        spread, gap, top, rate = rng.uniform(10, 60), rng.uniform(4, 15), _log_uniform(rng, 20, 2e3), \
            1 / rng.uniform(5, 20)
    market = Market(
        venue=venue, symbol=f"{base.name}-{quote.name}", base=base.name, quote=quote.name,
        price_tick=Decimal(1).scaleb(price_exp), size_increment=Decimal(1).scaleb(size_exp),
        min_size=Decimal(1).scaleb(min_exp), min_funds=MIN_FUNDS[quote.name] if min_funds is None else min_funds,
        taker_fee=fee, maker_fee=fee, fee_currency="quote", enabled=True)
    return PairSpec(
        index=index, market=market, base_index=base.index, quote_index=quote.index, hotness=hotness,
        tier=tier, spread_bps=spread, level_gap_bps=gap, top_depth_usd=top, requote_per_s=rate,
        price_exp=price_exp, size_exp=size_exp)


def _log_uniform(rng: random.Random, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))
