"""The failed-leg policies (unwind, hedge, hold) in both modes, through the paper executor on hand-built
books: the same cycle driver the live executor runs."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from cryptoarb.core.books import BookStore
from cryptoarb.execution.paper import PaperExecutor
from cryptoarb.model import BookUpdate, Market, Opportunity, OrderStatus, PlannedLeg, Side

TRIANGLE = {
    "A-USDT": ([(9.98, 10.0)], [(10.0, 10.0)]),
    "A-B": ([(2.0, 10.0)], [(2.02, 10.0)]),
    "B-USDT": ([(5.05, 100.0)], [(5.06, 100.0)]),
}


def market(symbol: str) -> Market:
    base, quote = symbol.split("-")
    return Market("v", symbol, base, quote, D("0.01"), D("0.01"), D("0.01"), D("1"), D("0.001"), D("0.001"))


def executor(books: dict, policy: str = "unwind", mode: str = "sequential") -> PaperExecutor:
    store = BookStore()
    markets = {}
    for symbol, (bids, asks) in books.items():
        store.apply(BookUpdate("v", symbol, tuple(bids), tuple(asks), 1, 0, 0.0))
        markets[("v", symbol)] = market(symbol)
    return PaperExecutor(store, markets, {}, failed_leg_policy=policy, leg_mode=mode)


def leg(symbol, side, price, size, asset_in, asset_out, amount_in="0", amount_out="0", fee="0") -> PlannedLeg:
    fee_asset = symbol.split("-")[1]
    return PlannedLeg("v", symbol, side, D(price), D(size), D(amount_in), D(amount_out), D(fee), fee_asset,
                      asset_in, asset_out, 0.0)


PLAN = Opportunity(
    "op1", 7, "triangular", ("USDT", "A", "B", "USDT"),
    (leg("A-USDT", Side.BUY, "10.0", "1", "USDT", "A", "10.01", "1", "0.01"),
     leg("A-B", Side.SELL, "2.0", "1", "A", "B", "1", "1.998", "0.002"),
     leg("B-USDT", Side.SELL, "5.05", "1.99", "B", "USDT", "1.998", "10.0394950", "0.0100495")),
    D("10.01"), D("10.039495"), D("0.029495"), 0.029495, 29.0, 0.0)


def moved(**changes) -> dict:
    return {**TRIANGLE, **changes}


def oids(results) -> list[str]:
    return [r.order.client_oid for r in results]


@pytest.mark.parametrize("mode", ["sequential", "inventory"])
def test_every_leg_fills_as_planned(mode):
    outcome = executor(TRIANGLE, mode=mode).run(PLAN, 0.0)
    assert oids(outcome.results) == ["op1-L0", "op1-L1", "op1-L2"]
    assert all(r.status is OrderStatus.FILLED for r in outcome.results) and not outcome.alerts


def test_sequential_unwind_sells_the_stranded_asset_back():
    outcome = executor(moved(**{"A-B": ([(1.99, 10.0)], [(2.02, 10.0)])})).run(PLAN, 0.0)
    assert oids(outcome.results) == ["op1-L0", "op1-L1", "op1-U2"]
    unwind = outcome.results[2]
    assert unwind.order.side is Side.SELL and unwind.order.symbol == "A-USDT" and unwind.order.size == D("1.00")
    assert unwind.order.price == D("9.94") and unwind.status is OrderStatus.FILLED  # 50 bps under 9.98, on tick
    assert not outcome.alerts


def test_sequential_hedge_completes_the_leg_within_the_cap_and_carries_on():
    outcome = executor(moved(**{"A-B": ([(1.99, 10.0)], [(2.02, 10.0)])}), policy="hedge").run(PLAN, 0.0)
    assert oids(outcome.results) == ["op1-L0", "op1-L1", "op1-H2", "op1-L2"]
    hedge, last = outcome.results[2], outcome.results[3]
    assert hedge.order.leg_index == 202 and hedge.order.side is Side.SELL and hedge.status is OrderStatus.FILLED
    assert hedge.fills[0].price == D("1.99")
    # the last leg spends what the hedge delivered: 1.99 B less its fee, on the 0.01 grid
    assert last.order.size == D("1.98") and last.status is OrderStatus.FILLED


def test_hedge_beyond_the_cap_falls_back_to_unwind():
    # the bid fell 25%: no hedge under the plan's 2.0 less 50 bps; the stranded A is unwound instead
    outcome = executor(moved(**{"A-B": ([(1.5, 10.0)], [(2.02, 10.0)])}), policy="hedge").run(PLAN, 0.0)
    assert oids(outcome.results) == ["op1-L0", "op1-L1", "op1-U2"]
    assert outcome.results[2].status is OrderStatus.FILLED


def test_sequential_hold_keeps_the_asset_and_alerts():
    outcome = executor(moved(**{"A-B": ([(1.99, 10.0)], [(2.02, 10.0)])}), policy="hold").run(PLAN, 0.0)
    assert oids(outcome.results) == ["op1-L0", "op1-L1"]
    (alert,) = outcome.alerts
    assert "1 A on v stranded after leg 1" in alert and "held" in alert


def test_unwind_that_finds_no_liquidity_within_the_cap_alerts():
    books = moved(**{"A-B": ([(1.99, 10.0)], [(2.02, 10.0)]), "A-USDT": ([(9.98, 0.4)], [(10.0, 10.0)])})
    outcome = executor(books).run(PLAN, 0.0)
    assert oids(outcome.results) == ["op1-L0", "op1-L1", "op1-U2"]
    assert outcome.results[2].filled_size == D("0.4")
    (alert,) = outcome.alerts
    assert "unwind sell A-USDT@v filled 0.4 of 1; the rest of its A held" in alert


def test_inventory_mode_sends_every_leg_at_its_planned_size():
    ex = executor(TRIANGLE, mode="inventory")
    sizes = [r.order.size for r in ex.run(PLAN, 0.0).results]
    assert sizes == [D("1"), D("1"), D("1.99")]


def test_inventory_unwind_trims_the_cycle_to_its_weakest_leg():
    # leg 1 fills half: the other legs are reversed by what they did beyond half their plan
    outcome = executor(moved(**{"A-B": ([(2.0, 0.5), (1.9, 10.0)], [(2.02, 10.0)])}), mode="inventory").run(PLAN, 0.0)
    assert oids(outcome.results) == ["op1-L0", "op1-L1", "op1-L2", "op1-U3", "op1-U4"]
    assert outcome.results[1].status is OrderStatus.PARTIAL and outcome.results[1].filled_size == D("0.5")
    u3, u4 = outcome.results[3:]
    assert (u3.order.symbol, u3.order.side, u3.order.size) == ("A-USDT", Side.SELL, D("0.50"))
    assert (u4.order.symbol, u4.order.side, u4.order.size) == ("B-USDT", Side.BUY, D("0.99"))
    assert all(r.order.opportunity_id == "op1" for r in outcome.results)


def test_inventory_unwind_reverses_everything_when_a_leg_gets_nothing():
    outcome = executor(moved(**{"A-B": ([(1.99, 10.0)], [(2.02, 10.0)])}), mode="inventory").run(PLAN, 0.0)
    assert oids(outcome.results) == ["op1-L0", "op1-L1", "op1-L2", "op1-U3", "op1-U4"]
    assert [r.order.size for r in outcome.results[3:]] == [D("1"), D("1.99")]


def test_inventory_hedge_completes_the_short_leg():
    outcome = executor(moved(**{"A-B": ([(1.99, 10.0)], [(2.02, 10.0)])}), mode="inventory",
                       policy="hedge").run(PLAN, 0.0)
    assert oids(outcome.results) == ["op1-L0", "op1-L1", "op1-L2", "op1-H3"]
    assert outcome.results[3].order.size == D("1") and outcome.results[3].status is OrderStatus.FILLED


def test_inventory_hold_alerts_per_short_leg():
    outcome = executor(moved(**{"A-B": ([(1.99, 10.0)], [(2.02, 10.0)])}), mode="inventory",
                       policy="hold").run(PLAN, 0.0)
    assert len(outcome.results) == 3 and len(outcome.alerts) == 1 and "leg 1" in outcome.alerts[0]


def test_paper_refuses_a_queued_opportunity_once_the_kill_switch_is_on():
    ex = executor(TRIANGLE)
    completions = []
    killed = {"on": False}
    ex.bind(completions.append, lambda opp: ("kill_switch", "killed") if killed["on"] else None)
    ex.submit(PLAN, 0.0, internal_s=0.003)
    killed["on"] = True
    ex.poll(0.049)
    assert ex.pending == 1 and not completions  # not due yet
    ex.poll(0.05)
    (done,) = completions
    assert done.refused == ("kill_switch", "killed") and done.results == ()


def test_measured_latency_is_reported_but_the_schedule_uses_the_configured_one():
    ex = executor(TRIANGLE)
    completions = []
    ex.bind(completions.append)
    ex.submit(PLAN, 1.0, internal_s=0.2)  # a slow machine
    ex.poll(1.05)  # the first leg lands; each later leg is sent on the answer before it, a latency later
    assert completions == [] and ex.pending == 1
    ex.poll(1.15)
    (done,) = completions
    assert done.at == pytest.approx(1.15) and done.latency_ms["ack"] == 50.0 and done.latency_ms["send"] == 0.0
    assert done.latency_ms["fill"] == pytest.approx(100.0)  # three legs: two round trips after the first
    assert [f.at for r in done.results for f in r.fills] == pytest.approx([1.05, 1.10, 1.15])
    measured = PaperExecutor(BookStore(), {}, {}, add_measured_latency=True)
    measured.bind(completions.append)
    measured.submit(PLAN, 1.0, internal_s=0.2)
    measured.poll(1.05)
    assert measured.pending == 1


def test_a_later_leg_meets_the_book_as_it_is_when_it_lands():
    # sequential: leg 3 is sent on leg 2's answer and lands 100 ms after leg 1; a bid that is gone by then is
    # not there for it, as live, and the stranded B is unwound instead of booking the plan's profit
    ex = executor(TRIANGLE)
    completions = []
    ex.bind(completions.append)
    ex.submit(PLAN, 1.0)
    ex.poll(1.05)  # legs 1 and 2 land
    ex.poll(1.10)
    ex._books.apply(BookUpdate("v", "B-USDT", ((4.9, 100.0),), ((4.95, 100.0),), 2, 0, 1.12))  # the bid drops
    ex.poll(1.5)  # leg 3 misses at 1.15; the unwind follows, each batch a latency after the answer before it
    (done,) = completions
    assert done.at == pytest.approx(1.25)
    last = next(r for r in done.results if r.order.client_oid == "op1-L2")
    assert last.status is OrderStatus.CANCELED and not last.fills  # its 5.05 limit meets a 4.90 bid
    assert any(r.order.client_oid.startswith("op1-U") and r.fills for r in done.results)


def test_paper_inventory_mode_refuses_a_leg_whose_input_is_not_held():
    store = BookStore()
    markets = {}
    for symbol, (bids, asks) in TRIANGLE.items():
        store.apply(BookUpdate("v", symbol, tuple(bids), tuple(asks), 1, 0, 0.0))
        markets[("v", symbol)] = market(symbol)
    held = {("v", "USDT"): D(100), ("v", "A"): D(5)}  # no B: the last leg cannot fire from inventory
    ex = PaperExecutor(store, markets, {}, leg_mode="inventory", balance=lambda v, a: held.get((v, a), D(0)))
    completions = []
    ex.bind(completions.append)
    ex.submit(PLAN, 0.0)
    ex.poll(0.05)
    (done,) = completions
    assert done.results == () and done.refused[0] == "no_balance" and "leg 2" in done.refused[1]
    held[("v", "B")] = D(5)
    ex.submit(PLAN, 0.1)
    ex.poll(0.2)
    assert [r.status for r in completions[1].results] == [OrderStatus.FILLED] * 3
