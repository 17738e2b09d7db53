"""The opportunity ledger explains realized PnL: realized = expected - shortfall - slippage - extra fees."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from cryptoarb.config import Settings
from cryptoarb.core.ledger import Ledger, OpportunityLedger, attribute, planned_notional
from cryptoarb.engine import Engine
from cryptoarb.model import Execution, Fill, Market, Opportunity, Order, OrderResult, OrderStatus, PlannedLeg, Side
from cryptoarb.venues.sim import SimVenue


def market(symbol: str) -> Market:
    base, quote = symbol.split("-")
    return Market("v", symbol, base, quote, D("0.01"), D("0.01"), D("0.01"), D("1"), D("0.001"), D("0.001"))


MARKETS = {m.key: m for m in (market("A-USDT"), market("B-USDT"), market("A-B"))}
MARKS = {"USDT": 1.0, "A": 10.0, "B": 5.0}

# USDT -> A (buy 1 at 10) -> B (sell 1 at 2.02) -> USDT (sell 2.01 at 5.0)
LEGS = (
    PlannedLeg("v", "A-USDT", Side.BUY, D("10.00"), D("1"), D("10.01"), D("1"), D("0.01"), "USDT", "USDT", "A", 0),
    PlannedLeg("v", "A-B", Side.SELL, D("2.02"), D("1"), D("1"), D("2.01798"), D("0.00202"), "B", "A", "B", 0),
    PlannedLeg("v", "B-USDT", Side.SELL, D("5.00"), D("2.01"), D("2.01798"), D("10.03995"), D("0.01005"), "USDT",
               "B", "USDT", 0),
)
PLAN = Opportunity("op1", 1, "triangular", ("USDT", "A", "B", "USDT"), LEGS, D("10.01"), D("10.03995"),
                   D("0.02995"), 0.02995, 29.9, 0.0)


def result(i: int, *fills: tuple[str, str], leg_index: int | None = None, side: Side | None = None,
           symbol: str | None = None) -> OrderResult:
    leg = LEGS[i]
    index = i if leg_index is None else leg_index
    sym, sd = symbol or leg.symbol, side or leg.side
    order = Order(f"op1-{index}", "op1", index, "v", sym, sd, leg.limit_price, leg.size, 0.0)
    rate = D("0.001")
    out = tuple(Fill(order.client_oid, "op1", index, "v", sym, sd, D(p), D(s), D(p) * D(s) * rate,
                     sym.split("-")[1], 0.0) for p, s in fills)
    filled = sum((f.size for f in out), D(0))
    return OrderResult(order, OrderStatus.FILLED if filled >= leg.size else OrderStatus.PARTIAL, out)


def mark(_venue: str, asset: str) -> float:
    return MARKS[asset]


def realized_by_ledger(results) -> float:
    return Ledger().apply([f for r in results for f in r.fills], MARKETS, mark)


def test_planned_notional_is_exact_for_sells_and_quote_fee_buys():
    assert planned_notional(LEGS[0], D("0.001")) == D("10")
    assert planned_notional(LEGS[1], D("0.001")) == D("2.02")
    assert planned_notional(LEGS[2], D("0.001")) == D("10.05")


def test_a_plan_filled_as_planned_realizes_its_expected_value():
    results = [result(0, ("10.00", "1")), result(1, ("2.02", "1")), result(2, ("5.00", "2.01"))]
    att = attribute(PLAN, results, MARKETS, mark)
    assert att.fully_filled and abs(att.shortfall_usd) < 1e-12
    assert abs(att.slippage_usd) < 1e-12 and abs(att.extra_fees_usd) < 1e-12
    assert abs(att.realized_usd - att.expected_usd) < 1e-12
    assert abs(att.realized_usd - realized_by_ledger(results)) < 1e-12
    assert [leg.slippage_bps for leg in att.legs] == [0.0, 0.0, 0.0]


def test_worse_prices_are_slippage_and_their_extra_fees():
    results = [result(0, ("10.00", "0.5"), ("10.10", "0.5")), result(1, ("2.02", "1")), result(2, ("4.99", "2.01"))]
    att = attribute(PLAN, results, MARKETS, mark)
    assert att.fully_filled
    assert att.slippage_usd == pytest.approx(0.05 * 1.0 + 0.01 * 2.01 * 1.0)
    assert att.extra_fees_usd == pytest.approx(0.001 * (0.05 - 0.0201))
    assert att.legs[0].slippage_bps == pytest.approx(50.0) and att.legs[2].slippage_bps == pytest.approx(20.0)
    assert att.realized_usd == pytest.approx(att.expected_usd - att.slippage_usd - att.extra_fees_usd, abs=1e-12)
    assert att.realized_usd == pytest.approx(realized_by_ledger(results), abs=1e-12)


def test_a_failed_leg_and_its_unwind_are_shortfall_slippage_and_fees():
    unwind = result(0, ("9.95", "1"), leg_index=102, side=Side.SELL)
    results = [result(0, ("10.00", "1")), result(1), unwind]
    att = attribute(PLAN, results, MARKETS, mark)
    assert not att.fully_filled
    assert att.recovery_usd == pytest.approx(-(0.05 + 9.95 * 0.001))
    assert att.realized_usd == pytest.approx(att.explained_usd, abs=1e-12)
    assert att.realized_usd == pytest.approx(realized_by_ledger(results), abs=1e-12)
    assert att.shortfall_usd == pytest.approx(att.expected_usd - _leg_value(0))  # only leg 0 traded


def _leg_value(i: int) -> float:
    leg = LEGS[i]
    notional = float(planned_notional(leg, D("0.001")))
    return float(leg.size) * MARKS["A"] - notional - float(leg.fee)


def test_opportunity_ledger_counts_and_totals():
    book = OpportunityLedger(max_records=2)
    results = [result(0, ("10.00", "1")), result(1, ("2.02", "1")), result(2, ("5.00", "2.01"))]
    for n in range(3):
        opp = Opportunity(f"op{n}", 1, "triangular", PLAN.path, LEGS, PLAN.input, PLAN.output, PLAN.profit,
                          0.03, 29.9, 0.0)
        book.detected(opp, "ab" * 8, [D(10), D("2.02"), D("10.05")], {"detect": 0.1})
    book.executed("op0", attribute(PLAN, results, MARKETS, mark), 0.03, {"send": 1.0})
    book.executed("op1", attribute(PLAN, [result(0)], MARKETS, mark), 0.0)
    book.refused("op2", "no_balance")
    summary = book.summary()
    assert (summary.detected, summary.executed, summary.missed, summary.refused, summary.in_flight) == (3, 1, 1, 1, 0)
    assert summary.capture_rate == pytest.approx(1 / 3)
    assert [r.opportunity.id for r in book.records()] == ["op1", "op2"]  # the oldest fell out
    assert book.get("op1").status == "missed" and book.get("op2").refused_reason == "no_balance"


async def test_every_paper_execution_of_a_demo_run_is_explained_by_the_ledger():
    settings = Settings()
    venue = SimVenue(settings.sim, speed=0, balances=settings.balances["kucoin"])
    events: list = []
    engine = Engine(settings, {venue.name: venue}, await venue.load_markets(), events.append)
    async for batch in venue.stream_books():
        now = venue.now()
        engine.on_batch(batch, now, venue.name)
        engine.run_due(now)
        if now >= 20.0:
            engine.accepting = False
            if engine.pending == 0:
                break
    await venue.close()
    executions = [e for e in events if isinstance(e, Execution)]
    assert len(executions) >= 10
    fully = 0
    for ex in executions:
        record = engine.opportunity_ledger.get(ex.opportunity.id)
        att = record.attribution
        scale = 1.0 + abs(att.expected_usd) + abs(att.slippage_usd) + abs(att.shortfall_usd) + att.fees_usd
        # the ledger's realized PnL, explained to the rounding
        assert ex.realized_profit_usd == pytest.approx(att.realized_usd, abs=1e-9 * scale)
        assert ex.realized_profit_usd == pytest.approx(
            att.expected_usd - att.shortfall_usd - att.slippage_usd - att.extra_fees_usd, abs=1e-9 * scale)
        if att.fully_filled:  # filled as planned: expected - slippage - extra fees
            fully += 1
            assert abs(att.shortfall_usd) <= 1e-9 * scale
            assert ex.realized_profit_usd == pytest.approx(
                att.expected_usd - att.slippage_usd - att.extra_fees_usd, abs=1e-9 * scale)
        assert ex.fees_usd == pytest.approx(att.fees_usd, abs=1e-9 * scale)
    assert fully >= 1
    summary = engine.opportunity_ledger.summary()
    assert summary.detected == engine.counters.detected and summary.in_flight == 0
    assert summary.realized_usd == pytest.approx(engine.ledger.realized_pnl_usd, abs=1e-6)
    stages = engine.latency.summary()
    assert {"receive", "detect", "risk", "send", "ack", "fill"} <= set(stages)
    assert stages["ack"]["p50"] == 50.0  # paper: the configured venue latency
