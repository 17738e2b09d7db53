from __future__ import annotations

from decimal import Decimal as D

import pytest

from cryptoarb.core.books import Freshness
from cryptoarb.core.detector import Detector
from cryptoarb.core.graph import enumerate_cycles
from cryptoarb.core.sizing import LegBook, LegFailure, Plan, plan_legs, size_cycle, walk_levels
from cryptoarb.model import Leg, Opportunity, OrderStatus, Rejection, RejectReason, Side

NOW = 10.0
FRESH = Freshness(max_age=2.0)


@pytest.fixture
def triangle_markets(market):
    def build(fee_currency="quote", **overrides):
        spec = {"BTC-USDT": ("BTC", "USDT", "0.0001"), "ETH-BTC": ("ETH", "BTC", "0.001"),
                "ETH-USDT": ("ETH", "USDT", "0.001")}
        return [market(base, quote, inc=inc, fee_currency=fee_currency, **overrides.get(symbol, {}))
                for symbol, (base, quote, inc) in spec.items()]
    return build


def triangle_books(books, *, eth_usdt_bids=((1010.0, 10.0),), at=NOW - 0.5, btc_usdt=None):
    return books({
        ("x", "BTC-USDT"): btc_usdt or (((19_990.0, 1.0),), ((20_000.0, 0.5),)),
        ("x", "ETH-BTC"): (((0.0499, 10.0),), ((0.05, 10.0),)),
        ("x", "ETH-USDT"): (eth_usdt_bids, ((1011.0, 10.0),)),
    }, at=at)


def usdt_btc_eth(markets):
    [cycle] = [c for c in enumerate_cycles(markets, start_assets={"USDT"}) if c.path[1] == "BTC"]
    return cycle


def test_triangle_sized_by_hand(triangle_markets, books):
    cycle = usdt_btc_eth(triangle_markets())
    store = triangle_books(books)
    result = size_cycle(cycle, store, NOW, D("2000"), 1.0, FRESH, opportunity_id="op1")
    assert isinstance(result, Opportunity)
    # buy 0.0999 BTC: 20000 * 0.0999 * 1.001 = 1999.998 <= 2000 (0.1 BTC would cost 2002)
    # buy ETH with 0.0999 BTC: 0.0999 / (0.05 * 1.001) = 1.996004 -> 1.996 ETH for 0.0998 + 0.0000998 fee
    # sell 1.996 ETH at 1010: 2015.96 less 0.1% = 2013.94404
    assert [leg.size for leg in result.legs] == [D("0.0999"), D("1.996"), D("1.996")]
    assert [leg.limit_price for leg in result.legs] == [D("20000.0"), D("0.05"), D("1010.0")]
    assert [leg.side for leg in result.legs] == [Side.BUY, Side.BUY, Side.SELL]
    assert result.legs[1].amount_in == D("0.0999") and result.legs[1].fee == D("0.0000998")
    assert result.input == D("1999.998")
    assert result.output == D("2013.94404")
    assert result.profit == D("13.94604")
    assert result.legs[2].fee == D("2.01596") and result.legs[2].fee_asset == "USDT"
    assert result.id == "op1" and result.cycle_id == cycle.id and result.kind == "triangular"
    assert result.path == ("USDT", "BTC", "ETH", "USDT")
    assert result.detected_at == NOW
    assert all(leg.book_age_ms == pytest.approx(500.0) for leg in result.legs)
    assert result.profit_usd == pytest.approx(13.94604)
    expected_bps = 10_000 * (1010 * 0.999 / (20_000 * 1.001 * 0.05 * 1.001) - 1)
    assert result.net_return_bps == pytest.approx(expected_bps, rel=1e-9)


def test_fee_taken_from_what_a_buy_receives(triangle_markets, books):
    cycle = usdt_btc_eth(triangle_markets(fee_currency="received"))
    result = size_cycle(cycle, triangle_books(books), NOW, D("2000"), 2.0, FRESH)
    assert isinstance(result, Opportunity)
    # buy 0.1 BTC for exactly 2000, receive 0.0999; buy 1.998 ETH for 0.0999, receive 1.996002;
    # sell 1.996 ETH (the 0.000002 is dust) for 2015.96 less 0.1%
    assert [leg.size for leg in result.legs] == [D("0.1"), D("1.998"), D("1.996")]
    assert [leg.amount_out for leg in result.legs] == [D("0.0999"), D("1.996002"), D("2013.94404")]
    assert [leg.fee_asset for leg in result.legs] == ["BTC", "ETH", "USDT"]
    assert result.legs[0].fee == D("0.0001")
    assert result.input == D("2000.0")
    assert result.profit == D("13.94404")
    assert result.profit_usd == pytest.approx(2 * 13.94404)


def test_depth_limits_the_size_and_rounding_picks_the_smaller_plan(triangle_markets, books):
    cycle = usdt_btc_eth(triangle_markets())
    store = triangle_books(books, eth_usdt_bids=((1010.0, 1.0), (1000.0, 10.0)))
    result = size_cycle(cycle, store, NOW, D("5000"), 1.0, FRESH, tolerance=D(0))
    assert isinstance(result, Opportunity)
    # below 1000 the cycle loses, so at most 1 ETH is worth selling. 0.0501 BTC reaches exactly
    # 1.000 ETH (1003.002 in, 1008.99 out: +5.988) but 0.0500 BTC buys 0.999 ETH with almost no dust
    # (1001 in, 1007.98101 out: +6.98101), which is better.
    assert [leg.size for leg in result.legs] == [D("0.0500"), D("0.999"), D("0.999")]
    assert result.profit == D("6.98101")
    assert result.legs[2].limit_price == D("1010.0")
    # by default the search may stop within half the cost of one first-leg increment (2.002 USDT)
    quick = size_cycle(cycle, store, NOW, D("5000"), 1.0, FRESH)
    assert isinstance(quick, Opportunity)
    assert D("6.98101") - D("1.001") <= quick.profit <= D("6.98101")


@pytest.mark.parametrize("bad", [(1005.0, 0.0), (1005.0, -3.0), (-1005.0, 3.0), (float("nan"), 3.0),
                                 (1005.0, float("nan"))])
def test_a_level_that_is_not_a_positive_number_is_left_out(triangle_markets, books, bad):
    """A malformed level in a book (zero, negative or NaN) is not walked: the plan is the one the
    book without it gives, whatever its place among the levels."""
    cycle = usdt_btc_eth(triangle_markets())
    clean = ((1010.0, 1.0), (1000.0, 10.0))
    expected = size_cycle(cycle, triangle_books(books, eth_usdt_bids=clean), NOW, D("5000"), 1.0, FRESH,
                          tolerance=D(0))
    assert isinstance(expected, Opportunity)
    for at in range(len(clean) + 1):
        bids = (*clean[:at], bad, *clean[at:])
        result = size_cycle(cycle, triangle_books(books, eth_usdt_bids=bids), NOW, D("5000"), 1.0, FRESH,
                            tolerance=D(0))
        assert isinstance(result, Opportunity), (at, result)
        assert result.legs == expected.legs, at


def test_walk_reports_worst_level_touched(triangle_markets, books):
    cycle = usdt_btc_eth(triangle_markets())
    store = triangle_books(books, eth_usdt_bids=((1010.0, 1.0), (1009.5, 10.0)))
    result = size_cycle(cycle, store, NOW, D("5000"), 1.0, FRESH)
    assert isinstance(result, Opportunity)
    assert result.legs[2].limit_price == D("1009.5")
    assert result.legs[2].size > 1


def test_max_input_caps_the_cycle_input(triangle_markets, books):
    cycle = usdt_btc_eth(triangle_markets())
    store = triangle_books(books)
    for cap in (D("150"), D("777.77"), D("2000")):
        result = size_cycle(cycle, store, NOW, cap, 1.0, FRESH)
        assert isinstance(result, Opportunity)
        assert result.input <= cap
        assert cap - result.input < D("20000") * D("0.0001") * D("1.001")  # within one first-leg increment


@pytest.mark.parametrize("two_levels", [False, True])
def test_where_max_input_binds_no_first_size_past_it_is_evaluated(triangle_markets, books, monkeypatch, two_levels):
    """Each exact evaluation is ~65 µs on a cold order path: the search knows the first leg's last grid point
    within max input and never evaluates one past it, where the float estimate of the best size often lands."""
    from cryptoarb.core import sizing

    holds: list[D] = []
    forward = sizing._forward

    def counting(legs, first_size):
        plan = forward(legs, first_size)
        if isinstance(plan, Plan):
            holds.append(plan.legs[0].hold)
        return plan

    monkeypatch.setattr(sizing, "_forward", counting)
    cycle = usdt_btc_eth(triangle_markets())
    store = (two_level_eth_btc(books, btc_usdt=(((19_990.0, 1.0),), ((20_000.0, 0.05), (20_010.0, 1.0))))
             if two_levels else triangle_books(books))
    for cap in (D("150"), D("777.77"), D("1998.9"), D("2000")):
        holds.clear()
        result = size_cycle(cycle, store, NOW, cap, 1.0, FRESH)
        assert isinstance(result, Opportunity)
        assert holds and max(holds) <= cap, (cap, holds)
        exact = size_cycle(cycle, store, NOW, cap, 1.0, FRESH, tolerance=D(0))
        assert isinstance(exact, Opportunity) and exact.legs[0].size * exact.legs[0].limit_price * D("1.001") <= cap


@pytest.mark.parametrize(("cap", "reason"), [
    (D("1"), RejectReason.BELOW_MIN_SIZE),  # one 0.0001 BTC increment costs 2.002
    (D("0"), RejectReason.NO_BALANCE),
])
def test_cap_below_anything_tradeable(triangle_markets, books, cap, reason):
    cycle = usdt_btc_eth(triangle_markets())
    result = size_cycle(cycle, triangle_books(books), NOW, cap, 1.0, FRESH)
    assert isinstance(result, Rejection) and result.reason is reason


def test_min_size_rejection(triangle_markets, books):
    cycle = usdt_btc_eth(triangle_markets(**{"ETH-BTC": {"min_size": "5"}}))
    result = size_cycle(cycle, triangle_books(books), NOW, D("2000"), 1.0, FRESH)
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.BELOW_MIN_SIZE
    assert result.cycle_id == cycle.id and result.at == NOW and "ETH-BTC" in result.detail
    # with enough input the same cycle trades
    assert isinstance(size_cycle(cycle, triangle_books(books), NOW, D("9000"), 1.0, FRESH), Opportunity)


def test_a_market_reloaded_with_new_rules_is_sized_on_them_not_on_what_was_seen_before(triangle_markets, books):
    """Sizing keeps what a leg's market fixes (fees, increments, minimums) per leg; reloaded markets are new
    legs, and a cycle of them is sized on their own rules."""
    store = triangle_books(books)
    before = size_cycle(usdt_btc_eth(triangle_markets()), store, NOW, D("2000"), 1.0, FRESH)
    assert isinstance(before, Opportunity) and before.legs[1].size == D("1.996")
    stricter = size_cycle(usdt_btc_eth(triangle_markets(**{"ETH-BTC": {"min_size": "5"}})), store, NOW, D("2000"),
                          1.0, FRESH)
    assert isinstance(stricter, Rejection) and stricter.reason is RejectReason.BELOW_MIN_SIZE
    dearer = size_cycle(usdt_btc_eth(triangle_markets(**{"ETH-USDT": {"fee": "0.01"}})), store, NOW, D("2000"),
                        1.0, FRESH)
    assert isinstance(dearer, Rejection) and dearer.reason is RejectReason.BELOW_MIN_PROFIT
    again = size_cycle(usdt_btc_eth(triangle_markets()), store, NOW, D("2000"), 1.0, FRESH)
    assert isinstance(again, Opportunity) and again.profit == before.profit


def test_a_minimum_above_the_unconstrained_best_holds_the_plan_up_to_it(triangle_markets, books):
    """Past 1 ETH the bids pay less than the ETH costs, so the best plan sells ~1 ETH; with a 1.5 ETH minimum
    on ETH-BTC the best plan allowed is the least one that meets it, not a rejection: every candidate near
    the unconstrained best fails the minimum, and the search must go on to where it is met."""
    deep_bids = ((1010.0, 1.0), (1000.0, 10.0))
    free = size_cycle(usdt_btc_eth(triangle_markets()), triangle_books(books, eth_usdt_bids=deep_bids), NOW,
                      D("2000"), 1.0, FRESH, tolerance=D(0))
    assert isinstance(free, Opportunity) and free.legs[1].size <= D("1.0")
    held = size_cycle(usdt_btc_eth(triangle_markets(**{"ETH-BTC": {"min_size": "1.5"}})),
                      triangle_books(books, eth_usdt_bids=deep_bids), NOW, D("2000"), 1.0, FRESH, tolerance=D(0))
    assert isinstance(held, Opportunity)
    assert held.legs[1].size == D("1.5") and held.legs[0].size == D("0.0751")
    assert D(0) < held.profit < free.profit


def test_min_funds_rejection(triangle_markets, books):
    cycle = usdt_btc_eth(triangle_markets(**{"ETH-USDT": {"min_funds": "5000"}}))
    result = size_cycle(cycle, triangle_books(books), NOW, D("4000"), 1.0, FRESH)
    assert isinstance(result, Rejection) and result.reason is RejectReason.BELOW_MIN_FUNDS


def test_minimums_beyond_the_book_are_insufficient_depth(triangle_markets, books):
    cycle = usdt_btc_eth(triangle_markets(**{"ETH-USDT": {"min_size": "50"}}))
    result = size_cycle(cycle, triangle_books(books), NOW, D("1e9"), 1.0, FRESH)
    assert isinstance(result, Rejection) and result.reason is RejectReason.INSUFFICIENT_DEPTH


def test_stale_crossed_missing_and_disabled(triangle_markets, books, market):
    cycle = usdt_btc_eth(triangle_markets())
    stale = size_cycle(cycle, triangle_books(books, at=NOW - 5), NOW, D("2000"), 1.0, FRESH)
    assert isinstance(stale, Rejection) and stale.reason is RejectReason.STALE_BOOK
    crossed_books = triangle_books(books, btc_usdt=(((20_001.0, 1.0),), ((20_000.0, 0.5),)))
    crossed = size_cycle(cycle, crossed_books, NOW, D("2000"), 1.0, FRESH)
    assert isinstance(crossed, Rejection) and crossed.reason is RejectReason.CROSSED_BOOK
    missing = size_cycle(cycle, {}, NOW, D("2000"), 1.0, FRESH)
    assert isinstance(missing, Rejection) and missing.reason is RejectReason.STALE_BOOK
    markets = triangle_markets()
    cycle_off = usdt_btc_eth(markets)
    off = Leg(market("ETH", "BTC", inc="0.001", enabled=False), Side.BUY)
    cycle_off = type(cycle_off)(cycle_off.id, (cycle_off.legs[0], off, cycle_off.legs[2]))
    disabled = size_cycle(cycle_off, triangle_books(books), NOW, D("2000"), 1.0, FRESH)
    assert isinstance(disabled, Rejection) and disabled.reason is RejectReason.MARKET_DISABLED


def test_unprofitable_and_min_profit(triangle_markets, books):
    cycle = usdt_btc_eth(triangle_markets())
    flat = triangle_books(books, eth_usdt_bids=((1000.0, 10.0),))
    result = size_cycle(cycle, flat, NOW, D("2000"), 1.0, FRESH)
    assert isinstance(result, Rejection) and result.reason is RejectReason.BELOW_MIN_PROFIT
    assert result.net_return_bps < 0
    store = triangle_books(books)
    high = size_cycle(cycle, store, NOW, D("2000"), 1.0, FRESH, min_profit=D("13.94604"))
    assert isinstance(high, Rejection) and high.reason is RejectReason.BELOW_MIN_PROFIT
    assert isinstance(size_cycle(cycle, store, NOW, D("2000"), 1.0, FRESH, min_profit=D("13.9")), Opportunity)


def test_cross_venue_two_leg_cycle_via_inventory(market, books):
    markets = [market("BTC", "USDT", "a"), market("BTC", "USDT", "b")]
    inventory = {"BTC": {"a", "b"}, "USDT": {"a", "b"}}
    cycles = enumerate_cycles(markets, start_assets={"USDT"}, inventory=inventory)
    store = books({("a", "BTC-USDT"): (((19_990.0, 1.0),), ((20_000.0, 0.3),)),
                   ("b", "BTC-USDT"): (((20_100.0, 1.0),), ((20_110.0, 1.0),))}, at=NOW)
    detector = Detector(cycles, min_return_bps=10.0)
    hits = [hit for book in store for hit in detector.update_book(book)]
    [cycle] = [hit.cycle for hit in hits]
    assert cycle.describe() == "buy BTC-USDT@a > sell BTC-USDT@b"
    result = size_cycle(cycle, store, NOW, D("10000"), 1.0, FRESH)
    assert isinstance(result, Opportunity) and result.kind == "cross-exchange"
    # the whole 0.3 BTC ask on a: 6006 in; sold on b for 6030 less 0.1%
    assert [(leg.venue, leg.size) for leg in result.legs] == [("a", D("0.3")), ("b", D("0.3"))]
    assert result.input == D("6006.0") and result.output == D("6023.97") and result.profit == D("17.97")


def test_plan_legs_is_the_exact_forward_walk(triangle_markets, books):
    cycle = usdt_btc_eth(triangle_markets())
    plan = plan_legs(cycle, triangle_books(books), D("0.0999"))
    assert isinstance(plan, Plan)
    assert plan.profit == D("13.94604") and plan.first_size == D("0.0999")
    too_big = plan_legs(cycle, triangle_books(books), D("0.6"))
    assert isinstance(too_big, LegFailure)
    assert too_big.reason is RejectReason.INSUFFICIENT_DEPTH and too_big.leg_index == 0


def test_walk_levels():
    levels = [(1.0, 2.0), (1.5, 1.0)]
    assert walk_levels(levels, D("2.5")) == (D("2.75"), D("1.5"))
    assert walk_levels(levels, D("2")) == (D("2.0"), D("1.0"))
    assert walk_levels(levels, D("3.5")) is None
    assert walk_levels([(0.1, 3.0)], D("3")) == (D("0.3"), D("0.1"))  # the printed value, not binary 0.1


def test_leg_book_buy_budget_boundaries(market):
    leg = Leg(market("ETH", "USDT", inc="0.1", fee="0.001"), Side.BUY)
    book = LegBook(leg, [(100.0, 1.0), (200.0, 1.0)])
    exact = book.fill_input(D("100.1"))  # exactly 1 ETH with its fee
    assert exact.size == D("1.0") and exact.amount_out == D("1.0") and exact.limit_price == D("100.0")
    assert exact.hold == D("100.1")
    short = book.fill_input(D("100.0999"))
    assert short.size == D("0.9")
    # 120.12 would pay for 1.1 ETH at the levels (100 + 0.1 * 200 = 120, fee 0.12), but a limit buy of 1.1
    # at 200 holds 1.1 * 200 * 1.001 = 220.22: only 1 ETH can be sent, and 20.02 USDT is dust
    capped = book.fill_input(D("120.12"))
    assert capped.size == D("1.0") and capped.limit_price == D("100.0") and capped.amount_in == D("120.12")
    assert capped.notional == D("100.0") and capped.fee == D("0.1000") and capped.hold == D("100.1000")
    walked = book.fill_input(D("220.22"))  # exactly the hold of 1.1 at 200
    assert walked.size == D("1.1") and walked.limit_price == D("200.0") and walked.fee == D("0.120")
    assert walked.notional == D("120.0") and walked.hold == D("220.22") and walked.amount_out == D("1.1")
    assert book.fill_input(D("220.2199")).size == D("1.0")
    half = book.fill_input(D("300.3"))  # 1.5 * 200 * 1.001 = 300.3; it spends (100 + 0.5 * 200) * 1.001
    assert half.size == D("1.5") and half.notional == D("200.0") and half.hold == D("300.3")
    everything = book.fill_input(D("400.4"))  # the hold of the whole book: 2 * 200 * 1.001
    assert everything.size == D("2.0") and everything.notional == D("300.0")
    over = book.fill_input(D("400.41"))
    assert isinstance(over, LegFailure) and over.reason is RejectReason.INSUFFICIENT_DEPTH


def test_leg_book_buy_fee_received_holds_size_at_limit(market):
    leg = Leg(market("ETH", "USDT", inc="0.1", fee="0.001", fee_currency="received"), Side.BUY)
    book = LegBook(leg, [(100.0, 1.0), (200.0, 1.0)])
    fill = book.fill_input(D("239.99"))  # 1.2 at 200 would hold 240
    assert fill.size == D("1.1") and fill.hold == D("220.0") and fill.notional == D("120.0")
    assert fill.amount_out == D("1.1") - D("0.0011") and fill.fee == D("0.0011") and fill.fee_asset == "ETH"
    assert book.fill_input(D("240")).size == D("1.2")


def two_level_eth_btc(books, btc_usdt=None):
    """The triangle with an ETH-BTC ask side of two levels: 1 ETH at 0.05, then 10 at 0.0501."""
    return books({
        ("x", "BTC-USDT"): btc_usdt or (((19_990.0, 1.0),), ((20_000.0, 0.5),)),
        ("x", "ETH-BTC"): (((0.0499, 10.0),), ((0.05, 1.0), (0.0501, 10.0))),
        ("x", "ETH-USDT"): (((1010.0, 10.0),), ((1011.0, 10.0),)),
    }, at=NOW - 0.5)


def test_later_buy_walking_two_levels_is_sized_by_its_limit_price_hold(triangle_markets, books):
    cycle = usdt_btc_eth(triangle_markets())
    store = two_level_eth_btc(books)
    plan = plan_legs(cycle, store, D("0.0999"))
    assert isinstance(plan, Plan)
    btc, eth, sell = plan.legs
    # 0.0999 BTC would pay for 1.994 ETH at the levels ((0.0999 / 1.001 - 0.05) / 0.0501 = 0.99401 more
    # after the first 1 ETH), but a limit buy at 0.0501 holds 0.0501 * 1.001 = 0.0501501 BTC per ETH:
    # 0.0999 / 0.0501501 = 1.99202 -> 1.992 ETH
    assert (eth.size, eth.limit_price, eth.amount_in) == (D("1.992"), D("0.0501"), D("0.0999"))
    assert eth.hold == D("1.992") * D("0.0501501") == D("0.0998989992") <= eth.amount_in
    # it spends what it fills at the levels: (0.05 + 0.992 * 0.0501) * 1.001 BTC
    assert eth.notional == D("0.0996992") and eth.fee == D("0.0000996992") and eth.amount_out == D("1.992")
    # sell 1.992 ETH at 1010 less 0.1%: 2009.90808
    assert sell.size == D("1.992") and sell.amount_out == D("2009.90808")
    assert btc.amount_in == plan.input == D("1999.998") and plan.profit == D("9.91008")
    result = size_cycle(cycle, store, NOW, D("2000"), 1.0, FRESH, tolerance=D(0))
    assert isinstance(result, Opportunity)
    assert [leg.size for leg in result.legs] == [D("0.0999"), D("1.992"), D("1.992")]
    assert [leg.limit_price for leg in result.legs] == [D("20000.0"), D("0.0501"), D("1010.0")]
    assert result.profit == D("9.91008")


def test_the_hold_jump_at_a_new_level_can_make_staying_on_the_first_better(triangle_markets, books):
    cycle = usdt_btc_eth(triangle_markets())
    store = two_level_eth_btc(books)
    result = size_cycle(cycle, store, NOW, D("1500"), 1.0, FRESH, tolerance=D(0))
    assert isinstance(result, Opportunity)
    # all 1500 allows (0.0749 BTC) buys 0.0749 / 0.0501501 -> 1.493 ETH: 1.493 * 1010 * 0.999 - 1499.498
    # = +6.92407; staying on the first ETH-BTC level, 0.05 BTC buys 0.999 ETH: 1007.98101 - 1001 = +6.98101
    whole = plan_legs(cycle, store, D("0.0749"))
    assert isinstance(whole, Plan) and whole.legs[1].size == D("1.493") and whole.profit == D("6.92407")
    assert [leg.size for leg in result.legs] == [D("0.0500"), D("0.999"), D("0.999")]
    assert result.legs[1].limit_price == D("0.05") and result.profit == D("6.98101")
    quick = size_cycle(cycle, store, NOW, D("1500"), 1.0, FRESH)  # within half a first-leg increment
    assert isinstance(quick, Opportunity) and D("6.98101") - D("1.001") <= quick.profit <= D("6.98101")


def test_max_input_caps_what_a_first_buy_holds_and_input_is_what_it_spends(triangle_markets, books):
    cycle = usdt_btc_eth(triangle_markets())
    store = two_level_eth_btc(books, btc_usdt=(((19_990.0, 1.0),), ((20_000.0, 0.05), (20_010.0, 1.0))))
    result = size_cycle(cycle, store, NOW, D("1998.9"), 1.0, FRESH, tolerance=D(0))
    assert isinstance(result, Opportunity)
    first = result.legs[0]
    # 0.0998 BTC would spend (1000 + 0.0498 * 20010) * 1.001 = 1998.494498 <= 1998.9, but an order for it
    # at 20010 holds 0.0998 * 20010 * 1.001 = 1998.994998 > 1998.9; 0.0997 holds 1996.991997
    assert first.size == D("0.0997") and first.limit_price == D("20010.0")
    assert first.size * first.limit_price * D("1.001") == D("1996.991997") <= D("1998.9")
    # the cycle's input is what the fills spend: (1000 + 0.0497 * 20010) * 1.001
    assert result.input == first.amount_in == D("1996.491497")
    assert first.fee == D("1.994497")
    # 0.0997 BTC: 1 ETH at 0.05, then 0.0997 / 0.0501501 = 1.98803 -> 1.988 ETH at 0.0501
    assert [leg.size for leg in result.legs[1:]] == [D("1.988"), D("1.988")]
    assert result.output == D("1.988") * D("1010.0") * D("0.999")
    assert result.profit == result.output - D("1996.491497")


def test_paper_sends_a_two_level_buy_leg_at_its_planned_size(triangle_markets, books):
    """The contract with the executor: a BUY planned by its hold is sent whole, and fills as planned."""
    from cryptoarb.execution.paper import PaperExecutor

    markets = triangle_markets(**{"BTC-USDT": {"min_funds": "1"}})
    cycle = usdt_btc_eth(markets)
    store = two_level_eth_btc(books)
    result = size_cycle(cycle, store, NOW, D("2000"), 1.0, FRESH, tolerance=D(0))
    assert isinstance(result, Opportunity) and result.legs[1].limit_price == D("0.0501")
    assert result.profit == D("9.91008")
    executor = PaperExecutor(store, {m.key: m for m in markets}, {})
    outcome = executor.run(result, NOW)
    legs, recovery = outcome.results[:3], outcome.results[3:]
    assert [r.order.size for r in legs] == [leg.size for leg in result.legs]
    assert all(r.status is OrderStatus.FILLED for r in legs)
    eth = legs[1]
    assert [(f.price, f.size) for f in eth.fills] == [(D("0.05"), D("1.000")), (D("0.0501"), D("0.992"))]
    assert sum(f.price * f.size + f.fee for f in eth.fills) == D("0.0997988992")  # the planned spend
    got = sum(f.price * f.size - f.fee for f in legs[2].fills)
    assert got == result.output and not outcome.alerts
    # the BTC the plan leaves unspent (0.0999 - 0.0997988992) is the only thing the unwind policy sells back
    [unwind] = recovery
    assert unwind.order.side is Side.SELL and unwind.order.symbol == "BTC-USDT" and unwind.order.size == D("0.0001")


def test_leg_book_sell_rounds_down_and_keeps_dust(market):
    leg = Leg(market("ETH", "USDT", inc="0.01", fee="0.002", min_funds="10"), Side.SELL)
    book = LegBook(leg, [(100.0, 1.0), (99.0, 5.0)])
    fill = book.fill_input(D("1.23456"))
    assert fill.size == D("1.23") and fill.amount_in == D("1.23456")
    assert fill.notional == D("100") + D("0.23") * D("99.0")
    assert fill.amount_out == fill.notional * (1 - D("0.002"))
    assert fill.limit_price == D("99.0")
    small = book.fill_input(D("0.09"))
    assert isinstance(small, LegFailure) and small.reason is RejectReason.BELOW_MIN_FUNDS
    zero = book.fill_input(D("0.009"))
    assert isinstance(zero, LegFailure) and zero.reason is RejectReason.BELOW_MIN_SIZE
