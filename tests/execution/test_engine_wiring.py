"""How the engine hands opportunities to an executor and books what comes back: notices it raises."""

from __future__ import annotations

from decimal import Decimal as D

from cryptoarb.config import Settings
from cryptoarb.engine import Engine
from cryptoarb.execution.executor import Completion
from cryptoarb.execution.paper import PaperExecutor
from cryptoarb.model import BookUpdate, Execution, Market, Notice, Opportunity, Rejection, RejectReason


def market(venue: str) -> Market:
    return Market(venue, "BTC-USDT", "BTC", "USDT", D("0.1"), D("0.0001"), D("0.0001"), D("1"), D("0.001"),
                  D("0.001"))


def engine(events: list, **kw) -> Engine:
    settings = Settings(venues=["kucoin", "coinbase"],
                        balances={"kucoin": {"USDT": 10_000.0, "BTC": 1.0}, "coinbase": {"BTC": 1.0}},
                        risk={"stale_data_s": 5.0})
    e = Engine(settings, {}, [market("kucoin"), market("coinbase")], events.append, **kw)
    for venue in ("kucoin", "coinbase"):
        e.on_batch([BookUpdate(venue, "BTC-USDT", ((50_000.0, 1.0),), ((50_010.0, 1.0),), 1, 0, 0.0)], 0.0, venue)
    return e


def test_inventory_skew_is_alerted_with_a_suggested_transfer():
    events: list = []
    e = engine(events)
    e.ledger._free[("kucoin", "BTC")] = D("0.2")
    e.ledger._free[("coinbase", "BTC")] = D("1.8")
    e._check_inventory(1.0)
    kinds = [(n.kind, n.message) for n in events if isinstance(n, Notice)]
    assert kinds[0][0] == "inventory" and "BTC on kucoin: 0.2 held vs 1 target (-80%" in kinds[0][1]
    assert kinds[1] == ("rebalance", "suggested rebalance: move 0.8 BTC (~40,004.00 USD) from coinbase to kucoin")
    e._check_inventory(2.0)
    assert len([n for n in events if isinstance(n, Notice)]) == 2  # once per episode


def test_stale_market_data_engages_the_kill_switch_and_says_so():
    events: list = []
    e = engine(events)
    e.run_due(4.0)
    assert not e.risk.killed
    e.on_batch([], 4.0, "kucoin")  # kucoin is alive, coinbase silent since 0
    e.run_due(5.5)
    assert e.risk.killed and "coinbase" in e.risk.killed_reason
    (notice,) = [n for n in events if isinstance(n, Notice)]
    assert notice.kind == "kill_switch" and "stale data" in notice.message


def test_an_executor_instance_or_factory_is_bound_to_the_engine():
    events: list = []
    made = []

    def factory(eng: Engine) -> PaperExecutor:
        made.append(eng)
        return PaperExecutor(eng.books, eng.markets, eng.venues, latency_s=0.2)

    e = engine(events, executor=factory)
    assert made == [e] and e.latency_s == 0.2 and e.executor._on_complete == e._complete
    instance = PaperExecutor(e.books, e.markets, {}, latency_s=0.3)
    assert engine(events, executor=instance).latency_s == 0.3


def test_a_refused_completion_is_a_rejection_and_releases_the_opportunity():
    events: list = []
    e = engine(events)
    opp = Opportunity("op1", 3, "cross-exchange", ("USDT", "BTC", "USDT"), (), D(1), D(1), D(0), 0.0, 9.0, 0.0)
    e.risk.started(opp.id)
    e._busy_cycles.add(3)
    e._complete(Completion(opp, (), 1.0, "live", refused=(RejectReason.NO_BALANCE, "leg 0: needs 1 USDT"),
                           requests_ok=0, requests_failed=0))
    (rej,) = [r for r in events if isinstance(r, Rejection)]
    assert rej.reason is RejectReason.NO_BALANCE and rej.detail == "op1: leg 0: needs 1 USDT"
    assert e.risk.in_flight == set() and 3 not in e._busy_cycles
    assert e.counters.rejected["no_balance"] == 1
    e._complete(Completion(opp, (), 2.0, "live", refused=("intent_failed", "disk full")))
    (notice,) = [n for n in events if isinstance(n, Notice)]
    assert notice.kind == "preflight" and notice.fields == {"opportunity": "op1", "reason": "intent_failed"}


def first_opportunity(**kw) -> Opportunity:
    """The opportunity an engine finds on a triangle USDT > BTC > ETH > USDT that pays ~1 % at the top."""
    def tri(symbol: str, base: str, quote: str) -> Market:
        return Market("kucoin", symbol, base, quote, D("0.00001"), D("0.0001"), D("0.0001"), D("0.0001"), D("0.001"),
                      D("0.001"))

    events: list = []
    settings = Settings(balances={"kucoin": {"USDT": 10_000.0}}, detector={"start_assets": ["USDT"]})
    e = Engine(settings, {}, [tri("BTC-USDT", "BTC", "USDT"), tri("ETH-BTC", "ETH", "BTC"),
                              tri("ETH-USDT", "ETH", "USDT")], events.append, **kw)
    e.on_batch([BookUpdate("kucoin", "BTC-USDT", ((49_990.0, 5.0),), ((50_000.0, 5.0),), 1, 0, 1.0),
                BookUpdate("kucoin", "ETH-USDT", ((3_030.0, 50.0),), ((3_031.0, 50.0),), 1, 0, 1.0),
                BookUpdate("kucoin", "ETH-BTC", ((0.0599, 50.0),), ((0.06, 50.0),), 1, 0, 1.0)], 1.0, "kucoin")
    (opp,) = [o for o in events if isinstance(o, Opportunity)]
    return opp


def test_opportunity_ids_and_so_client_order_ids_never_repeat_an_earlier_runs():
    # a restarted engine counts its opportunities from 1 again; an exchange answers a client order id it has
    # seen with that earlier order, so the run's own random id keeps them apart
    first, again = first_opportunity(), first_opportunity()
    assert first.id != again.id
    assert first.id.rsplit("-", 1)[0].endswith("-0000001") and again.id.rsplit("-", 1)[0].endswith("-0000001")
    assert len(f"{first.id}-U10") <= 40  # KuCoin's clientOid limit, with room for an unwind's suffix
    assert first_opportunity(run_id="r7").id.startswith("opr7-0000001-c")


def test_a_run_id_that_cannot_go_into_a_client_order_id_is_refused():
    for bad in ("", "has-dash", "x" * 13, "é"):
        try:
            engine([], run_id=bad)
        except ValueError as exc:
            assert "run_id" in str(exc)
        else:
            raise AssertionError(f"run_id {bad!r} was accepted")


def _market(symbol: str, tick: str = "0.01", min_funds: str = "1") -> Market:
    base, quote = symbol.split("-")
    return Market("kucoin", symbol, base, quote, D(tick), D("0.0001"), D("0.0001"), D(min_funds), D("0.001"),
                  D("0.001"))


TWO_TRIANGLES = [_market("BTC-USDT"), _market("ETH-USDT"), _market("SOL-USDT"),
                 _market("ETH-BTC", "0.00001", "0.0001"), _market("SOL-BTC", "0.0000001", "0.0001")]


def two_triangle_books(seq: int, cheap: float) -> list[BookUpdate]:
    """USDT > BTC > ETH > USDT and USDT > BTC > SOL > USDT, both paying ~1.2 % when ``cheap`` is 0.985."""
    return [BookUpdate("kucoin", "BTC-USDT", ((49_995.0, 10.0),), ((50_005.0, 10.0),), seq, 0, 0.0),
            BookUpdate("kucoin", "ETH-USDT", ((2_999.5, 100.0),), ((3_000.5, 100.0),), seq, 0, 0.0),
            BookUpdate("kucoin", "SOL-USDT", ((99.99, 1_000.0),), ((100.01, 1_000.0),), seq, 0, 0.0),
            BookUpdate("kucoin", "ETH-BTC", ((round(0.06 * cheap, 5) - 0.00001, 100.0),),
                       ((round(0.06 * cheap, 5), 100.0),), seq, 0, 0.0),
            BookUpdate("kucoin", "SOL-BTC", ((round(0.002 * cheap, 7) - 0.0000001, 1_000.0),),
                       ((round(0.002 * cheap, 7), 1_000.0),), seq, 0, 0.0)]


def triangles_engine(events: list, usdt: float) -> Engine:
    settings = Settings(balances={"kucoin": {"USDT": usdt}}, detector={"start_assets": ["USDT"]},
                        risk={"stale_data_s": 0})
    e = Engine(settings, {}, TWO_TRIANGLES, events.append)
    e.on_batch(two_triangle_books(1, 1.0), 0.0, "kucoin")
    return e


def test_plans_in_flight_hold_back_the_balance_they_draw_on():
    # both triangles pay in the same batch; each alone would be sized to the 2,000 USD notional cap, but the
    # account holds 2,500 USDT: the second plan may only use what the first leaves
    events: list = []
    e = triangles_engine(events, 2_500.0)
    e.on_batch(two_triangle_books(2, 0.985), 1.0, "kucoin")
    first, second = [o for o in events if isinstance(o, Opportunity)]
    assert first.input > D(1_900) and first.input + second.input <= D(2_500)
    e.run_due(2.0)
    assert e.pending == 0 and e._free("kucoin", "USDT") == e.ledger.free("kucoin", "USDT")  # released


def test_a_market_paused_after_the_hand_over_is_not_traded():
    # the plan waits for its latency (paper: 50 ms); a pause in that time stops it before its first order
    events: list = []
    e = triangles_engine(events, 10_000.0)
    e.on_batch(two_triangle_books(2, 0.985), 1.0, "kucoin")
    assert e.pending
    e.risk.paused.add(("kucoin", "BTC-USDT"))
    e.run_due(2.0)
    assert e.pending == 0 and not [x for x in events if isinstance(x, Execution)]
    refused = [r for r in events if isinstance(r, Rejection) and r.reason is RejectReason.PAUSED]
    assert refused and "BTC-USDT@kucoin paused" in refused[0].detail
