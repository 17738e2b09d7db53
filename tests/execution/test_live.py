"""The live executor end to end: the engine's pipeline, the real simulated exchange behind the ``Venue``
protocol (limit IOC, idempotent client order ids, account balances), and injected venue faults."""

from __future__ import annotations

import dataclasses
import math
from decimal import Decimal

import pytest
from faulty_venue import SIM, FaultyVenue, drive, executions, full_inventory, make_live

from cryptoarb.config import Settings
from cryptoarb.core.ledger import book_fingerprint
from cryptoarb.execution.executor import delivered, order_size
from cryptoarb.model import Execution, Notice, Opportunity, OrderStatus, Rejection, RejectReason, Side
from cryptoarb.storage.writer import event_rows
from cryptoarb.venues.sim import SimVenue

USDT = {"USDT": 10_000.0, "BTC": 0.15, "ETH": 3.0, "KCS": 500.0}


def setup(mode: str = "sequential", policy: str = "unwind", inventory: bool = False, cap_bps: float = 50.0,
          **risk):
    probe = SimVenue(SIM, speed=0)
    balances = {**full_inventory(probe), "USDT": 10_000.0} if inventory else dict(USDT)
    settings = Settings(sim=SIM, balances={"kucoin": balances},
                        execution={"leg_mode": mode, "failed_leg_policy": policy, "unwind_slippage_bps": cap_bps},
                        risk={"max_concurrent": 1, **risk})
    venue = FaultyVenue(SimVenue(SIM, speed=0, balances=balances))
    events: list = []
    engine = make_live(settings, venue, events)
    return engine, venue, events


@pytest.mark.parametrize("mode", ["sequential", "inventory"])
async def test_a_profitable_cycle_executes_live_in_both_modes(mode):
    engine, venue, events = setup(mode, inventory=mode == "inventory")

    def captured():
        return any(all(r.status is OrderStatus.FILLED for r in ex.results) and ex.realized_profit > 0
                   for ex in executions(events))

    await drive(engine, venue, captured)
    done = next(ex for ex in executions(events)
                if all(r.status is OrderStatus.FILLED for r in ex.results) and ex.realized_profit > 0)
    opp = done.opportunity
    assert done.mode == "live" and len(done.results) == len(opp.legs) == 3
    for i, (result, leg) in enumerate(zip(done.results, opp.legs, strict=True)):
        assert result.order.client_oid == f"{opp.id}-L{i}"
        assert result.order.type == "limit" and result.order.time_in_force == "IOC"
        assert result.order.price == leg.limit_price  # at the plan's price, never a market order
        assert venue.forwarded.count(result.order.client_oid) == 1
        assert all(f.price <= leg.limit_price if leg.side is Side.BUY else f.price >= leg.limit_price
                   for f in result.fills)
    if mode == "inventory":
        assert [r.order.size for r in done.results] == [leg.size for leg in opp.legs]  # all at once, as planned
    # the engine's ledger and the venue's account moved alike
    ours = engine.ledger.free("kucoin", "USDT")
    theirs = {b.asset: b.free for b in await venue.fetch_balances()}["USDT"]
    assert ours == theirs
    record = engine.opportunity_ledger.get(opp.id)
    assert record.status == "executed" and record.mode == "live" and len(record.fingerprint) == 16
    assert set(record.latency_ms) == {"receive", "detect", "risk", "send", "ack", "fill"}


async def test_sequential_partial_fill_on_leg_2_feeds_leg_3_the_actual_amount():
    engine, venue, events = setup("sequential")
    venue.inject("partial", leg_index=1, fraction=Decimal("0.4"))
    await drive(engine, venue, lambda: bool(venue.injected) and bool(executions(events)))
    ex = next(e for e in executions(events) if any(oid.startswith(e.opportunity.id) for _, oid in venue.injected))
    opp = ex.opportunity
    first, second, third = ex.results[:3]
    assert first.status is OrderStatus.FILLED
    assert second.status is OrderStatus.PARTIAL and 0 < second.filled_size < second.order.size
    got = delivered(opp.legs[1], second)  # after partial fill and fee
    market = engine.markets[(opp.legs[2].venue, opp.legs[2].symbol)]
    assert third.order.size == order_size(opp.legs[2], market, got)
    assert third.order.size < opp.legs[2].size
    # what leg 2 could not sell was unwound back to the start asset, booked against the opportunity
    unwinds = [r for r in ex.results[3:] if r.order.client_oid.startswith(f"{opp.id}-U")]
    assert unwinds and all(f.opportunity_id == opp.id for r in unwinds for f in r.fills)
    assert unwinds[0].order.symbol == opp.legs[0].symbol and unwinds[0].order.side is not opp.legs[0].side


async def test_rejected_leg_2_is_unwound_and_booked_against_the_opportunity():
    engine, venue, events = setup("sequential", cap_bps=500.0)
    venue.inject("reject", leg_index=1)
    await drive(engine, venue, lambda: bool(venue.injected) and bool(executions(events)))
    ex = executions(events)[0]
    opp = ex.opportunity
    assert [r.order.client_oid for r in ex.results] == [f"{opp.id}-L0", f"{opp.id}-L1", f"{opp.id}-U2"]
    bought, rejected, unwind = ex.results
    assert rejected.status is OrderStatus.REJECTED and "insufficient_funds" in rejected.reason
    assert unwind.order.symbol == opp.legs[0].symbol and unwind.order.side is Side.SELL
    assert unwind.order.leg_index == 102 and unwind.order.opportunity_id == opp.id
    assert unwind.status is OrderStatus.FILLED and unwind.filled_size == bought.filled_size
    # the stranded asset is gone from the ledger (to the increment), and the loss is the unwind's cost
    stranded = opp.legs[0].asset_out
    held = engine.ledger.free("kucoin", stranded) - Decimal(repr(USDT.get(stranded, 0.0)))
    assert held < engine.markets[("kucoin", opp.legs[0].symbol)].size_increment
    record = engine.opportunity_ledger.get(opp.id)
    assert record.attribution.recovery_usd < 0 and ex.realized_profit < 0
    assert abs(record.attribution.realized_usd - ex.realized_profit_usd) < 1e-6
    # stored as one execution: the unwind's order and fills rows carry the opportunity id
    rows = event_rows(ex)
    assert [r[1][1] for r in rows if r[0] == "orders"] == [opp.id] * 3
    assert {r[1][2] for r in rows if r[0] == "fills"} == {opp.id}
    # a failed leg puts its market on cooldown
    assert engine.risk.cooldown_until[("kucoin", opp.legs[1].symbol)] > ex.at


@pytest.mark.parametrize("kind", ["429_after", "429_before"])
async def test_a_429_is_retried_with_the_same_client_oid_and_makes_exactly_one_order(kind):
    engine, venue, events = setup("sequential")
    venue.inject(kind, leg_index=0, times=2 if kind == "429_before" else 1)
    await drive(engine, venue, lambda: bool(venue.injected) and bool(executions(events)))
    ex = executions(events)[0]
    oid = f"{ex.opportunity.id}-L0"
    calls = [o for o in venue.placed if o.client_oid == oid]
    assert len({(o.client_oid, o.size, o.price) for o in calls}) == 1  # every retry is the same order
    assert venue.forwarded.count(oid) == 1  # exactly one order reached the venue
    assert oid in venue.inner._orders and len([k for k in venue.inner._orders if k == oid]) == 1
    assert oid in venue.fetched  # the fate of the failed request was looked up first
    first = ex.results[0]
    assert first.order.client_oid == oid and first.status is OrderStatus.FILLED
    assert len(first.fills) == len(venue.inner._orders[oid].fills)  # booked once
    if kind == "429_before":
        assert len(calls) == 3  # two refusals, then the order
    else:
        assert len(calls) == 1  # the lookup found it: never sent again
    assert engine.risk.error_rate > 0  # the failures count towards the kill switch's error rate


@pytest.mark.parametrize("kind", ["timeout_after", "timeout_before"])
async def test_a_timed_out_order_is_resolved_by_client_oid_without_doubling(kind):
    # timeout_before: the request is still on the wire when the executor gives up on it (0.05 s) and lands at
    # 0.2 s. Sending it again meanwhile doubled it wherever the venue does not deduplicate client order ids.
    engine, venue, events = setup("sequential")
    venue.inject(kind, leg_index=0, hang_s=0.2)
    await drive(engine, venue, lambda: bool(venue.injected) and bool(executions(events)))
    ex = executions(events)[0]
    oid = f"{ex.opportunity.id}-L0"
    assert venue.forwarded.count(oid) == 1 and oid in venue.fetched
    assert [o.client_oid for o in venue.placed].count(oid) == 1  # never sent again: looked up until it landed
    assert ex.results[0].order.client_oid == oid and ex.results[0].status is OrderStatus.FILLED


async def test_a_timed_out_order_that_lands_and_is_pushed_ends_the_wait_at_once():
    # polling every 30 s: only the push can settle the order before the drain gives up (5 s)
    settings = Settings(sim=SIM, balances={"kucoin": dict(USDT)}, risk={"max_concurrent": 1})
    venue = FaultyVenue(SimVenue(SIM, speed=0, balances=dict(USDT)))
    events: list = []
    engine = make_live(settings, venue, events, poll_interval_s=30.0, resolve_timeout_s=60.0)
    venue.inject("timeout_before_push", leg_index=0, hang_s=0.2)
    await drive(engine, venue, lambda: bool(venue.injected) and bool(executions(events)))
    ex = executions(events)[0]
    oid = f"{ex.opportunity.id}-L0"
    assert ex.results[0].status is OrderStatus.FILLED and ex.results[0].fills
    assert venue.fetched.count(oid) == 1  # the one lookup right after the timeout, before it landed
    assert [o.client_oid for o in venue.placed].count(oid) == 1
    assert engine.executor.order_state_stats()["pushed_resolutions"] >= 1  # type: ignore[attr-defined]


async def test_a_request_the_venue_never_saw_is_sent_again_once_it_had_time_to_land():
    engine, venue, events = setup("sequential")  # resolve_timeout_s 0.5, poll_interval_s 0.01
    venue.inject("timeout_lost", leg_index=0, hang_s=0.2)
    await drive(engine, venue, lambda: bool(venue.injected) and bool(executions(events)))
    ex = executions(events)[0]
    oid = f"{ex.opportunity.id}-L0"
    assert [o.client_oid for o in venue.placed].count(oid) == 2 and venue.forwarded.count(oid) == 1
    assert venue.fetched.count(oid) >= 10  # looked up over the landing window before the second request
    assert ex.results[0].status is OrderStatus.FILLED


@pytest.mark.parametrize("kind", ["open_push", "open_rest"])
async def test_an_open_order_resolves_from_a_pushed_update_or_the_rest_fallback(kind):
    engine, venue, events = setup("sequential")
    venue.inject(kind, leg_index=0)
    await drive(engine, venue, lambda: bool(venue.injected) and bool(executions(events)))
    ex = executions(events)[0]
    oid = f"{ex.opportunity.id}-L0"
    first = ex.results[0]
    assert first.status is OrderStatus.FILLED and first.fills == venue.inner._orders[oid].fills
    if kind == "open_push":
        assert oid not in venue.fetched  # the websocket push settled it
    else:
        assert oid in venue.fetched  # no push: REST lookup by client order id


async def test_a_match_pushed_twice_is_not_booked_twice():
    # the pushed fills add up to more than the venue's filled size: the REST lookup has the order as it is
    engine, venue, events = setup("sequential")
    venue.inject("open_push_twice", leg_index=0)
    await drive(engine, venue, lambda: bool(venue.injected) and bool(executions(events)))
    ex = executions(events)[0]
    oid = f"{ex.opportunity.id}-L0"
    assert ex.results[0].fills == venue.inner._orders[oid].fills and oid in venue.fetched
    theirs = {b.asset: b.free for b in await venue.fetch_balances()}
    assert engine.ledger.free("kucoin", "USDT") == theirs["USDT"]


async def test_non_retryable_venue_error_fails_the_leg_without_retry():
    engine, venue, events = setup("sequential")
    venue.inject("error", leg_index=1)
    await drive(engine, venue, lambda: bool(venue.injected) and bool(executions(events)))
    ex = executions(events)[0]
    failed = ex.results[1]
    assert failed.status is OrderStatus.REJECTED and failed.reason.startswith("venue_error:")
    assert len([o for o in venue.placed if o.client_oid == failed.order.client_oid]) == 1
    assert ex.results[2].order.client_oid.endswith("-U2")  # and the first leg is unwound


async def test_the_kill_switch_stops_new_orders_within_one_market_update():
    engine, venue, events = setup("sequential")
    await drive(engine, venue, lambda: bool(executions(events)))
    sent = len(venue.placed)
    engine.risk.kill("manual: test")
    # an opportunity already handed over when the switch engages sends nothing either
    original = engine.executor.submit
    submitted = []

    def submit(opportunity, now, internal_s=0.0, record=None):
        submitted.append(opportunity)
        original(opportunity, now, internal_s, record)

    engine.executor.submit = submit  # type: ignore[method-assign]
    updates = engine.counters.updates
    await drive(engine, venue, lambda: engine.counters.updates > updates + 5_000, max_s=120.0)
    assert len(venue.placed) == sent
    assert not submitted
    assert engine.counters.rejected[RejectReason.KILL_SWITCH.value] > 0
    assert any(isinstance(e, Rejection) and e.reason is RejectReason.KILL_SWITCH for e in events)


async def test_an_opportunity_handed_over_after_the_kill_sends_nothing():
    """The executor's own gate: whatever reaches it once the switch is engaged is refused before any order
    (the engine refuses at detection too; this holds should anything be handed over late)."""
    engine, venue, events = setup("sequential")
    original = engine.executor.submit

    def kill_then_submit(opportunity, now, internal_s=0.0, record=None):
        engine.risk.kill("manual: racing the executor")
        original(opportunity, now, internal_s, record)

    engine.executor.submit = kill_then_submit  # type: ignore[method-assign]

    def refused():
        return [e for e in events if isinstance(e, Rejection) and e.reason is RejectReason.KILL_SWITCH
                and e.detail.startswith("op")]

    await drive(engine, venue, lambda: bool(refused()))
    assert venue.placed == []
    (rejection,) = refused()
    assert "kill switch: manual: racing the executor" in rejection.detail
    assert engine.opportunity_ledger.records()[0].status == "refused"
    assert engine.risk.in_flight == set() and engine.pending == 0


async def test_error_rate_trips_the_kill_switch():
    engine, venue, events = setup("sequential", error_window=6, error_min_requests=4, max_error_rate=0.5)
    venue.inject("429_before", times=10_000)  # the venue refuses everything
    await drive(engine, venue, lambda: engine.risk.killed)
    assert engine.risk.killed and "error rate" in engine.risk.killed_reason
    assert any(isinstance(e, Notice) and e.kind == "kill_switch" for e in events)
    assert venue.forwarded == []


async def test_a_leg_below_minimum_funds_is_refused_before_any_order_is_sent():
    engine, venue, events = setup("sequential")
    handed = []
    send = engine.executor.submit
    engine.executor.submit = lambda opportunity, now, internal_s=0.0, record=None: handed.append(
        (opportunity, now, record))
    await drive(engine, venue, lambda: bool(handed))
    opportunity, now, record = handed[0]
    key = (opportunity.legs[1].venue, opportunity.legs[1].symbol)
    leg = opportunity.legs[1]
    # the venue's minimum funds for leg 2 is now above what the plan sends
    engine.markets[key] = dataclasses.replace(engine.markets[key], min_funds=leg.size * leg.limit_price * 2)
    send(opportunity, now, 0.0, record)
    await engine.executor.drain()
    assert venue.placed == []  # not even leg 1
    (rejection,) = [e for e in events if isinstance(e, Rejection) and e.detail.startswith(opportunity.id)]
    assert rejection.reason is RejectReason.BELOW_MIN_FUNDS and "leg 1" in rejection.detail
    assert engine.opportunity_ledger.get(opportunity.id).status == "refused"
    assert opportunity.id not in engine.risk.in_flight


async def test_the_opportunity_is_recorded_after_its_first_order_is_sent_on_the_books_it_was_sized_on():
    """The ledger record and the Opportunity event wait until the first order is with the venue (they cost
    it no time), still come before the Execution, and fingerprint the books as the plan saw them even when
    the books move in between."""
    engine, venue, events = setup("sequential")
    at_submit: dict[str, str] = {}
    at_first_order: dict[str, tuple[bool, bool]] = {}
    submit, place = engine.executor.submit, venue.place_order

    def submit_noting_the_books(opportunity, now, internal_s=0.0, record=None):
        at_submit[opportunity.id] = book_fingerprint(engine._books_used(opportunity))
        submit(opportunity, now, internal_s, record)

    async def place_order(order):
        opp_id = order.opportunity_id
        if order.leg_index == 0 and opp_id not in at_first_order:
            at_first_order[opp_id] = (engine.opportunity_ledger.get(opp_id) is not None,
                                      any(isinstance(e, Opportunity) and e.id == opp_id for e in events))
            book = engine.books.get((order.venue, order.symbol))
            book.take(order.side is Side.BUY, math.inf if order.side is Side.BUY else 0.0, math.inf)  # books move
        return await place(order)

    engine.executor.submit = submit_noting_the_books  # type: ignore[method-assign]
    venue.place_order = place_order  # type: ignore[method-assign]
    await drive(engine, venue, lambda: bool(executions(events)))
    opp = executions(events)[0].opportunity
    assert at_first_order[opp.id] == (False, False)  # nothing recorded before the first order went out
    mine = [e for e in events if (isinstance(e, Opportunity) and e.id == opp.id)
            or (isinstance(e, Execution) and e.opportunity.id == opp.id)]
    assert [type(e) for e in mine] == [Opportunity, Execution]
    assert engine.opportunity_ledger.get(opp.id).fingerprint == at_submit[opp.id]


class _ClosedStore(list):
    """An event sink that fails on every opportunity, as a store writer does once closed at shutdown."""

    def append(self, event) -> None:
        super().append(event)
        if isinstance(event, Opportunity):
            raise RuntimeError("the store writer is closed")


@pytest.mark.parametrize("failing", ["sink", "record"])
async def test_a_failing_sink_or_record_never_loses_what_the_venue_filled(failing):
    # The opportunity is recorded and published right after its first order is accepted; a failure there
    # must not drop that order's result: the engine's ledger must still move as the account did.
    probe_settings = Settings(sim=SIM, balances={"kucoin": dict(USDT)}, risk={"max_concurrent": 1})
    venue = FaultyVenue(SimVenue(SIM, speed=0, balances=dict(USDT)))
    events: list = _ClosedStore() if failing == "sink" else []
    engine = make_live(probe_settings, venue, events)
    if failing == "record":
        def broken(*_args, **_kwargs):
            raise RuntimeError("ledger bug")
        engine.opportunity_ledger.detected = broken  # type: ignore[method-assign]

    def filled():
        return [ex for ex in executions(events) if any(r.fills for r in ex.results)]

    await drive(engine, venue, lambda: bool(filled()))
    assert filled(), "no fill was booked"
    theirs = {b.asset: b.free for b in await venue.fetch_balances()}
    for asset in {a for ex in executions(events) for a in ex.opportunity.path}:
        assert engine.ledger.free("kucoin", asset) == theirs.get(asset, 0), asset
    assert engine.pending == 0 and engine.risk.in_flight == set()
    if failing == "sink":
        assert engine.publish_errors >= 1
    else:
        alerts = [n.message for n in events if isinstance(n, Notice) and n.kind == "failed_leg"]
        assert any("recording the opportunity failed: RuntimeError: ledger bug" in a for a in alerts)
