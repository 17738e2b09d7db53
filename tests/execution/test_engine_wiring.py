"""How the engine hands opportunities to an executor and books what comes back: notices it raises."""

from __future__ import annotations

from decimal import Decimal as D

from cryptoarb.config import Settings
from cryptoarb.engine import Engine
from cryptoarb.execution.executor import Completion
from cryptoarb.execution.paper import PaperExecutor
from cryptoarb.model import BookUpdate, Market, Notice, Opportunity, Rejection, RejectReason


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
