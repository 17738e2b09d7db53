"""The live executor against ``cryptoarb sim-server`` in its own process, over loopback, with fake keys.

The engine's live path end to end: ``LiveExecutor`` -> ``KucoinRest`` (ccxt, signed requests) -> the
simulator's REST API and matching engine, intents written to SQLite before every order.

- On a **running market** (``--speed 1``) the engine is fed by the native public websocket client and
  detects, sizes and executes by itself: a profitable cycle executes in both leg modes; the kill switch
  stops new orders within one market update.
- On a **frozen market** (``--speed 0``: books change only when our orders take liquidity) a test crafts
  the plan on the server's own books and hands it to the engine, so every outcome is exact: a partial
  fill on leg 2, a rejected leg 2 and its unwind, a 429 on an order, a leg under minimum funds.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any

import pytest
from sim_server_harness import LiveHarness, SimProcess, craft, d, floor_to, start_sim, usd_prices

from cryptoarb.execution.executor import delivered, order_size
from cryptoarb.execution.preflight import preflight
from cryptoarb.model import Cycle, Opportunity, Order, OrderStatus, RejectReason, Side
from cryptoarb.venues.kucoin.rest import KucoinRest

FROZEN = ("--speed", "0", "--pairs", "60")
RUNNING = ("--speed", "1", "--pairs", "100")
FROZEN_RISK = {"max_book_age_s": 3600.0, "stale_data_s": 0.0}
"""Books loaded once from REST stay current on a frozen market."""
TOLERANCE = Decimal("1e-12")
"""Ledger against account: fills are booked at dealFunds / dealSize, exact to ~28 digits."""


@pytest.fixture
def frozen_sim() -> Iterator[SimProcess]:
    sim = start_sim(*FROZEN)
    yield sim
    sim.stop()


@pytest.fixture
def running_sim() -> Iterator[SimProcess]:
    sim = start_sim(*RUNNING)
    yield sim
    sim.stop()


# -- helpers ---------------------------------------------------------------------------------------------
def buy_sell_sell(h: LiveHarness) -> list[Cycle]:
    """USDT > X > Y > USDT cycles: BUY X-USDT, SELL X-Y, SELL Y-USDT."""
    sides = (Side.BUY, Side.SELL, Side.SELL)
    return [c for c in h.engine.cycles if tuple(leg.side for leg in c.legs) == sides and c.start_asset == "USDT"]


async def frozen_harness(sim: SimProcess, tmp_path: Path, **kw: Any) -> tuple[LiveHarness, list[Cycle]]:
    h = await LiveHarness.open(sim, tmp_path / "live.sqlite", risk=FROZEN_RISK, **kw)
    cycles = buy_sell_sell(h)
    assert cycles
    await h.prime(sorted({leg.market.symbol for c in cycles for leg in c.legs}))
    return h, cycles


def best(h: LiveHarness, cycle: Cycle, leg: int) -> tuple[Decimal, Decimal]:
    """(price, size) of the level leg ``leg`` would take first."""
    market = cycle.legs[leg].market
    book = h.engine.books.get(market.key)
    assert book is not None
    price, size = (book.asks if cycle.legs[leg].side is Side.BUY else book.bids)[0]
    return d(price), d(size)


def sendable(h: LiveHarness, opportunity: Opportunity) -> Opportunity:
    """``opportunity``, after checking the executor's preflight lets it through."""
    ex = h.executor
    problem = preflight(opportunity, ex.markets, ex.books, ex.clock(), ex.freshness, ex.available, ex.leg_mode)
    assert problem is None, problem
    return opportunity


def small_plan(h: LiveHarness, cycles: list[Cycle], oid: str, usd: Decimal = Decimal(300)) -> Opportunity:
    """A plan worth about ``usd`` whose every leg fills within its best level."""
    for cycle in cycles:
        ask, _ = best(h, cycle, 0)
        first = floor_to(usd / ask, cycle.legs[0].market.size_increment)
        if first <= 0:
            continue
        opp = craft(h.engine, cycle, first, oid)
        if all(leg.size <= best(h, cycle, i)[1] for i, leg in enumerate(opp.legs)):
            return sendable(h, opp)
    raise AssertionError("no cycle fills within its best levels")


async def assert_ledger_matches_account(h: LiveHarness, assets: set[str]) -> None:
    theirs = await h.server_balances()
    for asset in assets:
        ours = h.engine.ledger.free("kucoin", asset)
        assert abs(ours - theirs.get(asset, Decimal(0))) <= TOLERANCE, (asset, ours, theirs.get(asset))


def by_oid(orders: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["clientOid"]: o for o in orders}


async def inventory_balances(sim: SimProcess, usd_each: float = 20_000.0) -> dict[str, Decimal]:
    """Some of every asset the server lists, worth about ``usd_each``."""
    rest = KucoinRest(base_url=sim.url, enable_rate_limit=False)
    try:
        prices = usd_prices(await rest.fetch_tickers())
    finally:
        await rest.close()
    return {asset: Decimal(repr(round(usd_each / p, 8))) for asset, p in prices.items() if p > 0}


# -- running market: the engine detects by itself ------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sequential", "inventory"])
async def test_a_profitable_cycle_executes_in_both_modes(running_sim, tmp_path, mode):
    balances = await inventory_balances(running_sim) if mode == "inventory" else None
    h = await LiveHarness.open(running_sim, tmp_path / "live.sqlite", mode=mode, balances=balances)
    try:
        await h.stream(h.cycle_symbols())

        def profitable():
            return [ex for ex in h.executions()
                    if all(r.status is OrderStatus.FILLED for r in ex.results) and ex.realized_profit > 0]

        await h.until(lambda: bool(profitable()), timeout_s=120.0)
        await h.stop_stream()
        done = profitable()[0]
        opp = done.opportunity
        assert done.mode == "live" and len(done.results) == len(opp.legs) == 3
        server = by_oid(await h.server_orders())
        for i, (result, leg) in enumerate(zip(done.results, opp.legs, strict=True)):
            oid = f"{opp.id}-L{i}"
            assert result.order.client_oid == oid
            assert result.order.type == "limit" and result.order.time_in_force == "IOC"
            assert result.order.price == leg.limit_price  # at the plan's price, never a market order
            assert all(f.price <= leg.limit_price if leg.side is Side.BUY else f.price >= leg.limit_price
                       for f in result.fills)
            assert len(h.venue.placed(oid)) == 1
            sent = server[oid]  # the exchange holds the very order, done and filled
            assert sent["timeInForce"] == "IOC" and sent["type"] == "limit" and not sent["isActive"]
            assert Decimal(sent["price"]) == leg.limit_price and Decimal(sent["size"]) == result.order.size
            assert Decimal(sent["dealSize"]) == result.filled_size == result.order.size
        if mode == "inventory":
            assert [r.order.size for r in done.results] == [leg.size for leg in opp.legs]  # all at once, as planned
        else:  # each leg spent what the previous one delivered
            for i in (1, 2):
                market = h.engine.markets[("kucoin", opp.legs[i].symbol)]
                got = delivered(opp.legs[i - 1], done.results[i - 1])
                assert done.results[i].order.size == order_size(opp.legs[i], market, got)
        # each order's row was durable before it was sent, and its final state replaced it
        for result in done.results:
            oid = result.order.client_oid
            assert h.trail.index(("intent", oid)) < h.trail.index(("send", oid))
        rows = await h.stored("SELECT client_oid, status FROM orders WHERE opportunity_id = ? ORDER BY leg_index",
                              opp.id)
        assert rows == [(f"{opp.id}-L{i}", "filled") for i in range(3)]
        # the engine's ledger and the exchange's account moved alike, over every execution of the run
        await assert_ledger_matches_account(h, {a for ex in h.executions() for a in ex.opportunity.path})
        record = h.engine.opportunity_ledger.get(opp.id)
        assert record.status == "executed" and record.mode == "live" and record.realized_usd > 0
        assert {"receive", "detect", "risk", "send", "ack", "fill"} <= set(record.latency_ms)
    finally:
        await h.close()


@pytest.mark.slow
async def test_the_kill_switch_stops_new_orders_within_one_market_update(running_sim, tmp_path):
    h = await LiveHarness.open(running_sim, tmp_path / "live.sqlite")
    try:
        # Once armed, the switch engages during the very market update that completes the next opportunity,
        # right after the engine handed it to the executor. The hand-over already put its first order on
        # the wire (the executor starts eagerly), so that one completes its cycle; every later update's
        # opportunities are refused at detection, and nothing else is handed over or sent.
        before, after = [], []
        armed = False
        submit = h.executor.submit

        def submit_then_kill(opportunity, now, internal_s=0.0, record=None):
            (after if armed else before).append((opportunity, h.updates))
            submit(opportunity, now, internal_s, record)
            if armed:
                h.engine.risk.kill("manual: test")

        h.executor.submit = submit_then_kill  # type: ignore[method-assign]
        await h.stream(h.cycle_symbols())
        await h.until(lambda: any(ex.results for ex in h.executions()))  # orders do go out
        armed = True

        def refused_at_detection():
            return [r for r in h.rejections(RejectReason.KILL_SWITCH) if not r.detail]

        await h.until(lambda: bool(after) and len(refused_at_detection()) >= 3, timeout_s=120.0)
        await h.stop_stream()
        await h.executor.drain()
        ((in_flight, at_update),) = after  # nothing was handed over after it
        assert h.updates > at_update
        assert any(o.opportunity_id == in_flight.id for o, _ in h.venue.calls)  # its first order was out already
        assert h.engine.opportunity_ledger.get(in_flight.id).status != "refused"
        assert h.engine.counters.rejected[RejectReason.KILL_SWITCH.value] >= 3
        # every order that reached the venue, and the exchange, belongs to an opportunity handed over before
        # the kill
        earlier = {o.id for o, _ in before} | {in_flight.id}
        assert h.venue.calls and {o.opportunity_id for o, _ in h.venue.calls} <= earlier
        assert {o.opportunity_id for o in h.intents} <= earlier
        assert {o["clientOid"] for o in await h.server_orders()} == {o.client_oid for o, _ in h.venue.calls}
        assert h.engine.pending == 0 and h.engine.risk.in_flight == set()
    finally:
        await h.close()


# -- frozen market: plans crafted on the server's books --------------------------------------------------------
async def test_sequential_partial_fill_on_leg_2_feeds_leg_3_the_actual_amount(frozen_sim, tmp_path):
    h, cycles = await frozen_harness(frozen_sim, tmp_path)
    try:
        # Leg 2 planned at its best bid for half as much again as that level holds: IOC, it fills the level.
        def cost(c: Cycle) -> Decimal:
            return best(h, c, 1)[1] * 3 / 2 * best(h, c, 0)[0]

        cycle = min(cycles, key=cost)
        level_price, level_size = best(h, cycle, 1)
        first = floor_to(level_size * 3 / 2, cycle.legs[0].market.size_increment)
        opp = sendable(h, craft(h.engine, cycle, first, "op-partial", top_only={1}))
        assert opp.legs[1].size > level_size and opp.legs[1].limit_price == level_price
        start = await h.server_balances()

        h.hand_over(opp)
        await h.until(lambda: bool(h.executions()))
        (ex,) = h.executions()
        first_leg, second, third = ex.results[:3]
        assert first_leg.status is OrderStatus.FILLED and first_leg.filled_size == first
        assert second.order.size == opp.legs[1].size  # sent as planned ...
        assert second.status is OrderStatus.PARTIAL and second.filled_size == level_size  # ... filled the level
        got = delivered(opp.legs[1], second)  # the actual proceeds, after the fee
        assert got < opp.legs[1].amount_out
        market = h.engine.markets[("kucoin", opp.legs[2].symbol)]
        assert third.order.size == order_size(opp.legs[2], market, got) == floor_to(got, market.size_increment)
        assert third.order.size < opp.legs[2].size and third.status is OrderStatus.FILLED
        # the exchange got exactly those sizes
        server = by_oid(await h.server_orders())
        assert Decimal(server["op-partial-L1"]["dealSize"]) == level_size
        assert Decimal(server["op-partial-L2"]["size"]) == third.order.size
        # what leg 2 could not sell was unwound back to USDT, booked against the opportunity
        unwinds = ex.results[3:]
        assert unwinds and all(r.order.client_oid.startswith("op-partial-U") for r in unwinds)
        unwind = unwinds[0]
        assert unwind.order.symbol == opp.legs[0].symbol and unwind.order.side is Side.SELL
        assert unwind.order.size == first - level_size and unwind.status is OrderStatus.FILLED
        assert all(f.opportunity_id == opp.id for r in ex.results for f in r.fills)
        stranded = opp.legs[0].asset_out
        assert h.engine.ledger.free("kucoin", stranded) == start.get(stranded, Decimal(0))
        await assert_ledger_matches_account(h, set(opp.path))
        rows = await h.stored("SELECT client_oid, status FROM orders WHERE opportunity_id = ? ORDER BY leg_index",
                              opp.id)
        assert rows == [("op-partial-L0", "filled"), ("op-partial-L1", OrderStatus.PARTIAL.value),
                        ("op-partial-L2", "filled"), (unwind.order.client_oid, "filled")]
    finally:
        await h.close()


async def test_a_rejected_leg_2_triggers_an_unwind_booked_against_the_opportunity(frozen_sim, tmp_path):
    h, cycles = await frozen_harness(frozen_sim, tmp_path)
    try:
        opp = small_plan(h, cycles, "op-reject")
        start = await h.server_balances()

        async def switch(orders):  # the exchange refuses leg 2 only (400200), then takes orders again
            if any(o.client_oid == "op-reject-L1" for o in orders):
                await h.sim.faults(reject_orders=True)
            elif any(o.client_oid.startswith("op-reject-U") for o in orders):
                await h.sim.faults(reject_orders=False)

        h.before_send = switch
        h.hand_over(opp)
        await h.until(lambda: bool(h.executions()))
        (ex,) = h.executions()
        assert [r.order.client_oid for r in ex.results] == ["op-reject-L0", "op-reject-L1", "op-reject-U2"]
        bought, rejected, unwind = ex.results
        assert bought.status is OrderStatus.FILLED
        assert rejected.status is OrderStatus.REJECTED and "400200" in rejected.reason and not rejected.fills
        assert unwind.order.symbol == opp.legs[0].symbol and unwind.order.side is Side.SELL
        assert unwind.order.leg_index == 102 and unwind.order.opportunity_id == opp.id
        assert unwind.status is OrderStatus.FILLED and unwind.filled_size == bought.filled_size
        # the exchange saw leg 1 and the unwind; leg 2 never became an order
        server = by_oid(await h.server_orders())
        assert set(server) == {"op-reject-L0", "op-reject-U2"}
        assert server["op-reject-U2"]["side"] == "sell" and Decimal(server["op-reject-U2"]["dealSize"]) == \
            bought.filled_size
        # the stranded asset is back where it was; the loss is the round trip's spread and fees
        stranded = opp.legs[0].asset_out
        assert h.engine.ledger.free("kucoin", stranded) == start.get(stranded, Decimal(0))
        await assert_ledger_matches_account(h, set(opp.path))
        record = h.engine.opportunity_ledger.get(opp.id)
        assert record.status == "executed" and record.attribution.recovery_usd < 0 and ex.realized_profit < 0
        assert abs(record.attribution.realized_usd - ex.realized_profit_usd) < 1e-6
        # stored as one opportunity: every order row and fill row carries its id
        orders = await h.stored("SELECT client_oid, status FROM orders WHERE opportunity_id = ? ORDER BY leg_index",
                                opp.id)
        assert orders == [("op-reject-L0", "filled"), ("op-reject-L1", "rejected"), ("op-reject-U2", "filled")]
        fills = await h.stored("SELECT client_oid FROM fills WHERE opportunity_id = ? ORDER BY client_oid", opp.id)
        assert fills == [("op-reject-L0",), ("op-reject-U2",)]
        assert h.engine.risk.cooldown_until[("kucoin", opp.legs[1].symbol)] > ex.at  # the failed leg's market rests
    finally:
        await h.close()


@pytest.mark.parametrize("burst", [1, 3])
async def test_a_429_on_an_order_is_retried_with_the_same_client_oid_and_creates_one_order(frozen_sim, tmp_path,
                                                                                          burst):
    h, cycles = await frozen_harness(frozen_sim, tmp_path)
    try:
        opp = small_plan(h, cycles, "op-429")
        # The next REST requests are answered 429 000: the order's first POST (and, with 3, the lookups
        # by client order id that follow it).
        await h.sim.faults(http_429_burst=burst)
        h.hand_over(opp)
        await h.until(lambda: bool(h.executions()))
        (ex,) = h.executions()
        calls = h.venue.placed("op-429-L0")
        assert [outcome for _, outcome in calls] == ["KucoinRateLimited"] * (2 if burst == 3 else 1) + ["filled"]
        assert len({(o.client_oid, o.symbol, o.side, o.price, o.size) for o, _ in calls}) == 1  # the same order
        server = await h.server_orders()
        assert [o["clientOid"] for o in server].count("op-429-L0") == 1  # exactly one order
        assert sorted(o["clientOid"] for o in server) == ["op-429-L0", "op-429-L1", "op-429-L2"]
        assert all(r.status is OrderStatus.FILLED for r in ex.results)
        assert len(ex.results[0].fills) == 1 and ex.results[0].filled_size == opp.legs[0].size  # booked once
        assert (await h.sim.admin("GET", "/_sim/faults"))["http_429_burst"] == 0
        assert h.engine.risk.error_rate > 0  # the refusals count towards the kill switch's error rate
        await assert_ledger_matches_account(h, set(opp.path))
    finally:
        await h.close()


async def test_a_leg_below_minimum_funds_is_refused_before_any_order_is_sent(frozen_sim, tmp_path):
    h, cycles = await frozen_harness(frozen_sim, tmp_path)
    try:
        # A first size that meets leg 1's rules while leg 2 (the same amount of X, sold for Y) is under
        # the exchange's minimum funds.
        for cycle in cycles:
            buy, sell = cycle.legs[0].market, cycle.legs[1].market
            inc = max(buy.size_increment, sell.size_increment)
            size = (max(buy.min_size, sell.min_size) / inc).to_integral_value(rounding=ROUND_CEILING) * inc
            if size % buy.size_increment or size % sell.size_increment:
                continue
            ask, bid = best(h, cycle, 0)[0], best(h, cycle, 1)[0]
            if size * ask >= buy.min_funds and size * bid < sell.min_funds:
                break
        else:
            pytest.fail("no cycle has a leg 2 that can fall under minimum funds alone")
        opp = craft(h.engine, cycle, size, "op-minfunds")
        assert opp.legs[1].size * opp.legs[1].limit_price < sell.min_funds
        h.hand_over(opp)
        await h.until(lambda: bool(h.rejections()))
        (rejection,) = h.rejections()
        assert rejection.reason is RejectReason.BELOW_MIN_FUNDS and rejection.detail.startswith("op-minfunds: leg 1 ")
        assert h.venue.calls == [] and h.intents == []  # not even leg 1 was sent
        assert await h.server_orders() == []
        assert (await h.stored("SELECT COUNT(*) FROM orders"))[0] == (0,)
        assert h.engine.opportunity_ledger.get(opp.id).status == "refused"
        assert opp.id not in h.engine.risk.in_flight and h.engine.pending == 0
        # the exchange applies the same rule, which the preflight read from its market list
        leg = opp.legs[1]
        probe = Order("probe-minfunds", "probe", 1, leg.venue, leg.symbol, leg.side, leg.limit_price, leg.size,
                      created_at=0.0)
        answer = await h.rest.place_order(probe)
        assert answer.status is OrderStatus.REJECTED and "400100" in answer.reason
        assert await h.server_orders() == []
    finally:
        await h.close()
