from collections import Counter
from decimal import Decimal

import pytest

from cryptoarb.config import SimSettings
from cryptoarb.model import BookUpdate, Market, Side
from cryptoarb.venues.sim import EPOCH_MS, SimMarket, Tier, build_universe


def _market(**overrides) -> SimMarket:
    settings = SimSettings(**overrides)
    return SimMarket(build_universe(settings), settings)


def _check_book(u: BookUpdate, m: Market, depth: int) -> None:
    assert u.snapshot and u.venue == m.venue and u.symbol == m.symbol
    assert len(u.bids) >= depth and len(u.asks) >= depth, u.symbol
    assert u.bids[0][0] < u.asks[0][0], u.symbol
    assert all(a[0] > b[0] for a, b in zip(u.bids, u.bids[1:], strict=False)), u.symbol
    assert all(a[0] < b[0] for a, b in zip(u.asks, u.asks[1:], strict=False)), u.symbol
    for price, size in u.bids + u.asks:
        assert price > 0 and size > 0
        assert Decimal(repr(price)) % m.price_tick == 0, (u.symbol, price, m.price_tick)
        assert Decimal(repr(size)) % m.size_increment == 0, (u.symbol, size, m.size_increment)


def _digest(updates: list[BookUpdate]) -> int:
    # hash() of str is salted per process, which is fine for comparing two runs in one process.
    return hash(tuple((u.symbol, u.sequence, u.exchange_ts_ms, u.received_at, u.bids, u.asks)
                      for u in updates))


@pytest.fixture(scope="module")
def market():
    return _market()


def test_initial_books_are_valid(market):
    rules = market.universe.by_symbol
    for symbol in market.universe.symbols:
        book = market.book(symbol)
        _check_book(book, rules[symbol].market, 20)
        assert book.exchange_ts_ms == EPOCH_MS and book.received_at == 0.0


def test_steps_emit_valid_changed_books():
    market = _market(seed=11)
    rules = market.universe.by_symbol
    last_seq: dict[str, int] = {}
    counts: Counter[Tier] = Counter()
    for k in range(1, 201):
        updates = market.step()
        assert market.time == pytest.approx(k * 0.05)
        assert len({u.symbol for u in updates}) == len(updates)
        for u in updates:
            _check_book(u, rules[u.symbol].market, 20)
            assert u.exchange_ts_ms == EPOCH_MS + k * 50 and u.received_at == market.time
            assert u.sequence > last_seq.get(u.symbol, 0)
            last_seq[u.symbol] = u.sequence
            assert market.book(u.symbol) is u
            counts[rules[u.symbol].tier] += 1
    n = Counter(p.tier for p in market.universe.pairs)
    per_pair_per_s = {t: counts[t] / n[t] / 10.0 for t in Tier}
    assert per_pair_per_s[Tier.HOT] > 3  # several times a second
    assert per_pair_per_s[Tier.TAIL] < 0.5  # rarely
    assert per_pair_per_s[Tier.HOT] > per_pair_per_s[Tier.MEDIUM] > per_pair_per_s[Tier.TAIL]


def test_books_follow_fair_cross_rate(market):
    for _ in range(40):
        market.step()
    mispriced = market.mispriced()
    for p in market.universe.pairs[:200]:
        if p.symbol in mispriced:
            continue
        book = market.book(p.symbol)
        fair = market.fair_usd(p.market.base) / market.fair_usd(p.market.quote)
        mid = (book.bids[0][0] + book.asks[0][0]) / 2
        assert abs(mid / fair - 1) < 2 * p.spread_bps / 1e4 + 5e-4, p.symbol


def test_stables_stay_near_one(market):
    for _ in range(100):
        market.step()
    for stable in ("USDT", "USDC", "DAI"):
        assert market.fair_usd(stable) == pytest.approx(1.0, abs=0.01)


def test_same_seed_same_calls_same_books():
    digests = []
    for _ in range(2):
        market = _market(seed=5)
        out = []
        for k in range(300):
            out.extend(market.step())
            if k % 25 == 0:
                symbol = market.universe.symbols[k % 97]
                book = market.book(symbol)
                market.consume(symbol, Side.BUY, Decimal(repr(book.asks[2][0])), Decimal("1e6"))
        digests.append(_digest(out))
    assert digests[0] == digests[1]
    five, six = _market(seed=5), _market(seed=6)
    assert _digest([u for _ in range(50) for u in five.step()]) != _digest(
        [u for _ in range(50) for u in six.step()])


def _tail_symbol(market: SimMarket) -> str:
    return next(p.symbol for p in market.universe.pairs if p.tier is Tier.TAIL)


def test_consume_takes_from_the_book_and_refills():
    market = _market(seed=9, refill_s=1.0)
    symbol = _tail_symbol(market)
    before = market.book(symbol)
    (p0, s0), p1 = before.asks[0], before.asks[1][0]
    half = Decimal(repr(s0)) / 2
    incr = market.universe.by_symbol[symbol].market.size_increment
    half = (half // incr) * incr
    fills = market.consume(symbol, Side.BUY, Decimal(repr(p0)), half)
    assert fills == [(p0, float(half))]
    after = market.book(symbol)
    assert after.asks[0] == (p0, float(Decimal(repr(s0)) - half))
    assert after.asks[1:] == before.asks[1:len(after.asks)]
    assert after.bids == before.bids
    assert market.missing(symbol) == (0.0, float(half))

    # Everything up to p1 is taken; asking again at the same limit finds nothing.
    fills = market.consume(symbol, Side.BUY, Decimal(repr(p1)), Decimal("1e12"))
    assert [p for p, _ in fills] == [p0, p1]
    assert market.consume(symbol, Side.BUY, Decimal(repr(p1)), Decimal("1e12")) == []
    assert market.book(symbol).asks[0][0] > p1

    # Emitted on every step while it refills, then whole again.
    taken = market.missing(symbol)[1]
    emitted = 0
    for _ in range(10):
        emitted += symbol in {u.symbol for u in market.step()}
    assert emitted == 10
    assert 0 < market.missing(symbol)[1] < taken
    for _ in range(12):
        market.step()
    assert market.missing(symbol) == (0.0, 0.0)


def test_consume_sell_side():
    market = _market(seed=9)
    symbol = _tail_symbol(market)
    book = market.book(symbol)
    limit = book.bids[1][0]
    fills = market.consume(symbol, Side.SELL, Decimal(repr(limit)), Decimal("1e12"))
    assert [p for p, _ in fills] == [book.bids[0][0], book.bids[1][0]]
    assert [s for _, s in fills] == [book.bids[0][1], book.bids[1][1]]
    assert market.book(symbol).bids[0][0] < limit
    assert market.book(symbol).asks == book.asks
    # A buy limit below the best ask takes nothing.
    assert market.consume(symbol, Side.BUY, Decimal(repr(book.bids[0][0])), Decimal(1)) == []
    with pytest.raises(KeyError):
        market.consume("NOPE-USDT", Side.BUY, Decimal(1), Decimal(1))


def test_tickers_match_books(market):
    tickers = market.tickers()
    assert len(tickers) == len(market.universe.pairs)
    for t in tickers[:50]:
        book = market.book(t.symbol)
        assert (t.bid, t.bid_size, t.ask, t.ask_size) == (*book.bids[0], *book.asks[0])


def test_mispricings_are_injected_and_closed():
    market = _market(seed=2)
    lo, hi = SimSettings().competitor_close_s
    opened: dict[str, float] = {}
    closed_after: list[float] = []
    for _ in range(400):
        market.step()
        now = market.mispriced()
        for symbol in now:
            opened.setdefault(symbol, market.time)
        for symbol in [s for s in opened if s not in now]:
            closed_after.append(market.time - opened.pop(symbol))
    assert len(closed_after) > 40  # ~4 per second for 20 s
    assert all(lo - 0.06 <= d <= hi + 0.06 for d in closed_after)
    tiers = Counter(market.universe.by_symbol[s].tier for s in opened)
    assert tiers[Tier.HOT] <= sum(tiers.values()) // 2


