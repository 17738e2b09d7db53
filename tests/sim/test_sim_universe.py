import math
import re
from collections import Counter
from decimal import Decimal

import pytest

from cryptoarb.config import SimSettings
from cryptoarb.venues.sim import Tier, build_universe
from cryptoarb.venues.sim.universe import MIN_FUNDS, QUOTE_PAIRS, QUOTES


@pytest.fixture(scope="module")
def universe():
    return build_universe(SimSettings())


def _is_power_of_ten(d: Decimal) -> bool:
    return d > 0 and d.normalize().as_tuple().digits == (1,)


def test_size_and_quotes(universe):
    markets = universe.markets
    assert len(markets) >= 1200
    assert len(universe.base_assets) >= 400
    assert len({m.symbol for m in markets}) == len(markets)
    assert {m.quote for m in markets} == set(QUOTES)
    for base in universe.base_assets:
        assert 1 <= len(universe.quotes_of(base)) <= 4, base
    for base, quote in QUOTE_PAIRS:
        assert f"{base}-{quote}" in universe.by_symbol


def test_usdt_is_almost_always_a_quote(universe):
    bases = [b for b in universe.base_assets if b not in ("USDC", "DAI")]
    with_usdt = sum("USDT" in universe.quotes_of(b) for b in bases)
    assert with_usdt / len(bases) > 0.9


def test_asset_names(universe):
    names = [a.name for a in universe.assets]
    assert names[:5] == ["USDT", "BTC", "ETH", "KCS", "TRX"]
    assert len(set(names)) == len(names)
    synthetic = [a.name for a in universe.assets if not a.major]
    assert len(synthetic) > 300
    assert all(re.fullmatch(r"[A-Z]{3,5}", n) for n in synthetic)


def test_market_rules(universe):
    for p in universe.pairs:
        m = p.market
        assert m.symbol == f"{m.base}-{m.quote}"
        assert m.venue == "kucoin" and m.enabled and m.fee_currency == "quote"
        assert m.taker_fee == m.maker_fee == Decimal("0.001")
        assert m.min_funds == MIN_FUNDS[m.quote]
        assert _is_power_of_ten(m.price_tick) and _is_power_of_ten(m.size_increment)
        assert m.min_size >= m.size_increment and m.min_size % m.size_increment == 0
        base, quote = universe.assets[p.base_index], universe.assets[p.quote_index]
        price = base.fair_usd / quote.fair_usd
        digits = math.log10(price / float(m.price_tick))
        assert 3 <= digits < 6, (m.symbol, digits)
        increment_usd = float(m.size_increment) * base.fair_usd
        assert 0.999e-4 <= increment_usd <= 1.001e-2, (m.symbol, increment_usd)


def test_hot_pairs_and_profiles(universe):
    settings = SimSettings()
    tiers = Counter(p.tier for p in universe.pairs)
    assert tiers[Tier.HOT] == settings.hot_pairs
    hot = {p.symbol for p in universe.pairs if p.tier is Tier.HOT}
    assert {"BTC-USDT", "ETH-USDT", "ETH-BTC", "SOL-USDT"} <= hot
    for p in universe.pairs:
        if p.tier is Tier.HOT:
            assert 1 <= p.spread_bps <= 5 and 5e3 <= p.top_depth_usd <= 5e4
        elif p.tier is Tier.TAIL:
            assert 10 <= p.spread_bps <= 60 and 20 <= p.top_depth_usd <= 2e3
    assert sorted((p.hotness for p in universe.pairs), reverse=True) == [p.hotness for p in universe.pairs]


def test_deterministic_for_a_seed():
    a, b = build_universe(SimSettings(seed=3)), build_universe(SimSettings(seed=3))
    assert a.markets == b.markets and a.assets == b.assets
    c = build_universe(SimSettings(seed=4))
    assert [x.name for x in c.assets] != [x.name for x in a.assets]


@pytest.mark.parametrize(("pairs", "assets"), [(10, 10), (300, 100), (3000, 420)])
def test_other_sizes(pairs, assets):
    u = build_universe(SimSettings(pairs=pairs, assets=assets, hot_pairs=5))
    assert len(u.pairs) >= pairs
    assert len(u.base_assets) >= assets
    assert all(1 <= len(u.quotes_of(b)) <= 4 for b in u.base_assets)


def test_venue_name():
    u = build_universe(SimSettings(pairs=50, assets=20), venue="sim2")
    assert {m.venue for m in u.markets} == {"sim2"}
