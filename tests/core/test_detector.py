from __future__ import annotations

import math
import random

import numpy as np
import pytest

from cryptoarb.core.detector import NUMPY_MIN_CYCLES, Candidate, Detector
from cryptoarb.core.graph import enumerate_cycles, index_by_market
from cryptoarb.core.sizing import top_return_bps
from cryptoarb.model import Side


@pytest.fixture
def triangle(market):
    markets = [market("BTC", "USDT"), market("ETH", "USDT"), market("ETH", "BTC")]
    return enumerate_cycles(markets, start_assets={"USDT"})


def hand_bps(multiplier: float) -> float:
    return 10_000 * (multiplier - 1)


def quote_all(detector: Detector) -> None:
    detector.update(("x", "BTC-USDT"), 20_000.0, 20_010.0)
    detector.update(("x", "ETH-BTC"), 0.05, 0.0501)
    detector.update(("x", "ETH-USDT"), 1_030.0, 1_031.0)


def test_returns_match_hand_computed_top_of_book(triangle):
    detector = Detector(triangle, min_return_bps=0.0)
    quote_all(detector)
    via_btc = 1 / (20_010 * 1.001) / (0.0501 * 1.001) * 1_030 * 0.999
    via_eth = 1 / (1_031 * 1.001) * 0.05 * 0.999 * 20_000 * 0.999
    assert triangle[0].path == ("USDT", "BTC", "ETH", "USDT")
    assert detector.returns() == pytest.approx([hand_bps(via_btc), hand_bps(via_eth)], rel=1e-9)
    [best] = detector.evaluate_all()
    assert best.cycle is triangle[0]
    assert best.net_return_bps == pytest.approx(hand_bps(via_btc), rel=1e-9)


def test_fee_taken_from_what_a_buy_receives(market):
    markets = [market("BTC", "USDT", fee_currency="received"), market("ETH", "USDT"),
               market("ETH", "BTC", fee_currency="received")]
    detector = Detector(enumerate_cycles(markets, start_assets={"USDT"}), min_return_bps=-10_000.0)
    quote_all(detector)
    via_btc = 0.999 / 20_010 * 0.999 / 0.0501 * 1_030 * 0.999
    assert detector.returns()[0] == pytest.approx(hand_bps(via_btc), rel=1e-9)


def test_update_returns_only_cycles_through_that_market_that_clear_the_threshold(triangle):
    detector = Detector(triangle, min_return_bps=50.0)
    assert detector.update(("x", "BTC-USDT"), 20_000.0, 20_010.0) == []  # other books still unknown
    assert detector.update(("x", "ETH-BTC"), 0.05, 0.0501) == []
    hits = detector.update(("x", "ETH-USDT"), 1_030.0, 1_031.0)
    assert [c.cycle.id for c in hits] == [0]
    assert hits[0].net_return_bps > 50.0
    # prices move back in line: nothing clears
    assert detector.update(("x", "ETH-USDT"), 1_002.0, 1_003.0) == []
    assert detector.evaluate_all() == []


def test_threshold_is_inclusive_and_compared_in_bps(triangle):
    probe = Detector(triangle, min_return_bps=0.0)
    quote_all(probe)
    exact = float(probe.returns()[0])
    assert [c.cycle.id for c in quoted_detector(triangle, exact).evaluate_all()] == [0]
    assert quoted_detector(triangle, math.nextafter(exact, math.inf)).evaluate_all() == []


def quoted_detector(cycles, threshold: float) -> Detector:
    detector = Detector(cycles, min_return_bps=threshold)
    quote_all(detector)
    return detector


def test_an_empty_side_removes_the_cycles_that_need_it(triangle):
    detector = Detector(triangle, min_return_bps=0.0)
    quote_all(detector)
    assert [c.cycle.id for c in detector.evaluate_all()] == [0]
    # no bids on ETH-USDT: cycle 0 sells there, cycle 1 buys there
    assert detector.update(("x", "ETH-USDT"), 0.0, 1_031.0) == []
    returns = detector.returns()
    assert returns[0] == -10_000.0 and returns[1] > -10_000.0
    assert [c.cycle.id for c in detector.update(("x", "ETH-USDT"), 1_030.0, math.inf)] == [0]
    assert detector.returns()[1] == -10_000.0


def test_unknown_market_is_ignored(triangle):
    detector = Detector(triangle, min_return_bps=0.0)
    assert detector.update(("y", "BTC-USDT"), 1.0, 2.0) == []
    assert detector.cycles_through(("y", "BTC-USDT")).size == 0


def test_update_book_reads_the_top_of_book(triangle, books):
    store = books({("x", "BTC-USDT"): (((20_000.0, 1.0),), ((20_010.0, 1.0),)),
                   ("x", "ETH-BTC"): (((0.05, 1.0),), ((0.0501, 1.0),)),
                   ("x", "ETH-USDT"): (((1_030.0, 1.0),), ((1_031.0, 1.0),))})
    detector = Detector(triangle, min_return_bps=0.0)
    hits = [hit for book in store for hit in detector.update_book(book)]
    assert [c.cycle.id for c in hits] == [0]


@pytest.fixture(scope="module")
def universe(kucoin_like):
    markets = kucoin_like()
    return markets, enumerate_cycles(markets, 3, {"USDT"})


def _random_quotes(markets, rng):
    fair = {"USDT": 1.0, "USDC": 1.0, "DAI": 1.0, "BTC": 60_000.0, "ETH": 3_000.0, "KCS": 10.0, "TRX": 0.1}
    quotes = {}
    for m in markets:
        fair.setdefault(m.base, 10 ** rng.uniform(-3, 2))
        mid = fair[m.base] / fair[m.quote] * (1 + rng.gauss(0, 0.004))
        spread = rng.uniform(0.0002, 0.002)
        quotes[m.key] = (mid * (1 - spread), mid * (1 + spread))
    return quotes


@pytest.fixture(params=["kucoin 3 legs", "small 4 legs", "3 venues"], scope="module")
def universes(request, universe, kucoin_like):
    if request.param == "kucoin 3 legs":
        return universe
    if request.param == "small 4 legs":
        markets = kucoin_like(pairs=300, assets=120)
        return markets, enumerate_cycles(markets, 4, {"USDT"})
    markets = [m for v in ("kucoin", "b", "c") for m in kucoin_like(pairs=400, assets=150, venue=v)]
    inventory = {q: {"kucoin", "b", "c"} for q in ("USDT", "BTC", "ETH")}
    return markets, enumerate_cycles(markets, 3, {"USDT"}, inventory)


def test_incremental_results_agree_with_a_full_pass(universes):
    markets, cycles = universes
    rng = random.Random(11)
    detector = Detector(cycles, min_return_bps=5.0)
    quotes = _random_quotes(markets, rng)
    for key, (bid, ask) in quotes.items():
        detector.update(key, bid, ask)
    index = index_by_market(cycles)
    hot = [("kucoin", "BTC-USDT"), ("kucoin", "ETH-USDT")]
    assert len(index[hot[0]]) >= NUMPY_MIN_CYCLES  # exercises the numpy path
    cold = [k for k, ix in index.items() if len(ix) < NUMPY_MIN_CYCLES][:50]
    assert cold  # and the Python loop
    seen_hits = 0
    for step in range(400):
        key = rng.choice(hot) if step % 2 else rng.choice(cold)
        bid, ask = quotes[key]
        shock = 1 + rng.gauss(0, 0.006)
        hits = detector.update(key, bid * shock, ask * shock)
        full = {c.cycle.id: c.net_return_bps for c in detector.evaluate_all()}
        assert {c.cycle.id for c in hits} == {i for i in index[key] if i in full}
        assert all(c.net_return_bps == full[c.cycle.id] for c in hits)
        assert [c.net_return_bps for c in hits] == sorted((c.net_return_bps for c in hits), reverse=True)
        seen_hits += len(hits)
    assert seen_hits > 0
    # the vectorised returns equal a plain per-cycle computation
    naive = []
    for cycle in cycles:
        total = 0.0
        for leg in cycle.legs:
            bid, ask = quotes[leg.market.key]
            fee = float(leg.market.taker_fee)
            total += math.log(bid) + math.log1p(-fee) if leg.side is Side.SELL else \
                -math.log(ask) - math.log1p(fee)
        naive.append(total)
    fresh = Detector(cycles, 0.0)
    for key, (bid, ask) in quotes.items():
        fresh.update(key, bid, ask)
    assert np.allclose(fresh.log_returns(), naive, rtol=0, atol=1e-12)


def test_update_on_the_hot_market_re_evaluates_only_its_cycles(universe):
    _, cycles = universe
    detector = Detector(cycles, min_return_bps=1e9)
    for cycle in cycles:
        for leg in cycle.legs:
            detector.update(leg.market.key, 1.0, 1.001)
    key = ("kucoin", "BTC-USDT")
    assert detector.cycles_through(key).size > 200
    through = set(detector.cycles_through(key).tolist())
    before = detector.returns().copy()
    detector.update(key, 1.01, 1.011)
    changed = set(np.nonzero(detector.returns() != before)[0].tolist())
    assert changed and changed <= through  # only the cycles through the updated market were re-evaluated


def test_candidate_is_a_frozen_value(triangle):
    candidate = Candidate(triangle[0], 12.5)
    with pytest.raises(AttributeError):
        candidate.net_return_bps = 1.0  # type: ignore[misc]


def test_the_detectors_return_is_the_one_sizing_reports(market, books):
    """The engine hands each candidate's return to sizing rather than computing it again on the order path:
    the two figures must be the same, fee currency by fee currency."""
    rng = random.Random(5)
    markets = [market("BTC", "USDT"), market("ETH", "USDT", fee="0.002"),
               market("ETH", "BTC", fee_currency="received"), market("KCS", "BTC", fee="0.0008"),
               market("KCS", "USDT", fee_currency="received", fee="0.0015"), market("KCS", "ETH")]
    cycles = enumerate_cycles(markets, 4, {"USDT", "BTC"})
    detector = Detector(cycles, min_return_bps=-10_000.0)
    fair = {"USDT": 1.0, "BTC": 60_000.0, "ETH": 3_000.0, "KCS": 10.0}
    for _ in range(50):
        quotes = {}
        for m in markets:
            mid = fair[m.base] / fair[m.quote] * (1 + rng.gauss(0, 0.01))
            quotes[m.key] = (((mid * 0.999, 1.0),), ((mid * 1.001, 1.0),))
        store = books(quotes)
        hits = {}
        for book in store:
            hits.update({c.cycle.id: c.net_return_bps for c in detector.update_book(book)})
        assert len(hits) == len(cycles)
        for cycle in cycles:
            assert hits[cycle.id] == pytest.approx(top_return_bps(cycle, store), rel=1e-9, abs=1e-9)
